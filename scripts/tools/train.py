"""Train the U-Net or SimVP outside the notebooks, on one device or many (torchrun).

    python scripts/tools/train.py unet --data-root data/embedded --out runs/cli/unet epochs=2 width=16
    torchrun --nproc_per_node=4 scripts/tools/train.py unet --params params/full/02_unet.yaml --out runs/ddp/unet
    torchrun --nproc_per_node=4 scripts/tools/train.py simvp --params params/full/common.yaml \
        --params params/full/04_simvp.yaml --labels runs/full/labels --out runs/ddp/simvp

Settings come from a profile's parameter file (``--params``; keys the trainer does not know are ignored)
and ``key=value`` overrides (values parsed as YAML). ``batch_size`` is the global batch, split over ranks.
Rerunning the same command resumes from ``<out>/last.pt`` (refused when the data changed). ``policy`` (the packing
policy, e.g. from common.yaml) is passed on. For simvp, the U-Net labels must be those of the packed data, and of
the checkpoint ``--unet`` (default ``<labels>/../unet/best.pt`` when it exists): stale labels are an error.
"""

import argparse
import sys

import yaml

from lib.common import distributed


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

    values = {}
    for f in a.params:
        values.update(yaml.safe_load(open(f)) or {})
    for kv in a.overrides:
        if "=" not in kv:
            ap.error(f"override {kv!r} is not key=value")
        k, v = kv.split("=", 1)
        values[k] = yaml.safe_load(v)
    data_root = a.data_root or values.get("data_root", "data/embedded")
    policy = values.get("policy", "skip")
    rank, world, device = distributed.setup(a.device)
    try:
        if a.model == "unet":
            from lib.segmentation.training import DEFAULTS, train_unet

            cfg = {k: v for k, v in values.items() if k in DEFAULTS}
            _, history, _ = train_unet(data_root, a.out, device=device, progress=rank == 0, policy=policy, **cfg)
        else:
            from pathlib import Path

            from lib.forecasting.training import DEFAULTS, train_simvp
            from lib.segmentation.label import checkpoint_key

            if not a.labels:
                ap.error("simvp needs --labels (the folder of U-Net labels, notebook 03)")
            unet = Path(a.unet) if a.unet else Path(a.labels).parent / "unet" / "best.pt"
            unet_key = checkpoint_key(unet) if unet.is_file() else None
            if a.unet and unet_key is None:
                ap.error(f"--unet {a.unet}: no such checkpoint")
            cfg = {k: v for k, v in values.items() if k in DEFAULTS}
            _, history, _ = train_simvp(
                data_root, a.labels, a.out, device=device, progress=rank == 0, policy=policy, unet_key=unet_key, **cfg
            )
        if rank == 0:
            print(f"[train] {a.model}: {len(history)} epochs, world size {world}, last row: {history[-1]}")
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
