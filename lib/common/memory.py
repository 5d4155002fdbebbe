"""How many samples of a training step fit on the device at once: the micro-batch of ``fit``.

``fit(..., micro_batch=m)`` runs each batch as pieces of at most m samples and accumulates their gradients,
so the recipe's ``batch_size`` (and its learning rate) stay the same on a smaller device. The training
functions (``train_unet``, ``train_simvp``, ``finetune_simvp``) call ``choose_micro_batch`` with their
``micro_batch`` setting: an int is used as given (capped at the batch), None picks the largest that fits:

- cost of a sample: one forward pass of a one-sample batch through the real training step on the device
  (same autocast as ``fit``) counts the bytes autograd keeps for the backward pass (``saved_bytes``, less
  the parameters; their float16 copies under autocast are counted, a few percent too much); a
  whole step's peak per sample is ``PEAK_OVER_SAVED`` times that, a ratio measured by
  ``scripts/bench/bench_memory.py`` (peak RSS on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA; the
  ratios are in ``results/memory_cpu.json``). The model's buffers and every RNG are restored afterwards,
  so a run with the estimate trains exactly as one without.
- free memory (``device_memory``): ``torch.cuda.mem_get_info`` plus what this process's caching allocator
  holds unused on CUDA; MemAvailable (and the cgroup's limit) on the CPU, shared by the processes of one
  machine under torchrun.
- ``fit_micro_batch``: ``FRACTION`` of the free memory, less ``RESERVE`` (CUDA context, cuDNN workspaces,
  allocator slack) and the optimizer state still to come (gradients + Adam moments, 3x the parameters),
  divided by the cost of a sample; at least 1, at most the batch.
- under torchrun every rank estimates from its own free memory, then all take the smallest estimate
  (``agree_on_smallest``): ranks doing different numbers of forward passes per step can hang in SyncBatchNorm.

If a step runs out of memory anyway, ``fit`` raises ``lib.common.trainer.OutOfMemory`` naming
``micro_batch``. ``lib.common.gpu_plan`` applies ``fit_micro_batch`` to the benchmark's numbers for common GPUs
(``scripts/bench/gpu_table.py`` prints it).
"""

import contextlib
import math
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import default_collate

from lib.common.device import train_autocast
from lib.common.distributed import distributed, unwrap
from lib.common.rng import get_rng_state, set_rng_state

GiB = 2**30
# peak memory of a training step per sample / bytes saved for backward per sample (scripts/bench/bench_memory.py):
# on this project's CPU 0.5-1.26 over the full-size U-Net, SimVP and fine-tuning steps, float32 and bfloat16
# (results/memory_cpu.json), so 1.3; CUDA: the same until scripts/bench/gpu_check.py measures it
PEAK_OVER_SAVED = {"cpu": 1.3, "cuda": 1.3}
FRACTION = {"cpu": 0.75, "cuda": 0.9}  # of the free memory; the CPU's is shared with the rest of the machine
RESERVE = {"cpu": 1.0 * GiB, "cuda": 1.0 * GiB}


def device_memory(device):
    """(free bytes, total bytes) of ``device`` for this process."""
    device = torch.device(device)
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        held = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + held, total
    info = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    total = info.get("MemTotal") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    free = info.get("MemAvailable", total // 2)
    with contextlib.suppress(OSError, ValueError):  # a container's limit (cgroup v2)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            free, total = min(free, int(limit) - used), min(total, int(limit))
    return free // int(os.environ.get("LOCAL_WORLD_SIZE", "1")), total


def saved_bytes(fn, *args, exclude=(), **kwargs):
    """(result of ``fn(*args, **kwargs)``, bytes of the distinct storages autograd saved for backward in it,
    leaving out those of the tensors in ``exclude``, e.g. the parameters, which do not grow with the batch)."""
    skip = {(t.device, t.untyped_storage().data_ptr()) for t in exclude}
    seen = {}

    def pack(t):
        s = t.untyped_storage()
        key = (t.device, s.data_ptr())
        if key not in skip:
            seen[key] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args, **kwargs)
    return out, sum(seen.values())


def sample_cost(model, loss_fn, sample, device, *, amp=True, cpu_amp=False):
    """Estimated peak bytes a training step needs per sample: the bytes saved for backward by ``loss_fn`` (in
    training mode) on a one-sample batch ``sample`` (or ``sample()``), times ``PEAK_OVER_SAVED``. Returns
    (per-sample bytes, saved bytes). Leaves the model's buffers (BatchNorm statistics), its mode and all RNG
    states as they were."""
    device = torch.device(device)
    net = unwrap(model)
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    rng, training = get_rng_state(), net.training
    try:
        net.train()
        sample = sample() if callable(sample) else sample
        if hasattr(loss_fn, "prepare"):
            sample, loss_fn = loss_fn.prepare(sample), loss_fn.compute
        with torch.enable_grad(), train_autocast(device, amp, cpu_amp):
            loss, saved = saved_bytes(loss_fn, net, sample, device, exclude=list(net.parameters()))
        del loss
    finally:
        with torch.no_grad():
            for k, v in net.named_buffers():
                v.copy_(buffers[k])
        set_rng_state(rng)
        net.train(training)
    return PEAK_OVER_SAVED.get(device.type, PEAK_OVER_SAVED["cuda"]) * saved, saved


def optimizer_bytes(model):
    """Memory the first optimizer step adds: gradients and Adam's two moments, 3x the trainable parameters."""
    return 3 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def fit_micro_batch(batch, per_sample, free, fixed=0, device_type="cuda"):
    """The largest micro-batch (1..batch) whose samples fit in ``free`` bytes after ``fixed`` bytes."""
    usable = FRACTION[device_type] * free - RESERVE[device_type] - fixed
    return max(1, min(int(batch), math.floor(usable / max(per_sample, 1))))


def agree_on_smallest(n, device):
    """The smallest ``n`` over the ranks of a distributed run (all must call it), ``n`` in a single process."""
    if not distributed():
        return n
    device = torch.device(device)
    t = torch.tensor([n], dtype=torch.int64, device=device if device.type == "cuda" else "cpu")  # NCCL: CUDA only
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def choose_micro_batch(setting, loader, model, loss_fn, device, *, amp=True, cpu_amp=False, progress=True):
    """(micro-batch for ``fit``, info dict) for a loader of batches of ``loader.batch_size``: ``setting`` if it
    is an int (capped at the batch), else the largest that fits the device's free memory (module docstring)."""
    if setting is not None and (not isinstance(setting, int) or isinstance(setting, bool) or setting < 1):
        raise ValueError(f"micro_batch must be None (fit the device) or a positive int, not {setting!r}")
    device = torch.device(device)
    batch = loader.batch_size
    first = lambda: default_collate([loader.dataset[0]])  # drawn inside sample_cost: its RNG use is undone
    per_sample, saved = sample_cost(model, loss_fn, first, device, amp=amp, cpu_amp=cpu_amp)
    free, total = device_memory(device)
    fixed = optimizer_bytes(model)
    fits_here = fit_micro_batch(batch, per_sample, free, fixed, device.type)
    fits = agree_on_smallest(fits_here, device)  # every rank the same number of forward passes per step
    chosen = min(setting, batch) if setting is not None else fits
    info = {
        "micro_batch": chosen,
        "setting": setting,
        "batch_size": batch,
        "accumulation_steps": math.ceil(batch / chosen),
        "per_sample_gb": per_sample / 1e9,
        "saved_gb": saved / 1e9,
        "free_gb": free / 1e9,
        "total_gb": total / 1e9,
        "optimizer_gb": fixed / 1e9,
        "fits": fits,
        "fits_here": fits_here,
        "device": str(device),
    }
    if progress:
        how = "set" if setting is not None else "fits the free memory"
        if setting is None and distributed():
            how += f" of all {dist.get_world_size()} processes (this one alone: {fits_here})"
        print(
            f"[memory] micro-batch {chosen} of batch {batch} ({how}; {info['accumulation_steps']} accumulation "
            f"steps): about {per_sample / 1e9:.2f} GB a sample, {free / 1e9:.1f} GB free on {device}",
            flush=True,
        )
    if setting is not None and chosen > fits and progress:
        print(
            f"[memory] warning: micro_batch {chosen} may not fit ({fits} estimated to); lower it if the step "
            "runs out of memory",
            flush=True,
        )
    return chosen, info
