import numpy as np
import pytest

from lib.common import classes as C


def test_ids_follow_the_design_table():
    assert C.class_id("cube", "metal", "gray") == 1
    assert C.class_id("cube", "rubber", "gray") == 9
    assert C.class_id("sphere", "metal", "gray") == 17
    assert C.class_id("cylinder", "rubber", "yellow") == 48
    assert C.NUM_CLASSES == 49 and C.CLASS_NAMES[0] == "background" and C.CLASS_NAMES[48] == "cylinder rubber yellow"


def test_attributes_round_trip_and_errors():
    seen = set()
    for cid in range(1, 49):
        s, m, c = C.attributes(cid)
        assert C.class_id(s, m, c) == cid
        seen.add((s, m, c))
    assert len(seen) == 48
    with pytest.raises(ValueError):
        C.attributes(0)
    with pytest.raises(ValueError):
        C.class_id("cone", "metal", "red")


def test_palette_is_fixed_and_distinct():
    assert C.PALETTE.shape == (49, 3) and C.PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in C.PALETTE}) == 49
