"""The task metric (docs/metric.md), in one place.

Multiclass Jaccard over the stacked masks of every evaluated frame (not averaged per video), macro
over classes, leaving out classes absent from both prediction and target; the same number as
``torchmetrics.JaccardIndex(task="multiclass", num_classes=49)`` (tested).
"""

import numpy as np
import torch

from lib.common.classes import NUM_CLASSES


def _tensor(x):
    if torch.is_tensor(x):
        return x
    a = np.asarray(x)
    return torch.from_numpy(a if a.flags.writeable else np.array(a))  # memmaps are read-only


def confusion(pred, target, num_classes=NUM_CLASSES):
    """(num_classes, num_classes) int64 counts, rows = target, cols = prediction.
    Accepts numpy arrays or tensors of any matching shape; accumulate by adding."""
    p, t = _tensor(pred).reshape(-1).long(), _tensor(target).reshape(-1).long()
    if p.shape != t.shape:
        raise ValueError(f"prediction has {p.numel()} pixels, target {t.numel()}")
    if p.numel() and (
        int(p.min()) < 0 or int(p.max()) >= num_classes or int(t.min()) < 0 or int(t.max()) >= num_classes
    ):
        raise ValueError(f"class ids must lie in 0..{num_classes - 1}")
    idx = (t * num_classes + p).cpu()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(cm):
    """(mean IoU over present classes, per-class IoU array with NaN for absent classes)."""
    cm = torch.as_tensor(cm).double()
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    per_class = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))
    present = union > 0
    mean = float(per_class[present].mean()) if bool(present.any()) else float("nan")
    return mean, per_class.numpy()


def jaccard(pred, target, num_classes=NUM_CLASSES):
    """Stacked multiclass IoU of predictions against targets: (mean, per-class array)."""
    return iou_from_confusion(confusion(pred, target, num_classes))


class IoUMeter:
    """Accumulates a confusion matrix over batches; ``.compute()`` gives (mean, per-class)."""

    def __init__(self, num_classes=NUM_CLASSES):
        self.num_classes = num_classes
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, pred, target):
        self.cm += confusion(pred, target, self.num_classes)

    def compute(self):
        return iou_from_confusion(self.cm)


def per_video_iou(pred, target, num_classes=NUM_CLASSES):
    """IoU of each video's mask(s) on its own, (N,) array, for sorting and picking examples (the task
    metric itself stacks all videos: use ``jaccard``)."""
    return np.array([jaccard(p, t, num_classes)[0] for p, t in zip(pred, target)])
