"""lib.data.synth.generate_masks: masks-only synthetic videos (frames 0-10 and 21) for the object dynamics model,
with ids of the unlabeled range after the dataset's own, resumable by chunks."""

import numpy as np
import pytest

from lib.data import scene, synth
from lib.objects import learned

FIRST = synth.extra_first_id(100)  # after the cpu profile's 100 unlabeled videos
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_generate_masks_shape_and_frames(tmp_path):
    path = synth.generate_masks(tmp_path / "m.npy", 3, FIRST, workers=1, progress=False, chunk=2)
    a = np.load(path)
    assert a.shape == (3, 22, 160, 240) and a.dtype == np.uint8
    frames = list(synth.MASK_FRAMES)
    for i in (0, 2):
        _, m, _ = scene.render_video(FIRST + i, 0)
        assert np.array_equal(a[i, frames], m[frames])
    assert not a[:, 11:21].any()  # frames 11-20 are not rendered
    assert not (tmp_path / "m.npy.parts").exists()
    # usable directly as a training set of the learned model
    items = learned.build_dataset(a, dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0), progress=False)
    assert items and all(it["feats"].shape[1] == learned.N_FEATURES for it in items)


def test_generate_masks_resumes_without_redoing_chunks(tmp_path, monkeypatch):
    calls, fail = [], [FIRST + 2]  # the first run dies on video FIRST + 2 (its second chunk)
    real = scene.render_video

    def fake(vid, *a, **k):
        calls.append(vid)
        if vid in fail:
            fail.clear()
            raise RuntimeError("interrupted")
        return real(vid, *a, **k)

    monkeypatch.setattr(scene, "render_video", fake)
    path = tmp_path / "m.npy"
    with pytest.raises(RuntimeError, match="interrupted"):
        synth.generate_masks(path, 4, FIRST, workers=1, progress=False, chunk=2)
    assert not path.exists() and len(list((tmp_path / "m.npy.parts").glob("*.npy"))) == 1  # the first chunk
    calls.clear()
    synth.generate_masks(path, 4, FIRST, workers=1, progress=False, chunk=2)
    assert calls == [FIRST + 2, FIRST + 3]  # the finished chunk is not rendered again
    a = np.load(path)
    _, m, _ = real(FIRST + 1, 0)
    assert np.array_equal(a[1, list(synth.MASK_FRAMES)], m[list(synth.MASK_FRAMES)])
    calls.clear()
    synth.generate_masks(path, 4, FIRST, workers=1, progress=False, chunk=2)  # complete: reused
    assert calls == []
    synth.generate_masks(path, 4, FIRST, seed=1, workers=1, progress=False, chunk=2)  # other videos: not reused
    assert calls == [FIRST, FIRST + 1, FIRST + 2, FIRST + 3]
    assert not np.array_equal(np.load(path), a)


@pytest.mark.parametrize("first, n", [(synth.SPLITS["val"], 1), (synth.SPLITS["train"], 1), (14999, 2), (15000, 1)])
def test_generate_masks_never_uses_other_splits_ids(tmp_path, first, n):
    with pytest.raises(ValueError, match="unlabeled id range"):
        synth.generate_masks(tmp_path / "m.npy", n, first, workers=1, progress=False)


def test_extra_ids_avoid_the_datasets_own_videos():
    lo, hi = synth.id_range("unlabeled")
    assert synth.extra_first_id(100) == lo + 100
    val, hidden = synth.id_range("val"), synth.id_range("hidden")
    assert synth.extra_first_id(100) >= val[1] and synth.extra_first_id(100) + 3000 <= hidden[0]


def test_generate_masks_workers_give_identical_masks(tmp_path):
    one = synth.generate_masks(tmp_path / "w1.npy", 2, FIRST, workers=1, progress=False, chunk=1)
    two = synth.generate_masks(tmp_path / "w2.npy", 2, FIRST, workers=2, progress=False, chunk=1)
    assert np.array_equal(np.load(one), np.load(two))
