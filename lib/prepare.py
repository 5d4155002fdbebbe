"""Making sure a data root holds a dataset: generate the embedded synthetic one when it is empty,
complete it when an earlier generation was interrupted, and leave real data alone."""
import json
import logging

from .data import SPLITS, list_videos
from .io import save_json
from .paths import resolve

log = logging.getLogger(__name__)
MARKER = "SYNTHETIC.json"  # written by prepare_dataset after a complete generation


def describe_root(data_root):
    """{"split": number of video folders} and whether the root holds our synthetic data."""
    root = resolve(data_root)
    counts = {s: len(list_videos(root / s)) for s in SPLITS if (root / s).is_dir()}
    return {"root": str(root), "counts": counts, "synthetic": (root / MARKER).is_file()
            or (root / (MARKER + ".partial")).is_file()}


def prepare_dataset(data_root, counts, seed=0, workers=None, progress=True, **synth_cfg):
    """Returns a dict saying what was done: "generated", "completed" or "existing" (real or finished data)."""
    from . import synth

    root = resolve(data_root)
    info = describe_root(root)
    complete = (root / MARKER).is_file()
    if info["counts"] and not info["synthetic"]:
        print(f"Using the existing (real) dataset in {root}: {info['counts']} videos; nothing generated.")
        return {**info, "action": "existing"}
    marker = root / MARKER if complete else root / (MARKER + ".partial")
    if info["synthetic"]:
        old = json.loads(marker.read_text())
        if old.get("seed") != seed or old.get("cfg", {}) != synth_cfg:
            raise ValueError(f"{marker}: {root} holds synthetic data made with seed={old.get('seed')} "
                             f"cfg={old.get('cfg')}, not seed={seed} cfg={synth_cfg}; use another data_root "
                             "or delete this one")
        if complete and old.get("counts") == dict(counts):
            print(f"Using the synthetic dataset already in {root}: {info['counts']} videos (seed {seed}).")
            return {**info, "action": "existing"}
    action = "completed" if info["counts"] else "generated"
    print(f"{'Completing' if info['counts'] else 'Generating'} the synthetic dataset in {root}: {dict(counts)}")
    root.mkdir(parents=True, exist_ok=True)
    save_json(root / (MARKER + ".partial"), {"counts": dict(counts), "seed": seed, "cfg": synth_cfg})
    result = synth.generate(root, counts=dict(counts), seed=seed, workers=workers, progress=progress, **synth_cfg)
    save_json(root / MARKER, {"counts": dict(counts), "seed": seed, "cfg": synth_cfg, "result": result})
    (root / (MARKER + ".partial")).unlink()
    return {**describe_root(root), "action": action, "generation": result}
