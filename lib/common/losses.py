"""Segmentation losses: cross-entropy plus IoU-aware terms (soft Jaccard, Lovasz-softmax).

All take logits (B,C,H,W) (or (N,C)) and integer targets (B,H,W); they compute in float32 so they are
safe under autocast. The task metric is a macro IoU over classes (docs/metric.md), so small objects
count as much as the floor; the IoU-aware terms push on that directly, cross-entropy alone does not.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _flat(logits, target):
    """(N,C) float32 logits and (N,) int64 targets."""
    c = logits.shape[1]
    logits = logits.float().movedim(1, -1).reshape(-1, c)
    return logits, target.reshape(-1).long()


def soft_jaccard_loss(logits, target, ignore_absent=True, smooth=1.0):
    """1 - mean soft IoU over classes, pooled over the whole batch (like the stacked metric).

    Soft IoU of class c: sum(p_c * y_c) / sum(p_c + y_c - p_c * y_c) with softmax probabilities p.
    ``ignore_absent``: average over classes present in the target or in the argmax prediction (the metric's
    rule); otherwise over all classes. ``smooth`` (in pixels) keeps empty classes finite.
    """
    logits, target = _flat(logits, target)
    c = logits.shape[1]
    probs = logits.softmax(1)
    onehot = F.one_hot(target, c).float()
    inter = (probs * onehot).sum(0)
    union = probs.sum(0) + onehot.sum(0) - inter
    iou = (inter + smooth) / (union + smooth)
    if ignore_absent:
        present = torch.bincount(target, minlength=c) > 0
        present |= torch.bincount(logits.argmax(1), minlength=c) > 0
        iou = iou[present]
    return 1.0 - iou.mean()


def _lovasz_grad(gt_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al. 2018)."""
    gts = gt_sorted.sum()
    inter = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jac = 1.0 - inter / union
    if gt_sorted.numel() > 1:
        jac[1:] = jac[1:] - jac[:-1]
    return jac


def lovasz_softmax_loss(logits, target, classes="present"):
    """Lovasz-softmax loss (Berman et al., CVPR 2018), pooled over the batch.

    ``classes="present"``: average over classes present in the target; ``"all"``: over all classes.
    """
    logits, target = _flat(logits, target)
    probs = logits.softmax(1)
    losses = []
    for c in range(probs.shape[1]):
        fg = (target == c).float()
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[perm])))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


class SegLoss(nn.Module):
    """``ce * CE + jaccard * soft_jaccard + lovasz * lovasz_softmax``; ``loss(logits, target)``.

    ``class_weight``: optional per-class CE weights (tensor of length C). ``self.last`` holds the
    detached parts of the latest call (for logging).
    """

    def __init__(self, ce=1.0, jaccard=0.0, lovasz=0.0, class_weight=None):
        super().__init__()
        if ce == jaccard == lovasz == 0:
            raise ValueError("SegLoss needs at least one non-zero weight")
        self.weights = {"ce": float(ce), "jaccard": float(jaccard), "lovasz": float(lovasz)}
        self.register_buffer("class_weight", None if class_weight is None else torch.as_tensor(class_weight).float())
        self.last = {}

    def forward(self, logits, target):
        target = target.long()
        parts = {}
        if self.weights["ce"]:
            parts["ce"] = F.cross_entropy(logits.float(), target, weight=self.class_weight)
        if self.weights["jaccard"]:
            parts["jaccard"] = soft_jaccard_loss(logits, target)
        if self.weights["lovasz"]:
            parts["lovasz"] = lovasz_softmax_loss(logits, target)
        self.last = {k: v.detach() for k, v in parts.items()}
        return sum(self.weights[k] * v for k, v in parts.items())
