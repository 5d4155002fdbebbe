"""The objects' true 3-D states: recorded by lib/data/scene.py without changing the video, the same from the
physics alone, written by lib/data/synth.py for every split (resumably) and read back by lib/data/true_states.py."""

import json
import os
import shutil
from dataclasses import asdict

import numpy as np
import pytest

from lib.common.classes import attributes
from lib.data import scene, shading, synth, true_states
from lib.data.true_states import POS, QUAT, VEL

COUNTS = {"train": 2, "val": 1, "unlabeled": 1, "hidden": 2}
FAST = {"supersample": 1}  # the generator settings of the small datasets here


def same(a, b):
    """Two records (dicts of arrays) hold the same arrays, NaNs included."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


@pytest.mark.parametrize("vid", [0, 2])  # 2 has an entrant that spawns exactly at frame 6
def test_recording_changes_nothing_and_matches_the_physics_alone(vid):
    frames, mask, info = scene.render_video(vid, seed=0)
    frames_s, mask_s, info_s = scene.render_video(vid, seed=0, states=True)
    assert np.array_equal(frames, frames_s) and np.array_equal(mask, mask_s)
    assert info_s.pop("states") is not None and info == info_s
    # the hidden split's render (frames 0-10, mask 21) too
    hidden = {"rgb_frames": range(11), "mask_frames": [21]}
    a, b = scene.render_video(vid, **hidden), scene.render_video(vid, **hidden, states=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # the physics alone gives exactly what the renders record
    rec = scene.true_states(vid, seed=0)
    assert same(rec, scene.render_video(vid, seed=0, states=True)[2]["states"]) and same(rec, b[2]["states"])
    n = len(info["objects"])
    assert rec["states"].shape == (22, n, 13) and rec["states"].dtype == np.float32
    assert rec["class_ids"].tolist() == [o["class_id"] for o in info["objects"]]
    assert rec["entrant"].tolist() == [o["entrant"] for o in info["objects"]]
    assert rec["frame_dt"] == scene.DEFAULT.frame_steps / scene.DEFAULT.hz


@pytest.mark.parametrize("vid", range(6))
def test_frame_0_is_the_plan_and_nan_before_spawning(vid):
    cfg = scene.make_config(**FAST)
    plan = scene._plan(cfg, shading.Camera(cfg, cfg.supersample), np.random.default_rng([0, vid]))
    rec = scene.true_states(vid, cfg=cfg)
    s = rec["states"]
    assert rec["spawn_step"].tolist() == [o["spawn_step"] for o in plan]
    for i, o in enumerate(plan):
        exists = np.arange(22) * cfg.frame_steps >= o["spawn_step"]
        assert np.isnan(s[~exists, i]).all() and np.isfinite(s[exists, i]).all()
        if o["entrant"]:
            continue
        shape = attributes(o["class_id"])[0]
        assert np.allclose(s[0, i, POS][:2], o["xy"], atol=1e-5)
        assert abs(s[0, i, POS][2] - scene._half_height(cfg, shape)) < 2e-3  # resting on the floor
        assert np.array_equal(s[0, i, QUAT], [0, 0, 0, 1])
        assert np.allclose(s[0, i, VEL], [*o["vel"], 0], atol=1e-5)


@pytest.mark.parametrize("vid", [1, 3, 6])
def test_an_object_at_rest_stays_at_rest_until_hit(vid):
    _, _, info = scene.render_video(vid, rgb_frames=[], mask_frames=[], states=True, **FAST)  # draws nothing
    s = info["states"]["states"]
    still = [i for i, o in enumerate(info["objects"]) if not o["entrant"] and not o["moving_at_start"]]
    assert still
    for i in still:
        cid = info["objects"][i]["class_id"]
        hit = min((c["frame"] for c in info["collisions"] if cid in c["classes"]), default=22)
        before = s[: int(np.ceil(hit)), i]
        assert len(before) >= 3
        assert np.abs(before[:, POS] - before[0, POS]).max() < 2e-3  # the 1 mm settle onto the floor at most
        assert np.abs(before[:, 7:]).max() < 1e-3
        assert np.abs(s[-1, i, POS] - s[0, i, POS]).max() > 0.05 or hit == 22  # a hit moves it


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("states")
    res = synth.generate(root, counts=COUNTS, seed=0, workers=1, progress=False, **FAST)
    assert res["written"] == COUNTS and not any(res["states_only"].values())
    return root


def ids():
    return [v for split, n in COUNTS.items() for v in range(synth.SPLITS[split], synth.SPLITS[split] + n)]


def test_generate_writes_the_states_of_every_split(data):
    assert sorted(p.name for p in (data / true_states.DIR).iterdir()) == [f"video_{v:05d}.npz" for v in ids()]
    for vid in ids():
        with np.load(true_states.path(data, vid)) as z:
            assert same({k: z[k] for k in z.files}, scene.true_states(vid, 0, **FAST))
    for split in COUNTS:  # nothing of them inside the split folders
        assert not list((data / split).rglob("*.npz"))


def test_resume_fills_in_missing_states_without_rendering(data, tmp_path, monkeypatch):
    root = tmp_path / "copy"
    shutil.copytree(data, root)
    gone = [1, 15000]
    for vid in gone:
        true_states.path(root, vid).unlink()
    folder = synth.video_dir(root, "train", 1)
    before = (os.stat(folder).st_ino, os.stat(folder).st_mtime_ns, os.stat(folder / "image_0.png").st_mtime_ns)

    def no_render(*a, **k):
        raise AssertionError("rendered")

    monkeypatch.setattr(scene, "render_video", no_render)
    res = synth.generate(root, counts=COUNTS, seed=0, workers=1, progress=False, **FAST)
    assert res["written"] == {s: 0 for s in COUNTS}
    assert res["states_only"] == {"train": 1, "val": 0, "unlabeled": 0, "hidden": 1}
    after = (os.stat(folder).st_ino, os.stat(folder).st_mtime_ns, os.stat(folder / "image_0.png").st_mtime_ns)
    assert after == before
    for vid in gone:
        a, b = np.load(true_states.path(root, vid)), np.load(true_states.path(data, vid))
        assert same({k: a[k] for k in a.files}, {k: b[k] for k in b.files})
    a, b = np.load(root / "hidden_answers.npz"), np.load(data / "hidden_answers.npz")
    assert np.array_equal(a["masks"], b["masks"]) and np.array_equal(a["ids"], b["ids"])


def test_load_reads_the_files(data):
    recs = true_states.load(data, [1000, 15001])
    assert sorted(recs) == [1000, 15001]
    r = recs[15001]
    assert r.frame_dt == 30 / 240 and r.states.shape == (22, len(r.class_ids), 13)
    assert same(asdict(r), {**scene.true_states(15001, 0, **FAST), "frame_dt": 30 / 240})


def test_load_computes_missing_states_from_the_generator_record(tmp_path):
    record = {"seed": 3, "cfg": FAST, "config": asdict(scene.make_config(**FAST))}  # as prepare_dataset writes it
    (tmp_path / "SYNTHETIC.json").write_text(json.dumps(record))
    r = true_states.load(tmp_path, [1000])[1000]
    want = scene.true_states(1000, 3, **FAST)
    assert same(asdict(r), {**want, "frame_dt": float(want["frame_dt"])})
    assert true_states.path(tmp_path, 1000).is_file()  # written: the next load reads it
    with np.load(true_states.path(tmp_path, 1000)) as z:
        assert same({k: z[k] for k in z.files}, want)


def test_real_data_has_no_true_states(tmp_path):
    (tmp_path / "val" / "video_01000").mkdir(parents=True)
    with pytest.raises(true_states.NoTrueStates, match=f"{tmp_path}.*SYNTHETIC.json.*real layout"):
        true_states.load(tmp_path, [1000])
    assert not (tmp_path / true_states.DIR).exists()
