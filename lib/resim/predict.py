"""The re-simulating predictor: frame 21's mask drawn from the 3-D scene re-simulated from the masks of frames 0-10.

    mask21 = predict(masks[:11], camera, sizes, physics)     # (H, W) uint8 class ids
    preds = predict_split(masks, camera, sizes, physics, workers=2)   # (N, H, W): a split, in processes

Each object visible at frame 10 gets a 3-D state (``estimate.estimate``: floor position, cube yaw, velocity from
its track), refined by simulating the last input frames (``fit_states.refine``), the scene is simulated to frame
21 (``simulate.simulate``) and drawn (``draw.draw``, at ``supersample`` 2 like the videos' masks); where objects
meet in that simulation, the mask is the vote of several simulations with the meeting objects perturbed
(``vote.py``). Objects the inputs do not show at frame 10 (gone, hidden, not entered yet) are not drawn.
"""

from contextlib import contextmanager

import numpy as np

from lib.objects.tracks import LAST_INPUT, TARGET
from lib.resim.draw import draw, new_canvas
from lib.resim.estimate import estimate, measure
from lib.resim.fit_states import refine
from lib.resim.simulate import decelerations, new_world, simulate
from lib.resim.vote import VOTES, vote_prediction

SUPERSAMPLE = 2

_DECEL = {}  # (physics, sizes) -> simulate.decelerations


def measure_inputs(masks_in, camera, sizes, *, min_area=20, denoise=True, hidden=True):
    """The measured floor tracks of frames 0-10 (``estimate.measure``): what ``predict``'s ``measured`` takes."""
    return measure(
        np.asarray(masks_in)[: LAST_INPUT + 1], camera, sizes, min_area=min_area, denoise=denoise, last=LAST_INPUT,
        supersample=SUPERSAMPLE, hidden=hidden,
    )  # fmt: skip


def decelerations_of(physics, sizes):
    """``simulate.decelerations`` of ``physics`` and ``sizes``, computed once per process."""
    key = (physics, sizes)
    if key not in _DECEL:
        _DECEL[key] = decelerations(physics, sizes)
    return _DECEL[key]


def estimate_inputs(masks_in, camera, sizes, physics, *, min_area=20, denoise=True, measured=None):
    """``estimate.Estimate`` of the objects at frame 10 of ``masks_in`` (>= 11, H, W; frames 0-10 are read), before
    refinement: what ``scene_at_last_input`` refines and notebook 06's figure of a fitted scene draws."""
    return estimate(
        np.asarray(masks_in)[: LAST_INPUT + 1], camera, sizes, physics.frame_dt, decelerations_of(physics, sizes),
        min_area=min_area, denoise=denoise, supersample=SUPERSAMPLE, measured=measured,
    )  # fmt: skip


def scene_at_last_input(masks_in, camera, sizes, physics, *, min_area=20, denoise=True, measured=None):
    """(class ids (n,), states (n, 13)) of the objects at frame 10, estimated and refined. ``min_area``,
    ``denoise``: how the input masks are read (``estimate.estimate``; U-Net labels: noise under ``min_area`` px
    dropped, each object from its largest blob); ``measured``: ``measure_inputs``' result, when already known (it
    does not depend on the physics)."""
    est = estimate_inputs(masks_in, camera, sizes, physics, min_area=min_area, denoise=denoise, measured=measured)
    return est.class_ids, refine(est, physics, sizes, decelerations_of(physics, sizes))


def draw_scene(class_ids, states, camera, sizes, shape):
    """(H, W) uint8 mask of the objects ``class_ids`` in ``states`` drawn like the videos' masks (``SUPERSAMPLE``);
    all zero, of ``shape`` (H, W), when there are none. Drawn on a new canvas (``draw.new_canvas``): the same mask
    whatever was drawn before."""
    if not len(class_ids):
        return np.zeros(shape, np.uint8)
    new_canvas()
    return draw(class_ids, states, camera, sizes, supersample=SUPERSAMPLE)


def simulate_inputs(
    masks_in, camera, sizes, physics, frames=TARGET - LAST_INPUT, *, min_area=20, denoise=True, measured=None,
    touching=False,
):  # fmt: skip
    """(class ids (n,), states (frames + 1, n, 13), touched (n,) bool): the objects of frame 10 estimated from
    ``masks_in`` (>= 11, H, W; frames 0-10 are read), simulated to frame 10 + ``frames``, and with ``touching``
    whether each touches another object on the way (else all False: reading contacts costs time). ``measured``:
    ``measure_inputs``' result for these masks, when already known."""
    masks_in = np.asarray(masks_in)[: LAST_INPUT + 1]
    cids, states = scene_at_last_input(
        masks_in, camera, sizes, physics, min_area=min_area, denoise=denoise, measured=measured
    )
    touched = np.zeros(len(cids), bool)
    if not len(cids):
        return cids, np.zeros((frames + 1, 0, states.shape[-1])), touched
    new_world()  # from a new client, as anyone who simulates these states gets them
    return cids, simulate(cids, states, frames, physics, sizes, touched if touching else None), touched


def predict(
    masks_in, camera, sizes, physics, frames=TARGET - LAST_INPUT, *, min_area=20, denoise=True, measured=None,
    touching=False, votes=VOTES,
):  # fmt: skip
    """(H, W) uint8 class ids of frame 10 + ``frames`` (21) re-simulated from ``masks_in`` (>= 11, H, W; frames
    0-10 are read): ``simulate_inputs``' last state, drawn; where objects touch in the simulation, the ``votes``
    drawings' vote (``vote.vote_prediction``; 1: the one drawing). ``touching``: also return the class ids of the
    objects that touch another one in the simulation (``combine.combine`` takes them)."""
    cids, sim, touched = simulate_inputs(
        masks_in, camera, sizes, physics, frames, min_area=min_area, denoise=denoise, measured=measured,
        touching=touching or votes > 1,
    )  # fmt: skip
    mask = draw_prediction(cids, sim, touched, camera, sizes, physics, np.shape(masks_in)[1:], votes)
    return (mask, cids[touched]) if touching else mask


def draw_prediction(class_ids, sim, touched, camera, sizes, physics, shape, votes=VOTES):
    """(H, W) uint8: the last state of ``sim`` (``simulate_inputs``' states) drawn (``draw_scene``), and where
    objects ``touched`` another one the vote of ``votes`` drawings (``vote.vote_prediction``)."""
    mask = draw_scene(class_ids, sim[-1], camera, sizes, shape)
    return vote_prediction(class_ids, sim[0], touched, mask, camera, sizes, physics, len(sim) - 1, SUPERSAMPLE, votes)


@contextmanager
def process_map(workers, chunksize=1):
    """``map``, or with ``workers`` > 1 the ordered ``imap`` of a pool of that many spawned processes (each its own
    simulator): the same results in the same order."""
    if workers <= 1:
        yield map
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        yield lambda fn, jobs: pool.imap(fn, jobs, chunksize=chunksize)


def _predict_one(args):
    masks_in, camera, sizes, physics, kwargs = args
    return predict(masks_in, camera, sizes, physics, **kwargs)


def predict_split(
    masks, camera, sizes, physics, *, min_area=20, denoise=True, workers=1, progress=True, touching=False,
    votes=VOTES,
):  # fmt: skip
    """(N, H, W) uint8 frame-21 masks of the videos ``masks`` (N, >= 11, H, W) class ids, in ``workers``
    processes (each its own simulator and drawing client, started afresh for each video: the same masks as one
    process gives, in any order). ``touching``: also return, per video, the class ids of the objects that touch
    another one in the simulation (``predict``); ``votes``: ``predict``'s."""
    from tqdm.auto import tqdm

    kw = {"min_area": min_area, "denoise": denoise, "touching": touching, "votes": votes}
    jobs = ((np.asarray(m[: LAST_INPUT + 1]), camera, sizes, physics, kw) for m in masks)
    bar = {"total": len(masks), "desc": "re-simulate", "unit": "video", "disable": not progress}
    with process_map(workers if len(masks) >= 2 else 1, chunksize=4) as mapper:
        out = list(tqdm(mapper(_predict_one, jobs), **bar))
    masks_out = [o[0] for o in out] if touching else out
    preds = np.stack(masks_out) if out else np.zeros((0, *np.shape(masks)[2:]), np.uint8)
    return (preds, [t for _, t in out]) if touching else preds
