"""Object tracks, non-learned motion models and rendering on hand-made masks."""

import numpy as np
import pytest

from lib.common.metrics import jaccard
from lib.objects import tracks as O

H, W = 160, 240


def square_video(t_len=11, cid=5, y=40, x=20, vx=3, vy=0, size=10):
    m = np.zeros((t_len, H, W), np.uint8)
    for t in range(t_len):
        y0, x0 = y + vy * t, x + vx * t
        m[t, max(y0, 0) : max(y0 + size, 0), max(x0, 0) : max(x0 + size, 0)] = cid
    return m


def synthetic_track(positions, cid=5, area=100, t_len=11):
    """A Track with exact float centroids (a 10x10 object far from the border) at the given frames."""
    stats = [{} for _ in range(t_len)]
    for t, (y, x) in positions.items():
        stats[t][cid] = (area, y, x, (int(y) - 5, int(x) - 5, int(y) + 5, int(x) + 5))
    return O.tracks_from_stats(stats, (H, W))


def test_tracks_of_a_moving_square():
    tr = O.tracks(square_video())
    assert list(tr) == [5]
    t = tr[5]
    assert t.first == 0 and t.last == 10 and t.visible.all() and t.clean.all() and not t.touches_border.any()
    np.testing.assert_allclose(t.centroid[:, 0], 44.5)
    np.testing.assert_allclose(t.centroid[:, 1], 24.5 + 3 * np.arange(11))
    assert (t.area == 100).all()
    assert tuple(t.bbox[4]) == (40, 32, 50, 42)
    for k in (2, 3, 6):
        np.testing.assert_allclose(O.velocity(t, k), [0, 3])
    assert t.ref_frame == 10


def test_constant_velocity_render_is_the_shifted_square():
    m = square_video(22)
    tr = O.tracks(m[:11])
    preds = O.predict_constant_velocity(tr, k=3)
    np.testing.assert_allclose(preds[5].disp, [0, 33])
    np.testing.assert_allclose(preds[5].centroid, [44.5, 24.5 + 63])
    out = O.render(m[:11], preds)
    np.testing.assert_array_equal(out, m[21])
    np.testing.assert_array_equal(O.predict_video(m, "cv", k=2), m[21])
    assert O.predict_split(m[None], "cv", progress=False, k=2).shape == (1, H, W)
    assert jaccard(O.predict_split(m[None], "copy", progress=False), m[None, 21])[0] < 1


def test_friction_decay_formula():
    assert O.geometric_sum(0.9, 3) == pytest.approx(0.9 + 0.81 + 0.729)
    assert O.geometric_sum(1.0, 11) == 11 and O.geometric_sum(0.5, 0) == 0
    # steps of 4 px/frame decaying by 0.9: with k=2 the last step is measured exactly
    x, pos = 50.0, {}
    for t in range(11):
        pos[t] = (80.0, x)
        x += 4 * 0.9 ** (t + 1)
    tr = synthetic_track(pos)
    last_step = pos[10][1] - pos[9][1]
    p = O.predict_friction(tr, k=2, decay=0.9)[5]
    np.testing.assert_allclose(p.disp, [0, last_step * O.geometric_sum(0.9, 11)], rtol=1e-9)
    x_true = pos[10][1] + sum(4 * 0.9 ** (t + 1) for t in range(10, 21))  # steps 10->11 .. 20->21
    assert p.centroid[1] == pytest.approx(x_true)
    # decay 1 is constant velocity
    np.testing.assert_allclose(O.predict_friction(tr, 2, 1.0)[5].disp, O.predict_constant_velocity(tr, 2)[5].disp)


def test_constant_deceleration_stops():
    pos = {t: (80.0, 50 + 5 * t - 0.25 * t * t) for t in range(11)}  # speed 5 - 0.5 t (at integer t)
    tr = synthetic_track(pos)
    p = O.predict_decel(tr, k=2, decel=0.5)[5]
    # speed at 10: 0 -> stopped; the positions' own future: x(t) until t = 10 (the vertex)
    assert p.disp[1] == pytest.approx(0.0, abs=1e-9)
    pos = {t: (80.0, 50 + 6 * t - 0.1 * t * t) for t in range(11)}  # speed 6 - 0.2 t
    p = O.predict_decel(
        O.tracks_from_stats([{5: (100, *pos[t], (75, 40, 85, 200))} for t in range(11)], (H, W)), k=3, decel=0.2
    )[5]
    assert p.disp[1] == pytest.approx((6 * 21 - 0.1 * 21**2) - (6 * 10 - 0.1 * 100))


def test_floor_camera_round_trip_and_straight_lines():
    cam = O.FloorCamera(0.00725, W, H, F=300)
    pts = np.array([[10.0, 5.0], [80.0, 120.0], [150.0, 230.0]])
    np.testing.assert_allclose(cam.to_image(cam.to_floor(pts)), pts)
    # one horizontal pixel at the middle row is one floor unit
    a, b = cam.to_floor(np.array([[79.5, 100.0], [79.5, 101.0]]))
    assert abs(b[1] - a[1]) == pytest.approx(1.0)


def test_z_order_lower_object_wins():
    m = np.zeros((11, H, W), np.uint8)
    m[:, 40:60, 40:60] = 30  # upper (farther)
    m[:, 50:70, 50:70] = 2  # lower (nearer), drawn over it
    m[:, 50:60, 50:60] = 2
    out = O.predict_video(m, "cv")
    np.testing.assert_array_equal(out, m[10])
    # the same when the ids are swapped (order is by position, not id)
    m2 = np.where(m == 30, 2, np.where(m == 2, 30, 0)).astype(np.uint8)
    out2 = O.render(m2, O.predict_constant_velocity(O.tracks(m2)))
    assert (out2[55, 55]) == 30 and out2[45, 45] == 2
    # overlap created by the motion: the object lower in the image ends on top
    m3 = np.zeros((11, H, W), np.uint8)
    for t in range(11):
        m3[t, 40:52, 100 + t : 112 + t] = 7  # upper, moving right
        m3[t, 48:60, 140 - t : 152 - t] = 3  # lower, moving left
    out3 = O.predict_video(m3, "cv", k=2)
    assert (out3 == 3).sum() == 144 and 0 < (out3 == 7).sum() < 144


def test_clipping_at_the_border_no_wraparound():
    m = np.zeros((22, H, W), np.uint8)
    for t in range(22):
        x = 190 + 2 * t
        m[t, 20:30, x : min(x + 10, W)] = 9  # inside until frame 10, partly out at frame 21
        x = 100 + 8 * t
        m[t, 60:70, min(x, W) : min(x + 10, W)] = 13  # inside at frame 10, far out at frame 21
        x = 160 + 8 * t
        m[t, 100:110, min(x, W) : min(x + 10, W)] = 11  # cut at frame 9, gone at frame 10: left
    tr = O.tracks(m[:11])
    assert not tr[9].touches_border.any() and tr[11].touches_border[9] and not tr[11].visible[10]
    out = O.predict_video(m[:11], "cv", k=2)
    np.testing.assert_array_equal(out == 9, m[21] == 9)  # 8 of 10 columns left
    assert (out == 9).sum() == 80
    assert (out == 13).sum() == 0 and (out == 11).sum() == 0
    np.testing.assert_array_equal(out[:, :200], 0)  # nothing wrapped round to the left side


def test_entrant_mid_track():
    m = np.zeros((11, H, W), np.uint8)
    for t in range(4, 11):
        x1 = -16 + 4 * t  # right edge of a 12 px wide object entering from the left at 4 px/frame
        if x1 > 0:
            m[t, 60:72, max(x1 - 12, 0) : x1] = 21
    tr = O.tracks(m)[21]
    assert tr.first == 5  # x1 = 4 at t = 5
    assert tr.touches_border[5:8].all() and not tr.touches_border[8:].any()
    assert not tr.clean[:8].any() and tr.clean[8:].all()
    np.testing.assert_allclose(O.velocity(tr, 6), [0, 4])  # only the clean frames 8-10 (exact)
    np.testing.assert_array_equal(O.velocity_frames(tr, 6), [8, 9, 10])
    # still cut at its last frame: no clean frames, the far edge gives the speed
    cut = O.tracks(m[:7])[21]
    assert O.velocity(cut, 3) is None
    np.testing.assert_allclose(O.edge_velocity(cut, 3), [0, 4])
    p = O.predict_constant_velocity({21: cut}, k=3, last_input=6)[21]
    assert p.ref_t == 6 and p.disp[1] == pytest.approx(4 * 15)


def test_hidden_and_left_objects():
    m = np.zeros((11, H, W), np.uint8)
    m[:, 60:80, 60:80] = 4  # a big static object, lower in the image
    m[:8, 50:60, 64:74] = 6  # behind it from frame 8 (not at the border): still rendered
    m[:6, 0:10, 100:110] = 8  # touches the top edge, gone from frame 6: left the frame
    out = O.predict_video(m, "cv")
    assert (out == 6).sum() == 100 and (out == 8).sum() == 0
    tr = O.tracks(m)
    assert O.has_left(tr[8], 10) and not O.has_left(tr[6], 10)


def test_partial_occlusion_is_not_clean():
    m = square_video(11, size=20)
    m[7, 40:50, :] = np.where(m[7, 40:50] == 5, 0, m[7, 40:50])  # frame 7 half hidden
    tr = O.tracks(m)[5]
    assert tr.visible[7] and not tr.clean[7] and tr.clean[[6, 8, 9, 10]].all()
    np.testing.assert_allclose(O.velocity(tr, 4), [0, 3])  # frames 6, 8, 9, 10


def test_scaled_render_and_size_model():
    m = np.zeros((11, H, W), np.uint8)
    m[:, 40:50, 40:50] = 3
    preds = O.predict_constant_velocity(O.tracks(m))
    preds[3].scale = 2.0
    out = O.render(m, preds)
    assert 350 <= (out == 3).sum() <= 450  # 4x the area
    ys, xs = np.nonzero(out == 3)
    assert abs(ys.mean() - 44.5) < 1 and abs(xs.mean() - 44.5) < 1
    # an object predicted near the horizon (huge scale): only the frame is covered, no huge grid is built
    preds[3].scale, preds[3].disp = 5000.0, np.array([0.0, 0.0])
    assert (O.render(m, preds) == 3).all()
    preds[3].disp = np.array([-1e6, 3e6])  # far outside the frame
    assert not (O.render(m, preds) == 3).any()
    preds[3].scale = float("nan")
    assert not (O.render(m, preds) == 3).any()
    # sizes growing linearly with y: s(y) = 1 + 0.01 y
    vids = np.zeros((2, 22, H, W), np.uint8)
    for t in range(22):
        y = 20 + 5 * t
        r = int(round(6 * (1 + 0.01 * y)))
        vids[:, t, y - r : y + r, 100 - r : 100 + r] = 12
    assert O.fit_size_model(vids, min_area=1) == pytest.approx(0.01, abs=0.002)


def test_fit_k_and_decay_on_constant_velocity_videos():
    vids = np.stack([square_video(22, vx=2), square_video(22, vx=-1, x=150, vy=1)])
    r = O.fit_k_and_decay(vids, ks=(2, 3), decays=(0.9, 1.0))
    assert r["decay"] == 1.0 and r["iou"] == pytest.approx(1.0) and r["cv_iou"] == pytest.approx(1.0)


def test_physics_collision_transfers_momentum():
    cam = O.FloorCamera(0.005, W, H, F=300)
    # rubber cube (id 9) rolling right at 4 px/frame towards a rubber cube at rest (id 10), same row
    stats = []
    for t in range(11):
        stats.append(
            {
                9: (100, 100.0, 40.0 + 4 * t, (95, 35 + 4 * t, 105, 45 + 4 * t)),
                10: (100, 100.0, 120.0, (95, 115, 105, 125)),
            }
        )
    tr = O.tracks_from_stats(stats, (H, W))
    free = O.predict_decel(tr, 2, 0.0, camera=cam)
    hit = O.predict_physics(tr, 2, 0.0, cam, restitution=1.0, mass_ratio=2.0, radius_scale=1.0)
    assert hit[9].extra["contacts"] == 1 and hit[10].extra["first_contact"] > 10
    # equal masses, elastic: the mover stops near the other's old place, the other goes on at its speed
    assert hit[9].centroid[1] < 120 and hit[10].disp[1] > 0
    assert hit[9].centroid[1] + hit[10].centroid[1] == pytest.approx(free[9].centroid[1] + 120, abs=1.5)
    # objects that never meet move as in the deceleration model on the floor
    far = O.tracks_from_stats([{9: s[9], 10: (100, 30.0, 200.0, (25, 195, 35, 205))} for s in stats], (H, W))
    a, b = O.predict_physics(far, 2, 0.1, cam), O.predict_decel(far, 2, 0.1, camera=cam)
    np.testing.assert_allclose(a[9].disp, b[9].disp, atol=0.2)
    np.testing.assert_allclose(a[10].disp, [0, 0], atol=1e-9)


def _stats_by_hand(frame):
    """frame_stats computed the plain way, object by object with np.nonzero."""
    out = {}
    for cid in set(np.unique(frame).tolist()) - {0}:
        ys, xs = np.nonzero(frame == cid)
        out[cid] = (len(ys), ys.mean(), xs.mean(), (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
    return out


def _assert_same_stats(got, want):
    assert got.keys() == want.keys()
    for c in want:
        assert got[c][0] == want[c][0] and tuple(got[c][3]) == tuple(want[c][3])
        np.testing.assert_allclose(got[c][1:3], want[c][1:3], atol=1e-9)


def test_video_stats_match_each_frame_by_hand():
    rng = np.random.default_rng(0)
    v = np.zeros((5, H, W), np.uint8)
    for t in range(5):  # overlapping rectangles, some cut by the border, an empty frame at t = 3
        for cid in rng.choice(np.arange(1, 49), 4, replace=False) if t != 3 else []:
            y, x = rng.integers(-5, H - 5), rng.integers(-5, W - 5)
            v[t, max(y, 0) : y + rng.integers(3, 30), max(x, 0) : x + rng.integers(3, 30)] = cid
    stats = O.video_stats(v)
    assert len(stats) == 5 and stats[3] == {}
    for t in range(5):
        _assert_same_stats(stats[t], _stats_by_hand(v[t]))
        _assert_same_stats(O.frame_stats(v[t]), _stats_by_hand(v[t]))
    small = O.video_stats(v, min_area=200)
    assert all(a >= 200 for s in small for a, *_ in s.values()) and sum(map(len, small)) < sum(map(len, stats))
    with pytest.raises(ValueError, match="class ids"):
        O.video_stats(np.full((1, 4, 4), 49, np.uint8))


def test_flip_stats_are_the_stats_of_the_mirrored_frames():
    v = square_video(t_len=4, x=0)  # starts cut by the left border
    v[2, 100:107, 230:240] = 9  # and one at the right border
    flipped = O.flip_stats(O.video_stats(v), W)
    for t in range(4):
        _assert_same_stats(flipped[t], _stats_by_hand(v[t, :, ::-1]))


def test_unet_fragments_are_dropped_entrants_kept():
    """With denoise (U-Net inputs) an id seen in at most FRAGMENT_FRAMES frames that never touches the edge is
    a fragment of another object's rim: no track, not moved, no collisions. An entrant seen as briefly is cut
    by the border, so it stays; so does an object seen in every frame."""
    v = square_video(cid=5, y=40, x=20, vx=3)  # a real object, moving right
    v[8:11, 50:54, 62:70] = 7  # a fragment for the last 3 frames, just ahead of object 5
    v[9:11, 120:130, 230:240] = 9  # an entrant at the right edge in the last 2 frames
    v[:, 100:110, 100:110] = 11  # a still object, every frame
    assert set(O.tracks(v, min_area=20)) == {5, 7, 9, 11}  # true-mask settings keep everything
    assert set(O.tracks(v, min_area=20, denoise=True)) == {5, 9, 11}
    v[7, 50:54, 62:70] = 7  # seen in 4 frames: kept
    assert 7 in O.tracks(v, min_area=20, denoise=True)
    v[7, 50:54, 62:70] = 0
    stats = O.video_stats(v[:2])  # a 2-frame stack: objects seen in every frame (5 and 11, inside) are kept
    assert O.drop_fragments(stats, (H, W)) == stats
    pred = O.predict_video(v, "cv", k=2, min_area=20, denoise=True)
    assert 7 not in np.unique(pred) and {5, 9, 11} <= set(np.unique(pred).tolist())
