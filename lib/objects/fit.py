"""Fitting the motion models' settings on TRUE train masks, by grid search on the frame-22 IoU.

    size_b = fit_size_model(train.masks)                      # perspective: s(y) = 1 + b*y
    fr = fit_k_and_decay(train.masks, n_videos=100)           # "friction" (and "cv": decay 1)
    physics = baseline_config(train.masks, n_videos=100)      # MotionSettings: size model, floor, collisions

Each grid search renders every setting on ``n_videos`` train videos (a seeded subset) and keeps the best
stacked frame-22 IoU (``lib.common.metrics``). ``baseline_config`` chains them into the settings of the
strongest model ("physics": ``fit_floor`` then ``fit_physics``), the learned model's baseline.
"""

from dataclasses import replace

import numpy as np
from tqdm.auto import tqdm

from lib.common.metrics import confusion, iou_from_confusion
from lib.objects import motion, render, tracks
from lib.objects.motion import MotionSettings
from lib.objects.tracks import LAST_INPUT, TARGET


def fit_size_model(masks, n_videos=100, min_area=30, seed=0):
    """Slope b of the size model s(y) = 1 + b*y from train masks (N, T, H, W): over pairs of uncut frames
    of one object, log sqrt(area ratio) ~ log(s(y1) / s(y0)); b by a 1-D grid search (robust L1)."""
    idx = _subset(len(masks), n_videos, seed)
    pairs = []
    for i in idx:
        for tr in tracks.tracks(np.asarray(masks[i]), min_area).values():
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
    err = [np.abs(np.log(tracks.size_scale(p[:, 1], g) / tracks.size_scale(p[:, 0], g)) - p[:, 2]).mean() for g in grid]
    return float(grid[int(np.argmin(err))])


def _subset(n, n_videos, seed):
    if n_videos is None or n_videos >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:n_videos])


def _inputs_and_tracks(train_masks, i, min_area, area_ratio, size_b):
    m = np.asarray(train_masks[i])
    return m, tracks.tracks(m[: LAST_INPUT + 1], min_area, area_ratio, size_b)


def fit_k_and_decay(
    train_masks,
    *,
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
    settings = {(k, d): MotionSettings("friction", k=k, decay=d, size_b=size_b) for k in ks for d in decays}
    cms = {key: 0 for key in settings}
    for i in tqdm(idx, desc="fit k/decay", disable=not progress, unit="video"):
        m, tr = _inputs_and_tracks(train_masks, i, min_area, area_ratio, size_b)
        for key, s in settings.items():
            preds = motion.predict_friction(tr, s, target=TARGET, last_input=LAST_INPUT)
            cms[key] = cms[key] + confusion(render.render(m[: LAST_INPUT + 1], preds), m[TARGET])
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
    *,
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
    cams = {F: (None if F is None else motion.FloorCamera(size_b, w, h, F)) for F in Fs}
    settings = {(k, a, F): MotionSettings("decel", k=k, decel=a, size_b=size_b) for k in ks for a in decels for F in Fs}
    cms = {key: 0 for key in settings}
    for i in tqdm(idx, desc="fit decel", disable=not progress, unit="video"):
        m, tr = _inputs_and_tracks(train_masks, i, min_area, area_ratio, size_b)
        for (k, a, F), s in settings.items():
            preds = motion.predict_decel(tr, s, cams[F], target=TARGET, last_input=LAST_INPUT)
            cms[(k, a, F)] = cms[(k, a, F)] + confusion(render.render(m[: LAST_INPUT + 1], preds), m[TARGET])
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
    *,
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
    r = fit_decel(
        train_masks,
        ks=ks,
        decels=decels,
        Fs=Fs,
        n_videos=n_videos,
        size_b=size_b,
        seed=seed,
        min_area=min_area,
        area_ratio=area_ratio,
        progress=progress,
    )
    r["size_b"] = size_b
    return r


def fit_physics(
    train_masks,
    floor,
    *,
    restitutions=(0.2, 0.3, 0.45),
    radius_scales=(1.0, 1.15, 1.3),
    mass_ratios=(1.0, 2.0),
    n_videos=100,
    seed=0,
    progress=False,
):
    """Grid search of the collision parameters of the "physics" predictor on TRUE train masks, its motion
    settings ``floor`` (k, decel, F, size_b > 0, and how tracks are read: a ``MotionSettings`` from ``fit_floor``).
    Returns {"restitution", "radius_scale", "mass_ratio", "iou", "grid"}."""
    cam = motion.FloorCamera(floor.size_b, train_masks.shape[-1], train_masks.shape[-2], floor.F)
    idx = _subset(len(train_masks), n_videos, seed)
    settings = {
        (e, r, mr): replace(floor, method="physics", restitution=e, radius_scale=r, mass_ratio=mr)
        for e in restitutions
        for r in radius_scales
        for mr in mass_ratios
    }
    cms = {key: 0 for key in settings}
    for i in tqdm(idx, desc="fit physics", disable=not progress, unit="video"):
        m, tr = _inputs_and_tracks(train_masks, i, floor.min_area, floor.area_ratio, floor.size_b)
        for key, s in settings.items():
            preds = motion.predict_physics(tr, s, cam, target=TARGET, last_input=LAST_INPUT)
            cms[key] = cms[key] + confusion(render.render(m[: LAST_INPUT + 1], preds), m[TARGET])
    grid = {key: iou_from_confusion(cm)[0] for key, cm in cms.items()}
    e, r, mr = max(grid, key=grid.get)
    return {
        "restitution": float(e),
        "radius_scale": float(r),
        "mass_ratio": float(mr),
        "iou": grid[(e, r, mr)],
        "grid": {f"{a},{b},{c}": v for (a, b, c), v in grid.items()},
    }


BASELINES = ("physics", "floor", "decel", "friction")


def baseline_config(train_masks, *, n_videos=100, baseline="physics", seed=0):
    """The ``MotionSettings`` of a motion model fitted on TRUE train masks (N, 22, H, W): size model slope,
    then the model's parameters by grid search on the frame-22 IoU (``fit_floor`` [+ ``fit_physics``] /
    ``fit_decel`` / ``fit_k_and_decay``); the rest keep their defaults. ``baseline``: "physics" (floor-plane
    deceleration + collisions, the strongest), "floor" (floor-plane deceleration), "decel" (in image px) or
    "friction" (geometric). The learned model's config holds them (``learned.config``)."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be 'physics', 'floor', 'decel' or 'friction', not {baseline!r}")
    s = MotionSettings(baseline, size_b=fit_size_model(train_masks, n_videos, seed=seed))
    if baseline in ("floor", "physics"):
        r = fit_floor(train_masks, n_videos=n_videos, size_b=s.size_b, seed=seed)
        s = replace(s, k=r["k"], decel=r["decel"], F=r["F"])
        if baseline == "physics" and r["F"]:
            r = fit_physics(train_masks, s, n_videos=n_videos, seed=seed)
            s = replace(s, restitution=r["restitution"], radius_scale=r["radius_scale"], mass_ratio=r["mass_ratio"])
    elif baseline == "friction":
        r = fit_k_and_decay(train_masks, n_videos=n_videos, size_b=s.size_b, seed=seed)
        s = replace(s, k=r["k"], decay=r["decay"])
    else:
        r = fit_decel(train_masks, n_videos=n_videos, size_b=s.size_b, seed=seed)
        s = replace(s, k=r["k"], decel=r["decel"])
    return s
