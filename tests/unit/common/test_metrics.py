"""lib.common.metrics equals torchmetrics' JaccardIndex (the competition metric), including edge cases."""

import math

import numpy as np
import pytest
import torch

from lib.common.classes import NUM_CLASSES
from lib.common.metrics import IoUMeter, jaccard
from lib.forecasting.openstl import import_torchvision

# torchmetrics imports torchvision when it is installed; next to a CPU-only torch, the CUDA torchvision that
# scripts/setup/install_openstl.sh brings for OpenSTL cannot load its C++ ops, and the placeholders make it importable
import_torchvision()
from torchmetrics.classification import MulticlassJaccardIndex  # noqa: E402


def tm(pred, target, average="macro"):
    return MulticlassJaccardIndex(num_classes=NUM_CLASSES, average=average)(pred, target)


def cases():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, NUM_CLASSES, (4, 16, 24), generator=g)
    p = torch.randint(0, NUM_CLASSES, (4, 16, 24), generator=g)
    yield "random", p, t
    few = torch.randint(0, 5, (3, 16, 24), generator=g)  # most classes absent from both
    noisy = few.clone()
    noisy[:, ::3] = torch.randint(0, 7, noisy[:, ::3].shape, generator=g)
    yield "absent classes", noisy, few
    yield "perfect", few, few
    yield "one class only", torch.zeros(2, 8, 8, dtype=torch.long), torch.zeros(2, 8, 8, dtype=torch.long)
    yield "disjoint", torch.full((2, 8, 8), 3), torch.full((2, 8, 8), 7)
    bg = torch.zeros(2, 16, 24, dtype=torch.long)
    obj = bg.clone()
    obj[:, 4:8, 4:10] = 17
    obj2 = bg.clone()
    obj2[:, 5:9, 4:12] = 17
    obj2[0, 0, 0] = 48  # a class only in the prediction
    yield "small object", obj2, obj


@pytest.mark.parametrize("name,pred,target", list(cases()), ids=[c[0] for c in cases()])
def test_matches_torchmetrics(name, pred, target):
    mean, per_class = jaccard(pred, target)
    assert abs(mean - float(tm(pred, target))) < 1e-6
    ref = tm(pred, target, average=None).double().numpy()
    present = ~np.isnan(per_class)
    assert np.allclose(per_class[present], ref[present], atol=1e-6)
    assert np.allclose(ref[~present], 0)  # torchmetrics reports absent classes as 0; we leave them out
    # numpy input gives the same
    assert jaccard(pred.numpy().astype(np.uint8), target.numpy())[0] == mean


def test_batched_accumulation_equals_one_shot():
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 10, (10, 16, 24), generator=g)
    p = torch.where(torch.rand(t.shape, generator=g) < 0.7, t, torch.randint(0, 12, t.shape, generator=g))
    meter = IoUMeter()
    ref = MulticlassJaccardIndex(num_classes=NUM_CLASSES)
    for i in range(0, 10, 3):
        meter.update(p[i : i + 3], t[i : i + 3])
        ref.update(p[i : i + 3], t[i : i + 3])
    mean, per_class = meter.compute()
    assert abs(mean - jaccard(p, t)[0]) < 1e-12
    assert abs(mean - float(ref.compute())) < 1e-6
    # stacked, not averaged per video
    per_video = np.mean([jaccard(p[i], t[i])[0] for i in range(10)])
    assert abs(per_video - mean) > 1e-4


def test_errors_and_empty():
    with pytest.raises(ValueError):
        jaccard(torch.zeros(4), torch.zeros(5))
    with pytest.raises(ValueError):
        jaccard(torch.full((4,), 49), torch.zeros(4))
    assert math.isnan(IoUMeter().compute()[0])
