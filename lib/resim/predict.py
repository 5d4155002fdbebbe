"""The re-simulating predictor: frame 21's mask drawn from the 3-D scene re-simulated from the masks of frames 0-10.

    mask21 = predict(masks[:11], camera, sizes, physics)     # (H, W) uint8 class ids

Each object visible at frame 10 gets a 3-D state (``estimate.estimate``: floor position, cube yaw, velocity from
its track), refined by simulating the last input frames (``fit_states.refine``), the scene is simulated to frame
21 (``simulate.simulate``) and drawn (``draw.draw``, at ``supersample`` 2 like the videos' masks). Objects the
inputs do not show at frame 10 (gone, hidden, not entered yet) are not drawn.
"""

import numpy as np

from lib.objects.tracks import LAST_INPUT, TARGET
from lib.resim.draw import draw
from lib.resim.estimate import estimate
from lib.resim.fit_states import refine
from lib.resim.simulate import decelerations, simulate

SUPERSAMPLE = 2

_DECEL = {}  # (physics, sizes) -> simulate.decelerations


def scene_at_last_input(masks_in, camera, sizes, physics):
    """(class ids (n,), states (n, 13)) of the objects at frame 10, estimated and refined."""
    key = (physics, sizes)
    if key not in _DECEL:
        _DECEL[key] = decelerations(physics, sizes)
    est = estimate(masks_in, camera, sizes, physics.frame_dt, _DECEL[key], supersample=SUPERSAMPLE)
    return est.class_ids, refine(est, physics, sizes, _DECEL[key])


def predict(masks_in, camera, sizes, physics, frames=TARGET - LAST_INPUT):
    """(H, W) uint8 class ids of frame 10 + ``frames`` (21) re-simulated from ``masks_in`` (11, H, W)."""
    cids, states = scene_at_last_input(np.asarray(masks_in), camera, sizes, physics)
    if not len(cids):
        return np.zeros(np.shape(masks_in)[1:], np.uint8)
    sim = simulate(cids, states, frames, physics, sizes)
    return draw(cids, sim[-1], camera, sizes, supersample=SUPERSAMPLE)
