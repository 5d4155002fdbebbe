"""A tiny training run used by test_distributed.py: `torchrun --standalone --nproc_per_node=2 -m tests.integration.ddp_worker OUT`
(or `python -m tests.integration.ddp_worker OUT` for the single-process reference); `... OUT MICRO_BATCH` accumulates
gradients over micro-batches of that many samples; `... OUT auto` chooses the micro-batch from the free memory
(``choose_micro_batch``), faked per rank: plenty on rank 0, next to none on the others, and writes what each rank
chose to OUT/micro_RANK.json."""

import gc
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from lib.common import distributed, memory
from lib.common.trainer import epoch_loader, fit

N, GLOBAL_BATCH, EPOCHS = 48, 8, 2


def main(out, micro_batch=None):
    rank, world, device = distributed.setup("cpu")
    torch.manual_seed(0)
    x, y = torch.randn(N, 6), torch.randn(N, 2)
    ds = torch.utils.data.TensorDataset(torch.arange(N), x, y)
    torch.manual_seed(1)
    model = distributed.wrap(
        torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)), device
    )
    seen = []

    def loss_fn(m, batch, dev):
        idx, xb, yb = batch
        seen.append(idx.tolist())
        return F.mse_loss(m(xb), yb)

    loader = epoch_loader(ds, distributed.per_rank_batch(GLOBAL_BATCH), seed=3)
    if micro_batch == "auto":
        free = 1e15 if rank == 0 else 1.0
        memory.device_memory = lambda device: (free, 1e15)
        micro_batch, info = memory.choose_micro_batch(None, loader, model, loss_fn, device, progress=False)
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, f"micro_{rank}.json").write_text(json.dumps({k: info[k] for k in ("micro_batch", "fits_here")}))
        seen.clear()  # the chooser's one-sample forward pass is not training
    hist = fit(
        model,
        loader,
        loss_fn,
        None,
        Path(out) / "ckpt",
        {"toy": 1},
        epochs=EPOCHS,
        lr=0.01,
        schedule="none",
        monitor="train_loss",
        mode="min",
        progress=False,
        micro_batch=micro_batch,
    )
    Path(out, f"seen_{rank}.json").write_text(json.dumps(seen))
    if rank == 0:
        torch.save(
            {"state": distributed.unwrap(model).state_dict(), "history": hist, "world": world}, Path(out) / "final.pt"
        )
    # DDP's reducer holds the process group: freed here, not at interpreter exit, where gloo's threads can abort
    # the process ("terminate called without an active exception", seen on rank 1 about once in five CI runs)
    del model
    gc.collect()
    distributed.cleanup()


if __name__ == "__main__":
    arg = sys.argv[2] if len(sys.argv) > 2 else None
    main(sys.argv[1], None if arg is None else arg if arg == "auto" else int(arg))
