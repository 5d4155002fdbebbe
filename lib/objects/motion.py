"""Motion models without learning: where each object of frames 0-10 will be at frame 22.

Every model predicts each object's displacement from its reference frame (last clean frame, else last visible;
``tracks.Track.ref_frame``) to frame 21 (index; "frame 22") and a scale (the size model), as an
``ObjectPrediction``; the renderer (lib/objects/render.py) then pastes the object's reference mask there.
All settings live in one ``MotionSettings`` (one set of defaults: those of the learned model's baseline).

    s = MotionSettings(method="friction", k=3, decay=0.95)
    preds = predict_from_tracks(tracks.tracks(masks[:11]), s)     # {cid: ObjectPrediction}
    mask22 = predict_video(masks[:11], s)                           # (160, 240) uint8
    pred = predict_split(unet_masks, physics.for_inputs("unet"))    # (N, 160, 240), U-Net labels read as such

Methods (``MotionSettings.method``):
- "cv": constant velocity; "friction": speed decays geometrically (``decay`` per frame);
- "decel": constant deceleration in image pixels (Coulomb friction: the speed drops linearly, then 0);
- "floor": constant deceleration on the floor plane (``FloorCamera``: image points mapped to the floor
  through the perspective that the size model measures, so motion towards the camera speeds up in pixels);
- "physics": "floor" plus collisions: the objects are discs on the floor plane in a tiny 2-D simulation;
- "copy": frame 11 itself.
Without perspective (size_b = 0 or no F) "floor" and "physics" are "decel". On the embedded dataset (val,
true-mask inputs) these score about cv 0.37, friction 0.53, decel 0.55, floor 0.60, physics 0.67 (copy frame
11: 0.25); notebook 06 measures them. Objects that left the frame (``tracks.has_left``) are not predicted;
objects first seen after frame 10 cannot be.

The settings are fitted on train by lib/objects/fit.py; ``MotionSettings.from_config`` reads them from a
learned model's config (``learned.config``), as notebook 06 records them.
"""

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from tqdm.auto import tqdm

from lib.objects import render, tracks
from lib.objects.tracks import LAST_INPUT, TARGET

METHODS = ("cv", "friction", "decel", "floor", "physics", "copy")
UNET_MIN_AREA = 20  # U-Net inputs: objects smaller than this are noise


def reading(src, unet_min_area=UNET_MIN_AREA):
    """How the input masks of a source are read: "true" masks pixel for pixel; "unet" labels without objects
    under ``unet_min_area`` pixels, each object from its largest blob, fragments dropped (``tracks.tracks``)."""
    if src == "true":
        return {"min_area": 1, "denoise": False}
    if src == "unet":
        return {"min_area": unet_min_area, "denoise": True}
    raise ValueError(f"src must be 'true' or 'unet', not {src!r}")


@dataclass(frozen=True)
class MotionSettings:
    """A motion model and how it reads its input masks. ``k``: clean frames a velocity is fitted over;
    ``decay``: "friction"'s speed factor per frame; ``decel``: deceleration per frame (image px for "decel",
    floor units for "floor" and "physics"); ``size_b``: the size model's slope (0: no perspective, no scaling);
    ``F``: the floor camera's focal term (``FloorCamera``); ``restitution``, ``radius_scale``, ``mass_ratio``:
    the collisions of "physics"; ``min_area``, ``denoise``, ``area_ratio``: how tracks are read (``reading``)."""

    method: str = "physics"
    k: int = 2
    decay: float = 0.95
    decel: float = 0.25
    size_b: float = 0.0
    F: float | None = 350.0
    restitution: float = 0.3
    radius_scale: float = 1.15
    mass_ratio: float = 2.0
    min_area: int = 1
    denoise: bool = False
    area_ratio: float = 0.75

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")

    def for_inputs(self, src, unet_min_area=UNET_MIN_AREA):
        """These settings reading "true" masks or "unet" labels (``reading``)."""
        return replace(self, **reading(src, unet_min_area))

    def camera(self, shape=(160, 240)):
        """The ``FloorCamera`` of frames of ``shape``; None without perspective (size_b = 0) or F."""
        return FloorCamera(self.size_b, shape[1], shape[0], self.F) if self.size_b > 0 and self.F else None

    def to_config(self):
        """The settings as a learned model's config holds them (the method under "baseline")."""
        cfg = asdict(self)
        return {"baseline": cfg.pop("method"), **cfg}

    @classmethod
    def from_config(cls, cfg, **changes):
        """The settings of a config (``to_config``, a learned model's or notebook 06's ``settings.physics``;
        other keys are ignored), with ``changes`` (e.g. method="physics")."""
        values = {f.name: cfg[f.name] for f in fields(cls) if f.name != "method" and f.name in cfg}
        if "baseline" in cfg:
            values["method"] = cfg["baseline"]
        return cls(**{**values, **changes})


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
    v = tracks.velocity(track, k)
    if v is not None:
        return v, float(tracks.velocity_frames(track, k).mean())
    v = tracks.edge_velocity(track, k)
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
    return float(tracks.size_scale(ref_c[0] + disp[0], size_b) / tracks.size_scale(ref_c[0], size_b))


def predict_friction(object_tracks, settings, *, target=TARGET, last_input=None):
    """{cid: ObjectPrediction}: speed decays geometrically, displacement = v * sum_{i=1..h} decay^i with
    h = target - ref frame and v the velocity at the reference frame (``_object_velocity``; ``settings.k``,
    ``.decay``, ``.size_b``). Objects that left the frame are omitted (``has_left``; ``last_input`` None: the
    tracks' last frame). decay = 1 is constant velocity."""
    k, decay, size_b = settings.k, settings.decay, settings.size_b
    out = {}
    for cid, tr in object_tracks.items():
        if tracks.has_left(tr, last_input):
            continue
        ref = tr.ref_frame
        v = _object_velocity(tr, k, decay)
        disp = v * geometric_sum(decay, target - ref)
        c = tr.centroid[ref]
        out[cid] = ObjectPrediction(cid, ref, c.copy(), disp, _scale_for(tr, c, disp, size_b), {"v": v})
    return out


def predict_constant_velocity(object_tracks, settings, *, target=TARGET, last_input=None):
    """{cid: ObjectPrediction}: displacement = v * (target - ref frame) (``predict_friction`` with decay 1)."""
    return predict_friction(object_tracks, replace(settings, decay=1.0), target=target, last_input=last_input)


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


def predict_decel(object_tracks, settings, camera=None, *, target=TARGET, last_input=None):
    """{cid: ObjectPrediction} under constant deceleration (Coulomb friction): the speed drops by
    ``settings.decel`` per frame until the object stops; direction fixed. Without ``camera`` in image pixels
    (perspective ignored); with a ``FloorCamera`` on the floor plane (positions mapped to the floor, the motion
    predicted there, mapped back), ``decel`` then in floor units (px at the middle row)."""
    k, decel, size_b = settings.k, settings.decel, settings.size_b
    out = {}
    for cid, tr in object_tracks.items():
        if tracks.has_left(tr, last_input):
            continue
        ref = tr.ref_frame
        c = tr.centroid[ref]
        h = target - ref
        fr = tracks.velocity_frames(tr, k)
        if camera is not None and len(fr) >= 2:
            pts = camera.to_floor(tr.centroid[fr])
            v = tracks.slope(fr, pts)
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


def predict_physics(object_tracks, settings, camera, *, target=TARGET, last_input=LAST_INPUT, substeps=8):
    """{cid: ObjectPrediction} from a tiny 2-D physics simulation on the floor plane: every object a disc
    (radius from its area, ``settings.radius_scale`` x), sliding with constant deceleration ``settings.decel``
    (floor units per frame^2), colliding with the others (impulses along the line of centres, coefficient of
    ``settings.restitution``; metal objects ``settings.mass_ratio`` x heavier than rubber ones). Each object
    starts at frame ``last_input`` where the deceleration model puts it; the simulation runs to ``target`` in
    ``substeps`` steps per frame. Needs a ``FloorCamera``. With no contacts this is ``predict_decel`` on the
    floor. ``extra`` of each prediction: "v" (floor velocity at ``last_input``), "contacts" (collisions it took
    part in) and "first_contact" (time of the first, NaN if none)."""
    from lib.common.classes import attributes

    if camera is None:
        raise ValueError("predict_physics needs a FloorCamera (a size model with b > 0)")
    k, decel, size_b = settings.k, settings.decel, settings.size_b
    restitution, mass_ratio, radius_scale = settings.restitution, settings.mass_ratio, settings.radius_scale
    t0 = float(last_input)
    objs = []
    for cid, tr in object_tracks.items():
        if tracks.has_left(tr, last_input):
            continue
        ref = tr.ref_frame
        c = tr.centroid[ref]
        fr = tracks.velocity_frames(tr, k)
        if len(fr) >= 2:
            v, t_mid = tracks.slope(fr, camera.to_floor(tr.centroid[fr])), float(fr.mean())
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
        tr = object_tracks[cid]
        extra = {"v": v_start[q], "contacts": int(contacts[q]), "first_contact": float(first_contact[q])}
        out[cid] = ObjectPrediction(cid, ref, c.copy(), disp, _scale_for(tr, c, disp, size_b), extra)
    return out


# ------------------------------------------------------------------------------------ dispatch
def predict_from_tracks(object_tracks, settings, *, shape=(160, 240), target=TARGET, last_input=LAST_INPUT):
    """{cid: ObjectPrediction} of the motion model ``settings.method`` (not "copy") for tracks of frames of
    ``shape``."""
    method = settings.method
    kw = {"target": target, "last_input": last_input}
    if method == "cv":
        return predict_constant_velocity(object_tracks, settings, **kw)
    if method == "friction":
        return predict_friction(object_tracks, settings, **kw)
    if method == "decel":
        return predict_decel(object_tracks, settings, **kw)
    if method in ("floor", "physics"):
        cam = settings.camera(shape)
        if method == "physics" and cam is not None:
            return predict_physics(object_tracks, settings, cam, **kw)
        return predict_decel(object_tracks, settings, cam, **kw)
    raise ValueError(f"predict_from_tracks cannot predict with method {method!r}")


def predict_video(masks_in, settings, *, target=TARGET):
    """Frame-22 mask (H, W) uint8 of one video from its input masks (>= 11 frames; frames 0-10 are used):
    its tracks read as ``settings`` say, moved by the motion model, drawn by ``render.render``."""
    masks_in = np.asarray(masks_in)[: LAST_INPUT + 1]
    if settings.method == "copy":
        return np.array(masks_in[LAST_INPUT], np.uint8)
    s = settings
    tr = tracks.tracks(masks_in, s.min_area, s.area_ratio, s.size_b, s.denoise)
    preds = predict_from_tracks(tr, s, shape=masks_in.shape[1:], target=target)
    return render.render(masks_in, preds, denoise=s.denoise)


def predict_split(masks, settings, progress=True):
    """(N, H, W) uint8 frame-22 masks of (N, >=11, H, W) input masks (``predict_video`` per video)."""
    out = np.empty((len(masks), *masks.shape[2:]), np.uint8)
    for i in tqdm(range(len(masks)), desc=f"objects:{settings.method}", disable=not progress, unit="video"):
        out[i] = predict_video(np.asarray(masks[i, : LAST_INPUT + 1]), settings)
    return out
