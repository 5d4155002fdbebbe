"""Train the U-Net or SimVP outside the notebooks, on one device or many (torchrun).

    python scripts/tools/train.py unet --data-root data/embedded --out runs/cli/unet epochs=2 width=16
    torchrun --nproc_per_node=4 scripts/tools/train.py unet --params params/full/common.yaml \
        --params params/full/02_unet.yaml --out runs/ddp/unet
    torchrun --nproc_per_node=4 scripts/tools/train.py simvp --params params/full/common.yaml \
        --params params/full/04_simvp.yaml --labels runs/full/labels --out runs/ddp/simvp

Settings come from a profile's parameter files (``--params``, later ones win; pass the profile's ``common.yaml``
for its ``data_root``) and ``key=value`` overrides (values parsed as YAML). A key of a ``--params`` file must be
the trainer's or some notebook's (those only the notebooks use are listed and left out); an override must be
the trainer's: its defaults (``DEFAULTS`` of lib/segmentation/training.py, lib/forecasting/training.py),
and how the data is read: ``data_root``, ``policy``, ``cache_dir``, ``max_bad_fraction``. Anything else, or a value of the wrong type, stops before training, naming the
key and the closest known ones (types as in lib/common/params.py: ``lr=1e-4`` is read as the float).
It prints the ``data_root`` it uses and where that came from. ``batch_size`` is the global batch, split over
ranks. Rerunning the same command resumes from ``<out>/last.pt`` (refused when the data changed). For simvp, the U-Net labels must be those of the packed
data, and of the checkpoint ``--unet`` (default ``<labels>/../unet/best.pt`` when it exists): stale labels are
an error.
"""

import argparse
import sys

import yaml

from lib.common import distributed, params
from lib.data.dataset import MAX_BAD_FRACTION
from lib.data.source import DataSource

# the trainer's keys besides its DEFAULTS: how the data is read (lib/data/source.py)
EXTRA = {"data_root": "data/embedded", "policy": "skip", "cache_dir": None, "max_bad_fraction": MAX_BAD_FRACTION}


def settings(a, defaults):
    """(trainer settings, DataSource) from the --params files and overrides, checked (ParamError)."""
    trainer = {**defaults, **EXTRA}
    notebook_keys = set().union(*map(params.notebook_parameters, params.notebooks()))
    given, errors = [], []  # (key, value, where)
    for f in a.params:
        values = params.load(f)
        errors += [
            params.unknown(k, trainer.keys() | notebook_keys, f, "neither the trainer nor a notebook defines it")
            for k in values
            if k not in trainer and k not in notebook_keys
        ]
        left_out = [k for k in values if k not in trainer and k in notebook_keys]
        if left_out:
            print(f"[train] {f}: not for the {a.model} trainer, left out: {', '.join(left_out)}")
        given += [(k, v, f) for k, v in values.items() if k in trainer]
    for kv in a.overrides:
        if "=" not in kv:
            raise params.ParamError(f"override {kv!r} is not key=value")
        k, v = kv.split("=", 1)
        if k not in trainer:
            errors.append(params.unknown(k, trainer, f"override {kv!r}", f"the {a.model} trainer does not take it"))
        given.append((k, yaml.safe_load(v), f"override {kv!r}"))
    cfg, where = {}, {}
    for k, v, w in given:
        if k in trainer:
            try:
                cfg[k], note = params.convert(k, v, trainer[k], w)
            except params.ParamError as e:
                errors.append(str(e))
                continue
            where[k] = w
            if note:
                print(f"[train] note: {note}")
    if errors:
        raise params.ParamError("\n".join(errors))
    if a.data_root:
        data_root, source = a.data_root, "--data-root"
    elif "data_root" in cfg:
        data_root, source = cfg["data_root"], where["data_root"]
    else:
        data_root, source = EXTRA["data_root"], "the default: no --data-root, no data_root in --params (common.yaml)"
    print(f"[train] data_root {data_root} (from {source})", flush=True)
    cfg.pop("data_root", None)
    reading = {k: cfg.pop(k, EXTRA[k]) for k in ("policy", "cache_dir", "max_bad_fraction")}
    return cfg, DataSource(data_root, **reading)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=["unet", "simvp"])
    ap.add_argument("--params", action="append", default=[], help="YAML parameter file(s), later ones win")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--labels", default=None, help="folder of U-Net labels (simvp)")
    ap.add_argument("--unet", default=None, help="U-Net checkpoint the labels must come from (simvp)")
    ap.add_argument("--out", required=True, help="checkpoint and log folder")
    ap.add_argument("--device", default=None)
    ap.add_argument("overrides", nargs="*", help="key=value settings")
    a = ap.parse_intermixed_args(argv)

    if a.model == "unet":
        from lib.segmentation.training import DEFAULTS
    else:
        from lib.forecasting.training import DEFAULTS
    try:
        cfg, source = settings(a, DEFAULTS)
    except params.ParamError as e:
        sys.exit(f"[train] stopped before training:\n{e}")
    rank, world, device = distributed.setup(a.device)
    try:
        if a.model == "unet":
            from lib.segmentation.training import train_unet

            _, history, _ = train_unet(source, a.out, device=device, progress=rank == 0, **cfg)
        else:
            from pathlib import Path

            from lib.forecasting.training import train_simvp
            from lib.segmentation.label import checkpoint_key

            if not a.labels:
                ap.error("simvp needs --labels (the folder of U-Net labels, notebook 03)")
            unet = Path(a.unet) if a.unet else Path(a.labels).parent / "unet" / "best.pt"
            unet_key = checkpoint_key(unet) if unet.is_file() else None
            if a.unet and unet_key is None:
                ap.error(f"--unet {a.unet}: no such checkpoint")
            _, history, _ = train_simvp(
                source, a.labels, a.out, device=device, progress=rank == 0, unet_key=unet_key, **cfg
            )
        if rank == 0:
            print(f"[train] {a.model}: {len(history)} epochs, world size {world}, last row: {history[-1]}")
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
