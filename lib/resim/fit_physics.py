"""The physical constants of the re-simulating predictor, fitted on train videos (all 22 frames of their masks).

Masks show positions in frames, not seconds: a slowing of ``a`` units/s^2 moves an object by ``a * frame_dt^2``
units a frame squared, so friction and the frame interval cannot be told apart. ``FRAME_DT`` fixes the time unit
and the friction is fitted in it (the generator's pair, friction 0.05 at 1/8 s a frame, shows as 0.078 at 0.1 s).

- **Sliding friction**: free objects slow down steadily; over runs of ``WINDOW`` consecutive measured frames that a
  parabola explains within ``PARABOLA_TOL`` and that move faster than ``MIN_SPEED``, the slowing along the
  motion is measured, and the median over cubes and cylinders is friction * g.
- **Rolling friction**: the smallest one whose simulated rolling sphere slows as much as the spheres measured
  (``simulate.decelerations``; beyond a point, spheres slide and roll friction stops mattering).
- **Restitution and the metal/rubber mass ratio** only act in collisions: each candidate of a small grid
  predicts frame 21 of train videos where objects meet after frame 10 (``predict.predict``), and the one with the
  highest IoU is kept, one constant at a time, in two passes (restitution is scored again at the mass ratio the
  first pass chose; where it kept the starting one, its candidates are scored already and cost nothing). The
  positions in a video's frames 0-10 do not depend on the physics, so they are measured once
  (``predict.measure_inputs``) for all candidates; a candidate equal to one already scored is not predicted
  again. ``score_collisions`` scores other constants on the same videos.

    fit = fit_physics(train_masks, camera, sizes)     # PhysicsFit: physics, measured slowing, scores, seconds
    fit = fit_physics(train_masks, camera, sizes, workers=2)    # the same fit, videos in 2 processes
"""

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from lib.common.classes import attributes
from lib.common.metrics import per_video_confusion, stacked_iou
from lib.resim.estimate import measure
from lib.resim.predict import SUPERSAMPLE, measure_inputs, predict, process_map
from lib.resim.simulate import GRAVITY, Physics, decelerations

FRAME_DT = 0.1  # seconds a frame: the time unit (see the module doc)
SUBSTEPS = 30  # physics steps a frame
WINDOW = 7  # consecutive frames a slowing is measured over
PARABOLA_TOL = 0.015  # units: the largest residual of a run's parabola (a collision bends it more)
MIN_SPEED = 0.06  # units a frame: slower runs may stop within the window
RESTITUTIONS = (0.5, 0.65, 0.8, 0.95)
MASS_RATIOS = (1.0, 2.0, 3.0, 4.0)
ROUNDS = 2  # passes over the two grids: restitution is scored again at the mass ratio the first pass chose
START = Physics(
    friction=0.08, rolling_friction=0.04, restitution=0.8, mass_ratio=2.0, frame_dt=FRAME_DT, substeps=SUBSTEPS
)


@dataclass
class PhysicsFit:
    physics: Physics
    slowing: dict  # {"slide" | "roll": units/s^2 measured (median), "runs": how many runs}
    scores: dict = field(default_factory=dict)  # {"restitution=0.8": IoU, ...}: the collision grid
    videos: int = 0
    seconds: float = 0.0
    collision_videos: list = field(default_factory=list)  # indices of the videos the grid was scored on

    def to_json(self):
        return {**asdict(self), "physics": asdict(self.physics)}

    @classmethod
    def from_json(cls, d):
        return cls(**{**d, "physics": Physics(**d["physics"])})


def run_slowings(track, frame_dt=FRAME_DT):
    """Slowing (units/s^2, along the motion) of each run of ``WINDOW`` consecutive measured frames of ``track``
    (an ``estimate.Track3D``) that a parabola fits within ``PARABOLA_TOL`` and that moves faster than
    ``MIN_SPEED``."""
    ts, xy = np.asarray(track.frames), track.positions
    out = []
    for k in range(len(ts) - WINDOW + 1):
        t = ts[k : k + WINDOW]
        if t[-1] - t[0] != WINDOW - 1:
            continue
        s = t - t.mean()
        coef = np.polyfit(s, xy[k : k + WINDOW], 2)  # (3, 2): a s^2 + b s + c per axis
        if np.abs(np.polyval(coef[:, 0], s) - xy[k : k + WINDOW, 0]).max() > PARABOLA_TOL:
            continue
        if np.abs(np.polyval(coef[:, 1], s) - xy[k : k + WINDOW, 1]).max() > PARABOLA_TOL:
            continue
        v = coef[1]
        speed = np.linalg.norm(v)
        if speed < MIN_SPEED:
            continue
        out.append(float(-2 * coef[0] @ v / speed) / frame_dt**2)
    return out


def measure_slowing(tracks, frame_dt=FRAME_DT):
    """{"slide": median slowing of cubes and cylinders, "roll": of spheres (units/s^2), "runs": {kind: n}} over
    ``tracks`` (``estimate.Track3D`` of train videos)."""
    runs = {"slide": [], "roll": []}
    for tr in tracks:
        kind = "roll" if attributes(tr.cid)[0] == "sphere" else "slide"
        runs[kind] += run_slowings(tr, frame_dt)
    if not runs["slide"]:
        raise ValueError("no sliding object moves freely long enough in these train videos to measure friction")
    return {
        "slide": float(np.median(runs["slide"])),
        "roll": float(np.median(runs["roll"])) if runs["roll"] else None,
        "runs": {k: len(v) for k, v in runs.items()},
    }


def fit_rolling(physics, sizes, roll, lo=0.0, hi=0.2, steps=12):
    """The smallest rolling friction in [lo, hi] whose simulated rolling sphere slows by ``roll`` units/s^2
    (bisection; ``hi`` when even that slows less)."""
    if roll is None:
        return physics.rolling_friction
    if decelerations(replace(physics, rolling_friction=hi), sizes)["sphere"] < roll:
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        if decelerations(replace(physics, rolling_friction=mid), sizes)["sphere"] < roll:
            lo = mid
        else:
            hi = mid
    return hi


def _measure_video(args):
    """(measured tracks of all of a video's frames, whether two objects meet after frame 10): one train video."""
    m, camera, sizes = args
    trs = measure(m, camera, sizes, supersample=SUPERSAMPLE)
    return trs, _objects_meet(trs, sizes, first=11)


def _measure_inputs(args):
    m, camera, sizes = args
    return measure_inputs(m[:11], camera, sizes)


def _predict_measured(args):
    m, camera, sizes, physics, inputs = args
    return predict(m[:11], camera, sizes, physics, measured=inputs)


def _iou21(preds, videos):
    return float(stacked_iou(per_video_confusion(np.stack(list(preds)), np.stack([m[21] for m in videos])).sum(0)))


def _score(videos, camera, sizes, physics, mapper=map):
    """Stacked frame-21 IoU of ``predict`` under ``physics`` on ``videos``: (masks (22, H, W), their frames 0-10
    measured by ``measure_inputs``) pairs; the positions do not depend on the physics, so they are measured once.
    ``mapper``: ``map`` or a process pool's (the same predictions in the same order)."""
    preds = mapper(_predict_measured, [(m, camera, sizes, physics, inputs) for m, inputs in videos])
    return _iou21(preds, [m for m, _ in videos])


def score_collisions(videos, camera, sizes, physics, *, workers=1):
    """The IoU ``fit_physics`` gives ``physics`` on the videos ``videos`` ((22, H, W) class ids; the fit's are
    ``[masks_list[i] for i in fit.collision_videos]``), each predicted from its frames 0-10 by ``predict`` alone
    (measured anew), in ``workers`` processes: to score other constants, the true ones of generated videos, say."""
    with process_map(workers) as mapper:
        preds = mapper(_predict_one, [(m, camera, sizes, physics) for m in videos])
        return _iou21(preds, videos)


def _predict_one(args):
    m, camera, sizes, physics = args
    return predict(m[:11], camera, sizes, physics)


def fit_physics(masks_list, camera, sizes, *, collision_videos=24, workers=1, progress=True):
    """``PhysicsFit`` from train videos' masks (each (22, H, W) class ids): friction from the measured slowing,
    rolling friction to match the spheres, then restitution and mass ratio on ``collision_videos`` videos whose
    objects meet after frame 10. Their frames 0-10 are measured once (``predict.measure_inputs``) for every
    candidate, and a candidate equal to one already scored is not scored again. ``workers`` > 1: the videos are
    measured and predicted in that many processes (the same fit)."""
    from tqdm.auto import tqdm

    t0 = time.time()
    with process_map(workers) as mapper:
        tracks, meeting = [], []  # meeting: indices of the collision videos
        jobs = [(m, camera, sizes) for m in masks_list]
        measured = tqdm(mapper(_measure_video, jobs), total=len(jobs), desc="measure train tracks", unit="video",
                        disable=not progress)  # fmt: skip
        for i, (trs, meet) in enumerate(measured):
            tracks += trs
            if meet and len(meeting) < collision_videos:
                meeting.append(i)
        # frames 0-10 of the collision videos measured once, for every candidate
        videos = [masks_list[i] for i in meeting]
        videos = list(zip(videos, mapper(_measure_inputs, [(m, camera, sizes) for m in videos])))
        slowing = measure_slowing(tracks)
        physics = replace(START, friction=slowing["slide"] / GRAVITY)
        physics = replace(physics, rolling_friction=fit_rolling(physics, sizes, slowing["roll"]))
        scores, scored = {}, {}  # scored: Physics -> IoU, so that no candidate is predicted twice
        grids = (("restitution", RESTITUTIONS), ("mass_ratio", MASS_RATIOS))
        for key, grid in grids * ROUNDS:
            best = None
            for value in tqdm(grid, desc=f"fit {key}", disable=not progress or not videos):
                if not videos:
                    break
                candidate = replace(physics, **{key: value})
                if candidate not in scored:
                    scored[candidate] = _score(videos, camera, sizes, candidate, mapper)
                score = scores[f"{key}={value}"] = scored[candidate]
                if best is None or score > best[1]:
                    best = (value, score)
            if best:
                physics = replace(physics, **{key: best[0]})
    return PhysicsFit(physics, slowing, scores, len(masks_list), round(time.time() - t0, 1), meeting)


def _objects_meet(tracks, sizes, first, dist_radii=2.6):
    """Whether two of a video's measured objects come within ``dist_radii`` radii in a frame >= ``first``."""
    where = [dict(zip(t.frames, t.positions)) for t in tracks]
    for a in range(len(where)):
        for b in range(a):
            common = [f for f in where[a] if f >= first and f in where[b]]
            if any(np.linalg.norm(where[a][f] - where[b][f]) < dist_radii * sizes.radius for f in common):
                return True
    return False
