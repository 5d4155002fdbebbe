import numpy as np

from lib.common.classes import class_id
from lib.forecasting import postprocess


def test_attribute_cost_weights():
    red_cube_metal = class_id("cube", "metal", "red")
    assert postprocess.attribute_cost(red_cube_metal, class_id("cube", "rubber", "red")) == 1
    assert postprocess.attribute_cost(red_cube_metal, class_id("sphere", "metal", "red")) == 2
    assert postprocess.attribute_cost(red_cube_metal, class_id("cube", "metal", "blue")) == 4
    assert postprocess.attribute_cost(red_cube_metal, class_id("cylinder", "rubber", "blue")) == 7


def test_unseen_id_mapped_to_nearest_known_object():
    known = [class_id("sphere", "rubber", "red"), class_id("cube", "metal", "blue")]
    unseen = class_id("sphere", "metal", "red")  # differs from the red rubber sphere by material only
    pred = np.zeros((40, 40), np.uint8)
    pred[5:20, 5:20] = unseen
    pred[25:38, 25:38] = known[1]
    out = postprocess.suppress(pred, known, min_blob=10)
    assert (out[5:20, 5:20] == known[0]).all() and (out[25:38, 25:38] == known[1]).all()
    assert set(np.unique(out)) == {0, *known}


def test_small_blobs_become_background_large_stay():
    cid = class_id("cylinder", "rubber", "green")
    pred = np.zeros((40, 40), np.uint8)
    pred[0:12, 0:12] = cid  # 144 px
    pred[30:33, 30:33] = cid  # a 9 px fragment of the same class
    out = postprocess.suppress(pred, [cid], min_blob=100)
    assert (out[0:12, 0:12] == cid).all() and (out[30:33, 30:33] == 0).all()
    assert (postprocess.suppress(pred, [cid], min_blob=0) == pred).all()


def test_no_known_objects_means_background_and_batch():
    pred = np.full((2, 8, 8), 5, np.uint8)
    inputs = np.zeros((2, 11, 8, 8), np.uint8)
    inputs[1, :, 0, 0] = 5
    out = postprocess.suppress_batch(pred, inputs, min_blob=0)
    assert (out[0] == 0).all() and (out[1] == 5).all()
