"""Shapes that move: the per-object mask refinement (lib/objects/refine.py) against the oracles, on val.

    python scripts/experiments/eval_refine.py --data-root data/embedded --labels runs/cpu-1/labels/val.npy \
        --settings runs/cpu-1/metrics/06_objects.json --train-dir runs/refine [--epochs 6] [--out results.json]
    python scripts/experiments/eval_refine.py ... --tiny        # a fast smoke test (few videos, one epoch)

Trains the refiner on TRUE train masks (oracle placements; ``--motion-train`` adds the physics model's;
resumes / reuses ``--train-dir``; the logit threshold is chosen on held-out TRAIN videos), then scores on val (never trained on or selected on), for true inputs and U-Net inputs
(``min_area=20, denoise=True``):
(1) at the oracle's positions: the position oracle (+ entrants) with the renderer vs with the refiner, and the
    true-shapes oracle; the share of the shape gap (entrants -> true shapes) the refiner closes;
(2) at the physics model's predicted positions: the renderer vs the refiner.
Metric: lib.common.metrics.jaccard over the stacked frame-22 masks, 95% bootstrap intervals over videos and
paired bootstrap differences.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lib.common.files import save_json
from lib.common.metrics import bootstrap_ci, bootstrap_diff_ci, per_video_confusion, stacked_iou
from lib.data import dataset as data
from lib.objects import oracle as Q
from lib.objects import refine as R
from lib.objects import tracks as O


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--labels", default=None, help="U-Net labels of val, (N, 22, H, W) .npy")
    ap.add_argument("--settings", default=None, help='JSON with "settings" -> "physics" (notebook 06 metrics)')
    ap.add_argument("--size-b", type=float, default=None, help="size model slope (default: from --settings)")
    ap.add_argument("--train-dir", default=None, help="refiner checkpoints (default: a temp dir)")
    ap.add_argument("--checkpoint", default=None, help="use this trained refiner, do not train")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--gain", type=float, default=None, help="logit of the paste (default refine.GAIN)")
    ap.add_argument(
        "--motion-train",
        action="store_true",
        help="also train on the physics model's placements (default: oracle only)",
    )
    ap.add_argument("--val-videos", type=int, default=None)
    ap.add_argument("--train-videos", type=int, default=None)
    ap.add_argument("--tiny", action="store_true", help="smoke test: 20 train, 10 val videos, 1 epoch")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.tiny:
        args.train_videos, args.val_videos, args.epochs, args.n_boot = 20, 10, 1, 200
    t0 = time.time()
    train = data.load_split(args.data_root, "train", progress=False)
    val = data.load_split(args.data_root, "val", progress=False)
    phys = {"method": "physics", **O.PHYSICS_DEFAULTS}
    if args.settings:
        phys.update(json.loads(Path(args.settings).read_text())["settings"]["physics"])
        phys["method"] = "physics"
    size_b = float(args.size_b if args.size_b is not None else phys.get("size_b", 0.0))
    phys["size_b"] = size_b
    phys = {k: phys[k] for k in ("method", *R.MOTION_KEYS) if k in phys}
    n_tr = min(args.train_videos or len(train), len(train))
    n_val = min(args.val_videos or len(val), len(val))
    train_masks = train.masks[:n_tr]

    # ----- the refiner (train split only)
    t1 = time.time()
    if args.checkpoint:
        model, hist, train_s = R.load_refiner(args.checkpoint), None, None
    else:
        import tempfile

        out_dir = args.train_dir or tempfile.mkdtemp(prefix="refine_")
        model, hist = R.train_refiner(
            train_masks,
            out_dir,
            size_b=size_b,
            motion=phys if args.motion_train else None,
            epochs=args.epochs,
            cfg=None if args.gain is None else {"gain": args.gain},
            lr=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            device="cpu",
            progress=False,
            resume=bool(args.train_dir),
        )
        train_s = time.time() - t1
        for row in hist:  # the held-out numbers are missing when train is too small to hold videos out
            print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        print(
            f"refiner trained on {n_tr} train videos in {train_s:.0f}s; logit threshold "
            f"{model.cfg.get('threshold', 0.0)} (held-out train); checkpoints in {out_dir}",
            flush=True,
        )

    # ----- val
    val_true = np.asarray(val.masks[:n_val])
    true22 = val_true[:, O.TARGET]
    inputs = {"true": (np.asarray(val.masks[:n_val, : O.LAST_INPUT + 1]), 1, False)}
    if args.labels and Path(args.labels).is_file():
        lab = np.load(args.labels, mmap_mode="r")
        ids_file = Path(args.labels).with_suffix(".ids.npy")
        if ids_file.is_file() and not np.array_equal(np.load(ids_file), val.ids):
            raise SystemExit(f"{ids_file} does not list the val split's videos")
        inputs["unet"] = (np.asarray(lab[:n_val, : O.LAST_INPUT + 1]), 20, True)
    results, speed = {}, {}
    for src, (x, min_area, denoise) in inputs.items():
        kw = dict(min_area=min_area, denoise=denoise)
        orc = [Q.oracle_predictions(x[i], val_true[i], size_b, **kw) for i in range(n_val)]
        t2 = time.time()
        mot = [R.motion_predictions(x[i], phys, **kw) for i in range(n_val)]
        t_motion = time.time() - t2
        ent = np.zeros_like(true22)
        for i in range(n_val):
            e = Q.entrant_ids(val_true[i])
            ent[i] = np.where(np.isin(true22[i], e), true22[i], 0)

        def with_entrants(pred, ent=ent):
            return np.where(ent > 0, ent, pred)

        pos = np.stack([O.render(x[i], orc[i], denoise=denoise) for i in range(n_val)])
        pos_ref = R.refine_split(model, x, orc, denoise)
        t3 = time.time()
        phy = np.stack([O.render(x[i], mot[i], denoise=denoise) for i in range(n_val)])
        t_render = time.time() - t3
        t4 = time.time()
        phy_ref = R.refine_split(model, x, mot, denoise)
        t_refine = time.time() - t4
        speed[src] = {
            "videos": n_val,
            "physics_s": t_motion,
            "render_s": t_render,
            "refine_s": t_refine,
            "refine_videos_per_s": n_val / t_refine,
        }
        rows = {
            "oracle position": pos,
            "oracle position + refine": pos_ref,
            "oracle position + entrants": with_entrants(pos),
            "oracle position + entrants + refine": with_entrants(pos_ref),
            "oracle true shapes": Q.oracle_split(x, val_true, "shapes", size_b=size_b, **kw),
            "physics": phy,
            "physics + refine": phy_ref,
        }
        cms = {k: per_video_confusion(v, true22) for k, v in rows.items()}
        res = {
            "rows": {
                k: {"iou": float(stacked_iou(c.sum(0))), "ci": bootstrap_ci(c, args.n_boot, seed=args.seed)}
                for k, c in cms.items()
            },
            "diffs": {},
        }
        for a, b in [
            ("oracle position + refine", "oracle position"),
            ("oracle position + entrants + refine", "oracle position + entrants"),
            ("oracle true shapes", "oracle position + entrants"),
            ("physics + refine", "physics"),
        ]:
            res["diffs"][f"{a} - {b}"] = bootstrap_diff_ci(cms[a], cms[b], args.n_boot, seed=args.seed)
        r = res["rows"]
        gap = r["oracle true shapes"]["iou"] - r["oracle position + entrants"]["iou"]
        gain = r["oracle position + entrants + refine"]["iou"] - r["oracle position + entrants"]["iou"]
        res["shape_gap_closed"] = float(gain / gap) if gap > 0 else float("nan")
        results[src] = res

    print(f"\nval {n_val} videos; train {n_tr} videos; size_b {size_b}; physics {phys}")
    print("\n| predictor | " + " | ".join(f"val IoU ({s} inputs) [95% CI]" for s in results) + " |")
    print("|---|" + "---|" * len(results))
    for part, key, sign in (("rows", "iou", ""), ("diffs", "diff", "+")):  # scores, then paired differences
        for name in results["true"][part]:
            cells = [r[part][name] for r in results.values()]
            cells = [f"{c[key]:{sign}.4f} [{c['ci'][0]:{sign}.4f}, {c['ci'][1]:{sign}.4f}]" for c in cells]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "| share of the shape gap closed | "
        + " | ".join(f"{r['shape_gap_closed']:.3f}" for r in results.values())
        + " |"
    )
    for src, s in speed.items():
        print(
            f"{src}: refine {s['refine_s']:.1f}s for {s['videos']} videos ({s['refine_videos_per_s']:.1f} videos/s); "
            f"render {s['render_s']:.1f}s; physics predictions {s['physics_s']:.1f}s"
        )
    if args.out:
        save_json(
            args.out,
            {
                "val_videos": n_val,
                "train_videos": n_tr,
                "size_b": size_b,
                "physics": phys,
                "epochs": args.epochs,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "motion_train": bool(args.motion_train),
                "threshold": model.cfg.get("threshold", 0.0),
                "train_seconds": train_s,
                "history": hist,
                "model": model.cfg,
                "results": results,
                "speed": speed,
                "threads": args.threads,
            },
        )
    print(f"({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
