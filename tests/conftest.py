import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image


def write_video(vdir, n_frames=22, mask_frames=22, seed=0, size=(160, 240)):
    """A tiny hand-made video: random frames and a mask with a square object moving right."""
    rng = np.random.default_rng(seed)
    vdir.mkdir(parents=True, exist_ok=True)
    for t in range(n_frames):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(vdir / f"image_{t}.png")
    if mask_frames:
        m = np.zeros((mask_frames, *size), np.uint8)
        for t in range(mask_frames):
            m[t, 40:60, 10 + 3 * t : 30 + 3 * t] = 5 + seed % 40
        np.save(vdir / "mask.npy", m)
    return vdir


@pytest.fixture
def tiny_root(tmp_path):
    """train: 3 videos (one with an unpadded name), val: 2, unlabeled: 1, hidden: 2 (11 frames)."""
    root = tmp_path / "data"
    for i, name in enumerate(["video_00000", "video_2", "video_00010"]):
        write_video(root / "train" / name, seed=i)
    for i in (1000, 1001):
        write_video(root / "val" / f"video_{i:05d}", seed=i)
    write_video(root / "unlabeled" / "video_02000", mask_frames=0, seed=7)
    for i in (15000, 15001):
        write_video(root / "hidden" / f"video_{i:05d}", n_frames=11, mask_frames=0, seed=i)
    (root / "train" / ".DS_Store").write_text("x")
    (root / "val" / ".ipynb_checkpoints").mkdir()
    return root


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread is much faster than several contending for a busy CPU."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def mask_video(objects, shape, t_len=22):
    """(t_len, H, W) hand-made masks; each object is (cid, fn(t) -> (y0, x0, h, w) or None), drawn in order
    (later on top), clipped at the frame."""
    v = np.zeros((t_len, *shape), np.uint8)
    for cid, place in objects:
        for t in range(t_len):
            p = place(t)
            if p is not None:
                y0, x0, h, w = p
                v[t, max(y0, 0) : max(y0 + h, 0), max(x0, 0) : max(x0 + w, 0)] = cid
    return v


def moving(y0, x0, vy, vx, size=8, start=0):
    """A size x size square at (y0, x0) + t (vy, vx), absent before frame ``start`` (for ``mask_video``)."""
    return lambda t: None if t < start else (int(y0 + vy * t), int(x0 + vx * t), size, size)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in headless Chromium (needs chromium, jupyterlab, playwright)"
    )
    config.addinivalue_line(
        "markers", "rehearsal: the full profile rehearsed on the CPU (slow too; about 15-35 min on 2 cores)"
    )


ROOT = Path(__file__).resolve().parents[1]


def run_all(profile, run_dir, overrides, timeout=1800, only=""):
    """``run_all.sh PROFILE RUN_DIR`` with ``overrides`` as the RUN_PARAMS file (written beside the run folder),
    ``only`` as ONLY, this interpreter's environment first on PATH; returns the CompletedProcess."""
    over = Path(run_dir).parent / f"{Path(run_dir).name}-override.yaml"
    over.write_text(yaml.safe_dump(overrides))
    env = {**os.environ, "RUN_PARAMS": str(over), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["ONLY"] = only
    cmd = ["bash", str(ROOT / "run_all.sh"), profile, str(run_dir)]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# the paired comparisons notebook 07 writes to val_diff_ci (the last three carried over from notebook 06)
PAIRED_COMPARISONS = {
    "objects - SimVP fine-tuned",
    "fine-tuned - SimVP",
    "learned - physics",
    "still rule",
    "flip averaging",
}


def read_metrics(run, name):
    """A notebook's ``metrics/<name>.json`` in a run folder."""
    return json.loads((Path(run) / "metrics" / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """run_all.sh smoke, once a session, with data and the run folder (figures in it) in a temporary directory:
    (tmp, stdout) with the run in tmp/run and the data in tmp/data. The smoke pipeline's tests read it, and the
    sweep and comparison tests start from it (they copy or link it and never change it)."""
    tmp = tmp_path_factory.mktemp("smoke")
    proc = run_all("smoke", tmp / "run", {"data_root": str(tmp / "data")})
    assert proc.returncode == 0, f"run_all.sh smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return tmp, proc.stdout


def fake_venv(tmp_path, papermill_source, drop=("ONLY", "RUN_PARAMS")):
    """(environment, file of calls) for running the real run_all.sh with papermill stood in for: scripts/setup/env.sh
    puts $VENV/bin first on PATH, so the stand-in lives in a stand-in VENV whose `python` runs this interpreter and
    whose `papermill` is ``papermill_source`` (it appends its calls to $FAKE_CALLS). ``drop``: variables of this
    environment left out."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv / "bin" / "papermill").write_text(papermill_source)
    for f in ("python", "papermill"):
        (venv / "bin" / f).chmod(0o755)
    stamp = subprocess.run("cat pyproject.toml | cksum", shell=True, cwd=ROOT, capture_output=True, text=True)
    (venv / ".futureseg-installed").write_text(stamp.stdout)  # env.sh: installed, nothing to do
    calls = tmp_path / "calls.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(VENV=str(venv), FAKE_CALLS=str(calls))
    return env, calls
