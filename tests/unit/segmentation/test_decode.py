import numpy as np
import torch

from lib.common.classes import class_id
from lib.segmentation.decode import decode, vote_objects, vote_video


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


def _frame(objects, h=12, w=40):
    """Scores of one frame: objects = [(class id, (y0, y1, x0, x1), confidence)]."""
    s = torch.full((49, h, w), -10.0)
    s[0] = 0.0
    for cid, (y0, y1, x0, x1), conf in objects:
        s[0, y0:y1, x0:x1] = -10
        s[cid, y0:y1, x0:x1] = conf
    return s


def test_vote_video_gives_a_track_one_class():
    """An object moving right: three frames say metal, one says rubber; the track votes metal everywhere."""
    metal, rubber = class_id("cube", "metal", "red"), class_id("cube", "rubber", "red")
    frames = [_frame([(metal if t != 2 else rubber, (2, 8, 2 + 3 * t, 8 + 3 * t), 0.0)]) for t in range(4)]
    logp = torch.stack(frames)
    per_frame = decode(logp, "vote")
    assert (per_frame[2] == rubber).sum() == 36
    video = vote_video(logp)
    for t in range(4):
        assert (video[t, 2:8, 2 + 3 * t : 8 + 3 * t] == metal).all()
    assert (video == 0).sum() == (per_frame == 0).sum()
    assert np.array_equal(decode(logp, "vote_video"), video)
    # the votes are probabilities: one confidently wrong frame does not outvote three others
    frames[2] = _frame([(rubber, (2, 8, 8, 14), 30.0)])
    assert (vote_video(torch.stack(frames))[2, 2:8, 8:14] == metal).all()


def test_vote_video_keeps_frame_votes_for_two_objects_of_one_colour():
    """Two green objects that touch in frame 1 form one track with two blobs in frame 0: no track vote, so
    each keeps its own class where it stands alone."""
    a, b = class_id("cube", "metal", "green"), class_id("sphere", "rubber", "green")
    f0 = _frame([(a, (2, 8, 2, 8), 0.0), (b, (2, 8, 12, 18), 0.0)])
    f1 = _frame([(a, (2, 8, 4, 10), 0.0), (b, (2, 8, 10, 16), 0.0)])  # touching: one blob
    out = vote_video(torch.stack([f0, f1]))
    assert (out[0, 2:8, 2:8] == a).all() and (out[0, 2:8, 12:18] == b).all()
    assert set(np.unique(out[1])) <= {0, a, b} and len(set(np.unique(out[1])) - {0}) == 1


def test_segment_decodes_whole_videos():
    from lib.segmentation.label import segment
    from lib.segmentation.unet import UNet

    m = UNet(width=4, depth=2, head="factorized").eval()
    m.decode = "vote_video"
    frames = np.random.default_rng(0).integers(0, 256, (6, 16, 24, 3), dtype=np.uint8)
    by_video = segment(m, frames, batch_size=4, amp=False, video_len=3)
    with torch.no_grad():
        logits = m(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
    assert np.array_equal(by_video, np.concatenate([vote_video(logits[:3]), vote_video(logits[3:])]))
    assert np.array_equal(segment(m, frames, amp=False), decode(logits, "vote"))  # no video_len: frame by frame
    import pytest

    with pytest.raises(ValueError, match="whole videos"):
        segment(m, frames[:5], video_len=3)
