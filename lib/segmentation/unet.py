"""Classic U-Net for per-frame segmentation (docs/recipe.md, step 1).

``UNet(width=64, depth=4)`` is the reference size: encoder 64-128-256-512, bottleneck 1024, BatchNorm,
transposed-conv upsampling (31.0M parameters with 3 input channels and 49 classes).
Any H x W works: the input is padded up to a multiple of 2**depth and the logits are cropped back.
``build_unet(cfg)`` builds the model of a training config (lib/segmentation/training.py) and ``load_unet(path)``
rebuilds it from a checkpoint, whose config says how to build it.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.common.checkpoint import load_checkpoint
from lib.common.classes import NUM_CLASSES
from lib.common.device import auto_device
from lib.segmentation.decode import DECODES


def _norm(kind, ch):
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    if kind in (None, "none"):
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'group' or 'none', not {kind!r}")


class DoubleConv(nn.Sequential):
    """(conv3x3 -> norm -> ReLU) x 2; convs carry a bias only without normalisation."""

    def __init__(self, cin, cout, norm="batch"):
        bias = norm in (None, "none")
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=bias),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=bias),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Upsample x2 (transposed conv halving channels, or bilinear + 1x1 conv), concat skip, double conv."""

    def __init__(self, cin, cout, norm="batch", bilinear=False):
        super().__init__()
        if bilinear:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(cin, cout, 1)
            )
        else:
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = DoubleConv(2 * cout, cout, norm)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class FactorizedHead(nn.Module):
    """49 class log-probabilities from attribute heads: p(object) x p(shape) x p(material) x p(colour).

    A class id is shape*16 + material*8 + colour + 1, so the 48 object classes share what they have in
    common: colour is learnt once for all shapes, shape once for all colours. From scratch this needs far
    fewer training steps than 49 independent logits (the reason the `cpu` profile uses it). The output is a
    normalised log-distribution, so cross-entropy, soft Jaccard, Lovasz and argmax apply unchanged.
    """

    def __init__(self, cin):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 + 3 + 2 + 8, 1)

    def forward(self, x):
        obj, shape, mat, col = self.conv(x).float().split([2, 3, 2, 8], dim=1)
        obj, shape, mat, col = (F.log_softmax(t, 1) for t in (obj, shape, mat, col))
        b, _, h, w = x.shape
        # id - 1 = s*16 + m*8 + c: broadcast (s, m, c) and flatten in that order
        objects = (shape[:, :, None, None] + mat[:, None, :, None] + col[:, None, None, :]).reshape(b, 48, h, w)
        return torch.cat([obj[:, :1], obj[:, 1:] + objects], 1)


class UNet(nn.Module):
    """U-Net: encoder widths ``width * 2**i`` for i < depth, bottleneck ``width * 2**depth``."""

    def __init__(
        self, *, in_ch=3, num_classes=NUM_CLASSES, width=64, depth=4, norm="batch", bilinear=False, head="plain"
    ):
        super().__init__()
        if head not in ("plain", "factorized"):
            raise ValueError(f"head must be 'plain' or 'factorized', not {head!r}")
        self.depth = depth
        widths = [width * 2**i for i in range(depth + 1)]
        self.widths = widths
        self.inc = DoubleConv(in_ch, widths[0], norm)
        self.downs = nn.ModuleList(DoubleConv(widths[i], widths[i + 1], norm) for i in range(depth))
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], norm, bilinear) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1) if head == "plain" else FactorizedHead(widths[0])

    def forward(self, x):
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)[..., :h, :w]


def count_params(model, trainable_only=False):
    """Number of parameters (all, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_unet(cfg):
    """The U-Net of a training config (``lib.segmentation.training.DEFAULTS`` keys: width, depth, norm, head,
    decode), with its ``decode`` attribute set (how ``lib.segmentation.label.segment`` turns scores into ids)."""
    model = UNet(
        in_ch=3, num_classes=49, width=cfg["width"], depth=cfg["depth"], norm=cfg["norm"], head=cfg.get("head", "plain")
    )
    model.decode = cfg.get("decode", "argmax")  # how lib.segmentation.label.segment turns scores into ids
    if model.decode not in DECODES:
        raise ValueError(f"decode must be one of {DECODES}, not {model.decode!r}")
    return model


def load_unet(path, device=None):
    """(model in eval mode, config) from a checkpoint written by ``lib.segmentation.training.train_unet``."""
    state, config = load_checkpoint(path)
    model = build_unet(config)
    model.load_state_dict(state)
    return model.to(auto_device(device)).eval(), config
