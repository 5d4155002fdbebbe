"""Frame 21 as a vote over simulations whose colliding objects start a little apart from the estimate.

Where objects meet, the simulated outcome turns on differences far below what the masks can measure: the fitted
friction moved by 0.08% (0.07749 -> 0.07755, from measuring the train videos a little differently) changed val IoU
by 0.003 and the contact cost by 0.002 (U-Net labels, 200 videos, ad hoc). So the objects that touch another one in
the simulation from frame 10 (``simulate(..., touched)``) are started ``VOTES - 1`` more times with their frame-10
velocity and floor position moved by Gaussian noise (``VELOCITY_NOISE``, ``POSITION_NOISE``: about the refined
velocities' error and the positions' in the last frames), and each pixel of the prediction takes the class id that
most of the drawings give it (``vote``). Objects that touch nothing are drawn where the one simulation puts them.

    mask = vote_prediction(class_ids, states10, touched, first, camera, sizes, physics, 11, 2)
    # first: the mask drawn from states10 simulated 11 frames; touched: simulate's flags of that run; 2: supersample
"""

import numpy as np

from lib.common.classes import attributes
from lib.resim import bodies
from lib.resim.draw import draw, new_canvas
from lib.resim.simulate import new_world, simulate

VOTES = 8  # simulations a video whose objects meet (the estimate's own and 7 perturbed)
VELOCITY_NOISE = 0.05  # units/s: the standard deviation of each velocity component of a touching object
POSITION_NOISE = 0.01  # units: the same for its floor position


def perturbed(class_ids, states, moved, sizes, rng, velocity_noise=VELOCITY_NOISE, position_noise=POSITION_NOISE):
    """A copy of ``states`` (n, 13) with the objects ``moved`` (n,) bool given velocity and position noise; a
    sphere's spin follows its new velocity (rolling without slipping)."""
    out = np.array(states, float, copy=True)
    n = len(out)
    out[:, 7:9] += rng.normal(0.0, velocity_noise, (n, 2)) * moved[:, None]
    out[:, 0:2] += rng.normal(0.0, position_noise, (n, 2)) * moved[:, None]
    for j, cid in enumerate(class_ids):
        if moved[j] and attributes(cid)[0] == "sphere":
            out[j, 10:13] = bodies.rolling_spin(out[j, 7:9], sizes)
    return out


def vote(masks):
    """(H, W) uint8: each pixel's most common class id (background included) over ``masks`` (K, H, W); a tie goes
    to the class of the first mask."""
    masks = np.asarray(masks)
    classes = np.unique(masks)
    counts = np.stack([(masks == c).sum(0) + 0.5 * (masks[0] == c) for c in classes])
    return classes[np.argmax(counts, 0)].astype(np.uint8)


def vote_prediction(class_ids, states10, touched, first, camera, sizes, physics, frames, supersample, votes=VOTES,
                    seed=0):  # fmt: skip
    """(H, W) uint8: ``first`` (the mask drawn from ``states10`` simulated ``frames`` frames) where no object
    ``touched`` another one, else the ``vote`` of it and ``votes - 1`` drawings of the touching objects perturbed
    (``perturbed``, noise from ``seed``: the same mask for the same inputs, in any order or process)."""
    touched = np.asarray(touched, bool)
    if votes <= 1 or not touched.any():
        return first
    rng = np.random.default_rng(seed)
    drawn = [first]
    for _ in range(votes - 1):
        new_world()
        sim = simulate(class_ids, perturbed(class_ids, states10, touched, sizes, rng), frames, physics, sizes)
        new_canvas()
        drawn.append(draw(class_ids, sim[-1], camera, sizes, supersample=supersample))
    return vote(drawn)
