"""Pieces the benchmark scripts share (scripts/bench/bench_unet.py, bench_simvp.py): a timed training step."""

import torch
import torch.nn.functional as F


def sync(device):
    """Wait for queued CUDA work, so that a timer reads finished work; a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(model, opt, scaler, x, y, cast):
    """One Adam step on the cross-entropy of ``model(x)`` against ``y``; the forward pass runs under ``cast``
    (an autocast context), the backward pass through ``scaler`` (a disabled GradScaler is a plain step)."""
    with cast:
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
