"""Object statistics and tracks: what the masks of frames 0-10 say about each object.

A class id is one object in a video (docs/classes.md), so a mask video is a set of object tracks. Each object
gets a ``Track`` of the input frames: centroid, area, bbox per frame, and which frames are *clean* (what
velocities and the rendered mask are taken from). The motion models (lib/objects/motion.py) predict from tracks,
the renderer (lib/objects/render.py) draws the predictions.

    stats = video_stats(masks[:11])                # per frame {cid: (area, cy, cx, bbox)}
    tr = tracks(masks[:11], min_area=20, size_b=0.00725, denoise=True)   # {cid: Track}
    v = velocity(tr[5], k=2)                        # (vy, vx) px/frame

A frame of an object is *clean* when
- the object is visible (area >= ``min_area``);
- it does not touch the image edge (``touches_border``: its bbox reaches row 0, row H-1, column 0 or
  column W-1; an entering or leaving object is cut, so its centroid lags and its area is too small);
- it is not partly hidden: its area, corrected for perspective by the size model s(y) (area / s(cy)^2),
  is at least ``area_ratio`` times a robust reference of the object's own area (75th percentile over its
  visible, uncut frames) and at most reference / ``area_ratio`` (U-Net noise). An object partly behind
  another loses area and its centroid jumps away from the occluder; such frames are left out.
Velocities are least-squares slopes over the last ``k`` clean frames (they need not be consecutive: a
frame that is hidden or cut in between is simply skipped, the slope uses the true frame numbers).

An object that is not visible in the last input frame and whose last visible frame touched the border has
left the frame (``has_left``). With U-Net labels (``denoise``) an id seen in at most ``FRAGMENT_FRAMES`` input
frames that never touches the edge is a labelling fragment and gets no track (``drop_fragments``).

Entrants: an object visible at frame 10 that has fewer than 2 clean frames (typically still cut by the edge)
gets its velocity from the cut frames: along an axis where the bbox is cut on one side, the opposite
(far) edge moves with the object; along an uncut axis the centroid is used (``edge_velocity``).

Size model: s(y) = 1 + b * y (objects lower in the image are nearer and look bigger; ``size_scale``, fitted by
``fit.fit_size_model``). b = 0 turns the perspective correction of the clean test off.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lib.common.classes import NUM_CLASSES

LAST_INPUT = 10  # index of the last input frame ("frame 11")
TARGET = 21  # index of the predicted frame ("frame 22")
FRAGMENT_FRAMES = 3  # U-Net inputs: an id seen in at most this many frames, never at the edge, is noise


# --------------------------------------------------------------------------------------------- tracks
@dataclass
class Track:
    """One object's track over the T input frames. Per-frame arrays have length T; invisible frames hold
    NaN centroids, area 0 and bbox (-1, -1, -1, -1). bbox = (y0, x0, y1, x1) with y1, x1 exclusive."""

    cid: int
    area: np.ndarray  # (T,) int
    centroid: np.ndarray  # (T, 2) float (y, x)
    bbox: np.ndarray  # (T, 4) int
    visible: np.ndarray  # (T,) bool
    touches_border: np.ndarray  # (T,) bool
    clean: np.ndarray  # (T,) bool: visible, not cut by the border, not partly hidden
    first: int  # first visible frame, -1 if never
    last: int  # last visible frame, -1 if never
    ref_area: float = float("nan")  # perspective-corrected reference area (see module doc)
    shape: tuple = (160, 240)  # (H, W) of the frames

    @property
    def T(self):
        return len(self.area)

    @property
    def clean_frames(self):
        return np.nonzero(self.clean)[0]

    @property
    def last_clean(self):
        """Last clean frame, -1 if none."""
        c = self.clean_frames
        return int(c[-1]) if len(c) else -1

    @property
    def ref_frame(self):
        """The frame whose mask is rendered: the last clean frame, else the last visible one (-1 if none)."""
        lc = self.last_clean
        return lc if lc >= 0 else self.last


def size_scale(y, b):
    """s(y) = 1 + b*y, the apparent linear size of an object at image row y relative to row 0."""
    return 1.0 + b * np.asarray(y, float)


def frame_stats(frame, min_area=1):
    """{cid: (area, cy, cx, (y0, x0, y1, x1))} of one (H, W) mask, objects with area >= min_area."""
    return video_stats(np.asarray(frame)[None], min_area)[0]


def video_stats(masks, min_area=1):
    """``frame_stats`` of every frame of a (T, H, W) mask stack (a list of T dicts), in one pass over the
    object pixels: frame t's class c counts as label t * NUM_CLASSES + c."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    t_len, h, w = masks.shape
    flat = masks.reshape(-1)
    idx = np.flatnonzero(flat)
    out = [{} for _ in range(t_len)]
    if not len(idx):
        return out
    cls = flat[idx].astype(np.int64)
    if cls.min() < 0 or cls.max() >= NUM_CLASSES:
        raise ValueError(f"class ids must lie in 0..{NUM_CLASSES - 1}")
    t, rest = np.divmod(idx, h * w)
    ys, xs = np.divmod(rest, w)
    order = np.argsort(t * NUM_CLASSES + cls, kind="stable")
    lab, ys, xs = (t * NUM_CLASSES + cls)[order], ys[order], xs[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    area = np.diff(np.r_[starts, len(lab)])
    sums = [np.add.reduceat(a, starts) for a in (ys, xs)]
    lows = [np.minimum.reduceat(a, starts) for a in (ys, xs)]
    highs = [np.maximum.reduceat(a, starts) + 1 for a in (ys, xs)]
    for j in np.nonzero(area >= max(min_area, 1))[0]:
        ti, cid = divmod(int(lab[starts[j]]), NUM_CLASSES)
        a = int(area[j])
        bbox = (int(lows[0][j]), int(lows[1][j]), int(highs[0][j]), int(highs[1][j]))
        out[ti][cid] = (a, sums[0][j] / a, sums[1][j] / a, bbox)
    return out


def flip_stats(stats, width):
    """``video_stats`` of the left-right mirrored frames (column x becomes width - 1 - x), without the frames."""
    return [
        {c: (a, cy, width - 1 - cx, (y0, width - x1, y1, width - x0)) for c, (a, cy, cx, (y0, x0, y1, x1)) in s.items()}
        for s in stats
    ]


def largest_component(frame, cid):
    """Boolean mask (H, W) of the largest 8-connected blob of ``cid`` in ``frame``."""
    sel = np.asarray(frame) == cid
    lab, n = ndimage.label(sel, structure=np.ones((3, 3), bool))
    if n <= 1:
        return sel
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    return lab == int(sizes.argmax())


def _denoised_stats(frame, stats):
    """Recompute the stats of each object from its largest connected component (U-Net label noise)."""
    out = {}
    for cid in stats:
        sel = largest_component(frame, cid)
        ys, xs = np.nonzero(sel)
        out[cid] = (len(ys), ys.mean(), xs.mean(), (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
    return out


def tracks_from_stats(stats, shape, min_area=1, area_ratio=0.75, size_b=0.0):
    """Tracks from a list (one per frame) of ``frame_stats`` dicts. See ``tracks``."""
    h, w = shape
    t_len = len(stats)
    ids = sorted({c for s in stats for c in s})
    out = {}
    for cid in ids:
        area = np.zeros(t_len, np.int64)
        cen = np.full((t_len, 2), np.nan)
        bbox = np.full((t_len, 4), -1, np.int64)
        for t, s in enumerate(stats):
            if cid in s and s[cid][0] >= min_area:
                a, cy, cx, bb = s[cid]
                area[t], cen[t], bbox[t] = a, (cy, cx), bb
        vis = area > 0
        border = vis & at_edge(bbox.T, shape)
        inside = vis & ~border
        clean = inside.copy()
        ref = float("nan")
        if inside.any():
            norm = area / size_scale(np.nan_to_num(cen[:, 0]), size_b) ** 2
            ref = float(np.percentile(norm[inside], 75))
            clean = inside & (norm >= area_ratio * ref) & (norm <= ref / area_ratio)
        vt = np.nonzero(vis)[0]
        out[cid] = Track(
            cid,
            area,
            cen,
            bbox,
            vis,
            border,
            clean,
            int(vt[0]) if len(vt) else -1,
            int(vt[-1]) if len(vt) else -1,
            ref,
            (h, w),
        )
    return out


def tracks(masks, min_area=1, area_ratio=0.75, size_b=0.0, denoise=False):
    """{cid: Track} of one video's masks (T, H, W).

    ``min_area``: a frame where the object has fewer pixels counts as invisible (use ~20 for U-Net labels).
    ``area_ratio``: the partial-occlusion threshold of the clean test (module doc). ``size_b``: the size
    model's slope (perspective correction of areas). ``denoise``: compute each object's stats from its
    largest connected component only and drop fragments (``drop_fragments``), for noisy U-Net labels; slower.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    return tracks_from_stats(object_stats(masks, min_area, denoise), masks.shape[1:], min_area, area_ratio, size_b)


def object_stats(masks, min_area=1, denoise=False):
    """``video_stats`` of a (T, H, W) stack (what ``tracks`` reads). With ``denoise`` (U-Net labels) each
    object's stats come from its largest blob, and fragments are dropped (``drop_fragments``)."""
    masks = np.asarray(masks)
    stats = video_stats(masks, min_area)
    if denoise:
        stats = [_denoised_stats(f, s) for f, s in zip(masks, stats)]
        stats = drop_fragments(stats, masks.shape[1:], min_area, FRAGMENT_FRAMES)  # 0 turns it off
    return stats


def at_edge(bbox, shape):
    """Whether a (y0, x0, y1, x1) bbox (end-exclusive) reaches the edge of an (H, W) frame; with arrays for
    y0 .. x1 (e.g. ``bbox.T`` of a (T, 4) array), elementwise."""
    y0, x0, y1, x1 = bbox
    return (y0 <= 0) | (x0 <= 0) | (y1 >= shape[0]) | (x1 >= shape[1])


def drop_fragments(stats, shape, min_area=1, max_frames=FRAGMENT_FRAMES):
    """``stats`` without the ids that look like U-Net fragments: seen (area >= ``min_area``) in at most
    ``max_frames`` frames (and not in all of them), never touching the image edge. Objects enter and leave
    through the edges, so a real object seen that briefly is cut by the border in some frame; an id that
    flickers up inside the frame is a stretch of another object's rim given a wrong class. On val (U-Net
    inputs) all 58 ids this drops were absent from the true masks, and dropping them adds about +0.008 IoU
    (README): they had been moved, and had set off collisions in the physics."""
    seen = {}
    for s in stats:
        for c, (a, _, _, bbox) in s.items():
            if a >= min_area:
                n, edge = seen.get(c, (0, False))
                seen[c] = (n + 1, edge or bool(at_edge(bbox, shape)))
    most = min(max_frames, len(stats) - 1)
    drop = {c for c, (n, edge) in seen.items() if n <= most and not edge}
    return [{c: v for c, v in s.items() if c not in drop} for s in stats] if drop else stats


# ------------------------------------------------------------------------------------------ velocity
def slope(ts, ys):
    """Least-squares slope of ``ys`` (n, d) over the times ``ts`` (n,): one value per column."""
    ts = np.asarray(ts, float)
    tc = ts - ts.mean()
    return (tc[:, None] * (ys - ys.mean(0))).sum(0) / (tc**2).sum()


def velocity(track, k, upto=None):
    """Centroid velocity (vy, vx) in px/frame: least-squares slope over the last ``k`` clean frames up to
    the track's last visible frame (or ``upto``); None with fewer than 2 such frames."""
    end = track.last if upto is None else min(track.last, upto)
    fr = track.clean_frames
    fr = fr[fr <= end][-k:]
    if len(fr) < 2:
        return None
    return slope(fr, track.centroid[fr])


def velocity_frames(track, k):
    """The clean frames ``velocity`` uses (for the time-centring of decaying motion models)."""
    fr = track.clean_frames
    return fr[fr <= track.last][-k:]


def edge_velocity(track, k):
    """Velocity of an object cut by the border (an entrant), from its last ``k`` visible frames: per axis,
    the far edge of the bbox when the axis is cut on one side, else the centroid. None if fewer than 2
    frames or an axis is cut on both sides / on different sides within the window."""
    fr = np.nonzero(track.visible)[0][-k:]
    if len(fr) < 2:
        return None
    h, w = track.shape
    bb = track.bbox[fr]
    v = np.zeros(2)
    for ax, (lo, hi, size) in enumerate(((0, 2, h), (1, 3, w))):
        cut_lo, cut_hi = bb[:, lo] <= 0, bb[:, hi] >= size
        if (cut_lo & cut_hi).any() or (cut_lo.any() and cut_hi.any()):
            return None
        if cut_lo.any():  # cut at the low edge: the high edge is real
            if not cut_lo.all():
                return None
            pos = bb[:, hi].astype(float)
        elif cut_hi.any():
            if not cut_hi.all():
                return None
            pos = bb[:, lo].astype(float)
        else:
            pos = track.centroid[fr, ax]
        v[ax] = slope(fr, pos[:, None])[0]
    return v


def has_left(track, last_input=None):
    """True when the object is gone at the last input frame and its last visible frame touched the border."""
    last_input = track.T - 1 if last_input is None else last_input
    return track.last < 0 or (track.last < last_input and bool(track.touches_border[track.last]))
