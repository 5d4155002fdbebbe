"""Frame 21 as a vote over perturbed simulations (lib/resim/vote.py): the per-pixel vote, which objects are
perturbed, and ``vote_prediction`` on a hand-made scene where two spheres meet head on and a cube rests apart."""

import numpy as np

from lib.common.classes import class_id
from lib.resim.bodies import Sizes, rest_state
from lib.resim.camera import Camera
from lib.resim.draw import draw
from lib.resim.simulate import Physics, simulate
from lib.resim.vote import perturbed, vote, vote_prediction

CAM = Camera(fov=32, elev=38, dist=10, target_y=0.5)
SIZES = Sizes(0.5)
PHYS = Physics(friction=0.08, rolling_friction=0.04, restitution=0.8, mass_ratio=2.0, frame_dt=0.1, substeps=30)
LEFT, RIGHT = class_id("sphere", "metal", "blue"), class_id("sphere", "rubber", "red")
APART = class_id("cube", "rubber", "green")
CIDS = np.array([LEFT, RIGHT, APART])


def test_vote_takes_each_pixel_s_most_common_class():
    a = np.array([[1, 1, 0, 2]], np.uint8)
    b = np.array([[1, 0, 0, 3]], np.uint8)
    c = np.array([[2, 0, 5, 3]], np.uint8)
    assert vote([a, b, c]).tolist() == [[1, 0, 0, 3]]
    assert vote([a, b]).tolist() == [[1, 1, 0, 2]]  # ties: the first mask's class
    assert vote([c]).tolist() == c.tolist() and vote([a, b]).dtype == np.uint8


def scene():
    """Two spheres rolling at each other (they meet within a second), a cube at rest far from them."""
    s = np.stack(
        [
            rest_state((-1.0, 1.0), "sphere", SIZES, (1.5, 0.0)),
            rest_state((1.0, 1.0), "sphere", SIZES, (-1.5, 0.0)),
            rest_state((0.0, -2.5), "cube", SIZES),
        ]
    )
    for j in range(2):
        s[j, 10:13] = [0.0, s[j, 7] / SIZES.radius, 0.0]
    return s


def test_perturbed_moves_only_the_chosen_objects():
    s = scene()
    moved = np.array([True, False, False])
    p = perturbed(CIDS, s, moved, SIZES, np.random.default_rng(0))
    assert not np.allclose(p[0, 7:9], s[0, 7:9]) and not np.allclose(p[0, :2], s[0, :2])
    assert np.array_equal(p[1:], s[1:])
    assert np.allclose(p[0, 10:13], [-p[0, 8] / SIZES.radius, p[0, 7] / SIZES.radius, 0.0])  # still rolling
    assert abs(p[0, 2] - s[0, 2]) == 0  # on the floor as before


def predicted(votes, seed=0):
    s = scene()
    touched = np.zeros(3, bool)
    sim = simulate(CIDS, s, 11, PHYS, SIZES, touched)
    first = draw(CIDS, sim[-1], CAM, SIZES, supersample=2)
    mask = vote_prediction(CIDS, s, touched, first, CAM, SIZES, PHYS, 11, 2, votes=votes, seed=seed)
    return touched, first, mask


def test_vote_prediction_perturbs_the_objects_that_meet_and_keeps_the_others():
    touched, first, mask = predicted(8)
    assert touched.tolist() == [True, True, False]
    assert mask.shape == first.shape and mask.dtype == np.uint8
    assert np.array_equal(mask == APART, first == APART)  # the cube that touches nothing: its one drawing
    assert not np.array_equal(mask, first)  # the spheres: a vote over simulations that differ
    for cid in (LEFT, RIGHT):  # each sphere where most of its simulations put it, about its size
        overlap = ((mask == cid) & (first == cid)).sum() / (first == cid).sum()
        assert overlap > 0.7 and 0.7 < (mask == cid).sum() / (first == cid).sum() < 1.3, cid


def test_vote_prediction_is_the_same_for_the_same_inputs_and_one_vote_is_the_drawing():
    assert np.array_equal(predicted(8)[2], predicted(8)[2])
    assert not np.array_equal(predicted(8)[2], predicted(8, seed=1)[2])
    _, first, mask = predicted(1)
    assert np.array_equal(mask, first)
