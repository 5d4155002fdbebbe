"""scripts/tools/seeds.py, run as a user runs it: the runs it starts and the summary of the headline comparisons
over seeds. run_all.sh is stood in for by a `bash` on PATH that records how it was called and writes the
notebook 07 metrics a run would. And the pre-commit hooks (.pre-commit-config.yaml): the tools and options of
the fast tier's checks."""

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "scripts" / "tools" / "seeds.py"
LATER = "02 03 04 05 06 07"  # the notebooks a later seed reruns (notebook 00 made the data)

# the stand-in for `bash run_all.sh PROFILE RUN`: one line of what it got, then RUN/metrics from $FAKE_METRICS
STUB = """#!/bin/sh
printf '%s|%s|%s|%s|%s\\n' "$1" "$2" "$3" "${ONLY-unset}" "$RUN_PARAMS" >> "$FAKE_CALLS"
mkdir -p "$3/metrics" && cp "$FAKE_METRICS/$(basename "$3").json" "$3/metrics/07_predict_hidden.json"
"""


def _metrics(diff, ci, iou):
    return {
        "val_table": {"SimVP (notebook 04)": iou},
        "val_diff_ci": {"fine-tuned - SimVP": {"a": "x", "b": "y", "diff": diff, "ci": ci}},
    }


@pytest.fixture
def stub(tmp_path):
    """(environment with the stand-in `bash` first on PATH, file of its calls, folder of the metrics it writes)."""
    bin_dir, fake = tmp_path / "bin", tmp_path / "fake"
    bin_dir.mkdir()
    fake.mkdir()
    (bin_dir / "bash").write_text(STUB)
    (bin_dir / "bash").chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.update(FAKE_CALLS=str(calls), FAKE_METRICS=str(fake))
    env.pop("ONLY", None)
    env.pop("RUN_PARAMS", None)
    for seed, m in enumerate([_metrics(0.02, [0.01, 0.03], 0.30), _metrics(0.00, [-0.01, 0.01], 0.32)]):
        (fake / f"seed{seed}.json").write_text(json.dumps(m))
    (fake / "seed2.json").write_text(json.dumps(_metrics(0.04, [0.02, 0.06], 0.34)))
    return env, calls, fake


def seeds(env, *args):
    return subprocess.run(
        [sys.executable, str(SEEDS), *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_each_seed_runs_run_all_with_its_seed_and_the_data_is_made_once(stub, tmp_path):
    env, calls, _ = stub
    extra = tmp_path / "extra.yaml"
    extra.write_text("data_root: /somewhere\nseed: 99\n")
    out = tmp_path / "out"
    proc = seeds(env, "smoke", "--out", out, "--params", extra)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line.split("|") for line in calls.read_text().splitlines()]
    assert [r[:3] for r in rows] == [[str(ROOT / "run_all.sh"), "smoke", str(out / f"seed{s}")] for s in range(3)]
    assert [r[3] for r in rows] == ["unset", LATER, LATER]  # notebook 00 (the data) only in the first run
    for seed, r in enumerate(rows):  # each run's RUN_PARAMS: the --params files, then its own seed
        assert Path(r[4]) == (out / f"seed{seed}.yaml").resolve()
        assert yaml.safe_load(Path(r[4]).read_text()) == {"data_root": "/somewhere", "seed": seed}

    # a seed whose notebook 07 metrics exist is not run again
    proc = seeds(env, "smoke", "--out", out, "--params", extra)
    assert proc.returncode == 0 and len(calls.read_text().splitlines()) == 3, proc.stderr[-2000:]
    assert proc.stdout.count("is complete, not run again") == 3


def test_a_failed_seed_stops_the_script(stub, tmp_path):
    env, calls, fake = stub
    (fake / "seed1.json").unlink()  # the stand-in fails for seed 1 (nothing to copy)
    proc = seeds(env, "smoke", "--out", tmp_path / "out")
    assert proc.returncode == 1 and "[seeds] seed 1 failed (exit 1)" in proc.stderr
    assert len(calls.read_text().splitlines()) == 2 and not (tmp_path / "out" / "seeds.json").exists()


def test_summary_over_seeds(stub, tmp_path):
    env, calls, fake = stub
    out = tmp_path / "out"
    for seed in range(3):  # finished runs: --collect only reads them
        (out / f"seed{seed}" / "metrics").mkdir(parents=True)
        (out / f"seed{seed}" / "metrics" / "07_predict_hidden.json").write_text((fake / f"seed{seed}.json").read_text())
    proc = seeds(env, "smoke", "--out", out, "--collect")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not calls.exists()  # --collect runs nothing
    s = json.loads((out / "seeds.json").read_text())
    assert s["seeds"] == [0, 1, 2]
    c = s["comparisons"]["fine-tuned - SimVP"]
    assert c["mean"] == pytest.approx(0.02) and c["sd"] == pytest.approx(0.02)
    assert (c["seeds_ci_above_0"], c["seeds_ci_below_0"], c["seeds"]) == (2, 0, 3)
    assert (c["a"], c["b"]) == ("x", "y") and c["per_seed"]["1"] == {"diff": 0.0, "ci": [-0.01, 0.01]}
    assert s["stages"]["SimVP (notebook 04)"]["mean"] == pytest.approx(0.32)
    assert s["stages"]["SimVP (notebook 04)"]["per_seed"] == {"0": 0.30, "1": 0.32, "2": 0.34}
    assert "fine-tuned - SimVP" in proc.stdout and "mean +0.0200 sd 0.0200" in proc.stdout

    proc = seeds(env, "smoke", "--out", out, "--collect", "--seeds", "0", "5")
    assert proc.returncode != 0 and "seed 5 has no notebook 07 metrics" in proc.stderr


def test_pre_commit_hooks_run_the_pinned_tools_as_the_fast_tier_does():
    """The hooks run .venv's ruff and nbstripout (pinned in the `test` extra, the versions installed) with the
    options of tests/notebooks/test_notebooks.py's checks: `ruff check` (fixing), `ruff format`, and nbstripout
    with its defaults (what the git filter writes, the `parameters` tag kept)."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert set(hooks) == {"ruff-check", "ruff-format", "nbstripout"}
    assert all(h["language"] == "system" for h in hooks.values())
    assert hooks["ruff-check"]["entry"].split()[:3] == ["ruff", "check", "--fix"]
    fmt = hooks["ruff-format"]["entry"]
    assert fmt.split()[:2] == ["ruff", "format"] and "--check" not in fmt
    for ruff in ("ruff-check", "ruff-format"):  # notebooks too, as `ruff check .` reads them (extend-include)
        assert "jupyter" in hooks[ruff]["types_or"] and "python" in hooks[ruff]["types_or"]
    assert hooks["nbstripout"]["entry"] == "nbstripout" and "args" not in hooks["nbstripout"]
    assert hooks["nbstripout"]["types"] == ["jupyter"]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pins = dict(r.split("==") for r in extra if "==" in r)
    for tool in ("ruff", "nbstripout", "pre-commit"):
        assert pins.get(tool) == version(tool), (
            f"{tool}: the `test` extra pins {pins.get(tool)}, .venv has {version(tool)}"
        )
