"""Object-centric frame-22 prediction without learning: tracks, motion models, rendering.

A class id is one object in a video (docs/classes.md), so a mask video is a set of object tracks.
From the masks of frames 0-10 each object gets a track (centroid, area, bbox per frame), a velocity, a
predicted displacement to frame 21 (index; "frame 22") and a scale; ``render`` then pastes each object's
last clean mask at its predicted place, far objects first.

    tr = tracks(masks[:11])                         # {cid: Track}
    preds = predict_friction(tr, k=3, decay=0.95)   # {cid: ObjectPrediction}
    mask22 = render(masks[:11], preds)              # (160, 240) uint8
    mask22 = predict_video(masks[:11], method="friction", k=3, decay=0.95)
    fl = fit_floor(train.masks); ph = fit_physics(train.masks, fl["k"], fl["decel"], fl["F"], fl["size_b"])
    mask22 = predict_video(masks[:11], "physics", k=fl["k"], decel=fl["decel"], F=fl["F"], size_b=fl["size_b"],
                           restitution=ph["restitution"], radius_scale=ph["radius_scale"], mass_ratio=ph["mass_ratio"])

Motion models (all predict each object's displacement from its reference frame to frame 21):
- "cv": constant velocity; "friction": speed decays geometrically (``decay`` per frame);
- "decel": constant deceleration in image pixels (Coulomb friction: the speed drops linearly, then 0);
- "floor": constant deceleration on the floor plane (``FloorCamera``: image points mapped to the floor
  through the perspective that the size model measures, so motion towards the camera speeds up in pixels);
- "physics": "floor" plus collisions: the objects are discs on the floor plane in a tiny 2-D simulation.
On the embedded dataset (val, true-mask inputs) these score about cv 0.37, friction 0.53, decel 0.55,
floor 0.60, physics 0.67 (copy frame 11: 0.25); see scripts/eval_objects.py.

Clean frames (what velocities and the rendered mask are taken from). A frame of an object is *clean* when
- the object is visible (area >= ``min_area``);
- it does not touch the image edge (``touches_border``: its bbox reaches row 0, row H-1, column 0 or
  column W-1; an entering or leaving object is cut, so its centroid lags and its area is too small);
- it is not partly hidden: its area, corrected for perspective by the size model s(y) (area / s(cy)^2),
  is at least ``area_ratio`` times a robust reference of the object's own area (75th percentile over its
  visible, uncut frames) and at most reference / ``area_ratio`` (U-Net noise). An object partly behind
  another loses area and its centroid jumps away from the occluder; such frames are left out.
Velocities are least-squares slopes over the last ``k`` clean frames (they need not be consecutive: a
frame that is hidden or cut in between is simply skipped, the slope uses the true frame numbers).

Objects the renderer leaves out: an object that is not visible in the last input frame and whose last
visible frame touched the border has left the frame (it stays out). An object not visible in the last
input frame without touching the border (hidden behind another) is rendered from its last clean mask.
Objects that first appear after frame 10 cannot be predicted. With U-Net labels (``denoise``) an id seen in at
most ``FRAGMENT_FRAMES`` input frames that never touches the edge is a labelling fragment and gets no track.

Entrants: an object visible at frame 10 that has fewer than 2 clean frames (typically still cut by the edge)
gets its velocity from the cut frames: along an axis where the bbox is cut on one side, the opposite
(far) edge moves with the object; along an uncut axis the centroid is used (``edge_velocity``).

Size model: s(y) = 1 + b * y (objects lower in the image are nearer and look bigger); ``fit_size_model``
fits b on train masks; the predicted scale of an object moving from y0 to y1 is s(y1) / s(y0). b = 0 turns
scaling (and the perspective correction of the clean test) off.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from lib.common.classes import NUM_CLASSES
from lib.common.metrics import confusion, iou_from_confusion

LAST_INPUT = 10  # index of the last input frame ("frame 11")
TARGET = 21  # index of the predicted frame ("frame 22")
DEFAULT_K = 3
DEFAULT_DECAY = 0.95
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


def _largest_component(frame, cid, bbox=None):
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
        sel = _largest_component(frame, cid)
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
def _slope(ts, ys):
    ts = np.asarray(ts, float)
    tc = ts - ts.mean()
    return (tc[:, None] * (ys - ys.mean(0))).sum(0) / (tc**2).sum()


def velocity(track, k=DEFAULT_K, upto=None):
    """Centroid velocity (vy, vx) in px/frame: least-squares slope over the last ``k`` clean frames up to
    the track's last visible frame (or ``upto``); None with fewer than 2 such frames."""
    end = track.last if upto is None else min(track.last, upto)
    fr = track.clean_frames
    fr = fr[fr <= end][-k:]
    if len(fr) < 2:
        return None
    return _slope(fr, track.centroid[fr])


def velocity_frames(track, k=DEFAULT_K):
    """The clean frames ``velocity`` uses (for the time-centring of decaying motion models)."""
    fr = track.clean_frames
    return fr[fr <= track.last][-k:]


def edge_velocity(track, k=DEFAULT_K):
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
        v[ax] = _slope(fr, pos[:, None])[0]
    return v


def has_left(track, last_input=None):
    """True when the object is gone at the last input frame and its last visible frame touched the border."""
    last_input = track.T - 1 if last_input is None else last_input
    return track.last < 0 or (track.last < last_input and bool(track.touches_border[track.last]))


# -------------------------------------------------------------------------------------- predictions
@dataclass
class ObjectPrediction:
    """Where an object will be at the target frame: its mask of frame ``ref_t`` moved by ``disp`` (dy, dx)
    px and scaled by ``scale`` about its centroid. ``centroid`` = predicted target centroid (y, x)."""

    cid: int
    ref_t: int
    ref_centroid: np.ndarray
    disp: np.ndarray
    scale: float = 1.0
    extra: dict = field(default_factory=dict)

    @property
    def centroid(self):
        return np.asarray(self.ref_centroid, float) + np.asarray(self.disp, float)


def geometric_sum(decay, h):
    """sum_{i=1..h} decay^i: how far (in frames of the initial speed) a geometrically slowing object goes."""
    if h <= 0:
        return 0.0
    if decay == 1.0:
        return float(h)
    return float(decay * (1 - decay**h) / (1 - decay))


def _velocity_and_time(track, k):
    """(velocity, time it holds at): the LS slope over the last k clean frames and their mean frame; for
    cut objects ``edge_velocity`` and the mean of its frames; else zero at ref - 0.5."""
    v = velocity(track, k)
    if v is not None:
        return v, float(velocity_frames(track, k).mean())
    v = edge_velocity(track, k)
    if v is not None:
        return v, float(np.nonzero(track.visible)[0][-k:].mean())
    return np.zeros(2), track.ref_frame - 0.5


def _object_velocity(track, k, decay=1.0):
    """The per-frame step (px) of the object in the frame step ending at its reference frame, i.e. its velocity
    at time ref - 0.5: ``_velocity_and_time`` moved forward to ref - 0.5 by ``decay`` per frame."""
    v, t = _velocity_and_time(track, k)
    return v * decay ** (track.ref_frame - 0.5 - t)


def _scale_for(track, ref_c, disp, size_b):
    if not size_b:
        return 1.0
    return float(size_scale(ref_c[0] + disp[0], size_b) / size_scale(ref_c[0], size_b))


def predict_friction(tracks, k=DEFAULT_K, decay=DEFAULT_DECAY, target=TARGET, size_b=0.0, last_input=None):
    """{cid: ObjectPrediction}: speed decays geometrically, displacement = v * sum_{i=1..h} decay^i with
    h = target - ref frame and v the velocity at the reference frame (``_object_velocity``). Objects that
    left the frame are omitted (``has_left``). decay = 1 is constant velocity."""
    out = {}
    for cid, tr in tracks.items():
        if has_left(tr, last_input):
            continue
        ref = tr.ref_frame
        v = _object_velocity(tr, k, decay)
        disp = v * geometric_sum(decay, target - ref)
        c = tr.centroid[ref]
        out[cid] = ObjectPrediction(cid, ref, c.copy(), disp, _scale_for(tr, c, disp, size_b), {"v": v})
    return out


def predict_constant_velocity(tracks, k=DEFAULT_K, target=TARGET, size_b=0.0, last_input=None):
    """{cid: ObjectPrediction}: displacement = v * (target - ref frame) (``predict_friction`` with decay 1)."""
    return predict_friction(tracks, k, 1.0, target, size_b, last_input)


class FloorCamera:
    """Image <-> floor-plane coordinates of a static pinhole camera without roll, from two numbers.

    For a camera pitched down at the floor, the horizon row is y_h = -1/b of the size model s(y) = 1 + b*y
    (apparent size is proportional to y - y_h), and with u = 1/(y - y_h) the floor coordinates are, up to one
    common scale, X = (x - x_c) * u and Y = F * u, where F = f / cos(pitch) (f the focal length in px).
    They are rescaled here so that one unit is one horizontal pixel at the middle row y_m: motion at constant
    speed on the floor is then a straight line at constant speed in (X, Y), and friction a constant
    deceleration. (For the embedded dataset's camera, f = 279 px, pitch 38 deg: F ~ 354, y_h ~ -138.)
    """

    def __init__(self, size_b, width=240, height=160, F=350.0):
        if size_b <= 0:
            raise ValueError("FloorCamera needs a size model slope b > 0 (perspective)")
        self.yh, self.xc, self.F, self.ym = -1.0 / size_b, (width - 1) / 2, float(F), (height - 1) / 2

    def to_floor(self, yx):
        yx = np.asarray(yx, float)
        r = (self.ym - self.yh) / (yx[..., 0] - self.yh)
        return np.stack([self.F * r, (yx[..., 1] - self.xc) * r], -1)

    def to_image(self, YX):
        YX = np.asarray(YX, float)
        r = YX[..., 0] / self.F
        r = np.maximum(r, 1e-3)  # points beyond the horizon stay below it
        return np.stack([self.yh + (self.ym - self.yh) / r, self.xc + YX[..., 1] / r], -1)


def _decel_distance(speed, decel, lag, h):
    """Distance covered in the h frame steps after the reference frame by an object whose speed was
    ``speed`` ``lag`` frames before the reference frame and drops by ``decel`` per frame until it stops
    (step i runs from ref + i - 1 to ref + i: its speed is the one at ref + i - 0.5)."""
    if speed <= 0 or h <= 0:
        return 0.0
    steps = speed - decel * (lag + np.arange(1, h + 1) - 0.5)
    return float(np.clip(steps, 0, None).sum())


def predict_decel(tracks, k=DEFAULT_K, decel=0.2, target=TARGET, size_b=0.0, last_input=None, camera=None):
    """{cid: ObjectPrediction} under constant deceleration (Coulomb friction): the speed drops by ``decel``
    per frame until the object stops; direction fixed. Without ``camera`` in image pixels (perspective
    ignored); with a ``FloorCamera`` on the floor plane (positions mapped to the floor, the motion predicted
    there, mapped back), ``decel`` then in floor units (px at the middle row)."""
    out = {}
    for cid, tr in tracks.items():
        if has_left(tr, last_input):
            continue
        ref = tr.ref_frame
        c = tr.centroid[ref]
        h = target - ref
        fr = velocity_frames(tr, k)
        if camera is not None and len(fr) >= 2:
            pts = camera.to_floor(tr.centroid[fr])
            v = _slope(fr, pts)
            speed = float(np.hypot(*v))
            dist = _decel_distance(speed, decel, ref - fr.mean(), h)
            start = camera.to_floor(c)
            end = start + (v / speed * dist if speed > 0 else 0.0)
            disp = camera.to_image(end) - c
        else:
            v, t_mid = _velocity_and_time(tr, k)
            speed = float(np.hypot(*v))
            dist = _decel_distance(speed, decel, ref - t_mid, h)
            disp = v / speed * dist if speed > 0 else np.zeros(2)
        out[cid] = ObjectPrediction(cid, ref, c.copy(), disp, _scale_for(tr, c, disp, size_b), {"v": v})
    return out


def _travel(s_mid, t_mid, decel, a, b):
    """Distance covered between times a < b by an object of speed ``s_mid`` at time ``t_mid`` that slows by
    ``decel`` per frame (continuous time) until it stops."""
    if b <= a or s_mid <= 0:
        return 0.0
    if decel <= 0:
        return s_mid * (b - a)
    stop = t_mid + s_mid / decel
    b = min(b, stop)
    if b <= a:
        return 0.0
    sa, sb = s_mid - decel * (a - t_mid), s_mid - decel * (b - t_mid)
    return 0.5 * (sa + sb) * (b - a)


def _image_to_floor_velocity(camera, c, v):
    """A velocity (px/frame) at image point c mapped to the floor (the Jacobian by finite differences)."""
    return camera.to_floor(np.asarray(c) + np.asarray(v)) - camera.to_floor(c)


def predict_physics(
    tracks,
    k=2,
    decel=0.25,
    camera=None,
    target=TARGET,
    size_b=0.0,
    last_input=LAST_INPUT,
    restitution=0.3,
    mass_ratio=2.0,
    radius_scale=1.15,
    substeps=8,
):
    """{cid: ObjectPrediction} from a tiny 2-D physics simulation on the floor plane: every object a disc
    (radius from its area, ``radius_scale`` x), sliding with constant deceleration ``decel`` (floor units
    per frame^2), colliding with the others (impulses along the line of centres, coefficient of
    ``restitution``; metal objects ``mass_ratio`` x heavier than rubber ones). Each object starts at frame
    ``last_input`` where the deceleration model puts it; the simulation runs to ``target`` in ``substeps``
    steps per frame. Needs a ``FloorCamera``. With no contacts this is ``predict_decel`` on the floor.
    ``extra`` of each prediction: "v" (floor velocity at ``last_input``), "contacts" (collisions it took
    part in) and "first_contact" (time of the first, NaN if none)."""
    from lib.common.classes import attributes

    if camera is None:
        raise ValueError("predict_physics needs a FloorCamera (a size model with b > 0)")
    t0 = float(last_input)
    objs = []
    for cid, tr in tracks.items():
        if has_left(tr, last_input):
            continue
        ref = tr.ref_frame
        c = tr.centroid[ref]
        fr = velocity_frames(tr, k)
        if len(fr) >= 2:
            v, t_mid = _slope(fr, camera.to_floor(tr.centroid[fr])), float(fr.mean())
        else:
            vi, t_mid = _velocity_and_time(tr, k)
            v = _image_to_floor_velocity(camera, c, vi)
        speed = float(np.hypot(*v))
        u = v / speed if speed > 0 else np.zeros(2)
        start = camera.to_floor(c)
        pos = start + u * _travel(speed, t_mid, decel, ref, t0)
        s0 = max(speed - decel * (t0 - t_mid), 0.0) if speed > 0 else 0.0
        y_scale = (camera.ym - camera.yh) / (c[0] - camera.yh)  # floor units per px at the object's row
        area = tr.ref_area if np.isfinite(tr.ref_area) else tr.area[ref]
        radius = radius_scale * np.sqrt(area / np.pi) * y_scale
        mass = mass_ratio if attributes(cid)[1] == "metal" else 1.0
        objs.append((cid, ref, c, pos, u * s0, radius, mass))
    if not objs:
        return {}
    pos = np.array([o[3] for o in objs], float)
    vel = np.array([o[4] for o in objs], float)
    rad = np.array([o[5] for o in objs], float)
    inv_m = 1.0 / np.array([o[6] for o in objs], float)
    dt = 1.0 / substeps
    n = len(objs)
    contacts = np.zeros(n, int)
    first_contact = np.full(n, np.nan)
    v_start = vel.copy()
    for step in range(int(round((target - t0) * substeps))):
        sp = np.hypot(vel[:, 0], vel[:, 1])
        new_sp = np.maximum(sp - decel * dt, 0.0)
        vel *= np.where(sp > 0, new_sp / np.where(sp > 0, sp, 1), 0.0)[:, None]
        pos += vel * dt
        if n < 2:
            continue
        gap = pos[None, :, :] - pos[:, None, :]  # gap[i, j] = pos[j] - pos[i]
        dists = np.hypot(gap[..., 0], gap[..., 1])
        touch = np.triu((dists < rad[:, None] + rad[None, :]) & (dists > 0), 1)
        for i, j in zip(*np.nonzero(touch)):  # row-major: the pairs (i < j) in the order of a double loop
            dist = float(dists[i, j])
            nrm = gap[i, j] / dist
            closing = float((vel[i] - vel[j]) @ nrm)
            if closing > 0:  # approaching: exchange momentum along the normal
                imp = (1 + restitution) * closing / (inv_m[i] + inv_m[j])
                vel[i] -= imp * inv_m[i] * nrm
                vel[j] += imp * inv_m[j] * nrm
                for q in (i, j):
                    contacts[q] += 1
                    if np.isnan(first_contact[q]):
                        first_contact[q] = t0 + (step + 1) * dt
    out = {}
    for q, ((cid, ref, c, _, _, _, _), p) in enumerate(zip(objs, pos)):
        disp = camera.to_image(p) - c
        tr = tracks[cid]
        extra = {"v": v_start[q], "contacts": int(contacts[q]), "first_contact": float(first_contact[q])}
        out[cid] = ObjectPrediction(cid, ref, c.copy(), disp, _scale_for(tr, c, disp, size_b), extra)
    return out


# ---------------------------------------------------------------------------------------- rendering
def object_pixels(masks_in, cid, t, denoise=False):
    """(ys, xs) of object ``cid`` in frame ``t`` (its largest blob only with ``denoise``)."""
    frame = np.asarray(masks_in[t])
    sel = _largest_component(frame, cid) if denoise else frame == cid
    return np.nonzero(sel)


def _place(ys, xs, c, new_c, scale, h, w):
    """Pixels of the moved (and scaled) object, clipped to the frame: (ys, xs) int arrays."""
    empty = np.zeros(0, np.int64)
    if not (np.isfinite(scale) and scale > 0 and np.isfinite(new_c).all()):
        return empty, empty
    if abs(scale - 1.0) < 1e-3:
        d = np.rint(np.asarray(new_c) - np.asarray(c)).astype(np.int64)
        ny, nx = ys + d[0], xs + d[1]
    else:  # inverse mapping over the target bbox, nearest neighbour
        y0, x0 = ys.min(), xs.min()
        src = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), bool)
        src[ys - y0, xs - x0] = True
        ty0 = int(np.floor(new_c[0] + (y0 - 0.5 - c[0]) * scale))
        ty1 = int(np.ceil(new_c[0] + (ys.max() + 0.5 - c[0]) * scale))
        tx0 = int(np.floor(new_c[1] + (x0 - 0.5 - c[1]) * scale))
        tx1 = int(np.ceil(new_c[1] + (xs.max() + 0.5 - c[1]) * scale))
        # only the part inside the frame: a point predicted near the horizon can scale up a thousandfold
        ty0, ty1, tx0, tx1 = max(ty0, 0), min(ty1, h - 1), max(tx0, 0), min(tx1, w - 1)
        if ty0 > ty1 or tx0 > tx1:
            return empty, empty
        gy, gx = np.mgrid[ty0 : ty1 + 1, tx0 : tx1 + 1]
        sy = np.rint(c[0] + (gy - new_c[0]) / scale).astype(np.int64) - y0
        sx = np.rint(c[1] + (gx - new_c[1]) / scale).astype(np.int64) - x0
        ok = (sy >= 0) & (sy < src.shape[0]) & (sx >= 0) & (sx < src.shape[1])
        ok[ok] = src[sy[ok], sx[ok]]
        ny, nx = gy[ok], gx[ok]
    keep = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    return ny[keep], nx[keep]


def render_layers(masks_in, predictions, H=None, W=None, denoise=False):
    """The objects ``render`` draws, far to near (by predicted bottom row, then id): a list of dicts with
    ``cid``, ``pred`` (the ObjectPrediction), ``new_c`` (the predicted centroid of its pixels), ``bottom`` and
    ``placed`` (the (ys, xs) pixels it covers in the frame). Objects without reference pixels are left out."""
    masks_in = np.asarray(masks_in)
    h = masks_in.shape[1] if H is None else H
    w = masks_in.shape[2] if W is None else W
    out = []
    for cid, p in predictions.items():
        ys, xs = object_pixels(masks_in, cid, p.ref_t, denoise)
        if not len(ys):
            continue
        c = np.array([ys.mean(), xs.mean()])  # rendering is about the pixels' own centroid
        new_c = c + np.asarray(p.disp, float)
        bottom = new_c[0] + (ys.max() - c[0]) * p.scale
        placed = _place(ys, xs, c, new_c, p.scale, h, w)
        out.append({"bottom": bottom, "cid": int(cid), "pred": p, "new_c": new_c, "placed": placed})
    out.sort(key=lambda layer: (layer["bottom"], layer["cid"]))
    return out


def render(masks_in, predictions, H=None, W=None, denoise=False):
    """The predicted (H, W) uint8 mask: each object's mask of its reference frame (last clean frame, else
    last visible) moved by its predicted displacement and scaled about its centroid; objects drawn far to
    near, i.e. in order of their predicted bottom row (lowest in the image last, on top); pixels moved
    outside the frame are dropped (no wrap-around)."""
    masks_in = np.asarray(masks_in)
    h = masks_in.shape[1] if H is None else H
    w = masks_in.shape[2] if W is None else W
    out = np.zeros((h, w), np.uint8)
    for layer in render_layers(masks_in, predictions, h, w, denoise):
        out[layer["placed"]] = layer["cid"]
    return out


# ------------------------------------------------------------------------------------ whole videos
METHODS = ("cv", "friction", "decel", "floor", "physics", "copy")
PHYSICS_DEFAULTS = {"restitution": 0.3, "radius_scale": 1.15, "mass_ratio": 2.0}


def predict_from_tracks(
    tr,
    method="friction",
    k=DEFAULT_K,
    decay=DEFAULT_DECAY,
    decel=0.2,
    size_b=0.0,
    F=None,
    target=TARGET,
    last_input=LAST_INPUT,
    shape=(160, 240),
    **physics,
):
    """{cid: ObjectPrediction} of one of the non-learned motion models (see ``predict_video``);
    ``physics``: restitution, radius_scale, mass_ratio of the "physics" method."""
    if method == "cv":
        return predict_constant_velocity(tr, k, target, size_b, last_input)
    if method == "friction":
        return predict_friction(tr, k, decay, target, size_b, last_input)
    if method == "decel":
        return predict_decel(tr, k, decel, target, size_b, last_input)
    if method in ("floor", "physics"):
        cam = FloorCamera(size_b, shape[1], shape[0], F) if size_b > 0 and F else None
        if method == "physics" and cam is not None:
            return predict_physics(tr, k, decel, cam, target, size_b, last_input, **{**PHYSICS_DEFAULTS, **physics})
        return predict_decel(tr, k, decel, target, size_b, last_input, cam)
    raise ValueError(f"method must be one of {METHODS}, not {method!r}")


def predict_video(
    masks_in,
    method="friction",
    k=DEFAULT_K,
    decay=DEFAULT_DECAY,
    decel=0.2,
    size_b=0.0,
    F=None,
    min_area=1,
    area_ratio=0.75,
    denoise=False,
    target=TARGET,
    **physics,
):
    """Frame-22 mask (H, W) uint8 of one video from its input masks (>= 11 frames; frames 0-10 are used).
    ``method``: "cv" (constant velocity), "friction" (geometric decay ``decay``), "decel" (constant
    deceleration ``decel`` in image px), "floor" (constant deceleration on the floor plane, ``FloorCamera``
    from ``size_b`` and ``F``), "physics" ("floor" plus collisions between the objects, ``predict_physics``;
    keyword args restitution, radius_scale, mass_ratio) or "copy" (frame 11 itself). ``size_b`` > 0 also
    scales moved objects. Without perspective (size_b = 0 or no F) "floor" and "physics" are "decel"."""
    masks_in = np.asarray(masks_in)[: LAST_INPUT + 1]
    if method == "copy":
        return np.array(masks_in[LAST_INPUT], np.uint8)
    tr = tracks(masks_in, min_area, area_ratio, size_b, denoise)
    preds = predict_from_tracks(tr, method, k, decay, decel, size_b, F, target, shape=masks_in.shape[1:], **physics)
    return render(masks_in, preds, denoise=denoise)


def predict_split(masks, method="friction", progress=True, **kwargs):
    """(N, H, W) uint8 frame-22 masks of (N, >=11, H, W) input masks (``predict_video`` per video)."""
    out = np.empty((len(masks), *masks.shape[2:]), np.uint8)
    for i in tqdm(range(len(masks)), desc=f"objects:{method}", disable=not progress, unit="video"):
        out[i] = predict_video(np.asarray(masks[i, : LAST_INPUT + 1]), method, **kwargs)
    return out


# -------------------------------------------------------------------------------------------- fitting
def fit_size_model(masks, n_videos=100, min_area=30, seed=0):
    """Slope b of the size model s(y) = 1 + b*y from train masks (N, T, H, W): over pairs of uncut frames
    of one object, log sqrt(area ratio) ~ log(s(y1) / s(y0)); b by a 1-D grid search (robust L1)."""
    idx = _subset(len(masks), n_videos, seed)
    pairs = []
    for i in idx:
        for tr in tracks(np.asarray(masks[i]), min_area).values():
            fr = np.nonzero(tr.visible & ~tr.touches_border)[0]
            if len(fr) < 2:
                continue
            a, b = fr[0], fr[-1]
            if abs(tr.centroid[b, 0] - tr.centroid[a, 0]) < 5:
                continue
            pairs.append((tr.centroid[a, 0], tr.centroid[b, 0], 0.5 * np.log(tr.area[b] / tr.area[a])))
    if not pairs:
        return 0.0
    p = np.array(pairs)
    grid = np.linspace(0.0, 0.03, 121)
    err = [np.abs(np.log(size_scale(p[:, 1], g) / size_scale(p[:, 0], g)) - p[:, 2]).mean() for g in grid]
    return float(grid[int(np.argmin(err))])


def _subset(n, n_videos, seed):
    if n_videos is None or n_videos >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:n_videos])


def fit_k_and_decay(
    train_masks,
    ks=(2, 3, 4, 5, 6),
    decays=None,
    n_videos=100,
    size_b=0.0,
    seed=0,
    min_area=1,
    area_ratio=0.75,
    progress=False,
):
    """Grid search of the friction predictor's (k, decay) on the frame-22 IoU of true train masks
    (N, 22, H, W), on ``n_videos`` of them. Returns {"k", "decay", "iou", "cv_k", "cv_iou", "grid"}
    (``cv_*``: the best constant-velocity k, i.e. decay = 1)."""
    decays = (0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0) if decays is None else decays
    decays = tuple(sorted(set(decays) | {1.0}))
    idx = _subset(len(train_masks), n_videos, seed)
    cms = {(k, d): 0 for k in ks for d in decays}
    for i in tqdm(idx, desc="fit k/decay", disable=not progress, unit="video"):
        m = np.asarray(train_masks[i])
        tr = tracks(m[: LAST_INPUT + 1], min_area, area_ratio, size_b)
        for k in ks:
            for d in decays:
                pred = render(m[: LAST_INPUT + 1], predict_friction(tr, k, d, TARGET, size_b, LAST_INPUT))
                cms[(k, d)] = cms[(k, d)] + confusion(pred, m[TARGET])
    grid = {key: iou_from_confusion(cm)[0] for key, cm in cms.items()}
    k, d = max(grid, key=grid.get)
    cv_k = max(ks, key=lambda kk: grid[(kk, 1.0)])
    return {
        "k": int(k),
        "decay": float(d),
        "iou": grid[(k, d)],
        "cv_k": int(cv_k),
        "cv_iou": grid[(cv_k, 1.0)],
        "grid": {f"{kk},{dd}": v for (kk, dd), v in grid.items()},
    }


def fit_decel(
    train_masks,
    ks=(2, 3),
    decels=(0.1, 0.15, 0.2, 0.25, 0.3),
    Fs=(None,),
    n_videos=100,
    size_b=0.0,
    seed=0,
    min_area=1,
    area_ratio=0.75,
    progress=False,
):
    """Grid search of the constant-deceleration predictor's (k, decel, F) like ``fit_k_and_decay``; F = None
    predicts in image pixels, a number on the floor plane (``FloorCamera(size_b, F=F)``, needs size_b > 0).
    Returns {"k", "decel", "F", "iou", "grid"}."""
    idx = _subset(len(train_masks), n_videos, seed)
    h, w = train_masks.shape[-2:]
    cams = {F: (None if F is None else FloorCamera(size_b, w, h, F)) for F in Fs}
    cms = {(k, a, F): 0 for k in ks for a in decels for F in Fs}
    for i in tqdm(idx, desc="fit decel", disable=not progress, unit="video"):
        m = np.asarray(train_masks[i])
        tr = tracks(m[: LAST_INPUT + 1], min_area, area_ratio, size_b)
        for k, a, F in cms:
            pred = render(m[: LAST_INPUT + 1], predict_decel(tr, k, a, TARGET, size_b, LAST_INPUT, cams[F]))
            cms[(k, a, F)] = cms[(k, a, F)] + confusion(pred, m[TARGET])
    grid = {key: iou_from_confusion(cm)[0] for key, cm in cms.items()}
    k, a, F = max(grid, key=grid.get)
    return {
        "k": int(k),
        "decel": float(a),
        "F": F,
        "iou": grid[(k, a, F)],
        "grid": {f"{kk},{aa},{ff}": v for (kk, aa, ff), v in grid.items()},
    }


def fit_floor(
    train_masks,
    ks=(2, 3),
    decels=(0.1, 0.15, 0.2, 0.25, 0.3),
    Fs=(250.0, 300.0, 350.0, 400.0),
    n_videos=100,
    size_b=None,
    seed=0,
    min_area=1,
    area_ratio=0.75,
    progress=False,
):
    """The floor-plane predictor's settings on TRUE train masks: the size model (unless ``size_b`` is
    given), then (k, decel, F) by grid search. Returns {"k", "decel", "F", "size_b", "iou", "grid"}."""
    if size_b is None:
        size_b = fit_size_model(train_masks, n_videos, seed=seed)
    if size_b <= 0:  # no perspective measurable: the image-plane model
        Fs = (None,)
    r = fit_decel(train_masks, ks, decels, Fs, n_videos, size_b, seed, min_area, area_ratio, progress)
    r["size_b"] = size_b
    return r


def fit_physics(
    train_masks,
    k=2,
    decel=0.25,
    F=350.0,
    size_b=None,
    restitutions=(0.2, 0.3, 0.45),
    radius_scales=(1.0, 1.15, 1.3),
    mass_ratios=(1.0, 2.0),
    n_videos=100,
    seed=0,
    min_area=1,
    area_ratio=0.75,
    progress=False,
):
    """Grid search of the collision parameters of the "physics" predictor on TRUE train masks, its motion
    settings (k, decel, F, size_b) taken from ``fit_floor``. Returns {"restitution", "radius_scale",
    "mass_ratio", "iou", "grid"}."""
    if size_b is None:
        size_b = fit_size_model(train_masks, n_videos, seed=seed)
    cam = FloorCamera(size_b, train_masks.shape[-1], train_masks.shape[-2], F)
    idx = _subset(len(train_masks), n_videos, seed)
    cms = {(e, r, mr): 0 for e in restitutions for r in radius_scales for mr in mass_ratios}
    for i in tqdm(idx, desc="fit physics", disable=not progress, unit="video"):
        m = np.asarray(train_masks[i])
        tr = tracks(m[: LAST_INPUT + 1], min_area, area_ratio, size_b)
        for e, r, mr in cms:
            pred = render(m[: LAST_INPUT + 1], predict_physics(tr, k, decel, cam, TARGET, size_b, LAST_INPUT, e, mr, r))
            cms[(e, r, mr)] = cms[(e, r, mr)] + confusion(pred, m[TARGET])
    grid = {key: iou_from_confusion(cm)[0] for key, cm in cms.items()}
    e, r, mr = max(grid, key=grid.get)
    return {
        "restitution": float(e),
        "radius_scale": float(r),
        "mass_ratio": float(mr),
        "iou": grid[(e, r, mr)],
        "grid": {f"{a},{b},{c}": v for (a, b, c), v in grid.items()},
    }
