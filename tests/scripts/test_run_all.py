"""run_all.sh, run as a user runs it, with papermill stood in for: what stops a run before its first notebook
(an unknown key, an ONLY that names no notebook, a second run on the same folder), the ONLY spellings, and the
parameters each notebook gets.

scripts/setup/env.sh puts $VENV/bin first on PATH, so the stand-in lives in a stand-in VENV: its `python` runs
this interpreter and its `papermill` records which notebook it got with which parameters, then writes an
executed notebook holding them (what lib/common/provenance.py reads). Each run takes seconds.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import fake_venv

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]

PAPERMILL = f"""#!{sys.executable}
import json, os, sys, time, yaml
args, params = sys.argv[1:], {{}}
for i, a in enumerate(args):
    if a == "-f":
        params.update(yaml.safe_load(open(args[i + 1])) or {{}})
    if a == "-p":
        params[args[i + 1]] = args[i + 2]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({{"notebook": os.path.basename(args[0])[:-6], "args": args, "parameters": params}}) + "\\n")
nb = {{"cells": [], "metadata": {{"papermill": {{"parameters": params}}}}, "nbformat": 4, "nbformat_minor": 5}}
json.dump(nb, open(args[1], "w"))
time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))  # a notebook that takes a while
"""


@pytest.fixture
def fake(tmp_path):
    """(environment whose VENV has the stand-in papermill, file of its calls)."""
    return fake_venv(tmp_path, PAPERMILL)


def run_all(env, run, profile="smoke", **extra):
    proc = subprocess.run(
        ["bash", str(ROOT / "run_all.sh"), profile, str(run)],
        cwd=ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc


def called(calls):
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.is_file() else []


@pytest.mark.parametrize("only", ["2 3", "02,03", "2,3", " 02, 03 ", "02_unet 03_label.ipynb", "3 02"])
def test_only_spellings_select_the_notebooks(fake, tmp_path, only):
    env, calls = fake
    proc = run_all(env, tmp_path / "run", ONLY=only)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert [c["notebook"] for c in called(calls)] == ["02_unet", "03_label"]
    assert "all done" in proc.stdout


@pytest.mark.parametrize("only", ["09", "2 09", "02_unnet", ","])
def test_only_naming_no_notebook_stops_and_lists_them(fake, tmp_path, only):
    env, calls = fake
    run = tmp_path / "run"
    proc = run_all(env, run, ONLY=only)
    assert proc.returncode != 0 and "all done" not in proc.stdout
    assert not called(calls) and not run.exists()
    assert all(stem in proc.stderr for stem in NOTEBOOKS), proc.stderr


def test_unknown_key_in_run_params_stops_before_the_first_notebook(fake, tmp_path):
    env, calls = fake
    extra = tmp_path / "extra.yaml"
    extra.write_text("epochs: 1\nepcohs: 3\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("an earlier run's file")
    proc = run_all(env, run, RUN_PARAMS=str(extra))
    assert proc.returncode != 0
    assert not called(calls) and not (run / "notebooks").exists() and not (run / "parameters").exists()
    assert f"{extra}: unknown key 'epcohs'" in proc.stderr and "epochs" in proc.stderr.split("epcohs")[1]
    assert (run / "keep.txt").read_text() == "an earlier run's file"


def test_wrong_type_stops_and_a_float_string_is_converted(fake, tmp_path):
    env, calls = fake
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2]\n")
    proc = run_all(env, tmp_path / "bad-run", RUN_PARAMS=str(bad))
    assert proc.returncode != 0 and not called(calls)
    assert f"{bad}: epochs: [1, 2] is a list; the parameter takes an int" in proc.stderr

    lr = tmp_path / "lr.yaml"
    lr.write_text("lr: 1e-4\n")  # YAML 1.1: a string
    proc = run_all(env, tmp_path / "run", ONLY="2", RUN_PARAMS=str(lr))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{lr}: lr: '1e-4' read as the float 0.0001" in proc.stderr
    (call,) = called(calls)
    assert call["parameters"]["lr"] == 0.0001


def test_each_notebook_gets_one_checked_file_in_the_run_folder(fake, tmp_path):
    """papermill gets RUN/parameters/NN_name.yaml alone: the profile's files merged, with run_dir and profile;
    a RUN_PARAMS key reaches only the notebooks that define it."""
    env, calls = fake
    extra = tmp_path / "extra.yaml"
    extra.write_text("n_train: 2\nepochs: 1\n")
    run = tmp_path / "run"
    proc = run_all(env, run, RUN_PARAMS=str(extra))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {c["notebook"]: c for c in called(calls)}
    assert list(got) == NOTEBOOKS
    for stem, c in got.items():
        out, given = run / "notebooks" / f"{stem}.ipynb", run / "parameters" / f"{stem}.yaml"
        assert c["args"][1:4] == [str(out), "-f", str(given)] and "-p" not in c["args"]
        assert c["parameters"] == yaml.safe_load(given.read_text())
        assert json.loads((run / "parameters" / f"{stem}.json").read_text()) == c["parameters"]
        assert c["parameters"]["run_dir"] == str(run) and c["parameters"]["profile"] == "smoke"
    assert (
        got["00_synthetic_data"]["parameters"]["n_train"] == 2
        and "epochs" not in got["00_synthetic_data"]["parameters"]
    )
    assert got["02_unet"]["parameters"]["epochs"] == 1 and "n_train" not in got["02_unet"]["parameters"]
    assert got["02_unet"]["parameters"]["width"] == 4  # params/smoke/02_unet.yaml


def test_a_second_run_on_the_same_folder_stops_naming_the_first(fake, tmp_path):
    """Two run_all.sh on one run folder: the second stops at once (exit 3), naming the first's process, and
    writes nothing there; once the first has ended, the folder is free again."""
    env, calls = fake
    run = tmp_path / "run"
    first = subprocess.Popen(
        ["bash", str(ROOT / "run_all.sh"), "smoke", str(run)],
        cwd=ROOT,
        env={**env, "ONLY": "2 3", "FAKE_SECONDS": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so that it can be stopped with its notebook
    )
    try:
        for _ in range(300):  # until the first is inside its first notebook
            if called(calls):
                break
            time.sleep(0.1)
        assert called(calls), "the first run never started a notebook"
        given = (run / "parameters" / "02_unet.yaml").read_text()
        start = time.monotonic()
        second = run_all(env, run, ONLY="4")
        assert second.returncode == 3 and time.monotonic() - start < 20
        assert f"{run} is in use by another run" in second.stderr
        assert f'"pid": {first.pid}' in second.stderr and "run_all.sh smoke" in second.stderr
        assert [c["notebook"] for c in called(calls)] == ["02_unet"]  # the second started nothing
        assert (run / "parameters" / "02_unet.yaml").read_text() == given
        assert not (run / "parameters" / "04_simvp.yaml").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the run and its notebook: the notebook alone would keep the lock
        first.wait()
    third = run_all({**env, "FAKE_SECONDS": "0"}, run, ONLY="4")
    assert third.returncode == 0, third.stderr[-2000:]


def test_a_run_folder_held_by_another_process_is_refused(fake, tmp_path):
    """The lock is the same flock that lib/common/lock.py takes, so a Python process holding it blocks a run."""
    env, calls = fake
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run / ".lock")], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_all(env, run)
        assert proc.returncode == 3 and f'"pid": {holder.pid}' in proc.stderr
        assert not called(calls) and not (run / "parameters").exists()
    finally:
        holder.kill()
        holder.wait()


HOLD = """
import sys, time
from lib.common import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""
