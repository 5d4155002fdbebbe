"""scripts/tools/sweep.py (lib/sweep.py): a sweep file's members, their folder names and parameters; the checks
that stop a sweep before its first member; what a member takes from the base run; stopping at the first failing
member and going on from it; and (slow) the smoke example for real, from a smoke base run.

The fast tests run the real run_all.sh with papermill stood in for, as tests/scripts/test_run_all.py does: a
stand-in VENV whose `papermill` records each call, writes an executed notebook holding its parameters (what
lib/common/provenance.py reads) and the notebook's metrics (its parameters), and fails when FAKE_FAIL
(``key=value``) matches a parameter. Each run_all.sh takes a few seconds.
"""

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import fake_venv, read_metrics

from lib import sweep

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "tools" / "sweep.py"

PAPERMILL = f"""#!{sys.executable}
import json, os, sys, yaml
args, params = sys.argv[1:], {{}}
for i, a in enumerate(args):
    if a == "-f":
        params.update(yaml.safe_load(open(args[i + 1])) or {{}})
stem = os.path.basename(args[0])[:-6]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({{"notebook": stem, "parameters": params}}) + "\\n")
nb = {{"cells": [], "metadata": {{"papermill": {{"parameters": params}}}}, "nbformat": 4, "nbformat_minor": 5}}
json.dump(nb, open(args[1], "w"))
key, _, value = os.environ.get("FAKE_FAIL", "=").partition("=")
if key and params.get(key) == yaml.safe_load(value):
    sys.exit(f"stand-in {{stem}} fails for {{key}}={{value}}")
os.makedirs(os.path.join(params["run_dir"], "metrics"), exist_ok=True)
json.dump(params, open(os.path.join(params["run_dir"], "metrics", stem + ".json"), "w"))
"""


@pytest.fixture
def fake(tmp_path):
    """(environment whose VENV has the stand-in papermill, file of its calls)."""
    return fake_venv(tmp_path, PAPERMILL, drop=("ONLY", "RUN_PARAMS", "FAKE_FAIL"))


@pytest.fixture
def base(tmp_path):
    """A base run folder as notebooks 00-04 leave it (stand-in files): a 2 MB U-Net checkpoint and labels, small
    records, a lock and a temporary file, and notebook 04's files (which a 04-05 sweep must not take)."""
    b = tmp_path / "base"
    for d in ("unet", "labels", "metrics", "figures", "parameters", "simvp", "notebooks"):
        (b / d).mkdir(parents=True)
    (b / "unet" / "best.pt").write_bytes(os.urandom(2_000_000))
    (b / "unet" / "log.csv").write_text("epoch,loss\n0,1.0\n")
    (b / "labels" / "val.npy").write_bytes(os.urandom(1_500_000))
    (b / "labels" / "val.meta.json").write_text('{"model": "unet/best.pt@sha1:x"}')
    (b / "labels" / "val.lock").write_text("")
    (b / "labels" / ".val.npy.abcd.tmp").write_text("")
    for stem in ("00_synthetic_data", "02_unet", "03_label", "04_simvp"):
        (b / "metrics" / f"{stem}.json").write_text(json.dumps({"from": "base", "stem": stem}))
        (b / "parameters" / f"{stem}.json").write_text("{}")
        (b / "notebooks" / f"{stem}.ipynb").write_text("{}")
    (b / "figures" / "02_unet_curves.png").write_bytes(b"png")
    (b / "simvp" / "best.pt").write_bytes(b"an old SimVP")
    (b / "timings.tsv").write_text("notebook\tseconds\tstatus\n02_unet\t1\tok\n")
    return b


def sweep_file(tmp_path, **spec):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "profile": "smoke", "notebooks": "04 05", **spec}, sort_keys=False))
    return path


def cli(env, *args, timeout=600):
    cmd = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def called(calls):
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.is_file() else []


# --- the sweep file: members, names, parameters (no run_all.sh) ---


def test_grid_expands_to_named_members_in_their_folders(tmp_path, base):
    f = sweep_file(tmp_path, base=str(base), params={"eval_videos": 2}, grid={"hid_T": [8, 16], "flip": [0.0, 0.5]})
    s = sweep.load(f, out=tmp_path / "out")
    assert s.notebooks == ["04_simvp", "05_finetune"] and s.base == base
    assert [m.name for m in s.members] == [
        "hid_T=8,flip=0.0",
        "hid_T=8,flip=0.5",
        "hid_T=16,flip=0.0",
        "hid_T=16,flip=0.5",
    ]
    assert all(m.folder == tmp_path / "out" / m.name for m in s.members)
    assert s.members[2].params == {"eval_videos": 2, "hid_T": 16, "flip": 0.0}
    assert sweep.check(sweep.load(f)) == [] and sweep.load(f).folder == ROOT / "runs" / "sweeps" / "t"
    # a grid key of one value is fixed: not in the names
    s = sweep.load(sweep_file(tmp_path, grid={"hid_T": [8, 16], "flip": [0.5]}))
    assert [m.name for m in s.members] == ["hid_T=8", "hid_T=16"] and s.members[0].params["flip"] == 0.5


def test_members_are_named_by_what_differs_and_names_are_filesystem_safe(tmp_path):
    members = [{}, {"max_rollout": 5, "p_rate": 5.0, "epochs": 2}, {"lr": 0.0002, "epochs": 2}]
    s = sweep.load(sweep_file(tmp_path, notebooks="05", members=members))
    assert [m.name for m in s.members] == [
        "default",
        "max_rollout=5,p_rate=5.0,epochs=2",
        "epochs=2,lr=0.0002",
    ]  # keys in order of first appearance
    s = sweep.load(sweep_file(tmp_path, notebooks="05", members=[{"lr": 1e-3, "epochs": 2}, {"lr": 1e-4, "epochs": 2}]))
    assert [m.name for m in s.members] == ["lr=0.001", "lr=0.0001"]  # epochs is the same in every member
    s = sweep.load(sweep_file(tmp_path, grid={"data_root": ["data/a b", "../x"], "crop": [[48, 64], None]}))
    assert [m.name for m in s.members] == [
        "data_root=data_a_b,crop=48-64",
        "data_root=data_a_b,crop=none",
        "data_root=.._x,crop=48-64",
        "data_root=.._x,crop=none",
    ]
    with pytest.raises(sweep.SweepError, match="both get the folder name 'data_root=a_b'"):
        sweep.load(sweep_file(tmp_path, grid={"data_root": ["a b", "a/b"]}))


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"grid": {"lr": [1]}, "members": [{}]}, "give either grid"),
        ({}, "give either grid"),
        ({"grid": {"lr": 0.1}}, "grid: lr: give a non-empty list"),
        ({"members": [{"lr": 1}, 3]}, "members: give a list of key: value sets"),
        ({"grid": {"lr": [1]}, "notebook": "04"}, "unknown key 'notebook'.*closest: notebooks"),
        ({"grid": {"lr": [1]}, "notebooks": "04 09"}, "notebooks: ONLY='04 09': no notebook '09'"),
        ({"grid": {"lr": [1]}, "name": "a/b"}, "name 'a/b': letters, digits"),
    ],
)
def test_a_wrong_sweep_file_is_named_with_what_is_wrong(tmp_path, spec, message):
    f = sweep_file(tmp_path, **spec)
    with pytest.raises(sweep.SweepError, match=message) as e:
        sweep.load(f)
    assert str(f) in str(e.value)


def test_a_typo_in_a_later_member_stops_the_sweep_before_the_first_runs(fake, tmp_path, base):
    env, calls = fake
    members = [{"hid_T": 8}, {"hid_T": 16}, {"hid_T": 32, "flpi": 0.5}]
    f = sweep_file(tmp_path, base=str(base), members=members)
    out = tmp_path / "out"
    proc = cli(env, f, "--out", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "stopped before running any member" in proc.stderr
    assert f"{f} (member hid_T=32,flpi=0.5): unknown key 'flpi'" in proc.stderr and "closest: flip" in proc.stderr
    assert not called(calls) and not out.exists()
    # a wrong type, a key that none of the sweep's notebooks takes, and the keys the sweep sets itself
    f = sweep_file(tmp_path, base=str(base), params={"width": 8, "run_dir": "x"}, grid={"hid_T": [8, "wide"]})
    proc = cli(env, f, "--out", out)
    assert proc.returncode == 2 and not called(calls) and not out.exists()
    assert f"{f} (member hid_T=wide): hid_T: 'wide' is a str; the parameter takes an int" in proc.stderr
    assert "width is not a parameter of the sweep's notebooks (04_simvp 05_finetune): it would change nothing" in (
        proc.stderr
    )
    assert "run_dir: set by the sweep" in proc.stderr


def test_the_base_must_hold_what_the_notebooks_before_the_sweep_wrote(fake, tmp_path, base):
    env, calls = fake
    out = tmp_path / "out"
    proc = cli(env, sweep_file(tmp_path, grid={"hid_T": [8, 16]}), "--out", out)
    assert proc.returncode == 2 and "starts at 04_simvp: give a base run" in proc.stderr
    assert "02_unet 03_label" in proc.stderr
    (base / "metrics" / "03_label.json").unlink()
    proc = cli(env, sweep_file(tmp_path, grid={"hid_T": [8, 16]}), "--base", base, "--out", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"base {base}: no metrics/03_label.json" in proc.stderr and "02_unet.json" not in proc.stderr
    assert not called(calls) and not out.exists()
    # a sweep from notebook 02 needs no base
    assert sweep.check(sweep.load(sweep_file(tmp_path, notebooks="02 03", grid={"seed": [0, 1]}))) == []


# --- running members (run_all.sh with papermill stood in for) ---


def test_members_run_the_sweeps_notebooks_on_what_the_base_made_and_a_rerun_skips_them(fake, tmp_path, base):
    env, calls = fake
    f = sweep_file(tmp_path, base=str(base), params={"eval_videos": 2}, grid={"hid_T": [8, 16]})
    out = tmp_path / "out"
    proc = cli(env, f, "--dry-run", "--out", out)
    assert proc.returncode == 0 and not called(calls) and not out.exists()
    assert f"member 2/2 hid_T=16: {out / 'hid_T=16'}" in proc.stdout and "unet, labels" in proc.stdout

    proc = cli(env, f, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = [(c["notebook"], c["parameters"]["hid_T"] if "hid_T" in c["parameters"] else None) for c in called(calls)]
    assert got == [("04_simvp", 8), ("05_finetune", None), ("04_simvp", 16), ("05_finetune", None)]
    for hid_t in (8, 16):
        m = out / f"hid_T={hid_t}"
        assert read_metrics(m, "04_simvp")["hid_T"] == hid_t and read_metrics(m, "04_simvp")["run_dir"] == str(m)
        assert yaml.safe_load((m / "parameters" / "04_simvp.yaml").read_text())["eval_videos"] == 2
        assert (m / "provenance.json").is_file() and (m / "sweep_params.yaml").is_file()
        rows = (m / "timings.tsv").read_text().splitlines()[1:]
        assert [r.split("\t")[0] for r in rows] == ["04_simvp", "05_finetune"]  # not the base's
        # big files hard-linked, small ones copied; no locks, temporaries, or files of the sweep's own notebooks
        assert (m / "unet" / "best.pt").samefile(base / "unet" / "best.pt")
        assert (m / "labels" / "val.npy").samefile(base / "labels" / "val.npy")
        for small in ("unet/log.csv", "labels/val.meta.json", "metrics/02_unet.json", "figures/02_unet_curves.png"):
            assert filecmp.cmp(m / small, base / small, shallow=False) and not (m / small).samefile(base / small)
        assert (m / "metrics" / "03_label.json").is_file() and (m / "parameters" / "02_unet.json").is_file()
        assert not (m / "labels" / "val.lock").exists() and not (m / "labels" / ".val.npy.abcd.tmp").exists()
        assert not (m / "simvp").exists() and not (m / "notebooks" / "02_unet.ipynb").exists()
        assert json.loads((m / "sweep_member.json").read_text())["status"] == "ok"
    record = json.loads((out / "sweep.json").read_text())
    assert [(r["name"], r["status"], r["folder"]) for r in record["members"]] == [
        ("hid_T=8", "ok", "hid_T=8"),
        ("hid_T=16", "ok", "hid_T=16"),
    ]
    assert record["members"][1]["params"] == {"eval_videos": 2, "hid_T": 16} and record["base"] == str(base)
    assert (out / "sweep.yaml").read_text() == f.read_text()
    assert "1/2 hid_T=8: ok in" in proc.stdout and "all 2 members finished" in proc.stdout
    assert json.loads((out / "summary.json").read_text())["runs"] == ["hid_T=8", "hid_T=16"]

    n = len(called(calls))
    proc = cli(env, f, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert len(called(calls)) == n
    assert "1/2 hid_T=8: skipped" in proc.stdout and "2/2 hid_T=16: skipped" in proc.stdout
    (out / "summary.json").unlink()
    proc = cli(env, f, "--out", out, "--summary")  # writes the summary alone, runs nothing
    assert proc.returncode == 0 and len(called(calls)) == n and (out / "summary.json").is_file(), proc.stderr


def test_the_sweep_stops_at_the_first_failing_member_and_a_rerun_goes_on_from_it(fake, tmp_path, base):
    env, calls = fake
    f = sweep_file(tmp_path, notebooks="04", base=str(base), grid={"hid_T": [8, 16, 32]})
    out = tmp_path / "out"
    proc = cli({**env, "FAKE_FAIL": "hid_T=16"}, f, "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = out / "hid_T=16"
    assert "FAILED: member hid_T=16 (exit 1)" in proc.stderr and f"folder {failed};" in proc.stderr
    assert str(failed / "run_all.log") in proc.stderr
    assert f"log: {failed}/logs/04_simvp.log" in proc.stderr  # run_all.sh's own line, passed on
    assert "stand-in 04_simvp fails for hid_T=16" in proc.stderr  # the tail of the notebook's log
    assert [c["parameters"]["hid_T"] for c in called(calls)] == [8, 16] and not (out / "hid_T=32").exists()
    record = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in record["members"]] == ["ok", "failed", "pending"]
    assert record["members"][1]["log"] == "hid_T=16/run_all.log"

    proc = cli(env, f, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c["parameters"]["hid_T"] for c in called(calls)] == [8, 16, 16, 32]
    assert "1/3 hid_T=8: skipped" in proc.stdout and "2/3 hid_T=16: start" in proc.stdout
    assert [r["status"] for r in json.loads((out / "sweep.json").read_text())["members"]] == ["ok"] * 3

    # a finished member whose parameters changed since is not skipped, nor run over: nothing runs
    f = sweep_file(tmp_path, notebooks="04", base=str(base), params={"flip": 0.0}, grid={"hid_T": [8, 16, 32]})
    proc = cli(env, f, "--out", out)
    assert proc.returncode == 2 and "member hid_T=8 finished with another definition" in proc.stderr
    assert len(called(calls)) == 4


def test_reuse_takes_more_base_files_and_a_busy_sweep_folder_stops_a_second_sweep(fake, tmp_path, base):
    env, calls = fake
    (base / "objects").mkdir()
    (base / "objects" / "extra_masks_s0_7_9.npy").write_bytes(os.urandom(1_100_000))
    (base / "objects" / "extra_masks_s0_7_9.npy.json").write_text("{}")
    (base / "objects" / "last.pt").write_text("not taken")
    f = sweep_file(tmp_path, base=str(base), notebooks="04", reuse=["objects/extra_masks_*"], grid={"hid_T": [8]})
    out = tmp_path / "out"
    from lib.common import lock

    with lock.hold(out / ".lock", "a test"):
        proc = cli(env, f, "--out", out)
    assert proc.returncode == 3 and "is in use by" in proc.stderr and not called(calls)
    proc = cli(env, f, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = out / "hid_T=8"
    assert (m / "objects" / "extra_masks_s0_7_9.npy").samefile(base / "objects" / "extra_masks_s0_7_9.npy")
    assert (m / "objects" / "extra_masks_s0_7_9.npy.json").is_file() and not (m / "objects" / "last.pt").exists()
    f = sweep_file(tmp_path, base=str(base), notebooks="04", reuse=["objects/nothing_*"], grid={"hid_T": [8]})
    proc = cli(env, f, "--out", tmp_path / "out2")
    assert proc.returncode == 2 and "nothing matches objects/nothing_*" in proc.stderr


# --- the smoke example for real ---


@pytest.mark.slow
def test_smoke_example_sweeps_simvp_on_the_base_unet_and_a_rerun_skips_it(smoke_run, tmp_path):
    """sweeps/smoke_example.yaml from the session's smoke run as its base (never changed: members link or copy
    from it): the members run 04-07 only, on the base's U-Net and labels, with their own hid_T."""
    smoke, _ = smoke_run
    base, data = smoke / "run", smoke / "data"
    spec = yaml.safe_load((ROOT / "sweeps" / "smoke_example.yaml").read_text())
    spec["base"] = str(base)
    spec.setdefault("params", {})["data_root"] = str(data)
    f = tmp_path / "smoke_example.yaml"
    f.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k not in ("ONLY", "RUN_PARAMS")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    proc = cli(env, f, "--out", out, timeout=1200)
    assert proc.returncode == 0, f"sweep failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    values = spec["grid"]["hid_T"]
    sizes = []
    for v in values:
        m = out / f"hid_T={v}"
        rows = (m / "timings.tsv").read_text().splitlines()[1:]
        assert [r.split("\t")[0] for r in rows] == ["04_simvp", "05_finetune", "06_objects", "07_predict_hidden"]
        assert all(r.endswith("ok") for r in rows)
        assert sorted(p.name for p in (m / "notebooks").iterdir()) == [f"{r.split()[0]}.ipynb" for r in rows]
        # the U-Net is the base's, byte for byte (not retrained), its labels the base's files
        assert filecmp.cmp(m / "unet" / "best.pt", base / "unet" / "best.pt", shallow=False)
        assert (m / "labels" / "val.npy").samefile(base / "labels" / "val.npy")
        assert read_metrics(m, "02_unet") == read_metrics(base, "02_unet")
        assert json.loads((m / "parameters" / "04_simvp.json").read_text())["hid_T"] == v
        for stem in spec["notebooks"].split():
            assert any((m / "metrics").glob(f"{stem}_*.json")), f"{m}: no metrics of notebook {stem}"
        assert read_metrics(m, "07_predict_hidden")["hidden_videos"] > 0
        sizes.append(read_metrics(m, "04_simvp")["params"])
    assert sizes[0] != sizes[1]  # hid_T changed the SimVP's size
    record = json.loads((out / "sweep.json").read_text())
    assert [(r["name"], r["status"]) for r in record["members"]] == [(f"hid_T={v}", "ok") for v in values]
    # summary.json: each member's val stages side by side, with mean and spread
    summary = json.loads((out / "summary.json").read_text())
    names = [f"hid_T={v}" for v in values]
    assert summary["runs"] == names and summary["members"] == len(values)
    assert summary["values"] == {n: {"hid_T": v} for n, v in zip(names, values)}
    simvp = [read_metrics(out / n, "07_predict_hidden")["val_table"] for n in names]
    for stage in simvp[0]:
        row = summary["stages"][f"07_predict_hidden: {stage}"]
        assert row["per_run"] == {n: t[stage] for n, t in zip(names, simvp)}
        assert row["mean"] == pytest.approx(sum(t[stage] for t in simvp) / len(simvp))
    assert "07_predict_hidden: learned - physics" in summary["comparisons"]
    assert "members summarized" in proc.stdout

    proc = cli(env, f, "--out", out, timeout=300)
    assert proc.returncode == 0 and proc.stdout.count(": skipped, finished") == 2, proc.stdout + proc.stderr
    assert len((out / f"hid_T={values[0]}" / "timings.tsv").read_text().splitlines()) == 5
