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


# ------------------------------------------------------------------ intervals over videos (bootstrap)
def per_video_confusion(pred, target, num_classes=NUM_CLASSES):
    """(N, C, C) int64 confusion matrix of each video's mask(s): what the bootstrap resamples. Summed over videos
    it gives the stacked metric (``iou_from_confusion(cms.sum(0))``)."""
    return np.stack([confusion(p, t, num_classes).numpy() for p, t in zip(pred, target)])


def stacked_iou(cms):
    """Mean IoU over present classes of each (C, C) confusion matrix in (..., C, C): vectorised
    ``iou_from_confusion``; NaN where no class is present."""
    cms = np.asarray(cms, np.float64)
    inter = np.diagonal(cms, axis1=-2, axis2=-1)
    union = cms.sum(-1) + cms.sum(-2) - inter
    present = union > 0
    iou = np.where(present, inter / np.maximum(union, 1), 0.0)
    n = present.sum(-1)
    return np.where(n > 0, iou.sum(-1) / np.maximum(n, 1), np.nan)


def _resample_weights(n, n_boot, seed):
    """(n_boot, n) counts: how often each video is drawn in each resample (n draws with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, (n_boot, n))
    return np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)


def _resampled(cms, weights):
    cms = np.asarray(cms)
    n, c = cms.shape[0], cms.shape[-1]
    return stacked_iou((weights @ cms.reshape(n, -1).astype(np.float64)).reshape(len(weights), c, c))


def bootstrap_ci(cms, n_boot=1000, level=0.95, seed=0):
    """[lo, hi]: percentile bootstrap interval of the task metric over videos. Each resample draws N videos with
    replacement and computes the stacked Jaccard of their summed confusion matrices (the metric stacks videos,
    so it is recomputed per resample, never averaged per video). ``cms``: ``per_video_confusion`` output."""
    stats = _resampled(cms, _resample_weights(len(cms), n_boot, seed))
    a = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(stats, [a, 100 - a])
    return [float(lo), float(hi)]


def bootstrap_diff_ci(cms_a, cms_b, n_boot=1000, level=0.95, seed=0):
    """Paired bootstrap of the difference metric(a) - metric(b) of two predictors on the same videos (the same
    resampled videos for both): {"diff": the difference on all videos, "ci": [lo, hi]}."""
    if len(cms_a) != len(cms_b):
        raise ValueError(f"paired bootstrap needs the same videos: {len(cms_a)} vs {len(cms_b)}")
    w = _resample_weights(len(cms_a), n_boot, seed)
    d = _resampled(cms_a, w) - _resampled(cms_b, w)
    a = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(d, [a, 100 - a])
    diff = float(stacked_iou(np.asarray(cms_a).sum(0)) - stacked_iou(np.asarray(cms_b).sum(0)))
    return {"diff": diff, "ci": [float(lo), float(hi)]}
