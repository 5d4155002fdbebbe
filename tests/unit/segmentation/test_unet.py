"""U-Net shapes, reference size, odd input sizes, the segment inference path."""

import numpy as np
import pytest
import torch

from lib.common.classes import NUM_CLASSES
from lib.segmentation.label import segment
from lib.segmentation.unet import UNet, count_params


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one thread is faster, and much faster on a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def expected_params(in_ch=3, num_classes=NUM_CLASSES, width=64, depth=4):
    """Formula: double conv = 2 bias-free 3x3 convs + 2 BatchNorms (weight, bias); up = 2x2 transposed conv
    (with bias) + double conv on the concatenation; head = 1x1 conv with bias."""
    w = [width * 2**i for i in range(depth + 1)]

    def dc(cin, cout):
        return 9 * cin * cout + 9 * cout * cout + 4 * cout

    n = dc(in_ch, w[0]) + sum(dc(w[i], w[i + 1]) for i in range(depth))
    n += sum(4 * w[i + 1] * w[i] + w[i] + dc(2 * w[i], w[i]) for i in range(depth))
    return n + w[0] * num_classes + num_classes


def test_reference_size():
    m = UNet()  # width 64, depth 4, BatchNorm
    assert m.widths == [64, 128, 256, 512, 1024]
    convs = [c.out_channels for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3)]
    assert convs[:10] == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024]
    assert sum(isinstance(c, torch.nn.BatchNorm2d) for c in m.modules()) == 18
    assert count_params(m) == expected_params() == 31_040_753


def test_small_size_formula():
    assert count_params(UNet(width=16)) == expected_params(width=16)
    assert count_params(UNet(in_ch=1, num_classes=5, width=8, depth=3)) == expected_params(1, 5, 8, 3)


def test_output_shape_full_frame():
    m = UNet(width=8).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, 160, 240)).shape == (2, NUM_CLASSES, 160, 240)


def test_odd_sizes_and_variants():
    for kw in ({}, {"bilinear": True}, {"norm": "group"}, {"norm": "none"}):
        m = UNet(width=4, depth=3, **kw).eval()
        with torch.no_grad():
            for h, w in ((37, 51), (17, 16), (1, 1)):
                assert m(torch.rand(1, 3, h, w)).shape == (1, NUM_CLASSES, h, w)


def test_segment():
    """lib.segmentation.label.segment is the one inference path: uint8 HWC frames -> uint8 ids, mode restored."""
    torch.manual_seed(0)  # the untrained logits' spread (the bf16 check below) depends on the initialisation
    m = UNet(width=4, depth=2).train()
    imgs = torch.randint(0, 256, (5, 20, 30, 3), dtype=torch.uint8).numpy()
    out = segment(m, imgs, batch_size=2, amp=False)
    assert out.shape == (5, 20, 30) and out.dtype == np.uint8 and int(out.max()) < NUM_CLASSES
    assert m.training  # mode restored
    m.eval()
    with torch.no_grad():
        ref = m(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255).argmax(1)
    assert np.array_equal(out, ref.numpy())
    assert segment(m, imgs[0], amp=False).shape == (20, 30)
    # mixed precision (bf16 on CPUs that have it) may flip only near-ties of the float32 logits
    with torch.no_grad():
        m.head.weight *= 100  # spread the untrained logits, so that most pixels are not near-ties
        out = segment(m, imgs, amp=False)
        top2 = m(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255).topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]).numpy() > 0.05
    assert clear.mean() > 0.2 and np.array_equal(segment(m, imgs, batch_size=2)[clear], out[clear])


def test_factorized_head_maps_attributes_to_class_ids():
    from lib.common.classes import class_id
    from lib.segmentation.unet import FactorizedHead

    head = FactorizedHead(15)
    with torch.no_grad():
        head.conv.weight.zero_()
        head.conv.bias.zero_()
        head.conv.weight[:, :, 0, 0] = torch.eye(15) * 20  # each input channel drives one logit
    x = torch.zeros(1, 15, 2, 2)
    x[0, 1] = 1  # object
    x[0, 2 + 2] = 1  # cylinder
    x[0, 5 + 1] = 1  # rubber
    x[0, 7 + 7] = 1  # yellow
    logp = head(x)
    assert logp.shape == (1, 49, 2, 2)
    assert torch.allclose(logp.exp().sum(1), torch.ones(1, 2, 2))
    assert (logp.argmax(1) == class_id("cylinder", "rubber", "yellow")).all()
    x[0, 1] = 0
    x[0, 0] = 1  # background
    assert (head(x).argmax(1) == 0).all()
