"""Calibration report of a (synthetic) dataset split against the real data's difficulty (docs/dataset.md, Calibration).

python scripts/tools/synth_stats.py --data-root data/synth_cal --generate 200 --workers 2 --json cal.json
python scripts/tools/synth_stats.py --data-root data/real --split val
"""

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

from lib.common.files import save_json
from lib.data import stats

# name -> (lower, upper, what the real data shows)
TARGETS = {
    "copy_frame_iou": (0.18, 0.32, "real val ~0.24"),
    "late_entrant_share": (0.15, 1.0, "objects entering after frame 11"),
    "objects_per_frame": (3.0, 5.0, "CLEVRER: 3-6 objects a video"),
    "size_p5": (15.0, 45.0, "objects 15-45 px across"),
    "size_p95": (15.0, 45.0, "objects 15-45 px across"),
}


def load_masks(split_dir, limit=None):
    """Masks (N, 22, H, W) of the split's videos in numeric order; videos without 22 frames are skipped."""
    dirs = [d for d in Path(split_dir).iterdir() if d.is_dir() and re.fullmatch(r"video_\d+", d.name)]
    dirs.sort(key=lambda d: int(d.name.split("_")[1]))
    masks, bad = [], []
    for d in dirs[:limit]:
        f = d / "mask.npy"
        m = np.load(f) if f.is_file() else None
        if m is None or m.ndim != 3 or m.shape[0] != 22:
            bad.append(d.name)
            continue
        masks.append(m)
    if bad:
        print(f"skipped {len(bad)} videos without a (22, H, W) mask: {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    if not masks:
        sys.exit(f"no masks found under {split_dir}")
    return np.stack(masks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--generate", type=int, default=0, help="first generate this many videos of the split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="use at most this many videos")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()

    out = {"data_root": args.data_root, "split": args.split}
    if args.generate:
        from lib.data.synth import generate

        res = generate(args.data_root, counts={args.split: args.generate}, seed=args.seed, workers=args.workers)
        out["generation"] = {k: res[k] for k in ("written", "skipped", "seconds", "videos_per_s", "workers")}
        print(
            f"generated {res['written'][args.split]} videos ({res['skipped'][args.split]} already there) "
            f"in {res['seconds']:.1f} s: {res['videos_per_s']:.2f} videos/s with {res['workers']} workers"
        )
    t0 = time.time()
    masks = load_masks(Path(args.data_root) / args.split, args.limit or (args.generate or None))
    summary = stats.summarize(masks)
    out["summary"] = summary
    print(
        f"{len(masks)} videos of {args.split}, masks {masks.shape[1:]} (loaded and measured in {time.time() - t0:.1f} s)"
    )
    print(f"  copy-frame-11 IoU (frame 10 as frame 21)  {summary['copy_frame_iou']:.3f}")
    print(
        f"  objects per frame / per video             {summary['objects_per_frame']:.2f} / {summary['objects_per_video']:.2f}"
    )
    print(f"  late-entrant share (first seen > frame 10) {summary['late_entrant_share']:.3f}")
    print(
        f"  object size px (p5 / p50 / p95)           {summary['size_p5']:.1f} / {summary['size_p50']:.1f} / {summary['size_p95']:.1f}"
    )
    print(f"  pixels moved frame 10 -> 21 (mean)        {summary['moved_pixels']:.0f}")
    first = stats.first_appearance(masks)
    hist = np.bincount(first[first > 0], minlength=masks.shape[1])[1:]
    print(f"  objects first seen at frame 1..{masks.shape[1] - 1}: {hist.tolist()}")
    checks = {}
    for name, (lo, hi, why) in TARGETS.items():
        v = summary[name]
        ok = bool(lo <= v <= hi)
        checks[name] = ok
        print(f"  {'PASS' if ok else 'FAIL'}  {name} = {v:.3f} in [{lo}, {hi}]  ({why})")
    out["checks"] = checks
    out["pass"] = all(checks.values())
    print("PASS" if out["pass"] else "FAIL")
    if args.json:
        save_json(args.json, out)
        print(f"wrote {args.json}")
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
