"""scripts/experiments/eval_refine.py (the per-object mask refinement, an experiment not adopted) run as a user runs
it, on the tiny hand-made dataset: its output file holds every row with an interval, and the refiner's contract."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_eval_refine_script_tiny(tmp_path, tiny_root):
    """--tiny end to end: every row with an interval; the true-shapes oracle is the truth with true inputs; an
    untrained refiner draws exactly what the renderer draws; the refiner trained with the physics placements too."""
    out = tmp_path / "r.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "experiments" / "eval_refine.py"), "--data-root", str(tiny_root)]
    cmd += ["--tiny", "--size-b", "0", "--motion-train", "--train-dir", str(tmp_path / "refine")]
    proc = subprocess.run(cmd + ["--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["val_videos"] == 2 and set(r["results"]) == {"true"}  # no U-Net labels given: true inputs only
    rows, diffs = r["results"]["true"]["rows"], r["results"]["true"]["diffs"]
    assert {"oracle position", "oracle position + refine", "oracle true shapes", "physics", "physics + refine"} <= set(
        rows
    )
    assert all(v["ci"][0] - 1e-9 <= v["iou"] <= v["ci"][1] + 1e-9 for v in rows.values())
    assert rows["oracle true shapes"]["iou"] == pytest.approx(1.0)
    assert "physics + refine - physics" in diffs
    assert r["results"]["true"]["untrained_is_renderer"] is True
    # no fitted settings given: deceleration in image px (k 3, decel 0.2, no floor camera), size model off
    assert {k: r["physics"][k] for k in ("method", "k", "decel", "F", "size_b")} == {
        "method": "physics",
        "k": 3,
        "decel": 0.2,
        "F": None,
        "size_b": 0.0,
    }
    assert r["motion_train"] and r["model"]["threshold"] in (-0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8)
    assert (tmp_path / "refine" / "best.pt").is_file()
