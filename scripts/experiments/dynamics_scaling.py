"""Data-scaling curve of the learned object dynamics model (issue 14): frame-22 val IoU of the learned model and
of the physics baseline vs the number of training videos, with 95% bootstrap intervals.

Size 300 is the train split alone (its true masks); larger sizes add cheap masks-only videos generated for this
stage alone (``synth.generate_masks``: ids right after the dataset's unlabeled videos, same seed; never a val or
hidden video), generated once and reused. Each size trains ``learned.train_dynamics`` from scratch, then
learned and physics are scored on val with true inputs (min_area=1, no denoising) and with the U-Net labels of
a run (min_area=20, denoised), as notebook 06 does; the paired interval of learned - physics uses the same
resampled videos for both.

    python scripts/experiments/dynamics_scaling.py --sizes 300 1000 3000 --epochs 10 --out results/experiments/dynamics_scaling.json
    python scripts/experiments/dynamics_scaling.py --tiny --data-root <tiny data> --unet-labels <labels.npy> --out /tmp/s.json
    python scripts/experiments/dynamics_scaling.py --plot-only results/experiments/dynamics_scaling.json \
        results/experiments/dynamics_scaling_10k.json --plot results/experiments/dynamics_scaling.png
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from lib.common.files import save_json
from lib.common.metrics import bootstrap_ci, bootstrap_diff_ci, iou_from_confusion, per_video_confusion
from lib.common.paths import project_root, resolve
from lib.objects import fit, learned, masks_only, motion, tracks
from lib.objects.motion import MotionSettings

SOURCES = ("true", "unet")


def load_masks(data_root, split, limit=None):
    """(ids, (N, 22, H, W) uint8) true masks of a split read from its video_N/mask.npy files (no packing)."""
    dirs = sorted((resolve(data_root) / split).glob("video_*"))[:limit]
    ids = np.array([int(d.name.split("_")[1]) for d in dirs])
    return ids, np.stack([np.load(d / "mask.npy") for d in dirs]).astype(np.uint8)


def score(pred, true22, seed):
    cm = per_video_confusion(pred, true22)
    return cm, {"iou": float(iou_from_confusion(cm.sum(0))[0]), "ci": bootstrap_ci(cm, seed=seed)}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="data/embedded")
    ap.add_argument("--unet-labels", default="runs/cpu-ref/labels/val.npy", help="U-Net labels of val (.npy)")
    ap.add_argument(
        "--baseline-from",
        default="runs/cpu-ref/metrics/06_objects.json",
        help="06_objects.json whose settings.physics is the baseline config (fitted on train if missing)",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000], help="training videos per run")
    ap.add_argument("--epochs", type=int, nargs="+", default=[30], help="epochs per size (one value, or one per size)")
    ap.add_argument("--extra-dir", default="data/dyn_extra", help="where the masks-only videos are kept")
    ap.add_argument("--work-dir", default="runs/dyn_scaling", help="checkpoints of each size (overwritten)")
    ap.add_argument(
        "--supersample", type=int, default=1, help="rasterisation of the masks-only videos (the dataset's is 2)"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-limit", type=int, default=None, help="score only the first N val videos")
    ap.add_argument("--train-limit", type=int, default=None, help="use only the first N train videos")
    ap.add_argument("--cfg", default="{}", help="JSON overrides of the model/baseline config")
    ap.add_argument("--batch-size", type=int, default=32, help="train_dynamics's batch size")
    ap.add_argument("--lr", type=float, default=5e-4, help="train_dynamics's learning rate")
    ap.add_argument(
        "--select", default="last", choices=["best", "last"], help="train_dynamics's select: the weights scored"
    )
    ap.add_argument("--out", default="results/experiments/dynamics_scaling.json")
    ap.add_argument("--plot", default=None, help="PNG path (default: --out with .png)")
    ap.add_argument("--plot-only", nargs="+", metavar="JSON", help="plot the rows of these result files together")
    ap.add_argument("--tiny", action="store_true", help="tiny counts for tests: sizes 8 12, 1 epoch, 6 val videos")
    args = ap.parse_args(argv)
    if args.tiny:
        args.sizes, args.epochs, args.val_limit, args.train_limit = [8, 12], [1], args.val_limit or 6, 8
    if len(args.epochs) not in (1, len(args.sizes)):
        ap.error("--epochs: one value or one per size")
    return args


def main(argv=None):
    import torch

    args = parse_args(argv)
    if args.plot_only:
        rows = sorted(
            (r for f in args.plot_only for r in json.loads(Path(f).read_text())["rows"]), key=lambda r: r["videos"]
        )
        plot({"rows": rows}, resolve(args.plot or "dynamics_scaling.png"))
        return {"rows": rows}
    torch.set_num_threads(1)  # tiny model: one thread is fastest
    t_start = time.time()
    _, train = load_masks(args.data_root, "train", args.train_limit)
    val_ids, val = load_masks(args.data_root, "val", args.val_limit)
    unet = np.load(resolve(args.unet_labels), mmap_mode="r")
    ids_path = Path(str(resolve(args.unet_labels)).replace(".npy", ".ids.npy"))
    if ids_path.is_file():  # align the labels with the val videos read here
        pos = {int(v): i for i, v in enumerate(np.load(ids_path))}
        unet = np.stack([unet[pos[int(v)], :11] for v in val_ids])
    else:
        unet = np.asarray(unet[: len(val), :11])
    inputs = {"true": val[:, :11], "unet": unet}
    true22 = val[:, tracks.TARGET]

    base_path = resolve(args.baseline_from)
    if base_path.is_file():
        cfg = json.loads(base_path.read_text())["settings"]["physics"]
        print(f"baseline config from {base_path}")
    else:
        print("fitting the baseline config on train ...", flush=True)
        cfg = learned.config(fit.baseline_config(train, n_videos=min(100, len(train)), seed=args.seed))
    cfg = dict(cfg, **json.loads(args.cfg))

    n_extra = max(args.sizes) - len(train)
    extra, extra_info = None, None
    if n_extra > 0:
        t0 = time.time()
        got = masks_only.extra_videos(
            args.data_root,
            args.extra_dir,
            n_extra,
            supersample=args.supersample,
            workers=args.workers,
            name="masks_s{seed}_{first}_{n}_ss{supersample}.npy",
            required=False,
        )
        extra, path, first = got.masks, got.path, got.record["first_id"]
        shown = path.relative_to(project_root()) if path.is_relative_to(project_root()) else path
        extra_info = {
            "path": str(shown),
            "first_id": first,
            "n": n_extra,
            "seed": got.record["seed"],
            "supersample": args.supersample,
        }
        extra_info["seconds"] = time.time() - t0
        print(f"extra masks-only videos {first}..{first + n_extra - 1}: {path} ({time.time() - t0:.0f} s)", flush=True)

    print("physics baseline on val ...", flush=True)
    cms, res_phys, preds = {}, {}, {}
    physics = MotionSettings.from_config(cfg, method="physics")
    for src, x in inputs.items():
        preds[src] = motion.predict_split(x, physics.for_inputs(src), progress=False)
        cms["physics", src], res_phys[src] = score(preds[src], true22, args.seed)

    rows = []
    for j, size in enumerate(args.sizes):
        epochs = args.epochs[0] if len(args.epochs) == 1 else args.epochs[j]
        sets = [train] + ([extra[: size - len(train)]] if size > len(train) else [])
        out_dir = resolve(args.work_dir) / f"videos_{size}"
        shutil.rmtree(out_dir, ignore_errors=True)
        t0 = time.time()
        model, hist = learned.train_dynamics(
            sets,
            out_dir,
            epochs=epochs,
            cfg=cfg,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device="cpu",
            progress=False,
            select=args.select,
            workers=args.workers,
        )
        train_s = time.time() - t0
        row = {"videos": size, "epochs": epochs, "train_seconds": round(train_s, 1), "learned": {}, "diff": {}}
        row["physics"] = res_phys
        for src, x in inputs.items():
            model.cfg.update(motion.reading(src))
            pred = learned.predict_split_learned(model, x, device="cpu", progress=False)
            cm, row["learned"][src] = score(pred, true22, args.seed)
            row["diff"][src] = bootstrap_diff_ci(cm, cms["physics", src], seed=args.seed)
        row["heldout_iou"] = max((h.get("val_iou", float("nan")) for h in hist), default=None)
        rows.append(row)
        lu, pu, du = row["learned"]["unet"], res_phys["unet"], row["diff"]["unet"]
        print(
            f"{size:5d} videos, {epochs} epochs ({train_s:.0f} s): U-Net inputs learned {lu['iou']:.4f} "
            f"physics {pu['iou']:.4f} diff {du['diff']:+.4f} [{du['ci'][0]:+.4f}, {du['ci'][1]:+.4f}]",
            flush=True,
        )

    result = {
        "sizes": args.sizes,
        "val_videos": len(val),
        "train_videos": len(train),
        "extra": extra_info,
        "select": args.select,
        "unet_labels": args.unet_labels,
        "baseline_from": args.baseline_from,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "cfg": cfg,
        "rows": rows,
        "seconds": round(time.time() - t_start, 1),
    }
    out = resolve(args.out)
    save_json(out, result)
    plot(result, resolve(args.plot) if args.plot else out.with_suffix(".png"))
    print_table(result)
    return result


def print_table(result):
    print(f"\n{'videos':>6} {'epochs':>6} {'src':>5} {'learned':>24} {'physics':>24} {'learned - physics':>28}")
    for r in result["rows"]:
        for src in SOURCES:
            lr, ph, d = r["learned"][src], r["physics"][src], r["diff"][src]
            print(
                f"{r['videos']:6d} {r['epochs']:6d} {src:>5} "
                f"{lr['iou']:.4f} [{lr['ci'][0]:.4f},{lr['ci'][1]:.4f}] "
                f"{ph['iou']:.4f} [{ph['ci'][0]:.4f},{ph['ci'][1]:.4f}] "
                f"{d['diff']:+.4f} [{d['ci'][0]:+.4f},{d['ci'][1]:+.4f}]"
            )


def plot(result, path):
    """IoU of learned and physics vs training videos per input source, and the paired learned - physics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    n = [r["videos"] for r in result["rows"]]

    def bars(ax, x, y, ci, **kw):
        y, ci = np.asarray(y), np.asarray(ci)
        ax.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], fmt="o-", capsize=3, **kw)

    for ax, src in zip(axes, SOURCES):
        for name, color in (("learned", "C0"), ("physics", "C1")):
            rows = [r[name][src] for r in result["rows"]]
            bars(ax, n, [r["iou"] for r in rows], [r["ci"] for r in rows], color=color, label=name)
        ax.set_title(f"val frame 22, {'true' if src == 'true' else 'U-Net'} inputs")
        ax.set_ylabel("IoU (95% bootstrap CI)")
    for src, color in zip(SOURCES, ("C2", "C3")):
        rows = [r["diff"][src] for r in result["rows"]]
        bars(axes[2], n, [r["diff"] for r in rows], [r["ci"] for r in rows], color=color, label=f"{src} inputs")
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].axhline(0.03, color="grey", ls="--", lw=0.8, label="target +0.03")
    axes[2].set_title("learned - physics (paired 95% CI)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(n, [str(v) for v in n])
        ax.minorticks_off()
        ax.set_xlabel("training videos")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
