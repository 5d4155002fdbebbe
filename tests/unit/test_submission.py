"""lib/submission.py: the submission file written, checked against the hidden folders, scored."""

import numpy as np
import pytest
import torch

from lib import submission


def _masks(n, seed=0):
    return np.random.default_rng(seed).integers(0, 49, (n, 160, 240), dtype=np.uint8)


def test_submission_round_trip_sorted_by_numeric_id(tmp_path):
    ids = np.array([15010, 15002, 15100])
    masks = _masks(3)
    path = submission.save_submission(tmp_path / "sub.pt", ids, masks)
    sub = submission.load_submission(path)
    assert sub["ids"].tolist() == [15002, 15010, 15100]
    assert sub["masks"].dtype == torch.uint8 and sub["masks"].shape == (3, 160, 240)
    np.testing.assert_array_equal(sub["masks"][0].numpy(), masks[1])
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "bad,msg",
    [
        ({"ids": torch.arange(2), "masks": torch.zeros(2, 160, 240, dtype=torch.float32)}, "dtype"),
        ({"ids": torch.arange(2), "masks": torch.zeros(2, 80, 240, dtype=torch.uint8)}, "shape"),
        ({"ids": torch.tensor([2, 1]), "masks": torch.zeros(2, 160, 240, dtype=torch.uint8)}, "order"),
        ({"ids": torch.arange(2), "masks": torch.full((2, 160, 240), 60, dtype=torch.uint8)}, "outside 0..48"),
        ({"masks": torch.zeros(2, 160, 240, dtype=torch.uint8)}, "'ids' and 'masks'"),
    ],
)
def test_check_submission_rejects(bad, msg):
    with pytest.raises(ValueError, match=msg):
        submission.check_submission(bad)


def test_wrong_count_rejected_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match="3 masks for 4"):
        submission.check_submission({"ids": torch.arange(3), "masks": torch.zeros(3, 160, 240, dtype=torch.uint8)}, 4)
    with pytest.raises(ValueError):
        submission.save_submission(tmp_path / "s.pt", [1, 1], _masks(2))
    assert not (tmp_path / "s.pt").exists()


def test_score_hidden_against_answers(tmp_path):
    masks = _masks(3, seed=1)
    np.savez(tmp_path / "hidden_answers.npz", ids=np.array([15000, 15001, 15002]), masks=masks)
    sub = {"ids": torch.tensor([15000, 15001, 15002]), "masks": torch.from_numpy(masks)}
    assert submission.score_hidden(tmp_path, sub)[0] == pytest.approx(1.0)
    assert submission.score_hidden(tmp_path / "nothing", sub) is None


def test_score_hidden_never_scores_a_subset(tmp_path):
    masks = _masks(3, seed=1)
    np.savez(tmp_path / "hidden_answers.npz", ids=np.array([15000, 15001, 15002]), masks=masks)
    sub = {"ids": torch.tensor([15000, 15002]), "masks": torch.from_numpy(masks[[0, 2]])}
    with pytest.raises(ValueError, match="leaves out 1 of the 3 .*video_15001"):
        submission.score_hidden(tmp_path, sub)


def test_check_submission_against_the_hidden_folders(tiny_root, tmp_path):
    """The ids must be the hidden video_N folders on disk (numeric order, any zero padding): a missing or an
    extra id fails naming it, whatever the packed count says."""
    from lib.data import dataset as data

    (tiny_root / "hidden" / "video_15000").rename(tiny_root / "hidden" / "video_9")  # unpadded, sorts first
    assert data.hidden_ids(tiny_root) == [9, 15001]
    good = {"ids": torch.tensor([9, 15001]), "masks": torch.zeros(2, 160, 240, dtype=torch.uint8)}
    submission.check_submission(good, data_root=tiny_root)
    short = {"ids": torch.tensor([15001]), "masks": torch.zeros(1, 160, 240, dtype=torch.uint8)}
    with pytest.raises(ValueError, match="1 ids for 2 hidden video folders: missing video_00009"):
        submission.check_submission(short, 1, data_root=tiny_root)  # the packed count (1) agrees; the folders do not
    extra = {"ids": torch.tensor([9, 15001, 15002]), "masks": torch.zeros(3, 160, 240, dtype=torch.uint8)}
    with pytest.raises(ValueError, match="extra .*video_15002"):
        submission.check_submission(extra, expected_ids=[9, 15001])
    with pytest.raises(ValueError, match="missing video_00009"):
        submission.save_submission(tmp_path / "s.pt", [15001], _masks(1), expected_ids=data.hidden_ids(tiny_root))
    assert not (tmp_path / "s.pt").exists()


def test_grader_file_is_the_masks_in_numeric_order_of_the_hidden_folders(tmp_path):
    """The grader's file: one uint8 (N, 160, 240) tensor, row i the video of the i-th smallest hidden id."""
    masks = _masks(3)
    for i in range(3):
        masks[i, 0, 0] = i + 1  # tells the rows apart
    sub = submission.make_submission([15010, 15002, 15100], masks, expected_ids=[15002, 15010, 15100])
    path = submission.save_grader_file(tmp_path / "grader.pt", sub, [15100, 15002, 15010])
    got = torch.load(path, weights_only=True)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8 and got.shape == (3, 160, 240)
    assert got[:, 0, 0].tolist() == [2, 1, 3]  # 15002, 15010, 15100
    with pytest.raises(ValueError, match="missing video_15200"):  # checked against the folders before writing
        submission.save_grader_file(tmp_path / "other.pt", sub, [15002, 15010, 15100, 15200])
    assert not (tmp_path / "other.pt").exists()


@pytest.mark.parametrize(
    "masks, msg",
    [
        (torch.zeros(2, 160, 240, dtype=torch.uint8), "2 masks for 3 hidden video folders"),
        (torch.zeros(3, 160, 240, dtype=torch.int64), "expected uint8"),
        (torch.zeros(3, 240, 160, dtype=torch.uint8), "expected uint8 \\(N, 160, 240\\)"),
        (torch.full((3, 160, 240), 49, dtype=torch.uint8), "outside 0..48"),
        ({"masks": torch.zeros(3, 160, 240, dtype=torch.uint8)}, "must hold one tensor"),
    ],
)
def test_check_grader_file_rejects(masks, msg):
    with pytest.raises(ValueError, match=msg):
        submission.check_grader_file(masks, [15000, 15001, 15002])


def test_check_grader_file_rejects_rows_out_of_order():
    sub = submission.make_submission([1, 2], _masks(2))
    sub["masks"][1, 0, 0] = 5
    with pytest.raises(ValueError, match="numeric order"):
        submission.check_grader_file(sub["masks"].flip(0), [1, 2], sub)
