"""Speed of the object stage: videos/s of track building (``tracks.tracks``), of the renderer (``render.render``),
of masks-only synthetic generation (``synth.generate_masks``), and training samples/s of the learned model.

python scripts/bench/bench_objects.py --videos 200 --workers 1 2
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lib.data import synth
from lib.objects import learned, motion, render, tracks
from lib.objects.motion import MotionSettings


def rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40, help="videos per measurement")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts of masks-only generation")
    ap.add_argument(
        "--supersample", type=int, default=1, help="rasterisation of the masks-only videos (notebook 06: 1)"
    )
    ap.add_argument("--epochs", type=int, default=2, help="training epochs timed")
    ap.add_argument("--batch-size", type=int, default=64, help="training batch (notebook 06 on cpu: 64)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this tiny model)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.videos

    with tempfile.TemporaryDirectory(prefix="bench_objects_") as tmp:
        first = synth.extra_first_id(0)
        for w in args.workers:
            path = Path(tmp) / f"masks_w{w}.npy"
            t0 = time.time()
            synth.generate_masks(path, n, first, workers=w, progress=False, supersample=args.supersample)
            dt = time.time() - t0
            print(
                f"masks-only generation, supersample {args.supersample}, workers={w}: {rate(n, dt):.2f} videos/s "
                f"({n} videos in {dt:.1f} s with start-up; 10000 videos ~ {10000 / rate(n, dt) / 60:.1f} min)"
            )
        masks = np.load(path)

    physics = MotionSettings(size_b=0.00725, F=350.0, restitution=0.2, radius_scale=1.3)
    cfg = learned.config(physics)
    for name, st in (
        ("true masks", dict(min_area=1, denoise=False)),
        ("denoise, min_area 20", dict(min_area=20, denoise=True)),
    ):
        t0 = time.time()
        trs = [
            tracks.tracks(m[: tracks.LAST_INPUT + 1], st["min_area"], 0.75, physics.size_b, st["denoise"])
            for m in masks
        ]
        dt = time.time() - t0
        print(f"tracks ({name}): {rate(n, dt):.1f} videos/s")
    preds = [motion.predict_from_tracks(tr, physics) for tr in trs]
    t0 = time.time()
    for m, p in zip(masks, preds):
        render.render(m[: tracks.LAST_INPUT + 1], p)
    print(f"render: {rate(n, time.time() - t0):.1f} videos/s")
    for w in args.workers:
        t0 = time.time()
        items = learned.build_dataset(masks, cfg, flip=True, progress=False, workers=w, chunk=max(1, n // 8))
        dt = time.time() - t0
        print(
            f"training tokens (tracks + physics baseline + features, with flips), workers={w}: {rate(n, dt):.1f} videos/s"
        )

    model = learned.build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), 5e-4)
    tokens = learned._Tokens(items)
    loader = torch.utils.data.DataLoader(tokens, batch_size=args.batch_size, shuffle=True, collate_fn=tokens.batch)
    t0, seen = time.time(), 0
    model.train()
    for _ in range(args.epochs):
        for b in loader:
            loss = learned.dynamics_loss(model, b, "cpu")
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(b["feats"])
    print(f"learned model training: {rate(seen, time.time() - t0):.0f} samples/s (a sample = one video's objects)")


if __name__ == "__main__":
    main()
