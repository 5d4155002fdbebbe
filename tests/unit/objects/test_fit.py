"""Fitting the motion models' settings on hand-made train videos."""

import numpy as np
import pytest
from hand_made import H, W, square_video

from lib.objects import fit
from lib.objects.motion import MotionSettings


def test_size_model():
    # sizes growing linearly with y: s(y) = 1 + 0.01 y
    vids = np.zeros((2, 22, H, W), np.uint8)
    for t in range(22):
        y = 20 + 5 * t
        r = int(round(6 * (1 + 0.01 * y)))
        vids[:, t, y - r : y + r, 100 - r : 100 + r] = 12
    assert fit.fit_size_model(vids, min_area=1) == pytest.approx(0.01, abs=0.002)


def test_fit_k_and_decay_on_constant_velocity_videos():
    vids = np.stack([square_video(22, vx=2), square_video(22, vx=-1, x=150, vy=1)])
    r = fit.fit_k_and_decay(vids, ks=(2, 3), decays=(0.9, 1.0))
    assert r["decay"] == 1.0 and r["iou"] == pytest.approx(1.0) and r["cv_iou"] == pytest.approx(1.0)


def test_baseline_config_is_motion_settings():
    vids = np.stack([square_video(22, vx=2), square_video(22, vx=-1, x=150, vy=1)])
    s = fit.baseline_config(vids, n_videos=2)  # no perspective in these videos: the image-plane model
    assert isinstance(s, MotionSettings) and s.method == "physics" and s.size_b == 0.0 and s.F is None
    assert (s.restitution, s.radius_scale, s.mass_ratio) == (0.3, 1.15, 2.0)  # not fitted without a camera
    r = fit.baseline_config(vids, n_videos=2, baseline="friction")
    assert r.method == "friction" and r.decay == 1.0
    with pytest.raises(ValueError, match="baseline"):
        fit.baseline_config(vids, baseline="cv")
