"""Object-centric frame-22 baselines on the val split (lib/objects/tracks.py, lib/objects/dynamics.py).

    python scripts/eval_objects.py --data-root data/embedded [--labels-dir runs/cpu-1/labels]
        [--train-videos 100] [--val-videos 200] [--train-learned --epochs 20] [--out results.json]

Fits the motion models' settings (size model, k, decay, deceleration, floor camera) on TRUE train masks,
then scores on val (never trained on) the copy-frame-11 baseline, constant velocity, geometric friction,
constant deceleration in the image and on the floor plane, the floor-plane physics simulation with
collisions, and with ``--train-learned`` the learned object
dynamics model (trained on train true masks, plus U-Net labels of unlabeled with ``--use-unlabeled``).
Inputs: the true masks of frames 0-10, and the U-Net labels of val (``<labels-dir>/val.npy``) if present.
Metric: lib.common.metrics.jaccard over the stacked frame-22 masks (docs/metric.md).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lib.common.files import save_json
from lib.common.metrics import jaccard
from lib.data import dataset as data
from lib.objects import dynamics as D
from lib.objects import tracks as O
from lib.segmentation.label import checkpoint_key, load_labels


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--labels-dir", default=None, help="folder with U-Net labels val.npy (and unlabeled.npy)")
    ap.add_argument("--unet", default=None, help="U-Net checkpoint the labels must come from (else: not checked)")
    ap.add_argument("--policy", default="skip", help="packing policy (the run's common `policy`)")
    ap.add_argument("--train-videos", type=int, default=100, help="train videos used to fit the settings")
    ap.add_argument("--val-videos", type=int, default=None, help="val videos scored (default all)")
    ap.add_argument("--train-learned", action="store_true", help="also train and score the learned model")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--use-unlabeled", action="store_true", help="learned model: add U-Net-labelled unlabeled")
    ap.add_argument("--learned-dir", default=None, help="checkpoints of the learned model (default: a temp dir)")
    ap.add_argument("--unet-min-area", type=int, default=20, help="min object area in U-Net inputs")
    ap.add_argument(
        "--no-denoise",
        action="store_true",
        help="U-Net inputs: use all pixels of a class, not only its largest connected blob",
    )
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny model: 1 is fastest)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train = data.load_split(args.data_root, "train", progress=False, policy=args.policy)
    val = data.load_split(args.data_root, "val", progress=False, policy=args.policy)
    unet_key = checkpoint_key(args.unet) if args.unet else None  # stale labels (other U-Net or data): an error
    rng = np.random.default_rng(args.seed)
    vidx = np.arange(len(val))
    if args.val_videos and args.val_videos < len(val):
        vidx = np.sort(rng.permutation(len(val))[: args.val_videos])
    val_in = np.asarray(val.masks[vidx, : data.N_INPUT])
    val_true = np.asarray(val.masks[vidx, O.TARGET])
    inputs = {"true": val_in}
    unet_area = {"true": 1, "unet": args.unet_min_area}
    if args.labels_dir and (Path(args.labels_dir) / "val.npy").is_file():
        ids, labels = load_labels(args.labels_dir, "val", unet_key, val.fingerprint)
        if not np.array_equal(ids, val.ids):
            sys.exit(f"{args.labels_dir}/val.ids.npy does not list the packed val split's videos")
        inputs["unet"] = np.asarray(labels[vidx, : data.N_INPUT])
    print(f"train {len(train)} videos, val {len(vidx)} scored; inputs: {', '.join(inputs)}", flush=True)

    # settings from TRUE train masks
    n_fit = min(args.train_videos, len(train))
    b = O.fit_size_model(train.masks, n_fit, seed=args.seed)
    fr = O.fit_k_and_decay(train.masks, n_videos=n_fit, size_b=b, seed=args.seed)
    de = O.fit_decel(train.masks, n_videos=n_fit, size_b=b, seed=args.seed)
    fl = O.fit_floor(train.masks, n_videos=n_fit, size_b=b, seed=args.seed)
    ph = (
        O.fit_physics(train.masks, fl["k"], fl["decel"], fl["F"], b, n_videos=n_fit, seed=args.seed)
        if fl["F"]
        else {"restitution": None, "radius_scale": None, "mass_ratio": None}
    )
    phys = {k: ph[k] for k in ("restitution", "radius_scale", "mass_ratio")} if fl["F"] else {}
    print(
        f"fitted on {n_fit} train videos: size b={b:.5f}; cv k={fr['cv_k']}; friction k={fr['k']} "
        f"decay={fr['decay']}; decel k={de['k']} a={de['decel']}; floor k={fl['k']} a={fl['decel']} "
        f"F={fl['F']}; physics {phys} ({time.time() - t0:.0f}s)",
        flush=True,
    )
    methods = {
        "copy frame 11": dict(method="copy"),
        "constant velocity": dict(method="cv", k=fr["cv_k"]),
        "friction (geometric)": dict(method="friction", k=fr["k"], decay=fr["decay"]),
        "friction + size model": dict(method="friction", k=fr["k"], decay=fr["decay"], size_b=b),
        "deceleration (image)": dict(method="decel", k=de["k"], decel=de["decel"], size_b=b),
        "deceleration (floor)": dict(method="floor", k=fl["k"], decel=fl["decel"], F=fl["F"], size_b=b),
        "physics (floor + collisions)": dict(
            method="physics", k=fl["k"], decel=fl["decel"], F=fl["F"], size_b=b, **phys
        ),
    }
    results = []
    for name, kw in methods.items():
        row = {"method": name, "params": {k: v for k, v in kw.items() if k != "method"}}
        for src, x in inputs.items():
            extra = {"denoise": True} if (src == "unet" and not args.no_denoise and kw["method"] != "copy") else {}
            pred = O.predict_split(x, progress=False, min_area=unet_area[src], **extra, **kw)
            row[src] = jaccard(pred, val_true)[0]
        results.append(row)
        print(_fmt(row, inputs), flush=True)

    if args.train_learned:
        import tempfile

        cfg = dict(
            D.DEFAULT_CFG,
            baseline="physics" if phys else "floor",
            k=fl["k"],
            decel=fl["decel"],
            F=fl["F"],
            size_b=b,
            **phys,
        )
        sets = [train.masks]
        if args.use_unlabeled and args.labels_dir and (Path(args.labels_dir) / "unlabeled.npy").is_file():
            unlabeled = data.load_split(args.data_root, "unlabeled", progress=False, policy=args.policy)
            sets.append(load_labels(args.labels_dir, "unlabeled", unet_key, unlabeled.fingerprint)[1])
        out_dir = args.learned_dir or tempfile.mkdtemp(prefix="dynamics_")
        t1 = time.time()
        model, hist = D.train_dynamics(
            sets,
            out_dir,
            epochs=args.epochs,
            cfg=cfg,
            seed=args.seed,
            device="cpu",
            progress=False,
            resume=bool(args.learned_dir),
        )
        if "val_iou" in hist[-1]:
            best = max(hist, key=lambda r: r["val_iou"])
            note = (
                f"held-out train IoU {best['val_iou']:.4f} (epoch {best['epoch']}) vs baseline "
                f"{best['baseline_iou']:.4f}"
            )
        else:  # too few train videos to hold any out
            best = min(hist, key=lambda r: r["train_loss"])
            note = f"no held-out videos, train loss {best['train_loss']:.4f} (epoch {best['epoch']})"
        print(
            f"learned model: {sum(len(s) for s in sets)} videos, {args.epochs} epochs in {time.time() - t1:.0f}s; "
            f"{note}; checkpoints in {out_dir}",
            flush=True,
        )
        row = {
            "method": f"learned dynamics ({cfg['baseline']} + residual)",
            "params": {"epochs": args.epochs, "best_epoch": best["epoch"]},
        }
        for src, x in inputs.items():
            model.cfg.update(min_area=unet_area[src], denoise=src == "unet" and not args.no_denoise)
            row[src] = jaccard(D.predict_split_learned(model, x, device="cpu", progress=False), val_true)[0]
        model.cfg.update(min_area=1, denoise=False)
        results.append(row)
        print(_fmt(row, inputs), flush=True)

    print("\n| method | " + " | ".join(f"val IoU ({s} inputs)" for s in inputs) + " |")
    print("|---|" + "---|" * len(inputs))
    for row in results:
        print(f"| {row['method']} | " + " | ".join(f"{row[s]:.4f}" for s in inputs) + " |")
    if args.out:
        save_json(
            args.out,
            {
                "val_videos": int(len(vidx)),
                "train_videos_fit": n_fit,
                "results": results,
                "fits": {
                    "size_b": b,
                    "friction": {k: v for k, v in fr.items() if k != "grid"},
                    "decel": {k: v for k, v in de.items() if k != "grid"},
                    "floor": {k: v for k, v in fl.items() if k != "grid"},
                    "physics": {k: v for k, v in ph.items() if k != "grid"},
                },
            },
        )
    print(f"({time.time() - t0:.0f}s)")


def _fmt(row, inputs):
    return f"{row['method']:<28} " + "  ".join(f"{s}={row[s]:.4f}" for s in inputs)


if __name__ == "__main__":
    main()
