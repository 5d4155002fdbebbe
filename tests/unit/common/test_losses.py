"""Losses: gradients, known values on hard predictions, weighted combination."""

import pytest
import torch
import torch.nn.functional as F

from lib.common.losses import SegLoss, lovasz_softmax_loss, soft_jaccard_loss
from lib.common.metrics import jaccard

C = 6


def data(seed=0, b=2, h=8, w=10):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, C, h, w, generator=g)
    target = torch.randint(0, 4, (b, h, w), generator=g)  # classes 4, 5 absent from the target
    return logits, target


def hard(labels, scale=50.0):
    return scale * F.one_hot(labels, C).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("fn", [soft_jaccard_loss, lovasz_softmax_loss, SegLoss(1, 1, 1), SegLoss(0, 1, 0)])
def test_gradients_finite_nonzero(fn):
    logits, target = data()
    logits.requires_grad_(True)
    loss = fn(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_perfect_prediction_is_zero_and_wrong_is_larger():
    _, target = data()
    perfect = hard(target)
    wrong = hard((target + 1) % C)
    assert soft_jaccard_loss(perfect, target) < 1e-6
    assert soft_jaccard_loss(perfect, target, ignore_absent=False) < 1e-6
    assert lovasz_softmax_loss(perfect, target) < 1e-6
    assert soft_jaccard_loss(wrong, target) > 0.95  # smooth=1 pixel keeps it just under 1 on 160 pixels
    assert lovasz_softmax_loss(wrong, target) > 0.99
    rand = data(1)[0]
    assert 0.1 < soft_jaccard_loss(rand, target) < soft_jaccard_loss(wrong, target)


def test_hard_predictions_match_metric():
    """On one-hot logits, soft Jaccard (no smoothing) = 1 - the task metric, Lovasz = 1 - IoU over target classes."""
    _, target = data()
    pred = data(2)[1]
    pred[0, 0, :3] = 5  # a class only in the prediction
    logits = hard(pred)
    mean, per_class = jaccard(pred, target, num_classes=C)
    assert abs(float(soft_jaccard_loss(logits, target, smooth=0.0)) - (1 - mean)) < 1e-5
    present = torch.bincount(target.reshape(-1), minlength=C) > 0
    expected = 1 - torch.tensor(per_class)[present].mean()
    assert abs(float(lovasz_softmax_loss(logits, target)) - float(expected)) < 1e-5


def test_combination_is_weighted_sum():
    logits, target = data()
    ce = F.cross_entropy(logits, target)
    sj = soft_jaccard_loss(logits, target)
    lv = lovasz_softmax_loss(logits, target)
    loss = SegLoss(ce=0.5, jaccard=2.0, lovasz=0.3)
    assert torch.allclose(loss(logits, target), 0.5 * ce + 2.0 * sj + 0.3 * lv, atol=1e-6)
    assert set(loss.last) == {"ce", "jaccard", "lovasz"}
    assert torch.allclose(SegLoss()(logits, target), ce)
    # half-precision logits (autocast) are computed in float32
    assert SegLoss(1, 1, 1)(logits.half(), target).dtype == torch.float32
    with pytest.raises(ValueError):
        SegLoss(0, 0, 0)
