"""SimVP (gSTA translator) for next-frame prediction in mask space
(docs/recipe.md: step 2, and "SimVP and OpenSTL compatibility").

``MaskSimVP`` wraps SimVP for the recipe: class ids -> ``Embedding(49, C)`` -> (optional 2x average-pool)
-> SimVP over the 11 input frames -> the LAST output frame -> 1x1 conv to 49 logits -> (optional bilinear
2x up; the two commute, and the head is cheaper at the lower resolution). ``rollout`` predicts further
frames autoregressively on its own argmax masks (frame 22 = ``rollout(model, masks_0_10, 11)``), encoding
each frame once. The SimVP inside is the in-repo port of OpenSTL's ``SimVP_Model`` (lib/forecasting/simvp_port.py)
or OpenSTL's own class (``backend="openstl"``, lib/forecasting/openstl.py).

Why the last output frame: SimVP maps T input frames to T output frames (the decoder runs per frame on
the translator's output, the translator mixes all frames). Trained one step ahead (11 frames -> frame 12)
only the last output slot is supervised, and it is the slot whose receptive field is "the most recent
frame", so it is the natural place for the next frame's features; the other T-1 slots are unused.

The inner module sits at ``MaskSimVP.simvp``; ``openstl.to_openstl_state_dict`` / ``openstl.from_openstl_state_dict``
strip / add that prefix so the inner state dict loads into ``SimVP_Model`` (strict) and back.
"""

import contextlib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.common.classes import NUM_CLASSES
from lib.forecasting.openstl import simvp_backend


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
        *,
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
# Checkpoints
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
