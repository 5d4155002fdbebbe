"""The re-simulating predictor end to end on a hand-made scene without collisions: frame 21 predicted from the drawn
frames 0-10 matches the drawn frame 21 of the simulation; an empty input predicts an empty frame."""

import numpy as np
import pytest

from lib.common.classes import class_id
from lib.resim.bodies import Sizes, rest_state
from lib.resim.camera import Camera
from lib.resim.draw import draw
from lib.resim.estimate import yaw_quaternion
from lib.resim.predict import predict, predict_split
from lib.resim.simulate import Physics, simulate

CAM = Camera(fov=32, elev=38, dist=10, target_y=0.5)
SIZES = Sizes(0.5)
PHYS = Physics(friction=0.08, rolling_friction=0.04, restitution=0.8, mass_ratio=2.0, frame_dt=0.1, substeps=30)
RESTING = class_id("cube", "rubber", "red")
ROLLING = class_id("sphere", "metal", "blue")
SLIDING = class_id("cylinder", "rubber", "green")
CIDS = [RESTING, ROLLING, SLIDING]


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def video():
    """(masks (22, H, W) drawn like the videos, prediction of frame 21 from frames 0-10)."""
    s0 = np.stack(
        [
            rest_state((-1.5, 3.0), "cube", SIZES),
            rest_state((-2.5, -1.0), "sphere", SIZES, (2.5, 0.3)),
            rest_state((2.5, 1.0), "cylinder", SIZES, (-1.0, 1.5)),
        ]
    )
    s0[0, 3:7] = yaw_quaternion(np.radians(10.0))
    s0[1, 10:13] = [-0.3 / SIZES.radius, 2.5 / SIZES.radius, 0.0]  # rolling without slipping
    sim = simulate(CIDS, s0, 21, PHYS, SIZES)
    masks = np.stack([draw(CIDS, sim[f], CAM, SIZES, supersample=2) for f in range(22)])
    return masks, predict(masks[:11], CAM, SIZES, PHYS)


def test_predict_matches_the_simulated_frame_21(video):
    """Each object's IoU with the drawn frame 21 is above 0.9 (0.93-0.96; the moving ones travel 1.6 and 0.7 units
    after frame 10: frame 10 itself, kept still, scores 0.27 on the foreground)."""
    masks, pred = video
    assert pred.shape == masks[21].shape and pred.dtype == np.uint8
    assert set(np.unique(pred).tolist()) == {0, *CIDS}
    for cid in CIDS:
        assert iou(pred == cid, masks[21] == cid) > 0.9, cid
    assert iou(pred > 0, masks[21] > 0) > 0.9
    assert iou(masks[10] > 0, masks[21] > 0) < 0.5  # the motion matters


def test_predict_on_an_empty_input():
    pred = predict(np.zeros((11, 160, 240), np.uint8), CAM, SIZES, PHYS)
    assert pred.shape == (160, 240) and pred.dtype == np.uint8 and not pred.any()
    pred = predict(np.zeros((11, 40, 60), np.uint8), CAM, SIZES, PHYS)
    assert pred.shape == (40, 60) and not pred.any()


def test_touching_names_the_objects_that_meet_in_the_simulation():
    """A sphere rolling at a resting cube after frame 10 touches it in the simulation; a far cylinder does not.
    The split version (2 processes) gives the same masks and touched ids as one call per video."""
    hit = class_id("sphere", "rubber", "yellow")
    s0 = np.stack(
        [
            rest_state((0.0, 2.0), "cube", SIZES),
            rest_state((-3.5, 2.0), "sphere", SIZES, (2.5, 0.0)),
            rest_state((2.5, -1.0), "cylinder", SIZES),
        ]
    )
    s0[1, 10:13] = [0.0, 2.5 / SIZES.radius, 0.0]
    cids = [RESTING, hit, SLIDING]
    sim = simulate(cids, s0, 10, PHYS, SIZES)
    masks = np.stack([draw(cids, sim[f], CAM, SIZES, supersample=2) for f in range(11)])
    mask, touched = predict(masks, CAM, SIZES, PHYS, touching=True)
    assert sorted(touched.tolist()) == sorted([RESTING, hit])
    preds, touched_split = predict_split(np.stack([masks, masks]), CAM, SIZES, PHYS, workers=2, touching=True)
    np.testing.assert_array_equal(preds[1], mask)
    assert [sorted(t.tolist()) for t in touched_split] == [sorted([RESTING, hit])] * 2


def test_predict_simulates_and_draws_each_video_on_new_clients(video, monkeypatch):
    """The final simulation starts from a new simulation client and the mask is drawn on a new drawing client (as
    the measurement and the refinement start theirs), so that a video's mask depends on that video alone."""
    from lib.resim import predict as predict_module

    masks, pred = video
    calls = []
    monkeypatch.setattr(predict_module, "new_world", lambda: calls.append("world"))
    monkeypatch.setattr(predict_module, "new_canvas", lambda: calls.append("canvas"))
    np.testing.assert_array_equal(predict(masks[:11], CAM, SIZES, PHYS), pred)
    assert calls == ["world", "canvas"]
