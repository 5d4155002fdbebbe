"""What dropping U-Net fragments adds (``tracks.drop_fragments``): on a finished run's val and hidden videos, U-Net
inputs, the run's learned model and its physics baseline with the rule and without it (``FRAGMENT_FRAMES = 0``).

A fragment is an id seen in at most 3 input frames that never touches the image edge; objects enter and leave
through the edges, so it is a stretch of another object's rim with a wrong class. Reports per split the IoU with
and without, the paired 95% bootstrap interval of the difference, the ids dropped and, on val (where the true
input masks are known), how many of them the true masks do not hold.

    python scripts/experiments/eval_fragments.py --run runs/cpu-ref5 --out results/experiments/fragments.json
"""

import argparse
import json
from contextlib import contextmanager

import numpy as np

from lib.common.files import save_json
from lib.common.metrics import bootstrap_diff_ci, iou_from_confusion, per_video_confusion
from lib.common.paths import resolve
from lib.data import dataset as data
from lib.objects import learned, motion, tracks
from lib.objects.motion import MotionSettings
from lib.segmentation.label import load_labels


@contextmanager
def fragment_frames(n):
    """``tracks.FRAGMENT_FRAMES`` set to ``n`` inside the block (0: no fragments dropped), restored after it."""
    saved, tracks.FRAGMENT_FRAMES = tracks.FRAGMENT_FRAMES, n
    try:
        yield
    finally:
        tracks.FRAGMENT_FRAMES = saved


def dropped_ids(inputs, min_area):
    """Per video the ids ``drop_fragments`` leaves out of (N, 11, H, W) U-Net inputs."""
    out = []
    for v in inputs:
        kept = set(tracks.tracks(v, min_area, denoise=True))
        with fragment_frames(0):
            every = set(tracks.tracks(v, min_area, denoise=True))
        out.append(sorted(every - kept))
    return out


def compare(predictors, inputs, true22, min_area, true_inputs=None, seed=0):
    """{predictor: IoU with / without the rule, paired interval} on (N, 11, H, W) U-Net ``inputs``; ``predictors``:
    {name: function inputs -> (N, H, W) masks}; ``min_area``: the U-Net setting the ids are counted with.
    ``true_inputs``: the true masks of the same frames, to count the dropped ids that are not objects."""
    res = {}
    for name, predict in predictors.items():
        cms = {}
        for rule, frames in (("with", tracks.FRAGMENT_FRAMES), ("without", 0)):
            with fragment_frames(frames):
                cms[rule] = per_video_confusion(predict(inputs), true22)
        res[name] = {
            "iou_with_rule": iou_from_confusion(cms["with"].sum(0))[0],
            "iou_without_rule": iou_from_confusion(cms["without"].sum(0))[0],
            "rule_minus_none": bootstrap_diff_ci(cms["with"], cms["without"], seed=seed),
        }
    drops = dropped_ids(inputs, min_area)
    res["dropped_ids"] = sum(map(len, drops))
    if true_inputs is not None:
        res["dropped_ids_not_in_true_masks"] = sum(
            len(set(d) - set(np.unique(t).tolist())) for d, t in zip(drops, true_inputs)
        )
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a finished run folder (labels/, objects/last.pt, metrics/)")
    ap.add_argument("--data-root", default="data/embedded", help="val masks and hidden_answers.npz")
    ap.add_argument("--out", default=None, help="JSON results")
    args = ap.parse_args(argv)

    run = resolve(args.run)
    sel = json.loads((run / "objects" / "selected.json").read_text())
    unet = {"min_area": sel["min_area"], "denoise": sel["denoise"]}  # the U-Net settings notebook 06 recorded
    model = learned.load_dynamics(run / "objects" / "last.pt")
    model.cfg.update(unet)
    cfg = json.loads((run / "metrics" / "06_objects.json").read_text())["settings"]["physics"]
    physics = MotionSettings.from_config(cfg, method="physics", **unet)
    predictors = {
        "learned": lambda x: learned.predict_split_learned(model, x, device="cpu", progress=False),
        "physics": lambda x: motion.predict_split(x, physics, progress=False),
    }
    val = data.load_split(args.data_root, "val", policy="skip")
    splits = {}
    ids, labels = load_labels(run / "labels", "val")
    pos = {int(v): i for i, v in enumerate(ids)}
    x = np.stack([labels[pos[int(v)], :11] for v in val.ids])
    splits["val"] = compare(
        predictors, x, np.asarray(val.masks[:, 21]), unet["min_area"], np.asarray(val.masks[:, :11])
    )
    answers = resolve(args.data_root) / "hidden_answers.npz"
    if answers.is_file():
        ans = np.load(answers)
        ids, labels = load_labels(run / "labels", "hidden")
        where = {int(v): i for i, v in enumerate(ans["ids"])}
        x = np.asarray(labels[:, :11])
        splits["hidden"] = compare(predictors, x, ans["masks"][[where[int(v)] for v in ids]], unet["min_area"])
    res = {"run": args.run, "fragment_frames": tracks.FRAGMENT_FRAMES, "splits": splits}
    for split, r in splits.items():
        for name in predictors:
            d = r[name]["rule_minus_none"]
            print(
                f"{split} {name}: with {r[name]['iou_with_rule']:.4f} without {r[name]['iou_without_rule']:.4f} "
                f"difference {d['diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]"
            )
        extra = r.get("dropped_ids_not_in_true_masks")
        print(
            f"{split}: {r['dropped_ids']} ids dropped" + ("" if extra is None else f", {extra} not in the true masks")
        )
    if args.out:
        save_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
