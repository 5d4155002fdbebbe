"""Masks-only synthetic videos for the object dynamics model, and the object experiments' scripts run as a user
runs them (tiny, fast)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_video

from lib.data import scene, synth
from lib.objects import learned
from lib.objects.motion import MotionSettings

ROOT = Path(__file__).resolve().parents[2]
FIRST = synth.extra_first_id(100)  # after the cpu profile's 100 unlabeled videos


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def run_script(name, *args):
    """scripts/experiments/<name> run in a fresh interpreter from the project root, as a user runs it."""
    cmd = [sys.executable, str(ROOT / "scripts" / "experiments" / name), *map(str, args)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


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


def test_untrained_model_is_the_baseline_on_masks_only_videos():
    cfg = dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0)
    _, m, _ = scene.render_video(FIRST, 0, rgb_frames=[], mask_frames=synth.MASK_FRAMES)
    item = learned.video_objects(m, cfg, with_target=True)
    assert item["cids"] and item["tmask"].any()
    (preds,) = learned.predict_items(learned.build_model(cfg), [item], "cpu")
    for c, p in preds.items():
        assert np.allclose(p.disp, item["preds"][c].disp) and np.isclose(p.scale, item["preds"][c].scale)


def _tiny_data(root):
    """A train split of 8 and a val split of 4 masks-only synthetic videos (mask.npy only, what the script reads)."""
    for split, first, n in (("train", 0, 8), ("val", 1000, 4)):
        for vid in range(first, first + n):
            _, m, _ = scene.render_video(vid, 0, rgb_frames=[], mask_frames=synth.MASK_FRAMES)
            d = root / split / f"video_{vid:05d}"
            d.mkdir(parents=True)
            np.save(d / "mask.npy", m)
    (root / "SYNTHETIC.json").write_text(json.dumps({"seed": 0, "counts": {"unlabeled": 100}}))


def test_scaling_script_tiny(tmp_path):
    root = tmp_path / "data"
    _tiny_data(root)
    labels = np.stack([np.load(d / "mask.npy") for d in sorted((root / "val").glob("video_*"))])
    np.save(tmp_path / "unet.npy", labels)  # stand-in U-Net labels
    out = tmp_path / "s.json"
    args = ["--tiny", "--data-root", root, "--unet-labels", tmp_path / "unet.npy", "--workers", "1"]
    base = tmp_path / "06_objects.json"  # the baseline's settings (no fitting: fast)
    base.write_text(json.dumps({"settings": {"physics": dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0)}}))
    args += ["--baseline-from", base, "--extra-dir", tmp_path / "extra"]
    args += ["--work-dir", tmp_path / "work", "--out", out]
    run_script("dynamics_scaling.py", *args)
    res = json.loads(out.read_text())
    assert res["sizes"] == [8, 12] and [r["videos"] for r in res["rows"]] == [8, 12]
    assert res["extra"]["first_id"] == 2100 and res["extra"]["n"] == 4
    for r in res["rows"]:
        for src in ("true", "unet"):
            for key in ("learned", "physics"):
                assert set(r[key][src]) == {"iou", "ci"} and 0 <= r[key][src]["iou"] <= 1
            assert set(r["diff"][src]) == {"diff", "ci"}
    assert out.with_suffix(".png").is_file()
    assert (tmp_path / "extra" / "masks_s0_2100_4_ss1.npy").is_file()  # where the script keeps its extra videos


def test_generate_masks_workers_give_identical_masks(tmp_path):
    one = synth.generate_masks(tmp_path / "w1.npy", 2, FIRST, workers=1, progress=False, chunk=1)
    two = synth.generate_masks(tmp_path / "w2.npy", 2, FIRST, workers=2, progress=False, chunk=1)
    assert np.array_equal(np.load(one), np.load(two))


def test_train_dynamics_select_last(tmp_path):
    vids = np.stack(
        [scene.render_video(FIRST + i, 0, rgb_frames=[], mask_frames=synth.MASK_FRAMES)[1] for i in range(5)]
    )
    cfg = dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0, d=16, heads=2, layers=1)
    model, hist = learned.train_dynamics(
        [vids], tmp_path / "r", epochs=2, cfg=cfg, device="cpu", progress=False, select="last"
    )
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=False)["model"]
    assert len(hist) == 2 and all(torch.equal(v, last[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="select"):
        learned.train_dynamics([vids], tmp_path / "r2", epochs=1, cfg=cfg, device="cpu", progress=False, select="first")


def test_still_rule_script_on_fresh_videos(tmp_path):
    """scripts/experiments/eval_still_rule.py scores a checkpoint with and without the still rule on freshly generated
    videos: a model that moves every object 5 px down does better when the objects the physics keeps still stay put."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "SYNTHETIC.json").write_text(json.dumps({"seed": 0, "cfg": {}}))
    cfg = dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0, d=16)
    model = learned.build_model(cfg)
    with torch.no_grad():
        model.head[-1].bias.copy_(torch.tensor([0.5, 0.0, 0.0]))
    torch.save({"model": model.state_dict(), "config": {"model": model.cfg}}, tmp_path / "last.pt")
    out = tmp_path / "still.json"
    run_script(
        "eval_still_rule.py",
        *["--checkpoint", tmp_path / "last.pt", "--data-root", tmp_path / "data", "--videos", "4"],
        *["--first-id", FIRST, "--cache", tmp_path / "cache", "--workers", "1", "--out", out],
    )
    res = json.loads(out.read_text())
    assert res["ids"] == [FIRST, FIRST + 3]
    assert res["still"] == 0.5 and res["iou_with_rule"] > res["iou_without_rule"]
    assert res["rule_minus_none"]["diff"] > 0
    assert (tmp_path / "cache" / f"masks_s0_{FIRST}_4_ss2.npy").is_file()  # rasterised like the dataset


def test_fragment_script_scores_the_rule_and_counts_the_ids(tmp_path):
    """scripts/experiments/eval_fragments.py on a hand-made run: a fragment (id 30, 3 frames, inside the frame) kept in
    the U-Net inputs is drawn at frame 22 where nothing is; with the rule it is dropped, the IoU is higher, and it is
    counted as an id the true masks do not hold. The module setting is restored afterwards (the run records it)."""
    videos = np.zeros((3, 22, 160, 240), np.uint8)
    for i, v in enumerate(videos):
        for t in range(22):
            x = 20 + 3 * t
            v[t, 40 + 20 * i : 52 + 20 * i, x : x + 12] = 5 + i
    truth = videos.copy()
    videos[0, 8:11, 60:64, 150:160] = 30  # the fragment, in one video
    root, run = tmp_path / "data", tmp_path / "run"
    for i in range(3):
        np.save(write_video(root / "val" / f"video_{1000 + i:05d}", seed=i) / "mask.npy", truth[i])
    for sub in ("labels", "objects", "metrics"):
        (run / sub).mkdir(parents=True)
    np.save(run / "labels" / "val.npy", videos)  # the U-Net labels, with the fragment
    np.save(run / "labels" / "val.ids.npy", np.arange(1000, 1003))
    cfg = learned.config(MotionSettings("decel", k=2, decel=0.0), d=16)  # no deceleration: constant velocity
    model = learned.build_model(cfg)  # untrained: the baseline itself
    torch.save({"model": model.state_dict(), "config": {"model": model.cfg}}, run / "objects" / "last.pt")
    (run / "objects" / "selected.json").write_text(json.dumps({"min_area": 20, "denoise": True}))
    (run / "metrics" / "06_objects.json").write_text(json.dumps({"settings": {"physics": cfg}}))
    out = tmp_path / "fragments.json"
    run_script("eval_fragments.py", "--run", run, "--data-root", root, "--out", out)
    res = json.loads(out.read_text())
    assert res["fragment_frames"] == 3 and set(res["splits"]) == {"val"}
    r = res["splits"]["val"]
    for name in ("learned", "physics"):
        assert r[name]["iou_with_rule"] == pytest.approx(1.0) and r[name]["iou_without_rule"] < 1.0
        assert r[name]["rule_minus_none"]["diff"] > 0
    assert r["dropped_ids"] == 1 and r["dropped_ids_not_in_true_masks"] == 1
