"""The synthetic generator: layout, determinism (whatever the number of workers), resume, masks
(lib/data/synth.py writing videos of lib/data/scene.py, drawn by lib/data/shading.py)."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lib.data import scene, synth

COUNTS = {"train": 2, "val": 1, "unlabeled": 1, "hidden": 2}


@pytest.fixture(scope="module")
def data1(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth1")
    res = synth.generate(root, counts=COUNTS, seed=0, workers=1, progress=False)
    assert res["written"] == COUNTS
    return root


@pytest.fixture(scope="module")
def data2(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth2")
    synth.generate(root, counts=COUNTS, seed=0, workers=2, progress=False)
    return root


def files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def test_layout(data1):
    for split, first in synth.SPLITS.items():
        names = sorted(d.name for d in (data1 / split).iterdir())
        assert names == [f"video_{i:05d}" for i in range(first, first + COUNTS[split])]
        for name in names:
            got = sorted(p.name for p in (data1 / split / name).iterdir())
            n = 11 if split == "hidden" else 22
            want = sorted([f"image_{t}.png" for t in range(n)] + ([] if split == "hidden" else ["mask.npy"]))
            assert got == want, (split, name)
            im = Image.open(data1 / split / name / "image_0.png")
            assert im.mode == "RGB" and im.size == (240, 160)
            if split != "hidden":
                m = np.load(data1 / split / name / "mask.npy")
                assert m.dtype == np.uint8 and m.shape == (22, 160, 240) and m.max() <= 48
    ans = np.load(data1 / "hidden_answers.npz")
    assert ans["ids"].dtype == np.int64 and ans["ids"].tolist() == [15000, 15001]
    assert ans["masks"].dtype == np.uint8 and ans["masks"].shape == (2, 160, 240)


def test_workers_give_identical_bytes(data1, data2):
    assert files(data1) == files(data2)
    for rel in files(data1):
        if rel.endswith(".npz"):  # hidden_answers.npz, .true_states/: zip timestamps may differ; compare the arrays
            a, b = np.load(data1 / rel), np.load(data2 / rel)
            assert a.files == b.files and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a.files)
        else:
            assert (data1 / rel).read_bytes() == (data2 / rel).read_bytes(), rel


def test_hidden_answers_are_frame_22(data1):
    ans = np.load(data1 / "hidden_answers.npz")
    for vid, m in zip(ans["ids"].tolist(), ans["masks"]):
        _, mask, _ = scene.render_video(vid, seed=0, rgb_frames=[], mask_frames=[21])
        assert np.array_equal(mask[21], m)
        assert m.any()


def test_files_match_render_video(data1):
    frames, mask, info = scene.render_video(0, seed=0)
    assert frames.shape == (22, 160, 240, 3) and frames.dtype == np.uint8
    assert np.array_equal(np.load(data1 / "train/video_00000/mask.npy"), mask)
    for t in (0, 21):
        assert np.array_equal(np.asarray(Image.open(data1 / f"train/video_00000/image_{t}.png")), frames[t])
    # skipping the RGB work changes nothing in the masks
    assert np.array_equal(scene.render_video(0, seed=0, rgb_frames=[])[1], mask)


def test_seed_changes_video():
    a = scene.render_video(7, seed=0, rgb_frames=[0])
    b = scene.render_video(7, seed=0, rgb_frames=[0])
    c = scene.render_video(7, seed=1, rgb_frames=[0])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("vid", [1000, 1001, 1002])
def test_mask_ids_are_distinct_objects(vid):
    _, mask, info = scene.render_video(vid, seed=0, rgb_frames=[])
    cids = [o["class_id"] for o in info["objects"]]
    assert len(set(cids)) == len(cids) and 3 <= len(cids) <= 6 and all(1 <= c <= 48 for c in cids)
    assert set(np.unique(mask).tolist()) <= {0, *cids}
    assert (mask[0] > 0).any()
    for o in info["objects"]:  # first_frame agrees with the mask
        seen = [t for t in range(22) if (mask[t] == o["class_id"]).any()]
        assert o["first_frame"] == (seen[0] if seen else -1)


def test_resume(data1, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(data1, root)
    shutil.rmtree(root / "train/video_00001")
    (root / "hidden_answers.npz").unlink()
    stale = root / "train/.video_00000.tmp-999999999"  # left by a dead process
    stale.mkdir()
    (stale / "image_0.png").write_bytes(b"junk")
    keep = root / "val/video_01000/mask.npy"
    mtime = os.stat(keep).st_mtime_ns
    res = synth.generate(root, counts=COUNTS, seed=0, workers=1, progress=False)
    assert res["written"] == {"train": 1, "val": 0, "unlabeled": 0, "hidden": 0}
    assert res["skipped"] == {"train": 1, "val": 1, "unlabeled": 1, "hidden": 2}
    assert not stale.exists()
    assert os.stat(keep).st_mtime_ns == mtime
    assert files(root) == files(data1)
    for rel in files(data1):
        if not rel.endswith(".npz"):  # hidden_answers.npz (below) and the true states (test_true_states.py)
            assert (root / rel).read_bytes() == (data1 / rel).read_bytes(), rel
    a, b = np.load(root / "hidden_answers.npz"), np.load(data1 / "hidden_answers.npz")
    assert np.array_equal(a["masks"], b["masks"]) and np.array_equal(a["ids"], b["ids"])


def test_config():
    cfg = scene.make_config(frame_steps=10, speed=[1, 2])
    assert cfg.frame_steps == 10 and cfg.speed == (1, 2)
    with pytest.raises(TypeError):
        scene.make_config(no_such_key=1)
    with pytest.raises(ValueError):
        synth.generate("/nonexistent-never-written", counts={"test": 1})


def test_metal_mirrors_a_dark_sky():
    """`metal_sky` is the environment metal mirrors above the horizon: it changes metal pixels only, and the
    default (darker than the floor) darkens them, so a gray metal face facing up no longer looks like floor."""

    def metal_in_frame_0(v):
        _, mask, info = scene.render_video(v, rgb_frames=[], mask_frames=[0])
        return np.isin(mask[0], [o["class_id"] for o in info["objects"] if (o["class_id"] - 1) % 16 < 8]).sum() > 50

    vid = next(v for v in range(1000, 1050) if metal_in_frame_0(v))
    dark_rgb, mask, info = scene.render_video(vid, rgb_frames=[0], mask_frames=[0])
    bright_rgb, _, _ = scene.render_video(vid, rgb_frames=[0], mask_frames=[0], metal_sky=(0.15, 0.85))
    metal_ids = [o["class_id"] for o in info["objects"] if (o["class_id"] - 1) % 16 < 8]
    metal = np.isin(mask[0], metal_ids)
    changed = (dark_rgb[0].astype(int) - bright_rgb[0]).any(-1)
    assert metal.any() and changed.any()
    near_metal = ndimage.binary_dilation(metal, iterations=3)  # the 2x box-downsampling and blur spill 2 px
    assert not (changed & ~near_metal).any()
    assert dark_rgb[0][metal].astype(int).sum() < bright_rgb[0][metal].astype(int).sum()


ROOT = Path(__file__).resolve().parents[3]


def test_generate_from_an_unguarded_script_fails_fast_saying_what_to_do(tmp_path):
    """The docstring's use from a plain script without `if __name__ == "__main__":`: the spawned workers import
    the script and die starting their own pool. Before, the pool restarted them forever (10 minutes, 0 videos);
    now generate stops within seconds and says to add the guard or use workers=1."""
    import subprocess
    import sys
    import time

    script = tmp_path / "make_data.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom lib.data import synth\n"
        f"synth.generate({str(tmp_path / 'data')!r}, counts={{'train': 2}}, workers=2, progress=False)\n"
        "print('DONE')\n"
    )
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert time.time() - t0 < 60
    assert proc.returncode != 0 and "DONE" not in proc.stdout
    assert 'if __name__ == "__main__":' in proc.stderr and "workers=1" in proc.stderr


def test_a_worker_crash_names_the_video(tmp_path, monkeypatch):
    monkeypatch.setenv(synth.CRASH_ENV, "1")  # inherited by the spawned workers: the one given video 1 dies
    with pytest.raises(RuntimeError, match="worker process died .*train/video_00001"):
        synth.generate(tmp_path, counts={"train": 2}, seed=0, workers=2, progress=False)


def test_a_worker_error_names_the_video(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise ValueError("no physics today")

    monkeypatch.setattr(scene, "render_video", broken)
    with pytest.raises(RuntimeError, match="generating val/video_01000 failed: ValueError: no physics today"):
        synth.generate(tmp_path, counts={"val": 1}, seed=0, workers=1, progress=False)


@pytest.mark.parametrize(
    "counts,text",
    [
        ({"train": 1001}, "n_train=1001 is more than the 1000 ids of train .*ids of val, which starts at video_01000"),
        ({"val": 1500}, "n_val=1500 .*unlabeled"),
        ({"unlabeled": 13001}, "n_unlabeled=13001 is more than the 13000 ids .*hidden, which starts at video_15000"),
        ({"hidden": -1}, "cannot be negative"),
    ],
)
def test_split_ids_never_overlap(tmp_path, counts, text):
    """Train ids run from 0 and val from 1000: 1001 train videos would make video_01000 both a train and a val
    video (and 13001 unlabeled videos would put a hidden video, with its frame 22, in the training data)."""
    with pytest.raises(ValueError, match=text):
        synth.generate(tmp_path / "d", counts=counts, progress=False)
    assert not (tmp_path / "d").exists()  # refused before anything is written
    synth.check_counts(synth.REAL_COUNTS)  # the real sizes fill the layout exactly
    assert [synth.id_range(s) for s in synth.SPLITS] == [(0, 1000), (1000, 2000), (2000, 15000), (15000, None)]
