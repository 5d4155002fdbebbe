"""TensorBoard events of a training run (``fit`` in lib/common/trainer.py), in ``<out_dir>/tensorboard/``.

Optional: ``torch.utils.tensorboard`` needs the ``tensorboard`` package (``pip install -e .[tensorboard]``);
without it ``Board`` does nothing and says so once. Only the main rank writes. ``tensorboard --logdir runs``
then shows every run and every stage (unet, simvp, finetune_*), as ``<run>/<stage>/tensorboard``.

Tags (x axis: optimizer steps since the start of the run, so a resumed run continues its curves):
- ``step/train_loss``, ``step/lr``: each step's loss (the main rank's share under DDP) and learning rate;
- ``epoch/<key>``: every number of the epoch's row in log.csv (``train_loss``, ``lr``, ``val_iou``, ``seconds``,
  ...), at the epoch's last step;
- ``panels/<name>``: the images of ``fit(panels=...)``, once per epoch.

Writing changes nothing in training: losses are read from the device where the loop reads them anyway (every
``log_every`` steps), and ``panels`` runs in eval mode without gradients, its RNG draws undone.
"""

import shutil
from pathlib import Path

import numpy as np
import torch

from lib.common.rng import get_rng_state, set_rng_state

FOLDER = "tensorboard"  # in the run's out_dir
_said_missing = False  # the "not installed" line is printed once per process


def remove(out_dir):
    """Remove a previous run's events (a fresh start in ``out_dir``); True if there were some."""
    path = Path(out_dir) / FOLDER
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True


class Board:
    """The events of one ``fit`` call: a ``SummaryWriter`` on ``out_dir/tensorboard``, or nothing at all when
    ``enabled`` is false (not the main rank, or switched off) or tensorboard is not installed.

    ``first_step``: the first step this call writes. A resumed run passes the step after its checkpoint's,
    which hides the events that a crashed run wrote past it (``purge_step``), so curves do not double back.
    Use it as a context manager: the writer is flushed and closed at the end, also on an exception.
    """

    def __init__(self, out_dir, first_step=1, *, enabled=True, progress=True):
        self.writer, self.pending = None, []
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except ImportError:
            global _said_missing
            if progress and not _said_missing:
                print("[fit] tensorboard is not installed: no TensorBoard events (pip install tensorboard)")
            _said_missing = True
            return
        purge = first_step if first_step > 1 else None
        self.writer = SummaryWriter(str(Path(out_dir) / FOLDER), purge_step=purge)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def step(self, step, loss, lr):
        """Note a step's loss (a tensor on the device: read later, in ``flush_steps``) and learning rate."""
        if self.writer is not None:
            self.pending.append((step, loss, lr))

    def flush_steps(self):
        """Write the noted steps: one read of their losses from the device."""
        if self.writer is None or not self.pending:
            return
        losses = torch.stack([loss for _, loss, _ in self.pending]).float().cpu().tolist()
        for (step, _, lr), loss in zip(self.pending, losses):
            self.writer.add_scalar("step/train_loss", loss, step)
            self.writer.add_scalar("step/lr", lr, step)
        self.pending = []

    def epoch(self, step, row, panels=None, model=None, device=None):
        """Write the epoch's row (its numbers as ``epoch/<key>``) and ``panels(model, device)`` at ``step``."""
        if self.writer is None:
            return
        self.flush_steps()
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"epoch/{key}", value, step)
        if panels is not None:
            for name, image in _images(panels, model, device).items():
                self.writer.add_image(f"panels/{name}", image, step, dataformats=_layout(image))
        self.writer.flush()

    def close(self):
        if self.writer is None:
            return
        try:  # the steps of an epoch cut short (a nan loss): worth seeing; not if the device itself failed
            self.flush_steps()
        except Exception:
            pass
        self.writer.close()
        self.writer = None


def _images(panels, model, device):
    """``panels(model, device)`` in eval mode without gradients, with the RNG states and train mode restored,
    so that training continues exactly as without it."""
    state, training = get_rng_state(), model.training
    model.eval()
    try:
        with torch.no_grad():
            return panels(model, device)
    finally:
        model.train(training)
        set_rng_state(state)


def _layout(image):
    """TensorBoard's ``dataformats`` of a panel: numpy (H, W, 3) uint8 or a (C, H, W) tensor, or 2-d grey."""
    if np.ndim(image) == 2:
        return "HW"
    return "CHW" if torch.is_tensor(image) else "HWC"
