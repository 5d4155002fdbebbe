"""A tiny training run used by test_distributed.py: `torchrun --standalone --nproc_per_node=2 -m tests.integration.ddp_worker OUT`
(or `python -m tests.integration.ddp_worker OUT` for the single-process reference); `... OUT MICRO_BATCH` accumulates
gradients over micro-batches of that many samples."""

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from lib.common import distributed
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
    distributed.cleanup()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
