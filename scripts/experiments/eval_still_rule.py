"""The still rule of the learned object model (``learned.predict_items``, ``cfg["still"]``) on videos no run has
seen: an object the physics baseline keeps still keeps the baseline's place, instead of the model's guess.

Generates ``--videos`` masks-only videos (``synth.generate_masks``, the dataset's seed and settings, rasterised like
the dataset) with ids after the masks-only training videos of the ``cpu`` profile (2100..11799), so neither the
model nor any choice of the rule has seen them, and scores a trained checkpoint on them with true input masks:
frame-22 IoU with the rule and without it, and the paired 95% bootstrap interval of the difference.

    python scripts/experiments/eval_still_rule.py --checkpoint runs/cpu-ref4/objects/last.pt \
        --out results/experiments/still_rule.json
"""

import argparse

import numpy as np

from lib.common.files import save_json
from lib.common.metrics import bootstrap_diff_ci, iou_from_confusion, per_video_confusion
from lib.objects import learned, masks_only, motion


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a train_dynamics checkpoint (notebook 06's last.pt)")
    ap.add_argument("--data-root", default="data/embedded", help="its SYNTHETIC.json gives the seed and settings")
    ap.add_argument("--videos", type=int, default=400)
    ap.add_argument("--first-id", type=int, default=12000)
    ap.add_argument("--cache", default="data/dyn_extra", help="where the generated videos are kept")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON results")
    args = ap.parse_args(argv)

    masks = masks_only.extra_videos(  # rasterised like the dataset
        args.data_root,
        args.cache,
        args.videos,
        supersample=2,
        workers=args.workers,
        first=args.first_id,
        name="masks_s{seed}_{first}_{n}_ss{supersample}.npy",
    ).masks
    true22 = np.asarray(masks[:, 21])
    model = learned.load_dynamics(args.checkpoint)
    model.cfg.update(motion.reading("true"))  # true masks in
    rule = model.cfg["still"]
    cms = {}
    for name, still in (("with", rule), ("without", 0.0)):
        model.cfg["still"] = still
        cms[name] = per_video_confusion(learned.predict_split_learned(model, masks, device="cpu"), true22)
    res = {
        "checkpoint": args.checkpoint,
        "ids": [args.first_id, args.first_id + args.videos - 1],
        "still": rule,
        "iou_with_rule": iou_from_confusion(cms["with"].sum(0))[0],
        "iou_without_rule": iou_from_confusion(cms["without"].sum(0))[0],
        "rule_minus_none": bootstrap_diff_ci(cms["with"], cms["without"]),
    }
    d = res["rule_minus_none"]
    print(
        f"{args.videos} fresh videos, true masks in: with the still rule ({rule} px) {res['iou_with_rule']:.4f}, "
        f"without {res['iou_without_rule']:.4f}, difference {d['diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]"
    )
    if args.out:
        save_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
