"""MaskSimVP cost on this machine: parameters, MACs per window and training windows/s on random masks.

A window = 11 input masks of 160x240 -> logits of the next frame. Training = forward + cross-entropy +
backward + Adam step, timed per iteration after warm-up: windows/s over all timed iterations (mean) and
in the fastest one (best), and the process CPU seconds per window of the fastest one. On a machine shared
with other jobs the best iteration is the steadier figure.
The full size on CPU is timed on one batch-1 iteration without warm-up (an upper bound).

    python scripts/bench/bench_simvp.py                         # sizes cpu_fast, cpu, full (< 3 min on 2 CPU cores)
    python scripts/bench/bench_simvp.py --sizes cpu --batch 8 --iters 5
    python scripts/bench/bench_simvp.py --skip-full-speed       # full size: parameters and MACs only
    python scripts/bench/bench_simvp.py --rollout --sizes cpu_fast   # + the 11-step rollout, three ways

``--rollout`` times an 11-step frame-22 rollout of 16 videos (not for the full size on CPU): (a) every step
through OpenSTL's whole SimVP, decoding all 11 output slots (the straightforward port); (b) every step through
``MaskSimVP.forward``, which decodes only the last slot; (c) ``lib.forecasting.simvp.rollout``, which also encodes each
frame once and reuses its code while the window slides. All three give the same masks.
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.common.benchmark import sync, train_step
from lib.common.classes import NUM_CLASSES
from lib.common.device import auto_device
from lib.forecasting.simvp import MaskSimVP, count_flops, count_params, rollout

SIZES = {
    "small": dict(embed_dim=8, hid_S=8, hid_T=32, N_S=2, N_T=2, down=2, mlp_ratio=4.0),
    # latent 40x60 (4x below 160x240, like the full recipe)
    "cpu": dict(embed_dim=8, hid_S=16, hid_T=64, N_S=2, N_T=4, down=2),
    # latent 20x30 (8x below): about half the compute of "cpu"
    "cpu_fast": dict(embed_dim=8, hid_S=16, hid_T=64, N_S=4, N_T=4, down=2),
    "full": dict(embed_dim=16, hid_S=64, hid_T=512, N_S=4, N_T=8, down=1),
}
H, W, IN_LEN = 160, 240, 11


def bench(size, batch, iters, warmup, device, amp=True, speed=True):
    model = MaskSimVP(in_len=IN_LEN, frame_size=(H, W), **SIZES[size]).to(device)
    n = count_params(model)
    macs = count_flops(model, torch.randint(0, NUM_CLASSES, (1, IN_LEN, H, W), device=device))
    if not speed:
        return n, macs, None
    x = torch.randint(0, NUM_CLASSES, (batch, IN_LEN, H, W), device=device)
    y = torch.randint(0, NUM_CLASSES, (batch, H, W), device=device)
    use_amp = amp and device.type == "cuda"
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    times, cpus = [], []
    for i in range(warmup + iters):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(model, opt, scaler, x, y, torch.autocast(device.type, dtype=torch.float16, enabled=use_amp))
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return n, macs, (batch * iters / sum(times), batch / min(times), min(cpus) / batch)


class WholeSimVP(nn.Module):
    """A MaskSimVP's next-frame logits through its inner SimVP's full forward (all T output slots decoded, as
    OpenSTL's SimVP_Model), then the last slot; the same numbers as MaskSimVP.forward, the straightforward way."""

    def __init__(self, m):
        super().__init__()
        self.m, self.in_len = m, m.in_len

    def forward(self, masks):
        m = self.m
        B, T, H, W = masks.shape
        x = m.embed(masks.long()).permute(0, 1, 4, 2, 3).reshape(B * T, -1, H, W)
        if m.down == 2:
            x = F.avg_pool2d(x, 2)
        y = m.simvp(x.reshape(B, T, *x.shape[1:]))[:, -1]
        logits = m.head(y)
        if m.down == 2:
            logits = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
        if m.prior_scale is not None:
            logits = logits + m.prior_scale * F.one_hot(masks[:, -1].long(), m.num_classes).permute(0, 3, 1, 2)
        return logits


class StepByStep(nn.Module):
    """MaskSimVP.forward per step (no encoder cache: rollout only caches for a MaskSimVP itself)."""

    def __init__(self, m):
        super().__init__()
        self.m, self.in_len = m, m.in_len

    def forward(self, masks):
        return self.m(masks)


def bench_rollout(size, videos, device):
    """Seconds of an 11-step rollout of ``videos`` videos: (whole SimVP per step, last slot per step, cached)."""
    model = MaskSimVP(in_len=IN_LEN, frame_size=(H, W), copy_prior=True, **SIZES[size]).to(device).eval()
    x = torch.randint(0, NUM_CLASSES, (videos, IN_LEN, H, W), device=device)
    out, preds = [], []
    for m in (WholeSimVP(model).eval(), StepByStep(model).eval(), model):
        rollout(m, x[:1], 1)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        preds.append(rollout(m, x, 11))
        sync(device)
        out.append(time.perf_counter() - t0)
    agree = min(float((p == preds[-1]).float().mean()) for p in preds)
    return out, agree


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["cpu_fast", "cpu", "full"], choices=list(SIZES))
    ap.add_argument("--batch", type=int, default=None, help="default 4 on CPU, 16 on CUDA (full size on CPU: 1)")
    ap.add_argument(
        "--iters", type=int, default=None, help="timed iterations (default 3 on CPU, 20 on CUDA; full size on CPU: 1)"
    )
    ap.add_argument("--warmup", type=int, default=None, help="default 1 (full size on CPU: 0)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--skip-full-speed", action="store_true", help="full size: parameters and MACs only")
    ap.add_argument("--rollout", action="store_true", help="also time the 11-step rollout three ways")
    args = ap.parse_args()
    device = auto_device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device: {name}; windows of {IN_LEN}x{H}x{W} class ids -> next-frame logits; "
        f"amp {'on' if cuda and not args.no_amp else 'off'}"
    )
    print(
        f"{'size':<6}{'embed':>6}{'hid_S':>6}{'hid_T':>6}{'N_S':>4}{'N_T':>4}{'down':>5}{'params':>13}"
        f"{'GMACs/window':>14}{'batch':>6}{'iters':>6}{'train win/s mean':>17}{'best':>7}{'CPU s/win':>10}"
    )
    for size in args.sizes:
        cpu_full = size == "full" and not cuda
        batch = args.batch or (16 if cuda else (1 if cpu_full else 4))
        iters = args.iters or (20 if cuda else (1 if cpu_full else 3))
        warmup = args.warmup if args.warmup is not None else (0 if cpu_full else 1)
        speed = not (size == "full" and args.skip_full_speed)
        n, macs, train = bench(size, batch, iters, warmup, device, amp=not args.no_amp, speed=speed)
        s = SIZES[size]
        rate = f"{train[0]:>17.2f}{train[1]:>7.2f}{train[2]:>10.2f}" if train is not None else f"{'skipped':>17}"
        print(
            f"{size:<6}{s['embed_dim']:>6}{s['hid_S']:>6}{s['hid_T']:>6}{s['N_S']:>4}{s['N_T']:>4}{s['down']:>5}"
            f"{n:>13,}{macs / 1e9:>14.2f}{batch:>6}{iters:>6}{rate}",
            flush=True,
        )
    if args.rollout:
        print(
            "\n11-step rollout (frame 22), seconds per video: whole SimVP per step / last slot per step / "
            "cached encoder (lib.forecasting.simvp.rollout)"
        )
        for size in args.sizes:
            if size == "full" and not cuda:
                print(f"{size:<9} skipped on the CPU (hours)")
                continue
            videos = 16
            (whole, last, cached), agree = bench_rollout(size, videos, device)
            print(
                f"{size:<9} {whole / videos:7.3f} / {last / videos:7.3f} / {cached / videos:7.3f}   "
                f"speed-up {whole / cached:.1f}x; pixels agreeing with the cached rollout {agree:.4%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
