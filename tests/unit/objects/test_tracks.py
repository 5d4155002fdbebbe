"""Object statistics and tracks on hand-made masks: stats, clean frames, velocities, fragments."""

import numpy as np
import pytest
from hand_made import H, W, square_video

from lib.objects import motion, tracks
from lib.objects.motion import MotionSettings


def test_tracks_of_a_moving_square():
    tr = tracks.tracks(square_video())
    assert list(tr) == [5]
    t = tr[5]
    assert t.first == 0 and t.last == 10 and t.visible.all() and t.clean.all() and not t.touches_border.any()
    np.testing.assert_allclose(t.centroid[:, 0], 44.5)
    np.testing.assert_allclose(t.centroid[:, 1], 24.5 + 3 * np.arange(11))
    assert (t.area == 100).all()
    assert tuple(t.bbox[4]) == (40, 32, 50, 42)
    for k in (2, 3, 6):
        np.testing.assert_allclose(tracks.velocity(t, k), [0, 3])
    assert t.ref_frame == 10


def test_entrant_mid_track():
    m = np.zeros((11, H, W), np.uint8)
    for t in range(4, 11):
        x1 = -16 + 4 * t  # right edge of a 12 px wide object entering from the left at 4 px/frame
        if x1 > 0:
            m[t, 60:72, max(x1 - 12, 0) : x1] = 21
    tr = tracks.tracks(m)[21]
    assert tr.first == 5  # x1 = 4 at t = 5
    assert tr.touches_border[5:8].all() and not tr.touches_border[8:].any()
    assert not tr.clean[:8].any() and tr.clean[8:].all()
    np.testing.assert_allclose(tracks.velocity(tr, 6), [0, 4])  # only the clean frames 8-10 (exact)
    np.testing.assert_array_equal(tracks.velocity_frames(tr, 6), [8, 9, 10])
    # still cut at its last frame: no clean frames, the far edge gives the speed
    cut = tracks.tracks(m[:7])[21]
    assert tracks.velocity(cut, 3) is None
    np.testing.assert_allclose(tracks.edge_velocity(cut, 3), [0, 4])
    p = motion.predict_constant_velocity({21: cut}, MotionSettings("cv", k=3), last_input=6)[21]
    assert p.ref_t == 6 and p.disp[1] == pytest.approx(4 * 15)


def test_hidden_and_left_objects():
    m = np.zeros((11, H, W), np.uint8)
    m[:, 60:80, 60:80] = 4  # a big static object, lower in the image
    m[:8, 50:60, 64:74] = 6  # behind it from frame 8 (not at the border): still rendered
    m[:6, 0:10, 100:110] = 8  # touches the top edge, gone from frame 6: left the frame
    out = motion.predict_video(m, MotionSettings("cv", k=3))
    assert (out == 6).sum() == 100 and (out == 8).sum() == 0
    tr = tracks.tracks(m)
    assert tracks.has_left(tr[8], 10) and not tracks.has_left(tr[6], 10)


def test_partial_occlusion_is_not_clean():
    m = square_video(11, size=20)
    m[7, 40:50, :] = np.where(m[7, 40:50] == 5, 0, m[7, 40:50])  # frame 7 half hidden
    tr = tracks.tracks(m)[5]
    assert tr.visible[7] and not tr.clean[7] and tr.clean[[6, 8, 9, 10]].all()
    np.testing.assert_allclose(tracks.velocity(tr, 4), [0, 3])  # frames 6, 8, 9, 10


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
    stats = tracks.video_stats(v)
    assert len(stats) == 5 and stats[3] == {}
    for t in range(5):
        _assert_same_stats(stats[t], _stats_by_hand(v[t]))
        _assert_same_stats(tracks.frame_stats(v[t]), _stats_by_hand(v[t]))
    small = tracks.video_stats(v, min_area=200)
    assert all(a >= 200 for s in small for a, *_ in s.values()) and sum(map(len, small)) < sum(map(len, stats))
    with pytest.raises(ValueError, match="class ids"):
        tracks.video_stats(np.full((1, 4, 4), 49, np.uint8))


def test_flip_stats_are_the_stats_of_the_mirrored_frames():
    v = square_video(t_len=4, x=0)  # starts cut by the left border
    v[2, 100:107, 230:240] = 9  # and one at the right border
    flipped = tracks.flip_stats(tracks.video_stats(v), W)
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
    assert set(tracks.tracks(v, min_area=20)) == {5, 7, 9, 11}  # true-mask settings keep everything
    assert set(tracks.tracks(v, min_area=20, denoise=True)) == {5, 9, 11}
    v[7, 50:54, 62:70] = 7  # seen in 4 frames: kept
    assert 7 in tracks.tracks(v, min_area=20, denoise=True)
    v[7, 50:54, 62:70] = 0
    stats = tracks.video_stats(v[:2])  # a 2-frame stack: objects seen in every frame (5 and 11, inside) are kept
    assert tracks.drop_fragments(stats, (H, W)) == stats
    pred = motion.predict_video(v, MotionSettings("cv", k=2, min_area=20, denoise=True))
    assert 7 not in np.unique(pred) and {5, 9, 11} <= set(np.unique(pred).tolist())
