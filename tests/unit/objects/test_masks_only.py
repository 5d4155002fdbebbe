"""Extra training videos for the learned model: masks-only videos of the synthetic dataset, generated once."""

import json

import numpy as np
import pytest

from lib.data import synth
from lib.objects import masks_only

FIRST = synth.extra_first_id(100)  # after the dataset's 100 unlabeled videos


def test_extra_videos_are_generated_once_with_the_datasets_settings(tmp_path):
    """The masks-only videos of notebook 06: ids after the dataset's unlabeled videos, its seed, reused."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "SYNTHETIC.json").write_text(json.dumps({"seed": 0, "counts": {"unlabeled": 100}, "cfg": {}}))
    got = masks_only.extra_videos(tmp_path / "data", tmp_path / "objects", 2, workers=1)
    assert got.path == tmp_path / "objects" / f"extra_masks_s0_{FIRST}_2.npy"
    assert got.masks.shape == (2, 22, 160, 240) and got.record["first_id"] == FIRST and got.record["n"] == 2
    want = synth.generate_masks(tmp_path / "want.npy", 2, FIRST, 0, workers=1, progress=False, supersample=1)
    assert np.array_equal(got.masks, np.load(want))
    again = masks_only.extra_videos(tmp_path / "data", tmp_path / "objects", 2, workers=1)
    assert again.path == got.path and again.record == got.record
    with pytest.raises(ValueError, match="needs a synthetic dataset"):
        masks_only.extra_videos(tmp_path / "nothing", tmp_path / "objects", 2, workers=1)


def test_why_not_says_when_extra_videos_cannot_be_generated(tmp_path):
    """Real data (no SYNTHETIC.json): a reason naming the missing record; the synthetic dataset: None."""
    (tmp_path / "real" / "train").mkdir(parents=True)
    why = masks_only.why_not(tmp_path / "real")
    assert why and "SYNTHETIC.json" in why and "real data" in why
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "SYNTHETIC.json").write_text(json.dumps({"seed": 0, "counts": {}, "cfg": {}}))
    assert masks_only.why_not(tmp_path / "synthetic") is None
