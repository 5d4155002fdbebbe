"""SimVP (gSTA translator) for next-frame prediction in mask space
(docs/recipe.md: step 2, and "SimVP and OpenSTL compatibility").

``SimVP`` reproduces OpenSTL's ``openstl.models.SimVP_Model`` (model_type 'gSTA'): same constructor
arguments, same submodule names, same ``state_dict`` keys and shapes, same parameter count
(46,769,665 for hid_S=64, hid_T=512, N_S=4, N_T=8 on in_shape (10, 1, 64, 64)), so weights move
between the two as they are. Only torch is needed (no timm): ``DropPath`` is written here.

``MaskSimVP`` wraps it for the recipe: class ids -> ``Embedding(49, C)`` -> (optional 2x average-pool)
-> SimVP over the 11 input frames -> the LAST output frame -> 1x1 conv to 49 logits -> (optional bilinear
2x up; the two commute, and the head is cheaper at the lower resolution). ``rollout`` predicts further
frames autoregressively on its own argmax masks (frame 22 = ``rollout(model, masks_0_10, 11)``), encoding
each frame once.

Why the last output frame: SimVP maps T input frames to T output frames (the decoder runs per frame on
the translator's output, the translator mixes all frames). Trained one step ahead (11 frames -> frame 12)
only the last output slot is supervised, and it is the slot whose receptive field is "the most recent
frame", so it is the natural place for the next frame's features; the other T-1 slots are unused.

The inner module sits at ``MaskSimVP.simvp``; ``to_openstl_state_dict`` / ``from_openstl_state_dict``
strip / add that prefix so the inner state dict loads into ``SimVP_Model`` (strict) and back.
"""

import contextlib
import importlib.machinery
import math
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.common.classes import NUM_CLASSES

OPENSTL_INSTALL = (
    "install OpenSTL from its source repository: `git clone https://github.com/chengtan9907/OpenSTL"
    " && cd OpenSTL && pip install -e .`"
)


# ----------------------------------------------------------------------------------------------------------
# Building blocks (names follow openstl/modules/simvp_modules.py and openstl/models/simvp_model.py)
# ----------------------------------------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth per sample (as timm's DropPath): zeroes whole residual branches with probability
    ``drop_prob`` in training and rescales the kept ones by 1/(1-p); identity in eval mode."""

    def __init__(self, drop_prob=0.0, scale_by_keep=True):
        super().__init__()
        self.drop_prob = float(drop_prob)
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if keep > 0.0 and self.scale_by_keep:
            mask.div_(keep)
        return x * mask

    def extra_repr(self):
        return f"drop_prob={self.drop_prob:.4g}"


class BasicConv2d(nn.Module):
    """Conv (or conv to 4x channels + PixelShuffle(2) when ``upsampling``) + GroupNorm(2) + SiLU."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size=3,
        stride=1,
        padding=0,
        dilation=1,
        upsampling=False,
        act_norm=False,
        act_inplace=True,
    ):
        super().__init__()
        self.act_norm = act_norm
        if upsampling is True:
            self.conv = nn.Sequential(
                nn.Conv2d(
                    in_channels, out_channels * 4, kernel_size=kernel_size, stride=1, padding=padding, dilation=dilation
                ),
                nn.PixelShuffle(2),
            )
        else:
            self.conv = nn.Conv2d(
                in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation
            )
        self.norm = nn.GroupNorm(2, out_channels)
        self.act = nn.SiLU(inplace=act_inplace)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.constant_(m.bias, 0)

    def forward(self, x):
        y = self.conv(x)
        if self.act_norm:
            y = self.act(self.norm(y))
        return y


class ConvSC(nn.Module):
    """Encoder/decoder layer: ``BasicConv2d`` with stride 2 (downsampling) or PixelShuffle (upsampling)."""

    def __init__(
        self, C_in, C_out, kernel_size=3, downsampling=False, upsampling=False, act_norm=True, act_inplace=True
    ):
        super().__init__()
        stride = 2 if downsampling is True else 1
        padding = (kernel_size - stride + 1) // 2
        self.conv = BasicConv2d(
            C_in,
            C_out,
            kernel_size=kernel_size,
            stride=stride,
            upsampling=upsampling,
            padding=padding,
            act_norm=act_norm,
            act_inplace=act_inplace,
        )

    def forward(self, x):
        return self.conv(x)


def sampling_generator(N, reverse=False):
    """Stride pattern of the N encoder layers: [False, True] * (N // 2); reversed for the decoder."""
    samplings = [False, True] * (N // 2)
    return list(reversed(samplings[:N])) if reverse else samplings[:N]


class Encoder(nn.Module):
    """N_S ``ConvSC`` layers; returns (latent, output of the first layer = the skip)."""

    def __init__(self, C_in, C_hid, N_S, spatio_kernel, act_inplace=True):
        super().__init__()
        samplings = sampling_generator(N_S)
        self.enc = nn.Sequential(
            ConvSC(C_in, C_hid, spatio_kernel, downsampling=samplings[0], act_inplace=act_inplace),
            *[ConvSC(C_hid, C_hid, spatio_kernel, downsampling=s, act_inplace=act_inplace) for s in samplings[1:]],
        )

    def forward(self, x):
        enc1 = self.enc[0](x)
        latent = enc1
        for i in range(1, len(self.enc)):
            latent = self.enc[i](latent)
        return latent, enc1


class Decoder(nn.Module):
    """N_S ``ConvSC`` layers (reversed stride pattern, PixelShuffle upsampling); the skip is added to the
    input of the last one; ``readout`` = 1x1 conv to the output channels."""

    def __init__(self, C_hid, C_out, N_S, spatio_kernel, act_inplace=True):
        super().__init__()
        samplings = sampling_generator(N_S, reverse=True)
        self.dec = nn.Sequential(
            *[ConvSC(C_hid, C_hid, spatio_kernel, upsampling=s, act_inplace=act_inplace) for s in samplings[:-1]],
            ConvSC(C_hid, C_hid, spatio_kernel, upsampling=samplings[-1], act_inplace=act_inplace),
        )
        self.readout = nn.Conv2d(C_hid, C_out, 1)

    def forward(self, hid, enc1=None):
        for i in range(0, len(self.dec) - 1):
            hid = self.dec[i](hid)
        Y = self.dec[-1](hid + enc1)
        return self.readout(Y)


def _init_fan_out(m):
    """OpenSTL's ``_init_weights`` of MixMlp / GASubBlock (Linear: trunc-normal .02; Conv2d: He fan-out)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        with torch.no_grad():
            m.weight.normal_(0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                m.bias.zero_()


class DWConv(nn.Module):
    """Depthwise 3x3 conv with bias (held as ``.dwconv``)."""

    def __init__(self, dim=768):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x):
        return self.dwconv(x)


class MixMlp(nn.Module):
    """1x1 ``fc1`` -> depthwise 3x3 ``dwconv`` -> GELU -> dropout -> 1x1 ``fc2`` -> dropout."""

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.dwconv = DWConv(hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden_features, out_features, 1)
        self.drop = nn.Dropout(drop)
        self.apply(_init_fan_out)

    def forward(self, x):
        x = self.act(self.dwconv(self.fc1(x)))
        x = self.drop(x)
        return self.drop(self.fc2(x))


class AttentionModule(nn.Module):
    """Large-kernel attention / gating unit: depthwise 5x5 ``conv0`` -> depthwise 7x7 dilation 3
    ``conv_spatial`` -> 1x1 ``conv1`` to 2*dim, split (f, g) -> sigmoid(g) * f."""

    def __init__(self, dim, kernel_size, dilation=3):
        super().__init__()
        d_k = 2 * dilation - 1
        d_p = (d_k - 1) // 2
        dd_k = kernel_size // dilation + ((kernel_size // dilation) % 2 - 1)
        dd_p = dilation * (dd_k - 1) // 2
        self.conv0 = nn.Conv2d(dim, dim, d_k, padding=d_p, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, dd_k, stride=1, padding=dd_p, groups=dim, dilation=dilation)
        self.conv1 = nn.Conv2d(dim, 2 * dim, 1)

    def forward(self, x):
        f_g = self.conv1(self.conv_spatial(self.conv0(x)))
        f_x, g_x = torch.split(f_g, f_g.shape[1] // 2, dim=1)
        return torch.sigmoid(g_x) * f_x


class SpatialAttention(nn.Module):
    """1x1 ``proj_1`` -> GELU -> gating unit -> 1x1 ``proj_2``, plus the input (shortcut)."""

    def __init__(self, d_model, kernel_size=21, attn_shortcut=True):
        super().__init__()
        self.proj_1 = nn.Conv2d(d_model, d_model, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = AttentionModule(d_model, kernel_size)
        self.proj_2 = nn.Conv2d(d_model, d_model, 1)
        self.attn_shortcut = attn_shortcut

    def forward(self, x):
        shortcut = x
        x = self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))
        return x + shortcut if self.attn_shortcut else x


class GASubBlock(nn.Module):
    """gSTA block: x + drop_path(ls1 * attn(BN(x))), then x + drop_path(ls2 * mlp(BN(x)))."""

    def __init__(self, dim, kernel_size=21, mlp_ratio=4.0, drop=0.0, drop_path=0.1, init_value=1e-2, act_layer=nn.GELU):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim, kernel_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = MixMlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.layer_scale_1 = nn.Parameter(init_value * torch.ones(dim), requires_grad=True)
        self.layer_scale_2 = nn.Parameter(init_value * torch.ones(dim), requires_grad=True)
        self.apply(_init_fan_out)

    def no_weight_decay(self):
        return {"layer_scale_1", "layer_scale_2"}

    def forward(self, x):
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))
        return x


def _check_model_type(model_type):
    mt = "gsta" if model_type is None else str(model_type).lower()
    if mt != "gsta":
        raise NotImplementedError(
            f"model_type {model_type!r} is not supported by lib.forecasting.simvp (only 'gSTA'); use backend='openstl' "
            f"with OpenSTL installed from source for the other translators"
        )
    return mt


class MetaBlock(nn.Module):
    """A gSTA block at the input width, then a 1x1 ``reduction`` conv when in != out channels."""

    def __init__(
        self,
        in_channels,
        out_channels,
        input_resolution=None,
        model_type=None,
        mlp_ratio=8.0,
        drop=0.0,
        drop_path=0.0,
        layer_i=0,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        _check_model_type(model_type)
        self.block = GASubBlock(
            in_channels, kernel_size=21, mlp_ratio=mlp_ratio, drop=drop, drop_path=drop_path, act_layer=nn.GELU
        )
        if in_channels != out_channels:
            self.reduction = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        z = self.block(x)
        return z if self.in_channels == self.out_channels else self.reduction(z)


class MidMetaNet(nn.Module):
    """Translator: N2 MetaBlocks, channel_in -> channel_hid -> ... -> channel_in, on frames stacked in
    channels. Takes (B, T, C, H, W) like OpenSTL (returned in the same shape) or (B, T*C, H, W)."""

    def __init__(
        self,
        channel_in,
        channel_hid,
        N2,
        input_resolution=None,
        model_type=None,
        mlp_ratio=4.0,
        drop=0.0,
        drop_path=0.1,
    ):
        super().__init__()
        assert N2 >= 2 and mlp_ratio > 1, "SimVP's translator needs N_T >= 2 and mlp_ratio > 1"
        self.N2 = N2
        dpr = [x.item() for x in torch.linspace(1e-2, drop_path, self.N2, device="cpu")]  # stochastic depth decay rule
        layers = [
            MetaBlock(
                channel_in, channel_hid, input_resolution, model_type, mlp_ratio, drop, drop_path=dpr[0], layer_i=0
            )
        ]
        for i in range(1, N2 - 1):
            layers.append(
                MetaBlock(
                    channel_hid, channel_hid, input_resolution, model_type, mlp_ratio, drop, drop_path=dpr[i], layer_i=i
                )
            )
        layers.append(
            MetaBlock(
                channel_hid,
                channel_in,
                input_resolution,
                model_type,
                mlp_ratio,
                drop,
                drop_path=drop_path,
                layer_i=N2 - 1,
            )
        )
        self.enc = nn.Sequential(*layers)

    def forward(self, x):
        shape = x.shape
        z = x.reshape(shape[0], -1, *shape[-2:]) if x.ndim == 5 else x
        for i in range(self.N2):
            z = self.enc[i](z)
        return z.reshape(shape)


class SimVP(nn.Module):
    """OpenSTL's ``SimVP_Model`` (gSTA): (B, T, C, H, W) -> (B, T, C, H, W).

    H and W must be multiples of 2**(N_S // 2) (the encoder's downsampling); ``in_shape``'s H, W are only
    recorded (as in OpenSTL, where gSTA does not use them).
    """

    def __init__(
        self,
        in_shape,
        hid_S=16,
        hid_T=256,
        N_S=4,
        N_T=4,
        model_type="gSTA",
        mlp_ratio=8.0,
        drop=0.0,
        drop_path=0.0,
        spatio_kernel_enc=3,
        spatio_kernel_dec=3,
        act_inplace=True,
        **kwargs,
    ):
        super().__init__()
        model_type = _check_model_type(model_type)
        T, C, H, W = in_shape
        H, W = int(H / 2 ** (N_S / 2)), int(W / 2 ** (N_S / 2))
        act_inplace = False  # as OpenSTL: the skip is reused, so no in-place activations
        self.enc = Encoder(C, hid_S, N_S, spatio_kernel_enc, act_inplace=act_inplace)
        self.dec = Decoder(hid_S, C, N_S, spatio_kernel_dec, act_inplace=act_inplace)
        self.hid = MidMetaNet(
            T * hid_S,
            hid_T,
            N_T,
            input_resolution=(H, W),
            model_type=model_type,
            mlp_ratio=mlp_ratio,
            drop=drop,
            drop_path=drop_path,
        )

    def forward(self, x_raw, **kwargs):
        B, T, C, H, W = x_raw.shape
        embed, skip = self.enc(x_raw.reshape(B * T, C, H, W))
        _, C_, H_, W_ = embed.shape
        hid = self.hid(embed.reshape(B, T * C_, H_, W_))
        Y = self.dec(hid.reshape(B * T, C_, H_, W_), skip)
        return Y.reshape(B, T, C, H, W)


# ----------------------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------------------
_TORCHVISION_PLACEHOLDERS = []  # keeps the placeholder op definitions alive (a Library undoes them when deleted)


def _import_torchvision():
    """Import torchvision (OpenSTL imports timm, which imports torchvision) where its C++ ops cannot load.

    PyPI's torchvision for x86-64 Linux is a CUDA build: beside a CPU-only torch (torch==2.13.0+cpu here) its
    ``_C`` extension does not load, which torchvision allows, but its ``_meta_registrations`` then stops the
    import with 'operator torchvision::nms does not exist'. SimVP uses none of torchvision's ops, so on exactly
    that error the named ops are defined as placeholders without kernels (calling one raises) and the import is
    retried. Any other error is left to OpenSTL's own import; a working torchvision is imported as it is.
    """
    import re

    for _ in range(8):
        try:
            import torchvision  # noqa: F401

            return
        except ImportError:
            return  # not installed: `from openstl.models import ...` reports it
        except RuntimeError as e:
            op = re.search(r"operator torchvision::(\w+) does not exist", str(e))
            if op is None:
                raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # the half-imported package
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in {"nms", "qnms", op.group(1)} - {n for _, n in _TORCHVISION_PLACEHOLDERS}:
            lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _TORCHVISION_PLACEHOLDERS.append((lib, name))


def _openstl_class():
    try:
        import openstl
    except ImportError as e:
        raise ImportError(
            f"OpenSTL is not installed ({e}); {OPENSTL_INSTALL} (or `bash scripts/setup/install_openstl.sh` with its "
            "source folder, which adds only what SimVP needs). It is not on PyPI: `pip install openstl` gets an "
            "unrelated STL-file package."
        ) from e
    if "openstl.models" not in sys.modules:
        # searched in the imported `openstl`'s own folders: a plain module has none; and an editable install's
        # finder (which answers by name) cannot vouch for a different `openstl` than the one imported
        path = getattr(openstl, "__path__", None)
        try:
            spec = None if path is None else importlib.machinery.PathFinder.find_spec("openstl.models", list(path))
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            where = getattr(openstl, "__file__", None) or "no file"
            raise ImportError(
                f"the installed `openstl` ({where}) has no `openstl.models`: it is the unrelated PyPI "
                f"package of the same name (STL files), not OpenSTL. Run `pip uninstall openstl`, then "
                f"{OPENSTL_INSTALL}."
            )
        _import_torchvision()
    try:
        from openstl.models import SimVP_Model
    except ImportError as e:
        raise ImportError(
            f"OpenSTL is installed but `from openstl.models import SimVP_Model` failed ({e}); "
            f"install OpenSTL's requirements (`pip install -r requirements.txt` in its clone, or the few that SimVP "
            f"needs: `bash scripts/setup/install_openstl.sh`)."
        ) from e
    return SimVP_Model


def simvp_backend(name="lib"):
    """The SimVP class for a backend: 'lib' -> ``lib.forecasting.simvp.SimVP``; 'openstl' -> ``openstl.models.SimVP_Model``
    (OpenSTL installed from source; a clear ImportError otherwise, also for the PyPI name clash)."""
    if name == "lib":
        return SimVP
    if name == "openstl":
        return _openstl_class()
    raise ValueError(f"backend must be 'lib' or 'openstl', not {name!r}")


# ----------------------------------------------------------------------------------------------------------
# Mask-space model
# ----------------------------------------------------------------------------------------------------------
class MaskSimVP(nn.Module):
    """Next-mask predictor: (B, in_len, H, W) class ids -> (B, num_classes, H, W) logits of the next frame.

    Embedding(num_classes, embed_dim) -> [avg-pool 2x if down=2] -> SimVP(in_shape=(in_len, embed_dim,
    H/down, W/down)) at ``.simvp`` -> last output frame -> 1x1 conv ``head`` -> [bilinear 2x up].
    Frames whose size is not a multiple of down * 2**(N_S//2) are padded (replicate) and the logits cropped.
    ``frame_size`` only fills OpenSTL's in_shape (unused by gSTA). ``config`` holds the constructor arguments.
    """

    def __init__(
        self,
        num_classes=NUM_CLASSES,
        embed_dim=8,
        in_len=11,
        hid_S=64,
        hid_T=512,
        N_S=4,
        N_T=8,
        down=1,
        mlp_ratio=8.0,
        drop_path=0.0,
        backend="lib",
        frame_size=(160, 240),
        copy_prior=False,
    ):
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"down must be 1 or 2, not {down!r}")
        self.config = dict(
            num_classes=num_classes,
            embed_dim=embed_dim,
            in_len=in_len,
            hid_S=hid_S,
            hid_T=hid_T,
            N_S=N_S,
            N_T=N_T,
            down=down,
            mlp_ratio=mlp_ratio,
            drop_path=drop_path,
            backend=backend,
            frame_size=tuple(frame_size),
            copy_prior=copy_prior,
        )
        self.num_classes, self.in_len, self.down = num_classes, in_len, down
        self.multiple = down * 2 ** (N_S // 2)
        h, w = (int(s) // down for s in frame_size)
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.simvp = simvp_backend(backend)(
            in_shape=(in_len, embed_dim, h, w),
            hid_S=hid_S,
            hid_T=hid_T,
            N_S=N_S,
            N_T=N_T,
            model_type="gSTA",
            mlp_ratio=mlp_ratio,
            drop=0.0,
            drop_path=drop_path,
        )
        self.head = nn.Conv2d(embed_dim, num_classes, 1)
        # copy_prior: logits += prior_scale * one_hot(last input frame), so that an untrained model already
        # predicts "nothing moves" (the copy-frame-11 baseline) and training only has to learn the motion.
        # Worth it where compute is short (the cpu profile); the reference recipe leaves it off.
        self.prior_scale = nn.Parameter(torch.tensor(4.0)) if copy_prior else None

    def simvp_config(self):
        """Arguments that build the inner module as a plain ``SimVP`` / OpenSTL ``SimVP_Model``."""
        c = self.config
        h, w = (int(s) // c["down"] for s in c["frame_size"])
        return dict(
            in_shape=(c["in_len"], c["embed_dim"], h, w),
            hid_S=c["hid_S"],
            hid_T=c["hid_T"],
            N_S=c["N_S"],
            N_T=c["N_T"],
            model_type="gSTA",
            mlp_ratio=c["mlp_ratio"],
            drop_path=c["drop_path"],
        )

    def encode(self, masks):
        """Per-frame encoder codes of class-id masks (B, T, H, W): (latent (B, T, C, h, w), skip (B, T, C, h', w')).
        Each frame is encoded on its own (embedding, padding, pooling, SimVP encoder), so codes can be cached
        and reused while a window slides (``rollout``)."""
        B, T, H, W = masks.shape
        x = self.embed(masks.long()).permute(0, 1, 4, 2, 3).reshape(B * T, -1, H, W)  # (B*T, C, H, W)
        m = self.multiple
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        if self.down == 2:
            x = F.avg_pool2d(x, 2)
        latent, skip = self.simvp.enc(x)
        return latent.reshape(B, T, *latent.shape[1:]), skip.reshape(B, T, *skip.shape[1:])

    def decode(self, latent, skip, last_mask):
        """Next-frame logits (B, classes, H, W) from the codes of the ``in_len`` window frames and the window's
        last mask (B, H, W). Equals the last output frame of the full SimVP: the translator mixes all frames,
        the decoder works per frame, so only the last slot is decoded (half the decoder's cost saved)."""
        B = latent.shape[0]
        H, W = last_mask.shape[-2:]
        # the translator gets the 5-D (B, T, C, h, w) latent, as SimVP_Model.forward hands it: OpenSTL's
        # MidMetaNet unpacks exactly 5 dims (the lib's also takes (B, T*C, h, w)); it returns the same shape
        hid_last = self.simvp.hid(latent)[:, -1]
        logits = self.head(self.simvp.dec(hid_last, skip[:, -1]))
        if self.down == 2:  # the 1x1 head commutes with bilinear upsampling: applied first, at 1/4 of the pixels
            logits = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
        logits = logits[..., :H, :W]
        if self.prior_scale is not None:  # + prior_scale on the channel of the last frame's class (a one-hot)
            prior = self.prior_scale.to(logits.dtype).expand(B, 1, H, W)
            logits = logits.scatter_add(1, last_mask.long()[:, None], prior)
        return logits

    def forward(self, masks):
        if masks.ndim != 4 or masks.shape[1] != self.in_len:
            raise ValueError(f"expected class ids (B, {self.in_len}, H, W), got {tuple(masks.shape)}")
        return self.decode(*self.encode(masks), masks[:, -1])


def rollout(model, masks, steps, return_all=False):
    """Autoregressive prediction on argmax masks.

    masks (B, T>=in_len, H, W) class ids (the last ``model.in_len`` frames are the window); each step
    predicts the next frame, takes its argmax and slides the window. Returns the final predicted mask
    (B, H, W) long (frame T+steps, 1-based) or all predicted frames (B, steps, H, W). Runs under
    ``torch.inference_mode`` when the model is in eval mode (no gradients flow through argmax anyway); the
    result is an ordinary tensor, usable as the input of a training step (scheduled sampling).
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    in_len = getattr(model, "in_len", masks.shape[1])
    if masks.shape[1] < in_len:
        raise ValueError(f"need at least {in_len} input frames, got {masks.shape[1]}")
    ctx = torch.inference_mode() if not model.training else contextlib.nullcontext()
    with ctx:
        window = masks[:, -in_len:].long()
        preds = []
        inner = getattr(model, "module", model)  # DDP-wrapped models roll out through their module
        if isinstance(inner, MaskSimVP):
            # each frame is encoded once: a step encodes only the frame it predicted (~in_len x less encoding)
            latent, skip = inner.encode(window)
            for i in range(steps):
                nxt = inner.decode(latent, skip, window[:, -1] if i == 0 else preds[-1]).argmax(1)
                preds.append(nxt)
                if i + 1 < steps:
                    lat, sk = inner.encode(nxt[:, None])
                    latent, skip = torch.cat([latent[:, 1:], lat], 1), torch.cat([skip[:, 1:], sk], 1)
        else:
            for _ in range(steps):
                nxt = model(window).argmax(1)
                preds.append(nxt)
                window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
        out = torch.stack(preds, 1) if return_all else preds[-1]
    # a normal tensor (clone made outside inference mode), so that it can feed a training step
    return out.clone() if out.is_inference() else out


# ----------------------------------------------------------------------------------------------------------
# Checkpoints and OpenSTL state-dict conversion
# ----------------------------------------------------------------------------------------------------------
def save_simvp(path, model, config=None, extra=None):
    """Atomic checkpoint {'kind', 'config', 'state_dict', 'extra'} of a ``MaskSimVP`` (config defaults to
    ``model.config``) or of a plain ``SimVP`` (config = its constructor arguments, required)."""
    from lib.common.files import torch_save

    kind = "MaskSimVP" if isinstance(model, MaskSimVP) else "SimVP"
    if config is None:
        if kind == "SimVP":
            raise ValueError("pass config (the SimVP constructor arguments) to save a plain SimVP")
        config = model.config
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save(path, {"kind": kind, "config": dict(config), "state_dict": sd, "extra": extra or {}})
    return Path(path)


def load_simvp(path, map_location="cpu", backend=None):
    """Rebuild the model saved by ``save_simvp`` (strict load); ``backend`` overrides the saved one for a
    MaskSimVP. Returns the model (its ``.config`` and the checkpoint's ``.extra`` attached)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    config = dict(ckpt["config"])
    if ckpt["kind"] == "MaskSimVP":
        if backend is not None:
            config["backend"] = backend
        model = MaskSimVP(**config)
    else:
        model = simvp_backend(backend or "lib")(**config)
        model.config = config
    model.load_state_dict(ckpt["state_dict"])
    model.extra = ckpt.get("extra", {})
    return model


def _strip(sd, prefix):
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def to_openstl_state_dict(sd, prefix="simvp."):
    """The inner SimVP's state dict, loadable as is (strict) into OpenSTL's ``SimVP_Model`` or ``SimVP``.

    Accepts a MaskSimVP state dict (keys under ``prefix`` are kept, stripped; embedding and head dropped),
    or one already inner; ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes are removed.
    """
    sd = _strip(_strip(dict(sd), "module."), "_orig_mod.")
    if any(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd


def from_openstl_state_dict(sd, prefix="simvp."):
    """An OpenSTL ``SimVP_Model`` state dict (or a checkpoint dict with 'state_dict', keys possibly under
    ``model.`` / ``module.`` as OpenSTL's trainers save them) with keys under ``prefix`` for a MaskSimVP:
    ``mask_model.load_state_dict(from_openstl_state_dict(sd), strict=False)``, or
    ``mask_model.simvp.load_state_dict(from_openstl_state_dict(sd, prefix=''))`` (strict)."""
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    sd = _strip(_strip(_strip(dict(sd), "module."), "model."), "_orig_mod.")
    return {prefix + k: v for k, v in sd.items()}


# ----------------------------------------------------------------------------------------------------------
# Cost
# ----------------------------------------------------------------------------------------------------------
def count_params(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model, *inputs):
    """Multiply-accumulates (MACs) of one forward pass on ``inputs`` (whole batch), counted with forward
    hooks on Conv2d (out elements x in_ch/groups x kh x kw) and Linear (out elements x in_features) layers.
    Norms, activations, pooling and the gating product are left out (a few % at most). Runs in eval mode
    without gradients; the model's mode is restored."""
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total[0])
