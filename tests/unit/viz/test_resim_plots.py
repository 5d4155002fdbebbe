"""The re-simulating predictor's figures (lib/viz/resim.py) on a hand-made camera and scene."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lib.common.classes import class_id
from lib.resim.bodies import Sizes
from lib.resim.camera import Camera
from lib.resim.estimate import Estimate
from lib.viz import resim as resim_viz

CAM = Camera(fov=32.0, elev=38.0, dist=10.0, target_y=0.0)
SPHERE = class_id("sphere", "rubber", "green")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_the_floor_grid_spans_what_the_camera_sees():
    x0, x1, y0, y1 = resim_viz.floor_extent(CAM)
    assert x0 < 0 < x1 and y0 < 0 < y1 and all(float(v).is_integer() for v in (x0, x1, y0, y1))
    assert resim_viz.in_front(CAM, [[0, 0, 0], [0, -20, 0]]).tolist() == [True, False]  # the eye is at y = -7.9
    fig = resim_viz.camera_grid_figure(np.zeros((CAM.height, CAM.width, 3), np.uint8), CAM)
    assert len(fig.axes[0].lines) == (x1 - x0 + 1) + (y1 - y0 + 1)


def test_a_measured_object_is_drawn_where_its_frame_measured_it():
    est = Estimate(np.array([SPHERE]), np.zeros((1, 13)), frames=[[0, 3]], positions=[np.array([[0.0, 0.0], [1.0, 2.0]])],
                   yaws=[np.zeros(2)])  # fmt: skip
    scene, centres = resim_viz.measured_scene(est, CAM, Sizes(0.5), 3)
    x, y = CAM.project([[1.0, 2.0, 0.5]])[0]
    assert scene[int(y), int(x)] == SPHERE and set(np.unique(scene)) == {0, SPHERE}
    np.testing.assert_allclose(centres, [[x, y]])
    empty, none = resim_viz.measured_scene(est, CAM, Sizes(0.5), 5)  # not measured in frame 5
    assert not empty.any() and none.shape == (0, 2)
    frames = np.zeros((2, CAM.height, CAM.width, 3), np.uint8)
    fig = resim_viz.fitted_scene_figure(frames, [scene, empty], [centres, none], [3, 5], "a sphere")
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "t=5"
