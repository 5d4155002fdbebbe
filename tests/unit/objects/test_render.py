"""The renderer on hand-made masks: far-to-near order, scaling, clipping."""

import numpy as np
from hand_made import H, W

from lib.objects import motion, render, tracks
from lib.objects.motion import MotionSettings

CV3 = MotionSettings("cv", k=3)


def test_z_order_lower_object_wins():
    m = np.zeros((11, H, W), np.uint8)
    m[:, 40:60, 40:60] = 30  # upper (farther)
    m[:, 50:70, 50:70] = 2  # lower (nearer), drawn over it
    m[:, 50:60, 50:60] = 2
    out = motion.predict_video(m, CV3)
    np.testing.assert_array_equal(out, m[10])
    # the same when the ids are swapped (order is by position, not id)
    m2 = np.where(m == 30, 2, np.where(m == 2, 30, 0)).astype(np.uint8)
    out2 = render.render(m2, motion.predict_constant_velocity(tracks.tracks(m2), CV3))
    assert (out2[55, 55]) == 30 and out2[45, 45] == 2
    # overlap created by the motion: the object lower in the image ends on top
    m3 = np.zeros((11, H, W), np.uint8)
    for t in range(11):
        m3[t, 40:52, 100 + t : 112 + t] = 7  # upper, moving right
        m3[t, 48:60, 140 - t : 152 - t] = 3  # lower, moving left
    out3 = motion.predict_video(m3, MotionSettings("cv", k=2))
    assert (out3 == 3).sum() == 144 and 0 < (out3 == 7).sum() < 144


def test_scaled_render():
    m = np.zeros((11, H, W), np.uint8)
    m[:, 40:50, 40:50] = 3
    preds = motion.predict_constant_velocity(tracks.tracks(m), CV3)
    preds[3].scale = 2.0
    out = render.render(m, preds)
    assert 350 <= (out == 3).sum() <= 450  # 4x the area
    ys, xs = np.nonzero(out == 3)
    assert abs(ys.mean() - 44.5) < 1 and abs(xs.mean() - 44.5) < 1
    # an object predicted near the horizon (huge scale): only the frame is covered, no huge grid is built
    preds[3].scale, preds[3].disp = 5000.0, np.array([0.0, 0.0])
    assert (render.render(m, preds) == 3).all()
    preds[3].disp = np.array([-1e6, 3e6])  # far outside the frame
    assert not (render.render(m, preds) == 3).any()
    preds[3].scale = float("nan")
    assert not (render.render(m, preds) == 3).any()


def test_render_layers_are_what_render_draws_far_to_near():
    m = np.zeros((11, H, W), np.uint8)
    m[:, 60:80, 60:80] = 4  # lower: drawn last
    m[:, 20:30, 100:110] = 9
    preds = motion.predict_constant_velocity(tracks.tracks(m), CV3)
    layers = render.render_layers(m, preds)
    assert [la["cid"] for la in layers] == [9, 4] and layers[0]["bottom"] < layers[1]["bottom"]
    drawn = np.zeros((H, W), np.uint8)
    for la in layers:
        drawn[la["placed"]] = la["cid"]
    np.testing.assert_array_equal(drawn, render.render(m, preds))
