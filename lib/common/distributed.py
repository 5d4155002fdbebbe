"""Multi-GPU and multi-node training with torchrun (DistributedDataParallel).

    torchrun --nproc_per_node=4 scripts/tools/train.py unet --data-root data/full --out runs/ddp/unet width=64
    # SLURM: see README ("Training on several GPUs")

``setup()`` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), joins the
process group (NCCL on CUDA, gloo on CPU) and returns this process's device. ``fit`` in lib/common/trainer.py
then logs and checkpoints on rank 0 only; ``EpochSampler`` gives each rank its share of every epoch.
"""

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def is_main():
    """True on rank 0 of a distributed run, and always in a single process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def distributed():
    """True inside an initialised process group of more than one process (torchrun)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def unwrap(model):
    """The underlying module of a DDP / DataParallel / compiled model."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def setup(device=None):
    """Join the process group if launched by torchrun with WORLD_SIZE > 1; returns (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available() and device != "cpu"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() and device != "cpu" else torch.device("cpu")
    else:
        dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return (dist.get_rank() if dist.is_initialized() else 0), world, dev


def wrap(model, device):
    """DDP around ``model`` in a distributed run (BatchNorm synchronised on CUDA), the model otherwise."""
    if not distributed():
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model.to(device), device_ids=[device.index] if device.type == "cuda" else None)


def per_rank_batch(global_batch):
    """Each rank's batch size for a global batch (which must divide evenly)."""
    world = dist.get_world_size() if distributed() else 1
    if global_batch % world:
        raise ValueError(f"batch size {global_batch} does not split evenly over {world} processes")
    return global_batch // world


def barrier():
    if distributed():
        dist.barrier()


def main_first(fn, *args, **kwargs):
    """Run ``fn`` on rank 0 first (e.g. building a packed cache), then on the other ranks."""
    if not is_main():
        barrier()
    out = fn(*args, **kwargs)
    if is_main():
        barrier()
    return out


def cleanup():
    """Ends the process group once every rank has reached it: a rank that tears gloo down while another is still
    working (rank 0 saving its last checkpoint) can abort ("terminate called without an active exception")."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
