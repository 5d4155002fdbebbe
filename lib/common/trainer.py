"""One training loop for the project's models (U-Net, SimVP), in plain code.

``fit`` trains for a number of epochs, evaluates after each, logs a row per epoch to ``out_dir/log.csv`` and
``out_dir/log.json``, writes ``last.pt`` every epoch and ``best.pt`` when the monitored metric improves, and
resumes from ``last.pt``. A run stopped after epoch k and restarted ends with exactly the same weights and
history as an uninterrupted one (on CPU; on CUDA only as far as the kernels are deterministic), provided that:
- the train loader shuffles with a per-epoch seed (``EpochSampler`` / ``epoch_loader``; a
  ``DistributedSampler`` works too, ``fit`` calls ``set_epoch``), and its workers are not persistent;
- all other randomness (augmentation, dropout, scheduled sampling) uses torch/numpy/python global RNGs,
  whose states the checkpoint carries, or is a function of the step passed to ``loss_fn.set_step``.

Checkpoint (``last.pt``; ``best.pt`` holds the same less ``RESUME_ONLY``, the optimizer's state and the RNGs):
``{"model", "optimizer", "scheduler", "scaler", "epoch", "config", "fit", "data", "history", "best", "skipped",
"rng"}`` where ``config`` is the caller's experiment config (e.g. model sizes), ``fit`` the loop's own
settings, ``skipped`` the steps the gradient scaler skipped in a row, and ``data`` the fingerprints of the data it
trains and selects on (``fit(data=...)``). Written atomically and fsynced (lib/common/files.py). Resuming refuses
a checkpoint of another config or of other data.

TensorBoard (when the ``tensorboard`` package is installed): per-step train loss and learning rate, each epoch's
row and optional image panels (``fit(panels=...)``) in ``out_dir/tensorboard/``; tags and steps in
lib/common/tensorboard.py.

Reading checkpoints and comparing configs: lib/common/checkpoint.py; the RNG states: lib/common/rng.py; devices and
autocast: lib/common/device.py.

Distributed training (torchrun, see lib/common/distributed.py): logging and checkpoints happen on rank 0 only
(``is_main``), the logged train loss is averaged over ranks, and every rank waits at the end of each epoch
until rank 0 has written its checkpoints. Wrap the model in DDP before calling ``fit`` and give the loader
an ``EpochSampler`` (which splits by rank) or a ``DistributedSampler``. On resume every rank restores
rank 0's RNG states.
"""

import contextlib
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from lib.common import lock
from lib.common import tensorboard as tb
from lib.common.checkpoint import RESUME_IGNORE, CheckpointError, config_diff, json_normal, read_checkpoint
from lib.common.device import auto_device, train_autocast
from lib.common.distributed import distributed, is_main, unwrap
from lib.common.files import atomic_path, save_json, torch_save
from lib.common.rng import get_rng_state, seed_everything, set_rng_state


class OutOfMemory(MemoryError):
    """A training step ran out of device memory; the message names the setting to lower (``micro_batch``)."""


# GradScaler skips steps at the start of a run while it lowers its scale from 65536 until the float16 gradients
# no longer overflow: 16 halvings reach a scale of 1, so 50 in a row leaves a wide margin; past that (a scale
# below 1e-10) no loss scale helps and the run is only wasting time.
MAX_SKIPPED_STEPS = 50
# The files of one run in its out_dir; a fresh start removes the previous run's (see ``_start_over``).
RUN_FILES = ("last.pt", "best.pt", "log.csv", "log.json")
RESUME_ONLY = ("optimizer", "scheduler", "scaler", "rng")  # in last.pt only
# Tests only: the CUDA path's GradScaler (with float32, no autocast) on the CPU, so that its checks run without a GPU.
_SCALER_ON_CPU = False


# ---------------------------------------------------------------------------------------------- data order
class EpochSampler(Sampler):
    """Shuffles with a generator seeded from (seed, epoch): the order of epoch e never depends on history.

    Call ``set_epoch(e)`` before each epoch (``fit`` does). With ``num_replicas > 1`` each rank takes every
    ``num_replicas``-th index of the shuffled order (padded to equal length, like ``DistributedSampler``);
    by default the replica count and rank come from ``torch.distributed`` when it is initialised.
    """

    def __init__(self, data_source, *, shuffle=True, seed=0, num_replicas=None, rank=None):
        self.n = data_source if isinstance(data_source, int) else len(data_source)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        ddp = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas or (dist.get_world_size() if ddp else 1)
        self.rank = rank if rank is not None else (dist.get_rank() if ddp else 0)
        self.num_samples = math.ceil(self.n / self.num_replicas)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.num_samples * self.num_replicas
        order += order[: total - len(order)]
        return iter(order[self.rank : total : self.num_replicas])

    def __len__(self):
        return self.num_samples


def epoch_loader(dataset, batch_size, *, shuffle=True, seed=0, num_workers=0, drop_last=False, **kwargs):
    """A DataLoader over ``EpochSampler``: reproducible shuffling per epoch, so resumed runs match."""
    kwargs.setdefault("pin_memory", torch.cuda.is_available())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(dataset, shuffle=shuffle, seed=seed),
        num_workers=num_workers,
        drop_last=drop_last,
        **kwargs,
    )


def _set_epoch(loader, epoch):
    for s in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if hasattr(s, "set_epoch"):
            s.set_epoch(epoch)
            return


# ---------------------------------------------------------------------------------------------- the step
def _write_logs(out_dir, history):
    save_json(out_dir / "log.json", history)
    cols = []
    for row in history:
        cols += [k for k, v in row.items() if k not in cols and isinstance(v, (int, float, str, bool))]
    with atomic_path(out_dir / "log.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)


def _scalar(v):
    if torch.is_tensor(v):
        v = v.detach().cpu()
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def _make_optimizer(name, params, lr, weight_decay):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', not {name!r}")


def _make_scheduler(name, optimizer, lr, total_steps):
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name in ("none", None):
        return None
    raise ValueError(f"schedule must be 'onecycle', 'cosine' or 'none', not {name!r}")


def _micro_batches(batch, micro_batch):
    """``batch`` (a tensor, or a tuple/list/dict of them, samples along dim 0) in pieces of at most
    ``micro_batch`` samples (balanced: 16 by 5 -> 4, 4, 4, 4), each with its share of the batch; one piece
    when ``micro_batch`` is None or not smaller than the batch."""
    first = batch
    while not torch.is_tensor(first):
        first = next(iter(first.values())) if isinstance(first, dict) else first[0]
    n = len(first)
    k = 1 if not micro_batch or micro_batch >= n else -(-n // int(micro_batch))
    if k == 1:
        return [(batch, 1.0)]

    def split(x):
        if torch.is_tensor(x):
            return torch.tensor_split(x, k)
        if isinstance(x, dict):
            parts = {key: split(v) for key, v in x.items()}
            return [{key: parts[key][i] for key in x} for i in range(k)]
        if isinstance(x, (tuple, list)):
            return [type(x)(p) for p in zip(*(split(v) for v in x))]
        return [x] * k

    return [(piece, len(part) / n) for piece, part in zip(split(batch), torch.tensor_split(first, k))]


def _train_step(model, loss_fn, batch, device, micro_batch, autocast, scaler, check_finite):
    """Forward and backward of one batch, in micro-batches whose gradients add up to the whole batch's
    (each piece's mean loss weighted by its share; exact for losses that are means over samples, such as
    cross-entropy; batch-pooled terms (soft Jaccard, Lovasz) and BatchNorm statistics are then per piece).
    A loss object with ``prepare(batch)`` draws the batch's randomness once (flips, rollout or not) and its
    ``compute(model, batch, device)`` is applied to each piece. Under DDP only the last piece all-reduces.
    ``autocast`` (``train_autocast``) is entered for each forward pass. Returns the batch's loss (detached)."""
    if hasattr(loss_fn, "prepare"):
        batch, loss_fn = loss_fn.prepare(batch), loss_fn.compute
    pieces = _micro_batches(batch, micro_batch)
    total = 0.0
    for j, (piece, share) in enumerate(pieces):
        sync = j == len(pieces) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync():
            with autocast:
                loss = loss_fn(model, piece, device)
            if check_finite and not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()}")
            scaler.scale(loss * share if share != 1.0 else loss).backward()
        total = total + loss.detach().float() * share
    return total


def _is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    text = str(e)
    return isinstance(e, oom) or (
        isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


def _oom_message(device, batch_size, micro_batch, err):
    n = micro_batch if micro_batch and batch_size and micro_batch < batch_size else batch_size
    if n and n > 1:
        hint = (
            f"set micro_batch lower (e.g. micro_batch = {n // 2}) in the notebook's parameters or the params "
            "file: gradients are accumulated, so batch_size and the recipe stay the same"
        )
    else:
        hint = (
            "one sample at a time does not fit: free device memory (restart the kernel, close other "
            "notebooks) or use a device with more memory"
        )
    said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"out of memory on {device} in a training step of {n} samples at once (batch_size {batch_size}, "
        f"micro_batch {micro_batch}); {hint}. Memory per sample: README, 'The full profile on a GPU'. "
        f"torch said: {said}"
    )


# ---------------------------------------------------------------------------------------------- the loop
def _folder_lock(out_dir):
    """The training folder's lock (lib/common/lock.py), held by the process that writes its checkpoints (rank 0
    under torchrun; the other ranks only read last.pt when resuming): a second run on the same folder, which
    would resume from and overwrite the same last.pt, gets ``lock.Busy`` at once naming this one."""
    if not is_main():
        return contextlib.nullcontext()
    return lock.hold(out_dir / ".lock", f"the training folder {out_dir}")


def _start_over(out_dir, progress):
    """A fresh start removes the previous run's checkpoints and logs (``RUN_FILES``) first: else a crash before
    this run writes its own, or a monitored metric that never improves, leaves that run's best.pt (or last.pt)
    to be read as this run's. Its TensorBoard events go too (their curves would mix with this run's)."""
    old = [out_dir / name for name in RUN_FILES if (out_dir / name).exists()]
    for path in old:
        path.unlink()
    names = [p.name for p in old] + ([tb.FOLDER + "/"] if tb.remove(out_dir) else [])
    if names and progress:
        print(f"[fit] starting over in {out_dir}: removed the previous run's {', '.join(names)}")


def fit(
    model,
    train_loader,
    loss_fn,
    evaluate,
    out_dir,
    config,
    epochs,
    *,
    optimizer="adam",
    lr=1e-3,
    schedule="onecycle",
    weight_decay=0.0,
    amp=True,
    cpu_amp=False,
    device=None,
    grad_clip=None,
    progress=True,
    seed=0,
    log_every=20,
    max_steps_per_epoch=None,
    monitor="val_iou",
    mode="max",
    resume=True,
    stop_after=None,
    data=None,
    micro_batch=None,
    max_skipped_steps=MAX_SKIPPED_STEPS,
    panels=None,
    tensorboard=True,
):
    """Train ``model``; returns the history (one dict per epoch).

    - ``loss_fn(model, batch, device) -> scalar loss`` does the forward pass (runs under float16 autocast on
      CUDA when ``amp``; under bfloat16 autocast on a CPU with native bf16 when ``cpu_amp``: epochs of the `cpu`
      U-Net 1.5x faster on this project's machine; SimVP, mostly depthwise convolutions, did not gain).
      If it has a ``set_step(step, total_steps)`` method, that is called before each step (for schedules such
      as scheduled sampling; keep its state a function of the step so that resuming stays exact).
    - ``evaluate(model, device) -> dict`` runs after each epoch with the model in eval mode and gradients off;
      it must contain ``monitor`` (default ``"val_iou"``, higher is better unless ``mode="min"``).
      ``evaluate=None`` skips evaluation (then monitor ``"train_loss"`` with ``mode="min"``).
    - ``config``: the experiment's settings (model sizes, data, ...), stored in every checkpoint.
    - ``epochs``: total epochs of the run (the LR schedule spans them); ``stop_after``: end this call after
      that epoch (to train in chunks); a later call resumes from ``out_dir/last.pt`` when ``resume``.
    - Resuming refuses (``CheckpointError``) if ``config`` or the loop's settings differ from the checkpoint's.
    - ``data``: fingerprints of the data (e.g. ``{"train": packed.fingerprint, ...}``), stored in every
      checkpoint; resuming refuses a checkpoint made on other data (or made without them) when it is given.
    - Seeds torch/numpy/python with ``seed`` at a fresh start; seed yourself before building the model.
    - ``micro_batch``: at most that many samples per forward/backward, gradients accumulated over the batch
      (``_train_step``; same weights as whole batches within float tolerance, tests/test_memory.py; None: whole
      batches). ``lib.common.memory.choose_micro_batch`` picks one that fits the device. Running out of memory
      raises ``OutOfMemory`` naming the setting to lower.
    - A loss that is not finite stops training (``FloatingPointError``): without a gradient scaler at the first
      such step; with one (``amp`` on CUDA), which skips steps whose gradients overflow float16, when an epoch's
      mean train loss is not finite or after ``max_skipped_steps`` skipped steps in a row.
    - ``out_dir`` is locked for the whole call (``lock.Busy`` if another process trains in it). A fresh start
      (``resume=False``, or no last.pt) first removes the previous run's last.pt, best.pt, logs and events.
    - ``tensorboard``: write TensorBoard events to ``out_dir/tensorboard/`` (when the package is installed; main
      rank only; lib/common/tensorboard.py). ``panels(model, device) -> {name: image}`` (an (H, W, 3) uint8 array
      or a (C, H, W) float tensor in 0..1) adds images once per epoch, e.g. a few val samples and their
      predictions; it runs in eval mode without gradients and its RNG draws are undone, so it changes no weights.
    """
    out_dir = Path(out_dir)
    device = auto_device(device)
    model.to(device)
    use_amp = bool(amp) and device.type == "cuda"  # float16 autocast and a gradient scaler
    scaled = use_amp or (_SCALER_ON_CPU and device.type == "cpu")  # the gradient scaler is on
    autocast = train_autocast(device, amp, cpu_amp)  # entered anew for each forward pass
    config = json_normal(config or {})
    steps = len(train_loader) if max_steps_per_epoch is None else min(len(train_loader), max_steps_per_epoch)
    if steps == 0:
        raise ValueError("the train loader is empty")
    if isinstance(max_skipped_steps, bool) or not isinstance(max_skipped_steps, int) or max_skipped_steps < 1:
        raise ValueError(f"max_skipped_steps must be a positive int, not {max_skipped_steps!r}")
    settings = {
        "optimizer": optimizer,
        "lr": lr,
        "schedule": schedule,
        "weight_decay": weight_decay,
        "grad_clip": grad_clip,
        "seed": seed,
        "steps_per_epoch": steps,
        "batch_size": getattr(train_loader, "batch_size", None),
        "monitor": monitor,
        "mode": mode,
        "epochs": epochs,
    }
    ignore = RESUME_IGNORE + (
        ("epochs",) if schedule in ("none", None) else ()
    )  # without a schedule, extending is fine

    opt = _make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    sched = _make_scheduler(schedule, opt, lr, epochs * steps)
    scaler = torch.amp.GradScaler(device.type if scaled else "cuda", enabled=scaled)
    history, best, start = [], {"monitor": monitor, "value": None, "epoch": None}, 1

    last_path = out_dir / "last.pt"
    with _folder_lock(out_dir), contextlib.ExitStack() as closing:
        if resume and last_path.exists():
            ckpt = read_checkpoint(last_path)
            diff = config_diff(ckpt.get("config", {}), config, ignore)
            diff += ["fit." + k for k in config_diff(ckpt.get("fit", {}), settings, ignore)]
            if diff:
                raise CheckpointError(
                    f"checkpoint {last_path} was made with a different config; differing keys: {', '.join(diff)}. "
                    "Use another out_dir, or resume=False to start over (it overwrites this run)."
                )
            old, new = json_normal(ckpt.get("data")), json_normal(data)
            if data is not None and old != new:
                keys = (
                    sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    if isinstance(old, dict) and isinstance(new, dict)
                    else []
                )
                raise CheckpointError(
                    f"checkpoint {last_path} was made on other data ({old} here, this run: {new}"
                    + (f"; differing: {', '.join(keys)}" if keys else "")
                    + "). Use another out_dir, or resume=False to start over (it overwrites this run)."
                )
            unwrap(model).load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            if sched is not None and ckpt.get("scheduler") is not None:
                sched.load_state_dict(ckpt["scheduler"])
            if scaled and ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            history, best, start = ckpt["history"], ckpt["best"], ckpt["epoch"] + 1
            skipped = ckpt.get("skipped", 0)
            set_rng_state(ckpt["rng"])
            if is_main() and progress:
                print(f"[fit] resuming {last_path} after epoch {ckpt['epoch']}/{epochs}")
        else:
            if is_main():
                _start_over(out_dir, progress)
            seed_everything(seed)
            skipped = 0

        # Steps the scaler skipped in a row (kept in the checkpoint, so that training in chunks counts on): it
        # skips a step when it finds inf or nan gradients, and then halves its scale in update(); a step taken
        # keeps or grows it. So a scale lower after update() than before means a skipped step, read through the
        # public API whatever the cause (overflow, a nan loss, nan weights); a scale of 0 (about 165 halvings)
        # cannot fall further, and every step there is skipped (the gradients unscale to inf or nan). Under DDP
        # the gradients are all-reduced first, so every rank skips, and stops, at the same step.
        # get_scale() waits for the device: one wait a step, just after the one in scaler.step(), which reads
        # whether the gradients were finite.
        scale = scaler.get_scale()
        # TensorBoard's x axis: optimizer steps since the start of the run (a resumed run goes on from its checkpoint)
        board = closing.enter_context(
            tb.Board(out_dir, (start - 1) * steps + 1, enabled=tensorboard and is_main(), progress=progress)
        )
        last_epoch = epochs if stop_after is None else min(epochs, stop_after)
        for epoch in range(start, last_epoch + 1):
            t0 = time.time()
            model.train()
            _set_epoch(train_loader, epoch)
            total, count = torch.zeros((), device=device), 0
            bar = tqdm(
                train_loader,
                total=steps,
                desc=f"epoch {epoch}/{epochs}",
                leave=False,
                disable=not (progress and is_main()),
            )
            for i, batch in enumerate(bar):
                if i >= steps:
                    break
                if hasattr(loss_fn, "set_step"):
                    loss_fn.set_step((epoch - 1) * steps + i, epochs * steps)
                opt.zero_grad(set_to_none=True)
                oom = None
                try:
                    loss = _train_step(
                        model,
                        loss_fn,
                        batch,
                        device,
                        micro_batch,
                        autocast,
                        scaler,
                        not scaled,
                    )
                except FloatingPointError as e:
                    raise FloatingPointError(
                        f"{e} at epoch {epoch} step {i} of the run in {out_dir}; try a lower lr (or grad_clip)"
                    ) from None
                except Exception as e:
                    if not _is_oom(e):
                        raise
                    oom = _oom_message(device, getattr(train_loader, "batch_size", None), micro_batch, e)
                if oom is not None:  # outside the except block, so the failed step's tensors are freed first
                    opt.zero_grad(set_to_none=True)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    raise OutOfMemory(oom)
                if grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(opt)
                scaler.update()
                if scaled:
                    scale, before = scaler.get_scale(), scale
                    skipped = skipped + 1 if scale < before or scale == 0 else 0
                    if skipped >= max_skipped_steps:
                        raise FloatingPointError(
                            f"the gradient scaler skipped the last {skipped} optimizer steps in a row (epoch {epoch} "
                            f"step {i} of the run in {out_dir}): the gradients were inf or nan at every loss scale "
                            f"down to {scale:g}, so the weights stopped changing. Try a lower lr, or amp=False "
                            "(float32)"
                        )
                lr_used = opt.param_groups[0]["lr"]
                if sched is not None:
                    sched.step()
                total += loss.detach().float()
                count += 1
                board.step((epoch - 1) * steps + i + 1, loss, lr_used)
                if (i + 1) % log_every == 0:
                    bar.set_postfix(loss=f"{total.item() / count:.4f}")
                    board.flush_steps()  # the device is read here anyway
            bar.close()

            mean_loss = total / count
            if distributed():  # the loss of the whole global batch, not just rank 0's share
                dist.all_reduce(mean_loss)
                mean_loss /= dist.get_world_size()
            if not torch.isfinite(mean_loss):  # after the all-reduce: every rank stops, none waits for the others
                raise FloatingPointError(
                    f"the mean train loss of epoch {epoch} is {mean_loss.item()} in the run in {out_dir}: the loss "
                    "was inf or nan in some steps (float16 overflow under amp, or diverging weights), which the "
                    "gradient scaler skipped; this epoch was not saved. Try a lower lr, or amp=False (float32)"
                )
            row = {"epoch": epoch, "train_loss": mean_loss.item(), "lr": lr_used}  # lr of the epoch's last step
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    metrics = evaluate(unwrap(model), device)
                model.train()
                row.update({k: _scalar(v) for k, v in metrics.items()})
            row["seconds"] = time.time() - t0
            history.append(row)
            if monitor not in row:
                raise KeyError(f"monitored metric {monitor!r} is not in the epoch row (keys: {list(row)})")
            value = row[monitor]
            improved = value == value and (
                best["value"] is None or (value > best["value"] if mode == "max" else value < best["value"])
            )
            if improved:
                best = {"monitor": monitor, "value": value, "epoch": epoch}

            if is_main():
                ckpt = {
                    "model": unwrap(model).state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "scaler": scaler.state_dict() if scaled else None,
                    "epoch": epoch,
                    "config": config,
                    "fit": settings,
                    "data": json_normal(data),
                    "history": history,
                    "best": best,
                    "skipped": skipped,
                    "rng": get_rng_state(),
                }
                if improved:  # for evaluation, never resumed from: without the optimizer's state (2/3 of Adam's file)
                    torch_save(out_dir / "best.pt", {k: v for k, v in ckpt.items() if k not in RESUME_ONLY})
                torch_save(last_path, ckpt)
                _write_logs(out_dir, history)
                board.epoch(epoch * steps, row, panels, unwrap(model), device)
                if progress:
                    shown = {
                        k: (f"{v:.4g}" if isinstance(v, float) else v)
                        for k, v in row.items()
                        if isinstance(v, (int, float))
                    }
                    print("[fit] " + " ".join(f"{k}={v}" for k, v in shown.items()), flush=True)
            if distributed():
                dist.barrier()  # no rank reads a checkpoint before rank 0 has written it
    return history
