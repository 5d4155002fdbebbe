"""Where frame-22 IoU is lost: oracle predictions and failure categories (docs/objects.md).

Oracles know the true frame 22 and use as much of it as their name says; each is drawn with the repo's own
renderer (``render.render``), from the input masks a predictor gets (true masks or U-Net labels):

- ``"position"``: each object seen in the inputs (a track of frames 0-10) that is in the true frame 22 is its
  reference mask (last clean frame) moved to the true frame-22 centroid and scaled to the true size (the
  area ratio when the object is whole at frame 22, else the perspective size model). Objects gone at frame
  22 are left out. The centroid of an object cut by the border or partly hidden at frame 22 is that of its
  visible part, so such objects are placed a little off: this oracle is a floor of what perfect dynamics give.
- ``"entrants"``: ``"position"`` plus the true frame-22 pixels of each object that no true input frame shows.
- ``"shapes"``: the true frame-22 pixels of every object the inputs show, plus the entrants: perfect
  dynamics and perfect shapes. With true inputs it is the truth itself (1.0); with U-Net inputs what is left
  is the U-Net's id errors in frames 0-10.

Failure categories (``object_categories``), from the true masks of frames 0-21 alone, one per object, first
that applies:

- ``entrant``: in the true frame 22, in no true input frame (0-10);
- ``leaving``: in an input frame, at frame 22 gone or cut by the image border;
- ``occluded``: at frame 22 gone or partly hidden (less than ``area_ratio`` of its size) away from the border;
- ``contact``: touches another object in the image in a frame 11-21 it did not touch at frame 10 (a proxy
  for collisions: masks cannot tell a collision from one object passing in front of another);
- ``free``: the rest.

``category_costs`` says what each category costs a predictor: the IoU gained when the pixels of that
category's objects (where the truth or the prediction shows them) are replaced by the truth.
"""

import numpy as np
from scipy import ndimage

from lib.common.metrics import jaccard
from lib.objects import motion, render, tracks

LEVELS = ("position", "entrants", "shapes")
CATEGORIES = ("entrant", "leaving", "occluded", "contact", "free")


def _check(masks_in, true_video):
    masks_in, true_video = np.asarray(masks_in), np.asarray(true_video)
    if masks_in.ndim != 3 or true_video.ndim != 3 or true_video.shape[0] <= tracks.TARGET:
        raise ValueError(
            f"need input masks (T, H, W) and true masks (>= {tracks.TARGET + 1}, H, W), "
            f"got {masks_in.shape} and {true_video.shape}"
        )
    if masks_in.shape[1:] != true_video.shape[1:]:
        raise ValueError(f"input masks are {masks_in.shape[1:]}, true masks {true_video.shape[1:]}")
    return masks_in[: tracks.LAST_INPUT + 1], true_video


def entrant_ids(true_video, min_area=1):
    """Ids in the true frame 22 that no true input frame (0-10) shows."""
    true_video = np.asarray(true_video)
    seen = {c for f in true_video[: tracks.LAST_INPUT + 1] for c in tracks.frame_stats(f, min_area)}
    return sorted(set(tracks.frame_stats(true_video[tracks.TARGET], min_area)) - seen)


def oracle_video(masks_in, true_video, level="position", size_b=0.0, min_area=1, denoise=False, area_ratio=0.75):
    """Frame-22 (H, W) uint8 mask of an oracle (module doc) for one video.

    ``masks_in``: the predictor's input masks (>= 11 frames; 0-10 used), ``true_video``: the true masks of
    frames 0-21. ``min_area`` / ``denoise``: as the predictors read these inputs (20 / True for U-Net
    labels). ``size_b``: the size model's slope (``fit.fit_size_model``), used for objects not whole at
    frame 22."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    masks_in, true_video = _check(masks_in, true_video)
    true22 = true_video[tracks.TARGET]
    entrants = entrant_ids(true_video) if level != "position" else []
    if level == "shapes":
        tr = tracks.tracks(masks_in, min_area, area_ratio, size_b, denoise)
        keep = np.isin(true22, [c for c, t in tr.items() if t.ref_frame >= 0] + entrants)
        return np.where(keep, true22, 0).astype(np.uint8)
    preds = oracle_predictions(masks_in, true_video, size_b, min_area, denoise, area_ratio)
    out = render.render(masks_in, preds, denoise=denoise)
    for cid in entrants:
        out[true22 == cid] = cid
    return out


def oracle_predictions(masks_in, true_video, size_b=0.0, min_area=1, denoise=False, area_ratio=0.75):
    """{cid: ObjectPrediction} of the position oracle: each input object present in the true frame 22 moved to
    its true centroid and scaled to its true size (module doc); ``render.render`` draws them."""
    masks_in, true_video = _check(masks_in, true_video)
    tr = tracks.tracks(masks_in, min_area, area_ratio, size_b, denoise)
    truth = tracks.tracks(true_video[: tracks.TARGET + 1], 1, area_ratio, size_b)  # whole (clean) or not at frame 22
    now = tracks.frame_stats(true_video[tracks.TARGET])
    preds = {}
    for cid, t in tr.items():
        if cid not in now or t.ref_frame < 0:
            continue
        ys, xs = render.object_pixels(masks_in, cid, t.ref_frame, denoise)
        if not len(ys):
            continue
        area, cy, cx, _ = now[cid]
        c = np.array([ys.mean(), xs.mean()])
        if truth[cid].clean[tracks.TARGET]:
            scale = float(np.sqrt(area / len(ys)))
        else:
            scale = float(tracks.size_scale(cy, size_b) / tracks.size_scale(c[0], size_b))
        preds[cid] = motion.ObjectPrediction(cid, t.ref_frame, c, np.array([cy, cx]) - c, scale)
    return preds


def oracle_split(inputs, true_masks, level="position", **kwargs):
    """(N, H, W) uint8 oracle masks of (N, >=11, H, W) inputs and (N, 22, H, W) true masks."""
    out = np.empty((len(inputs), *np.asarray(true_masks[0]).shape[1:]), np.uint8)
    for i in range(len(inputs)):
        out[i] = oracle_video(np.asarray(inputs[i]), np.asarray(true_masks[i]), level, **kwargs)
    return out


ROW_NAMES = {
    "position": "oracle: true position + scale",
    "entrants": "oracle: + entrants",
    "shapes": "oracle: + true shapes",
}


def oracle_rows(inputs, true_masks, **kwargs):
    """{row name: (N, H, W) prediction} of the three oracles (``ROW_NAMES``), for a results table."""
    return {name: oracle_split(inputs, true_masks, level, **kwargs) for level, name in ROW_NAMES.items()}


# ---------------------------------------------------------------------------------------- failure categories
def _neighbours(frame, cid):
    """Ids (not background) touching object ``cid`` in one frame (8-connected)."""
    sel = frame == cid
    if not sel.any():
        return set()
    ring = ndimage.binary_dilation(sel, np.ones((3, 3), bool)) & ~sel
    return set(np.unique(frame[ring]).tolist()) - {0, cid}


def object_categories(true_video, area_ratio=0.75, size_b=0.0):
    """{cid: category} (module doc) of every object in the true masks of frames 0-10 or of frame 22."""
    true_video = np.asarray(true_video)
    if true_video.ndim != 3 or true_video.shape[0] <= tracks.TARGET:
        raise ValueError(f"need true masks (>= {tracks.TARGET + 1}, H, W), got {true_video.shape}")
    true_video = true_video[: tracks.TARGET + 1]
    tr = tracks.tracks(true_video, 1, area_ratio, size_b)
    seen_in = {c for c, t in tr.items() if t.visible[: tracks.LAST_INPUT + 1].any()}
    out = {}
    for cid, t in tr.items():
        at22 = bool(t.visible[tracks.TARGET])
        if cid not in seen_in:
            if at22:
                out[cid] = "entrant"
            continue  # seen only in frames 11-20: not an input object and not in the target
        if not at22 or t.touches_border[tracks.TARGET]:
            # gone: left through the border (last seen cut by it) or hidden behind another object
            last = t.last
            out[cid] = "leaving" if (at22 or t.touches_border[last]) else "occluded"
        elif not t.clean[tracks.TARGET]:
            out[cid] = "occluded"
        else:
            before = _neighbours(true_video[tracks.LAST_INPUT], cid)
            later = set().union(
                *(_neighbours(true_video[f], cid) for f in range(tracks.LAST_INPUT + 1, tracks.TARGET + 1))
            )
            out[cid] = "contact" if later - before else "free"
    return out


def _corrected(pred, true22, ids):
    """``pred`` with the pixels of objects ``ids`` (where the truth or the prediction shows them) set to the truth."""
    if not ids:
        return pred
    sel = np.isin(true22, ids) | np.isin(pred, ids)
    return np.where(sel, true22, pred)


def category_costs(pred22, true_masks, categories=None, **kwargs):
    """Per category: number of objects and of videos, and ``iou_cost`` = IoU after correcting that
    category's objects (``_corrected``) minus the predictor's IoU, over the stacked frame-22 masks.
    ``categories``: a list of ``object_categories`` dicts per video (computed from ``true_masks`` if None).
    Also returns the categories (to reuse them for another predictor)."""
    pred22 = np.asarray(pred22)
    true22 = np.stack([np.asarray(v[tracks.TARGET]) for v in true_masks])
    if categories is None:
        categories = [object_categories(np.asarray(v), **kwargs) for v in true_masks]
    base = jaccard(pred22, true22)[0]
    out = {}
    for cat in CATEGORIES:
        ids = [[c for c, k in cats.items() if k == cat] for cats in categories]
        fixed = np.stack([_corrected(p, t, i) for p, t, i in zip(pred22, true22, ids)])
        out[cat] = {
            "objects": int(sum(len(i) for i in ids)),
            "videos": int(sum(bool(i) for i in ids)),
            "iou_cost": float(jaccard(fixed, true22)[0] - base),
        }
    return out, categories


def gap_share(iou, copy_iou, oracle_iou):
    """The share of the gap between copying frame 11 and an oracle that a predictor closes."""
    gap = oracle_iou - copy_iou
    return float((iou - copy_iou) / gap) if gap > 0 else float("nan")
