"""Dataset statistics on tiny hand-made mask videos."""

import math

import numpy as np
import pytest

from lib.common.metrics import jaccard
from lib.data import stats


def two_videos():
    """(2, 22, 2, 2): video 0 moves object 1 one pixel right between frames 10 and 21 and has object 7
    enter at frame 15; video 1 holds object 2 still and has object 3 appear at frame 10 (not after it)."""
    m = np.zeros((2, 22, 2, 2), np.uint8)
    m[0, :11, 0, 0] = 1
    m[0, 11:, 0, 1] = 1
    m[0, 15:, 1, 1] = 7
    m[1, :, 0, :] = 2
    m[1, 10:, 1, 0] = 3
    return m


def test_copy_frame_iou_is_stacked_not_per_video():
    m = np.zeros((2, 22, 2, 2), np.uint8)
    m[0, 10] = [[1, 0], [0, 0]]
    m[0, 21] = [[0, 1], [0, 0]]
    m[1, 10] = m[1, 21] = [[2, 2], [0, 0]]
    iou, per_class = stats.copy_frame_iou(m)
    # background: 4 common of 6 in the union; class 1: 0; class 2: 1 -> mean over the 3 present classes
    assert per_class[0] == pytest.approx(4 / 6) and per_class[1] == 0 and per_class[2] == 1
    assert iou == pytest.approx((4 / 6 + 0 + 1) / 3)
    assert np.isnan(per_class[3])
    assert stats.copy_frame_iou(m, src=21, dst=21)[0] == pytest.approx(1.0)


def test_objects_per_frame():
    opf = stats.objects_per_frame(two_videos())
    assert opf.shape == (2, 22)
    assert opf[0, 0] == 1 and opf[0, 15] == 2 and opf[1, 9] == 1 and opf[1, 10] == 2


def test_first_appearance_and_entrants():
    m = two_videos()
    first = stats.first_appearance(m)
    assert first.shape == (2, 49)
    assert first[0, 1] == 0 and first[0, 7] == 15 and first[1, 2] == 0 and first[1, 3] == 10
    assert first[0, 0] == -1 and first[0, 2] == -1
    assert stats.entrants(m, after=10) == [[7], []]
    assert stats.entrants(m, after=9) == [[7], [3]]


def test_object_sizes():
    m = np.zeros((1, 1, 4, 4), np.uint8)
    m[0, 0, :2, :2] = 5  # area 4
    m[0, 0, 3, 3] = 6  # area 1
    sizes = sorted(stats.object_sizes(m).tolist())
    assert sizes == pytest.approx([2 * math.sqrt(1 / math.pi), 2 * math.sqrt(4 / math.pi)])


def test_moved_pixels_and_frequencies():
    m = two_videos()
    assert stats.moved_pixels(m).tolist() == [3, 0]  # (0,0) left, (0,1) arrived, (1,1) object 7 arrived
    freq = stats.class_frequencies(m)
    assert freq.shape == (49,) and freq.sum() == m.size
    assert freq[2] == 44 and freq[3] == 12 and freq[7] == 7


def test_summarize():
    s = stats.summarize(two_videos())
    assert s["videos"] == 2
    assert s["late_entrant_share"] == pytest.approx(0.5)
    assert s["objects_per_video"] == pytest.approx(2.0)
    assert s["moved_pixels"] == pytest.approx(1.5)
    m = two_videos()
    assert s["copy_frame_iou"] == pytest.approx(jaccard(m[:, 10], m[:, 21])[0]) and s["copy_frame_iou"] < 1
    assert s["size_p5"] <= s["size_p50"] <= s["size_p95"]


def test_rejects_wrong_shape():
    with pytest.raises(ValueError):
        stats.summarize(np.zeros((22, 4, 4), np.uint8))
