"""Two-process DDP on CPU (gloo) through torchrun, against a single-process run with the same global batch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.integration.ddp_worker import EPOCHS, GLOBAL_BATCH, N

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def _run(cmd, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd + [str(out), *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return torch.load(out / "final.pt", weights_only=False)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found")
def test_two_process_gloo_matches_single_process(tmp_path):
    single = _run([sys.executable, "-m", "tests.integration.ddp_worker"], tmp_path / "single")
    ddp = _run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "tests.integration.ddp_worker"], tmp_path / "ddp")
    assert ddp["world"] == 2 and single["world"] == 1
    # every sample seen exactly once per epoch, split between the ranks
    per_rank = [json.loads((tmp_path / "ddp" / f"seen_{r}.json").read_text()) for r in (0, 1)]
    steps = N // GLOBAL_BATCH
    for e in range(EPOCHS):
        ids = [i for r in per_rank for batch in r[e * steps : (e + 1) * steps] for i in batch]
        assert sorted(ids) == list(range(N))
    # same global batches as the single process: the same weights within float tolerance (stated: 1e-5)
    for k, v in single["state"].items():
        torch.testing.assert_close(ddp["state"][k], v, atol=1e-5, rtol=1e-5)
    for a, b in zip(single["history"], ddp["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5
    assert (tmp_path / "ddp" / "ckpt" / "last.pt").is_file()


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found")
def test_micro_batches_under_torchrun_match_whole_batches(tmp_path):
    """Each rank's 4 samples in micro-batches of 2 (no all-reduce until the last piece, DDP's no_sync) against
    one process taking the global batch of 8 at once: the same weights (tolerance 1e-5, as above)."""
    single = _run([sys.executable, "-m", "tests.integration.ddp_worker"], tmp_path / "single")
    ddp = _run(
        [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "tests.integration.ddp_worker"], tmp_path / "ddp", "2"
    )
    assert ddp["world"] == 2
    for k, v in single["state"].items():
        torch.testing.assert_close(ddp["state"][k], v, atol=1e-5, rtol=1e-5)
    for a, b in zip(single["history"], ddp["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found")
def test_ranks_agree_on_the_micro_batch(tmp_path):
    """micro_batch None under torchrun: each rank estimates from its own free memory (faked: plenty on rank 0,
    next to none on rank 1, so alone they would pick 4 and 1), then all take the smallest, so every rank runs
    the same number of forward passes per step (SyncBatchNorm on CUDA hangs otherwise)."""
    ddp = _run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "tests.integration.ddp_worker"], tmp_path, "auto")
    chosen = [json.loads((tmp_path / f"micro_{r}.json").read_text()) for r in (0, 1)]
    assert [c["fits_here"] for c in chosen] == [GLOBAL_BATCH // 2, 1]  # what each rank would pick alone
    assert [c["micro_batch"] for c in chosen] == [1, 1]
    assert ddp["world"] == 2 and len(ddp["history"]) == EPOCHS


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found")
def test_unet_cli_under_torchrun(tiny_root, tmp_path):
    out = tmp_path / "unet"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        TORCHRUN,
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "scripts" / "tools" / "train.py"),
        "unet",
        "--data-root",
        str(tiny_root),
        "--out",
        str(out),
        "--device",
        "cpu",
        "width=4",
        "depth=2",
        "epochs=1",
        "batch_size=4",
        "steps_per_epoch=2",
        "eval_videos=1",
        "eval_frames=2",
    ]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "world size 2" in p.stdout
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["fit"]["batch_size"] == 2  # global batch 4 split over 2 ranks
