"""Object-consistent decoding of per-pixel class scores.

A class id is one object, and an object's pixels share its attributes. Per-pixel argmax lets the
pixels of one object disagree (half a cube called a cylinder); here the colour, which is easy to see,
splits the foreground into connected blobs, and each blob takes the (shape, material) of that colour
with the highest summed log-probability over its pixels.
"""
import numpy as np
import torch
from scipy import ndimage


def vote_objects(logp):
    """logp: (49, H, W) log-probabilities (or logits) of one frame -> (H, W) uint8 class ids."""
    logp = torch.as_tensor(logp).float()
    logp = torch.log_softmax(logp, 0)
    fg = logp.argmax(0) != 0
    objects = logp[1:].reshape(3, 2, 8, *logp.shape[1:])  # (shape, material, colour, H, W)
    colour = torch.logsumexp(objects.reshape(6, 8, *logp.shape[1:]), 0).argmax(0)  # (H, W)
    out = np.zeros(logp.shape[1:], np.uint8)
    fg, colour = fg.numpy(), colour.numpy()
    sm = objects.reshape(6, 8, *logp.shape[1:]).numpy()  # (shape*2+material, colour, H, W)
    for c in np.unique(colour[fg]):
        blobs, n = ndimage.label(fg & (colour == c))
        if n == 0:
            continue
        idx = blobs.ravel()
        scores = np.stack([np.bincount(idx, weights=sm[k, c].ravel(), minlength=n + 1) for k in range(6)])  # (6, n+1)
        best = scores[:, 1:].argmax(0)  # per blob
        ids = (best // 2) * 16 + (best % 2) * 8 + c + 1
        lut = np.concatenate([[0], ids]).astype(np.uint8)
        sel = idx > 0
        out.ravel()[sel] = lut[idx[sel]]
    return out


def vote_batch(logp):
    """(N, 49, H, W) -> (N, H, W) uint8."""
    return np.stack([vote_objects(x) for x in logp])


def decode(logits, how="argmax"):
    """(N, 49, H, W) scores -> (N, H, W) uint8 class ids, by per-pixel ``argmax`` or per-object ``vote``."""
    if how == "argmax":
        return logits.argmax(1).to(torch.uint8).cpu().numpy()
    if how == "vote":
        return vote_batch(logits.float().cpu())
    raise ValueError(f"decode must be 'argmax' or 'vote', not {how!r}")
