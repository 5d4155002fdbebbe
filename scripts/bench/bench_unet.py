"""U-Net speed on this machine: inference frames/s and training images/s on random 160x240 frames.

Inference is timed in float32 and in the mixed precision that labelling uses (lib.common.device.inference_autocast:
float16 on CUDA, bfloat16 on a CPU with native bf16, else the same as float32). Training is timed the same
two ways: float32, and the mixed precision of lib.common.trainer.fit (float16 AMP on CUDA; bfloat16 autocast on such a
CPU, which fit uses when asked with ``cpu_amp``, as the `cpu` profile does).

    python scripts/bench/bench_unet.py                        # sizes cpu (width 16) and full (width 64), depth 4 (< 2 min on 2 cores)
    python scripts/bench/bench_unet.py --sizes cpu --batch 8 --iters 5 --device cpu
"""

import argparse
import time

import torch

from lib.common.benchmark import sync, train_step
from lib.common.classes import NUM_CLASSES
from lib.common.device import auto_device, inference_autocast, inference_dtype
from lib.segmentation.unet import UNet, count_params

SIZES = {"small": dict(width=8, depth=4), "cpu": dict(width=16, depth=4), "full": dict(width=64, depth=4)}


def bench(size, batch, iters, warmup, device, amp=True):
    model = UNet(**SIZES[size]).to(device)
    x = torch.rand(batch, 3, 160, 240, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch, 160, 240), device=device)
    use_amp = amp and device.type == "cuda"

    model.eval()
    infer = []
    for mixed in (False, True):
        with torch.inference_mode():
            for i in range(warmup + iters):
                if i == warmup:
                    sync(device)
                    t0 = time.perf_counter()
                with inference_autocast(device, mixed and amp):
                    model(x).argmax(1)
            sync(device)
        infer.append(batch * iters / (time.perf_counter() - t0))

    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    train = []
    for mixed in (False, True):
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and mixed)
        for i in range(warmup + iters):
            if i == warmup:
                sync(device)
                t0 = time.perf_counter()
            # the dtypes fit uses (fp16 CUDA, bf16 CPU)
            train_step(model, opt, scaler, x, y, inference_autocast(device, mixed and amp))
        sync(device)
        train.append(batch * iters / (time.perf_counter() - t0))
    return count_params(model), infer, train


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["cpu", "full"], choices=list(SIZES))
    ap.add_argument("--batch", type=int, default=None, help="default 8 on CPU, 32 on CUDA")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations (default 3 on CPU, 20 on CUDA)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-amp", action="store_true")
    args = ap.parse_args()
    device = auto_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (32 if cuda else 8)
    iters = args.iters or (20 if cuda else 3)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device: {name}; batch {batch} of 3x160x240; {iters} timed iterations after {args.warmup} warm-up"
        f"; mixed precision {'off' if args.no_amp else 'on'}"
    )
    mixed = {torch.float16: "fp16", torch.bfloat16: "bf16", None: "fp32"}[inference_dtype(device)]
    print(
        f"{'size':<6}{'width':>6}{'depth':>6}{'params':>13}{'infer fp32/s':>14}{f'infer {mixed}/s':>14}"
        f"{'ratio':>7}{'train fp32/s':>14}{f'train {mixed}/s':>14}{'ratio':>7}"
    )
    for size in args.sizes:
        n, (infer32, infer_mixed), (train32, train_mixed) = bench(
            size, batch, iters, args.warmup, device, amp=not args.no_amp
        )
        s = SIZES[size]
        print(
            f"{size:<6}{s['width']:>6}{s['depth']:>6}{n:>13,}{infer32:>14.1f}{infer_mixed:>14.1f}"
            f"{infer_mixed / infer32:>6.2f}x{train32:>14.1f}{train_mixed:>14.1f}{train_mixed / train32:>6.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
