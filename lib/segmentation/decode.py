"""Object-consistent decoding of per-pixel class scores.

A class id is one object, and an object's pixels share its attributes. Per-pixel argmax lets the
pixels of one object disagree (half a cube called a cylinder); here the colour, which is easy to see,
splits the foreground into connected blobs, and each blob takes the (shape, material) of that colour
with the most votes over its pixels, a pixel's vote being p(shape, material | colour) (``vote``).

An object also keeps its attributes over the whole video. ``vote_video`` links a colour's blobs through
time (pixels that overlap from one frame to the next: 3-D connected components) and, for each such track
that is one object (one blob in every frame it appears in), sums the votes of all its frames, so that the
frames where metal and rubber are hard to tell apart follow the frames where they are not. A track that
holds two blobs in some frame (two objects of one colour that touch, or one object split by occlusion)
keeps the per-frame vote.
"""

import numpy as np
import torch
from scipy import ndimage


def vote_objects(logp):
    """logp: (49, H, W) log-probabilities (or logits) of one frame -> (H, W) uint8 class ids."""
    return vote_video(torch.as_tensor(logp)[None])[0]


def _frame_parts(logp):
    """(fg, colour, votes (6, 8, H, W)) of one frame's scores (49, H, W): a pixel's vote for (shape, material)
    given colour c is p(shape, material | c). Soft votes that sum to one per pixel: a few confidently wrong
    pixels cannot outvote the rest of the object, as summed log-probabilities let them."""
    logp = torch.log_softmax(torch.as_tensor(logp).float(), 0)
    fg = (logp.argmax(0) != 0).numpy()
    sm = logp[1:].reshape(6, 8, *logp.shape[1:])  # (shape*2+material, colour, H, W)
    colour = torch.logsumexp(sm, 0).argmax(0).numpy()
    return fg, colour, torch.softmax(sm, 0).numpy()


_LINK_IN_TIME = np.zeros((3, 3, 3), bool)
_LINK_IN_TIME[1] = ndimage.generate_binary_structure(2, 1)  # 4-connected within a frame
_LINK_IN_TIME[0, 1, 1] = _LINK_IN_TIME[2, 1, 1] = True  # the same pixel in the previous / next frame


def vote_video(logp):
    """logp: (T, 49, H, W) scores of one video's frames in order -> (T, H, W) uint8 class ids, each
    single-object track of a colour voting once over all its frames (see the module docstring)."""
    parts = [_frame_parts(x) for x in logp]
    fg = np.stack([p[0] for p in parts])
    colour = np.stack([p[1] for p in parts])
    sm = np.stack([p[2] for p in parts])  # (T, 6, 8, H, W)
    T = fg.shape[0]
    out = np.zeros(fg.shape, np.uint8)
    for c in np.unique(colour[fg]):
        sel = fg & (colour == c)
        tracks, n = ndimage.label(sel, structure=_LINK_IN_TIME)
        blobs = np.zeros(sel.shape, np.int64)  # per-frame blobs, numbered across the video
        offset = 0
        for t in range(T):
            b, k = ndimage.label(sel[t])
            blobs[t] = np.where(b > 0, b + offset, 0)
            offset += k
        if offset == 0:
            continue
        flat_b, flat_t = blobs.ravel(), tracks.ravel()
        # votes per blob: (6, blobs + 1); each blob's track
        scores = np.stack([np.bincount(flat_b, weights=sm[:, k, c].ravel(), minlength=offset + 1) for k in range(6)])
        track_of = np.zeros(offset + 1, np.int64)
        fgpix = flat_b > 0
        track_of[flat_b[fgpix]] = flat_t[fgpix]
        frame_of = np.zeros(offset + 1, np.int64)
        frame_of[flat_b[fgpix]] = np.nonzero(fgpix)[0] // (sel.shape[1] * sel.shape[2])
        # a track is one object if no frame holds two of its blobs
        pairs = np.unique(np.stack([track_of[1:], frame_of[1:]]), axis=1)
        single = np.bincount(pairs[0], minlength=n + 1) == np.bincount(track_of[1:], minlength=n + 1)
        track_scores = np.stack([np.bincount(track_of[1:], weights=scores[k, 1:], minlength=n + 1) for k in range(6)])
        best = np.where(single[track_of[1:]], track_scores[:, track_of[1:]].argmax(0), scores[:, 1:].argmax(0))
        ids = (best // 2) * 16 + (best % 2) * 8 + c + 1
        lut = np.concatenate([[0], ids]).astype(np.uint8)
        out.ravel()[fgpix] = lut[flat_b[fgpix]]
    return out


def vote_batch(logp):
    """(N, 49, H, W) -> (N, H, W) uint8."""
    return np.stack([vote_objects(x) for x in logp])


DECODES = ("argmax", "vote", "vote_video")


def decode(logits, how="argmax"):
    """(N, 49, H, W) scores -> (N, H, W) uint8 class ids, by per-pixel ``argmax``, per-object ``vote``, or
    ``vote_video`` (the N frames are one video's, in order)."""
    if how == "argmax":
        return logits.argmax(1).to(torch.uint8).cpu().numpy()
    if how == "vote":
        return vote_batch(logits.float().cpu())
    if how == "vote_video":
        return vote_video(logits.float().cpu())
    raise ValueError(f"decode must be one of {DECODES}, not {how!r}")
