"""The object experiments' scripts (scripts/experiments/) run as a user runs them, on tiny data."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_video

from lib.data import synth
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


def test_resim_states_script_on_generated_videos(tmp_path):
    """scripts/experiments/eval_resim_states.py on 4 generated val videos, with a hand-made fit: the generator's
    camera moved to target 0 and its physics in the predictor's time unit (0.1 s a frame, friction scaled by
    (0.1 / 0.125)^2). Every row and error is there; objects that met no other one have near-true velocities; and the
    predictor's states with every part replaced by the true one predict frame 22 nearly perfectly, which holds only
    if the true states are mapped into the fitted world and time unit right."""
    from lib.resim.camera import Camera
    from lib.resim.fit_camera import CameraFit
    from lib.resim.fit_physics import PhysicsFit
    from lib.resim.fitted import ResimFit
    from lib.resim.simulate import Physics

    root, run = tmp_path / "data", tmp_path / "run"
    synth.generate(root, counts={"val": 4}, seed=0, workers=1, progress=False, supersample=1)
    sizes = {"sphere_radius": 0.5, "cube_half": 0.4, "cylinder_radius": 0.5, "cylinder_height": 1.0}
    camera = CameraFit(Camera(32.0, 38.0, 10.0, 0.0), sizes, {"sphere": 0.1}, {"sphere": 1}, 0.5)
    physics = PhysicsFit(Physics(0.078, 0.0625, 0.8, 2.0, 0.1, 30), {"slide": 0.77, "roll": None, "runs": {}})
    ResimFit(camera, physics, {"train": "hand-made"}).to_json(run / "objects" / "resim.json")
    out = tmp_path / "states.json"
    run_script("eval_resim_states.py", "--run", run, "--data-root", root, "--inputs", "true", "--videos", 4,
               "--out", out)  # fmt: skip
    res = json.loads(out.read_text())
    rows = res["rows"]
    assert res["videos"] == 4 and len(rows) == 7 and all(0.0 <= r["iou"] <= 1.0 for r in rows.values())
    assert abs(res["alignment_scale"] - 1.0) < 0.02  # the same length unit (sphere radius 0.5)
    free = res["velocity_error"]["free"]["refined"]
    assert free["objects"] >= 5 and free["median"] < 0.1, free
    estimated = rows["re-simulation (estimated states)"]["iou"]  # 0.91 here
    assert rows["true velocities"]["iou"] > estimated + 0.02, rows  # 0.96: true velocities in the fitted unit
    assert rows["true velocities, spins, orientations and positions"]["iou"] > 0.95, rows  # 0.98
    assert "minus re-simulation" in rows["partly hidden frames left out (hidden=False)"]
