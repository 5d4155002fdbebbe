"""The in-repo port of OpenSTL's SimVP (gSTA translator): ``SimVP`` reproduces ``openstl.models.SimVP_Model``
(model_type 'gSTA'): same constructor arguments, same submodule names, same ``state_dict`` keys and shapes, same
parameter count (46,769,665 for hid_S=64, hid_T=512, N_S=4, N_T=8 on in_shape (10, 1, 64, 64)), so weights move
between the two as they are. Only torch is needed (no timm): ``DropPath`` is written here.

lib/forecasting/openstl.py picks this port or OpenSTL's own class (``simvp_backend``) and converts state dicts;
lib/forecasting/simvp.py wraps either for masks (``MaskSimVP``). The constructors keep OpenSTL's signatures
(positional arguments included), so that either class is built the same way.
"""

import math

import torch
import torch.nn as nn


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
            f"model_type {model_type!r} is not supported by lib.forecasting.simvp_port (only 'gSTA'); use backend='openstl' "
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
