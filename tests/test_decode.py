import numpy as np
import torch

from lib.classes import class_id
from lib.decode import decode, vote_objects


def _scores(h=20, w=30):
    """Log-scores where a red blob's pixels disagree on shape: most say cube, a few say sphere."""
    s = torch.full((49, h, w), -10.0)
    s[0] = 0.0  # background everywhere ...
    cube, sphere = class_id("cube", "rubber", "red"), class_id("sphere", "rubber", "red")
    s[0, 5:15, 5:15] = -10
    s[cube, 5:15, 5:15] = 0.0
    s[sphere, 5:8, 5:15] = 1.0  # 30 pixels prefer sphere
    blue = class_id("cylinder", "metal", "blue")
    s[0, 2:6, 20:26] = -10
    s[blue, 2:6, 20:26] = 0.0
    return s, cube, sphere, blue


def test_vote_gives_each_colour_blob_one_class():
    s, cube, sphere, blue = _scores()
    per_pixel = decode(s[None], "argmax")[0]
    assert (per_pixel == sphere).sum() == 30  # argmax splits the object
    voted = vote_objects(s)
    assert (voted[5:15, 5:15] == cube).all() and (voted[2:6, 20:26] == blue).all()
    assert (voted == 0).sum() == 20 * 30 - 100 - 24
    assert np.array_equal(decode(s[None], "vote")[0], voted)


def test_separate_blobs_of_one_colour_vote_separately():
    s = torch.full((49, 10, 30), -10.0)
    s[0] = 0
    a, b = class_id("cube", "metal", "green"), class_id("sphere", "rubber", "green")
    s[0, 2:6, 2:6] = -10
    s[a, 2:6, 2:6] = 0
    s[0, 2:6, 20:24] = -10
    s[b, 2:6, 20:24] = 0
    out = vote_objects(s)
    assert (out[2:6, 2:6] == a).all() and (out[2:6, 20:24] == b).all()
