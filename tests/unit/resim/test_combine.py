"""combine: objects touching in the simulation come from the re-simulated mask, the others from the other one."""

import numpy as np

from lib.resim.combine import combine, combine_split


def test_touched_objects_come_from_resim_and_the_rest_from_the_other_mask():
    resim = np.zeros((6, 8), np.uint8)
    other = np.zeros((6, 8), np.uint8)
    resim[0:2, 0:2] = 5  # touched: resim's place wins
    other[3:5, 0:2] = 5
    resim[0:2, 5:7] = 9  # free: the other predictor's place wins
    other[3:5, 5:7] = 9
    out = combine(resim, other, [5])
    assert (out[0:2, 0:2] == 5).all() and not (out[3:5, 0:2] == 5).any()
    assert (out[3:5, 5:7] == 9).all() and not (out[0:2, 5:7] == 9).any()


def test_nothing_touched_gives_the_other_mask():
    rng = np.random.default_rng(0)
    resim, other = rng.integers(0, 4, (2, 5, 5), dtype=np.uint8)
    np.testing.assert_array_equal(combine(resim, other, []), other)
    np.testing.assert_array_equal(combine_split(resim[None], other[None], [np.array([], int)])[0], other)
