"""scripts/tools/seeds.py: the runs it plans and the summary of the headline comparisons over seeds."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import seeds  # noqa: E402


def test_plan_makes_the_data_once_then_varies_the_training_seed(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("data_root: /somewhere\nseed: 99\n")
    runs = seeds.plan(tmp_path / "out", [0, 1, 2], [extra])
    assert [r[0] for r in runs] == [0, 1, 2]
    assert [r[3] for r in runs] == [None, seeds.LATER, seeds.LATER]  # notebook 00 only in the first run
    assert all(r[2]["seed"] == r[0] and r[2]["data_root"] == "/somewhere" for r in runs)
    assert runs[1][1] == tmp_path / "out" / "seed1"


def _fake_run(run, diff, ci, iou):
    (run / "metrics").mkdir(parents=True)
    m = {
        "val_table": {"SimVP (notebook 04)": iou},
        "val_diff_ci": {"fine-tuned - SimVP": {"a": "x", "b": "y", "diff": diff, "ci": ci}},
    }
    (run / "metrics" / "07_predict_hidden.json").write_text(json.dumps(m))


def test_summary_over_seeds(tmp_path):
    _fake_run(tmp_path / "seed0", 0.02, [0.01, 0.03], 0.30)
    _fake_run(tmp_path / "seed1", 0.00, [-0.01, 0.01], 0.32)
    _fake_run(tmp_path / "seed2", 0.04, [0.02, 0.06], 0.34)
    s = seeds.summarize([(i, tmp_path / f"seed{i}") for i in range(3)])
    c = s["comparisons"]["fine-tuned - SimVP"]
    assert c["mean"] == pytest.approx(0.02) and c["sd"] == pytest.approx(0.02)
    assert (c["seeds_ci_above_0"], c["seeds_ci_below_0"], c["seeds"]) == (2, 0, 3)
    assert s["stages"]["SimVP (notebook 04)"]["mean"] == pytest.approx(0.32)
    assert seeds.main(["smoke", "--out", str(tmp_path), "--collect"]) == 0
    assert json.loads((tmp_path / "seeds.json").read_text())["seeds"] == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="seed 5 has no notebook 07 metrics"):
        seeds.summarize([(5, tmp_path / "seed5")])
