"""The motion models and their settings on hand-made masks and tracks."""

import numpy as np
import pytest
from hand_made import H, W, square_video, synthetic_track

from lib.common.metrics import jaccard
from lib.objects import learned, motion, render, tracks
from lib.objects.motion import MotionSettings


def test_constant_velocity_render_is_the_shifted_square():
    m = square_video(22)
    tr = tracks.tracks(m[:11])
    preds = motion.predict_constant_velocity(tr, MotionSettings("cv", k=3))
    np.testing.assert_allclose(preds[5].disp, [0, 33])
    np.testing.assert_allclose(preds[5].centroid, [44.5, 24.5 + 63])
    out = render.render(m[:11], preds)
    np.testing.assert_array_equal(out, m[21])
    np.testing.assert_array_equal(motion.predict_video(m, MotionSettings("cv", k=2)), m[21])
    assert motion.predict_split(m[None], MotionSettings("cv", k=2), progress=False).shape == (1, H, W)
    assert jaccard(motion.predict_split(m[None], MotionSettings("copy"), progress=False), m[None, 21])[0] < 1


def test_friction_decay_formula():
    assert motion.geometric_sum(0.9, 3) == pytest.approx(0.9 + 0.81 + 0.729)
    assert motion.geometric_sum(1.0, 11) == 11 and motion.geometric_sum(0.5, 0) == 0
    # steps of 4 px/frame decaying by 0.9: with k=2 the last step is measured exactly
    x, pos = 50.0, {}
    for t in range(11):
        pos[t] = (80.0, x)
        x += 4 * 0.9 ** (t + 1)
    tr = synthetic_track(pos)
    last_step = pos[10][1] - pos[9][1]
    p = motion.predict_friction(tr, MotionSettings("friction", k=2, decay=0.9))[5]
    np.testing.assert_allclose(p.disp, [0, last_step * motion.geometric_sum(0.9, 11)], rtol=1e-9)
    x_true = pos[10][1] + sum(4 * 0.9 ** (t + 1) for t in range(10, 21))  # steps 10->11 .. 20->21
    assert p.centroid[1] == pytest.approx(x_true)
    # decay 1 is constant velocity
    np.testing.assert_allclose(
        motion.predict_friction(tr, MotionSettings("friction", k=2, decay=1.0))[5].disp,
        motion.predict_constant_velocity(tr, MotionSettings("cv", k=2))[5].disp,
    )


def test_constant_deceleration_stops():
    pos = {t: (80.0, 50 + 5 * t - 0.25 * t * t) for t in range(11)}  # speed 5 - 0.5 t (at integer t)
    tr = synthetic_track(pos)
    p = motion.predict_decel(tr, MotionSettings("decel", k=2, decel=0.5))[5]
    # speed at 10: 0 -> stopped; the positions' own future: x(t) until t = 10 (the vertex)
    assert p.disp[1] == pytest.approx(0.0, abs=1e-9)
    pos = {t: (80.0, 50 + 6 * t - 0.1 * t * t) for t in range(11)}  # speed 6 - 0.2 t
    stats = [{5: (100, *pos[t], (75, 40, 85, 200))} for t in range(11)]
    p = motion.predict_decel(tracks.tracks_from_stats(stats, (H, W)), MotionSettings("decel", k=3, decel=0.2))[5]
    assert p.disp[1] == pytest.approx((6 * 21 - 0.1 * 21**2) - (6 * 10 - 0.1 * 100))


def test_floor_camera_round_trip_and_straight_lines():
    cam = motion.FloorCamera(0.00725, W, H, F=300)
    pts = np.array([[10.0, 5.0], [80.0, 120.0], [150.0, 230.0]])
    np.testing.assert_allclose(cam.to_image(cam.to_floor(pts)), pts)
    # one horizontal pixel at the middle row is one floor unit
    a, b = cam.to_floor(np.array([[79.5, 100.0], [79.5, 101.0]]))
    assert abs(b[1] - a[1]) == pytest.approx(1.0)


def test_physics_collision_transfers_momentum():
    cam = motion.FloorCamera(0.005, W, H, F=300)
    # rubber cube (id 9) rolling right at 4 px/frame towards a rubber cube at rest (id 10), same row
    stats = []
    for t in range(11):
        stats.append(
            {
                9: (100, 100.0, 40.0 + 4 * t, (95, 35 + 4 * t, 105, 45 + 4 * t)),
                10: (100, 100.0, 120.0, (95, 115, 105, 125)),
            }
        )
    tr = tracks.tracks_from_stats(stats, (H, W))
    free = motion.predict_decel(tr, MotionSettings("floor", k=2, decel=0.0), camera=cam)
    elastic = MotionSettings(k=2, decel=0.0, restitution=1.0, mass_ratio=2.0, radius_scale=1.0)
    hit = motion.predict_physics(tr, elastic, cam)
    assert hit[9].extra["contacts"] == 1 and hit[10].extra["first_contact"] > 10
    # equal masses, elastic: the mover stops near the other's old place, the other goes on at its speed
    assert hit[9].centroid[1] < 120 and hit[10].disp[1] > 0
    assert hit[9].centroid[1] + hit[10].centroid[1] == pytest.approx(free[9].centroid[1] + 120, abs=1.5)
    # objects that never meet move as in the deceleration model on the floor
    far = tracks.tracks_from_stats([{9: s[9], 10: (100, 30.0, 200.0, (25, 195, 35, 205))} for s in stats], (H, W))
    slow = MotionSettings(k=2, decel=0.1)  # the default collisions: restitution 0.3, mass ratio 2, radius x 1.15
    a, b = motion.predict_physics(far, slow, cam), motion.predict_decel(far, slow, camera=cam)
    np.testing.assert_allclose(a[9].disp, b[9].disp, atol=0.2)
    np.testing.assert_allclose(a[10].disp, [0, 0], atol=1e-9)


def test_clipping_at_the_border_no_wraparound():
    m = np.zeros((22, H, W), np.uint8)
    for t in range(22):
        x = 190 + 2 * t
        m[t, 20:30, x : min(x + 10, W)] = 9  # inside until frame 10, partly out at frame 21
        x = 100 + 8 * t
        m[t, 60:70, min(x, W) : min(x + 10, W)] = 13  # inside at frame 10, far out at frame 21
        x = 160 + 8 * t
        m[t, 100:110, min(x, W) : min(x + 10, W)] = 11  # cut at frame 9, gone at frame 10: left
    tr = tracks.tracks(m[:11])
    assert not tr[9].touches_border.any() and tr[11].touches_border[9] and not tr[11].visible[10]
    out = motion.predict_video(m[:11], MotionSettings("cv", k=2))
    np.testing.assert_array_equal(out == 9, m[21] == 9)  # 8 of 10 columns left
    assert (out == 9).sum() == 80
    assert (out == 13).sum() == 0 and (out == 11).sum() == 0
    np.testing.assert_array_equal(out[:, :200], 0)  # nothing wrapped round to the left side


def test_settings_one_set_of_defaults_and_the_config_round_trip():
    s = MotionSettings()
    # the learned model's baseline defaults are the settings' own, in the config's key order
    assert learned.DEFAULT_CFG["baseline"] == s.method == "physics"
    assert {k: learned.DEFAULT_CFG[k] for k in s.to_config()} == s.to_config()
    assert list(learned.DEFAULT_CFG)[: len(s.to_config())] == list(s.to_config())
    fitted = MotionSettings("decel", k=3, decel=0.1, size_b=0.007, F=None, min_area=20, denoise=True)
    cfg = learned.config(fitted, d=16)
    assert MotionSettings.from_config(cfg) == fitted and cfg["d"] == 16 and cfg["heads"] == learned.DEFAULT_CFG["heads"]
    assert MotionSettings.from_config(cfg, method="physics").method == "physics"
    assert MotionSettings.from_config({"k": 4}) == MotionSettings(k=4)  # missing keys: the defaults
    assert s.for_inputs("unet", 30) == MotionSettings(min_area=30, denoise=True)
    assert s.for_inputs("true") == s
    with pytest.raises(ValueError, match="src"):
        s.for_inputs("labels")
    with pytest.raises(ValueError, match="method"):
        MotionSettings("teleport")


def test_floor_and_physics_without_perspective_are_decel():
    m = square_video(11, vx=4)
    tr = tracks.tracks(m)
    want = motion.predict_decel(tr, MotionSettings("decel", k=2, decel=0.2), last_input=10)[5].disp
    assert MotionSettings(size_b=0.0).camera() is None and MotionSettings(size_b=0.01, F=None).camera() is None
    for s in (MotionSettings("physics", decel=0.2), MotionSettings("floor", decel=0.2, size_b=0.01, F=None)):
        np.testing.assert_allclose(motion.predict_from_tracks(tr, s)[5].disp, want)
    with pytest.raises(ValueError, match="copy"):
        motion.predict_from_tracks(tr, MotionSettings("copy"))
