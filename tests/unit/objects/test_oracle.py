"""lib/objects/oracle.py on hand-made mask videos: oracle rendering, failure categories, their costs."""

import numpy as np
import pytest
from conftest import mask_video, moving

from lib.common.metrics import jaccard
from lib.objects import oracle

H, W, T = 60, 80, 22


def video(*objects):
    return mask_video(objects, (H, W), T)


def test_position_oracle_places_a_moving_object_exactly():
    v = video((5, moving(20, 5, 0, 2)))
    out = oracle.oracle_video(v[:11], v, "position")
    assert np.array_equal(out, v[21])


def test_position_oracle_scales_an_object_that_grows_and_drops_one_that_is_gone():
    grow = video((5, lambda t: (20, 20, 8, 8) if t <= 10 else (20, 20, 16, 16)))
    out = oracle.oracle_video(grow[:11], grow, "position")
    assert jaccard(out, grow[21])[0] > 0.85 and (out == 5).sum() > 2 * 64
    gone = video((5, lambda t: (20, 20, 8, 8) if t <= 10 else None), (7, moving(40, 5, 0, 1)))
    out = oracle.oracle_video(gone[:11], gone, "position")
    assert not (out == 5).any() and np.array_equal(out, gone[21])


def test_entrants_level_adds_only_objects_no_input_frame_shows():
    v = video((5, moving(10, 5, 0, 1)), (9, moving(40, 50, 0, 0, start=15)))
    assert oracle.entrant_ids(v) == [9]
    pos = oracle.oracle_video(v[:11], v, "position")
    ent = oracle.oracle_video(v[:11], v, "entrants")
    assert not (pos == 9).any()
    assert np.array_equal(ent == 9, v[21] == 9) and np.array_equal(ent, v[21])


def test_shapes_level_draws_the_truth_of_the_objects_the_inputs_show():
    v = video((5, moving(10, 5, 0, 1)), (6, moving(40, 40, 0, -1)), (9, moving(30, 60, 0, 0, start=15)))
    assert np.array_equal(oracle.oracle_video(v[:11], v, "shapes"), v[21])  # true inputs: the truth itself
    unet_like = v[:11].copy()
    unet_like[unet_like == 6] = 0  # the inputs miss object 6 (a U-Net id error)
    out = oracle.oracle_video(unet_like, v, "shapes")
    assert not (out == 6).any() and (out == 5).sum() == (v[21] == 5).sum() and (out == 9).any()


def test_oracle_checks_shapes_and_level():
    v = video((5, moving(10, 5, 0, 1)))
    with pytest.raises(ValueError, match="level"):
        oracle.oracle_video(v[:11], v, "dynamics")
    with pytest.raises(ValueError, match="true masks"):
        oracle.oracle_video(v[:11], v[:15])
    with pytest.raises(ValueError, match="input masks are"):
        oracle.oracle_video(v[:11, :30], v)


def test_categories_on_hand_made_cases():
    v = video(
        (1, moving(5, 35, 0, 0)),  # still, alone: free
        (2, moving(45, 40, 0, 4)),  # runs out through the right border: leaving
        (3, lambda t: (30, 10 + t, 8, 8) if t <= 14 else (30, 24, 8, 8)),  # stops touching 4 from frame 15: contact
        (4, moving(30, 32, 0, 0)),  # still, touched by 3 after frame 10: contact
        (5, moving(15, 60, 0, 0, start=16)),  # appears at frame 16: entrant
        (6, moving(5, 5, 0, 0)),  # partly covered from frame 15 on: occluded
        (7, lambda t: (5, 14, 8, 8) if t < 15 else (5, 8, 8, 8)),
    )
    cats = oracle.object_categories(v)
    assert cats == {1: "free", 2: "leaving", 3: "contact", 4: "contact", 5: "entrant", 6: "occluded", 7: "contact"}


def test_an_object_hidden_at_frame_22_away_from_the_border_is_occluded_not_leaving():
    v = video((2, moving(20, 20, 0, 0)), (3, lambda t: (10, 60, 30, 15) if t < 15 else (10, 15, 30, 20)))
    assert oracle.object_categories(v)[2] == "occluded"


def test_category_costs_charge_each_category_its_own_objects():
    v = video((1, moving(5, 35, 0, 0)), (2, moving(45, 40, 0, 4)), (5, moving(20, 10, 0, 0, start=16)))
    true = v[None]
    pred = v[21].copy()
    pred[pred == 5] = 0  # the entrant is missed, everything else is right
    costs, cats = oracle.category_costs(pred[None], true)
    assert cats == [{1: "free", 2: "leaving", 5: "entrant"}]
    assert costs["entrant"]["iou_cost"] == pytest.approx(1 - jaccard(pred, v[21])[0])
    assert costs["entrant"]["objects"] == 1 and costs["entrant"]["videos"] == 1
    assert costs["free"]["iou_cost"] == 0 and costs["leaving"]["iou_cost"] == 0
    assert costs["contact"] == {"objects": 0, "videos": 0, "iou_cost": 0.0}
    again, _ = oracle.category_costs(pred[None], true, cats)  # categories reused for another predictor
    assert again == costs


def test_gap_share():
    assert oracle.gap_share(0.5, 0.25, 0.75) == pytest.approx(0.5)
    assert np.isnan(oracle.gap_share(0.5, 0.8, 0.7))


def test_oracle_rows_names_and_shapes():
    v = np.stack([video((5, moving(20, 5, 0, 2))), video((6, moving(10, 50, 1, -1)))])
    rows = oracle.oracle_rows(v[:, :11], v)
    assert list(rows) == list(oracle.ROW_NAMES.values())
    for pred in rows.values():
        assert pred.shape == (2, H, W) and pred.dtype == np.uint8
        assert jaccard(pred, v[:, 21])[0] == pytest.approx(1.0)
