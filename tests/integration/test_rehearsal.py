"""The full profile rehearsed on the CPU (slow tier, marker ``rehearsal``): run_all.sh full with
params/full-rehearsal.yaml, every notebook 00-07 with the full model sizes on a tiny dataset; and the scripts
around the full profile (memory table, time estimates, the GPU check in its CPU form)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lib.common import gpu_plan

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REHEARSAL = ROOT / "params" / "full-rehearsal.yaml"


def full(name):
    return yaml.safe_load((ROOT / "params" / "full" / f"{name}.yaml").read_text())


def test_rehearsal_keeps_the_full_model_sizes():
    """The rehearsal file changes data, steps and batches, never what decides the models' sizes or decoding."""
    over = yaml.safe_load(REHEARSAL.read_text())
    sizes = {*full("02_unet"), *full("04_simvp")} & {
        "width",
        "depth",
        "head",
        "decode",
        "crop",
        "embed_dim",
        "hid_S",
        "hid_T",
        "N_S",
        "N_T",
        "down",
        "mlp_ratio",
        "backend",
    }
    assert {"width", "hid_T", "decode"} <= sizes
    assert not sizes & set(over), f"the rehearsal overrides model settings {sorted(sizes & set(over))}"
    assert over["micro_batch"] < over["batch_size"]  # gradient accumulation runs
    assert over["num_workers"] > 0  # data loader worker processes run


@pytest.mark.slow
@pytest.mark.rehearsal
def test_full_profile_rehearsal_runs_every_notebook(tmp_path):
    """About 34 min on the project's shared 2-core CPU (other jobs running): 13 SimVP rollouts of 11 steps at
    full size (about 8.5 s a step in float32) dominate; deselect with -m "not rehearsal"."""
    over = yaml.safe_load(REHEARSAL.read_text())
    over.update(data_root=str(tmp_path / "data"))
    params = tmp_path / "rehearsal.yaml"
    params.write_text(yaml.safe_dump(over))
    env = {**os.environ, "RUN_PARAMS": str(params), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = tmp_path / "run"
    proc = subprocess.run(
        ["bash", str(ROOT / "run_all.sh"), "full", str(run)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, f"rehearsal failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    rows = [r.split("\t") for r in (run / "timings.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == [nb.stem for nb in NOTEBOOKS] and all(r[2] == "ok" for r in rows)
    print("rehearsal timings (s):", {r[0]: int(r[1]) for r in rows}, "total", sum(int(r[1]) for r in rows))
    # the full sizes ran: parameter counts of the reference models (docs/profiles.md)
    m2 = json.loads((run / "metrics" / "02_unet.json").read_text())
    m4 = json.loads((run / "metrics" / "04_simvp.json").read_text())
    assert 30e6 < m2["params"] < 32e6 and 48e6 < m4["params"] < 49e6
    # micro-batching ran, one sample at a time, with the memory estimate printed
    for nb in ("02_unet", "04_simvp", "05_finetune"):
        log = (run / "logs" / f"{nb}.log").read_text()
        assert "[memory] micro-batch 1 of batch 2 (set; 2 accumulation steps)" in log, nb
    assert "vote_video" in (run / "parameters" / "02_unet.json").read_text()
    assert (run / "submission.pt").is_file()


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_at_smoke_sizes(tmp_path):
    """scripts/bench/gpu_check.py --tiny: the epochs and benchmark parts on the CPU, then the table and estimates."""
    out = tmp_path / "check"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench" / "gpu_check.py"), "--tiny", "--only", "epochs", "bench"]
    proc = subprocess.run(cmd + ["--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rec = json.loads((out / "gpu_check.json").read_text())
    for step in ("unet", "simvp", "finetune"):
        r = rec["epochs"][step]
        assert 1 <= r["memory"]["micro_batch"] <= r["memory"]["batch_size"] and r["samples_per_s"] > 0
        assert r["peak_gb"] > 0
    bench = json.loads((out / "memory_cpu.json").read_text())
    assert set(bench["steps"]) == {"unet", "simvp", "finetune"} and bench["profile"] == "smoke"
    assert "| T4 16 GB (Colab) |" in (out / "gpu_table.log").read_text()
    assert "| 04_simvp |" in (out / "estimate_time.log").read_text()


def test_gpu_check_dry_lists_the_rehearsal(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench" / "gpu_check.py"), "--dry", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "run_all.sh full" in proc.stdout and "bench_memory.py --device" in proc.stdout
    assert "data_root" in (tmp_path / "rehearsal.yaml").read_text()


BENCH = ROOT / "results" / "memory_cpu.json"


@pytest.mark.skipif(not BENCH.is_file(), reason="no results/memory_cpu.json")
def test_gpu_table_and_time_estimates_from_the_committed_benchmark():
    bench = json.loads(BENCH.read_text())
    table = gpu_plan.derive(bench)
    assert list(table) == list(gpu_plan.GPUS) and all(set(row) == set(bench["steps"]) for row in table.values())
    t4 = table["T4 16 GB (Colab)"]
    for step, r in t4.items():  # the run-time choice fits by the measured cost, with room to spare
        assert 1 <= r["chosen"] <= r["fits"] and r["chosen"] * r["accumulation"] >= bench["steps"][step]["batch_size"]
        assert (r["accumulation"] - 1) * r["chosen"] < bench["steps"][step]["batch_size"]  # no more steps than needed
        assert r["used_gb"] < 0.9 * r["total_gb"]
    assert t4["simvp"]["accumulation"] > 1  # the profile's SimVP batch needs accumulation on a T4
    big = table["H100 80 GB"]
    assert all(big[s]["chosen"] >= t4[s]["chosen"] for s in t4) and big["simvp"]["accumulation"] == 1
    rows = {nb: sec for nb, sec, _ in gpu_plan.estimate(bench)}
    assert list(rows) == [nb.stem for nb in NOTEBOOKS]
    assert rows["04_simvp"] > rows["07_predict_hidden"] > 0 and rows["01_explore"] is None
    unestimated = ("01_explore", "06_objects", "08_compare_runs")
    assert all(rows[nb] is None for nb in unestimated) and all(rows[nb] > 0 for nb in rows if nb not in unestimated)
    # the rehearsal's own counts: minutes, not days
    small = {nb: sec for nb, sec, _ in gpu_plan.estimate(bench, extra=[REHEARSAL])}
    assert sum(v for k, v in small.items() if v and not k.startswith("00")) < 3600
    assert all(small[nb] < rows[nb] for nb in rows if rows[nb] is not None)


def _script(name, *args):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench" / name), *map(str, args)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(not BENCH.is_file(), reason="no results/memory_cpu.json")
def test_gpu_table_and_estimate_time_scripts_print_the_tables():
    """The two scripts as a user runs them: the library's tables, printed."""
    bench = json.loads(BENCH.read_text())
    printed = _script("gpu_table.py", "--bench", BENCH, "--precision", "fp32")
    assert printed == gpu_plan.gpu_table(bench, "fp32") + "\n"
    assert "| T4 16 GB (Colab) |" in printed and "fp32." in printed
    printed = _script("estimate_time.py", "--bench", BENCH, "--params", REHEARSAL)
    assert printed == gpu_plan.time_table(bench, extra=[REHEARSAL]) + "\n"
    assert "| 04_simvp |" in printed and printed.splitlines()[-1].startswith("| 02-07 (training and inference) |")
