"""A notebook opened alone, as on Colab from the repository's GitHub page: no clone, the project not installed.

One notebook is copied into an empty folder and run by papermill in a fresh virtual environment that has the
project's requirements (torch, papermill, ...) but not the project; the set-up cell must clone the repository
from FUTURESEG_REPO_URL (a file:// clone of this one), install it, change to it and run on the smoke data.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A new venv that sees this environment's site-packages (torch, papermill, ...) through a plain path
    entry: .pth files there, like the project's editable install, are not processed, so `lib` is absent."""
    venv = tmp_path_factory.mktemp("venv") / "bare"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "outer_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run(
        [str(py), "-c", "import torch, papermill; import lib"], capture_output=True, text=True, cwd=venv.parent
    )
    assert "No module named 'lib'" in probe.stderr, f"the bare venv must not see the project: {probe.stderr[-500:]}"
    return py


@pytest.fixture(scope="module")
def file_clone(tmp_path_factory):
    """A clone of this repository's committed state plus the working tree's notebooks/lib (uncommitted edits
    included), so that the test checks the code under test."""
    dest = tmp_path_factory.mktemp("origin") / "futureseg.git"
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(dest)], check=True)
    for part in ("lib", "notebooks", "params", "pyproject.toml"):
        src = ROOT / part
        if src.is_dir():
            shutil.rmtree(dest / part)
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dest / part)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(dest), "commit", "-qm", "working tree", "--allow-empty"], check=True, env=env)
    return dest


def test_notebook_alone_clones_installs_and_runs(bare_python, file_clone, tmp_path):
    alone = tmp_path / "colab"
    alone.mkdir()
    nb = alone / "00_synthetic_data.ipynb"
    shutil.copy(ROOT / "notebooks" / nb.name, nb)
    smoke = yaml.safe_load((ROOT / "params" / "smoke" / "00_synthetic_data.yaml").read_text())
    params = {**smoke, "profile": "smoke", "data_root": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(FUTURESEG_REPO_URL=f"file://{file_clone}", PATH=f"{bare_python.parent}:{env['PATH']}")
    args = [str(bare_python), "-m", "papermill", str(nb), str(alone / "out.ipynb"), "--cwd", str(alone)]
    for k, v in params.items():
        args += ["-y", json.dumps({k: v})]
    proc = subprocess.run(args, cwd=alone, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]

    clone = alone / "futureseg"
    assert (clone / "lib" / "common" / "paths.py").is_file(), "the set-up cell did not clone the repository"
    show = subprocess.run([str(bare_python), "-m", "pip", "show", "-f", "futureseg"], capture_output=True, text=True)
    assert show.returncode == 0 and str(clone) in show.stdout, "the set-up cell did not install the clone"
    metrics = json.loads((tmp_path / "run" / "metrics" / "00_synthetic_data.json").read_text())
    assert metrics["action"] == "generated"
    assert metrics["counts"] == {s: smoke[f"n_{s}"] for s in ("train", "val", "unlabeled", "hidden")}
    executed = json.loads((alone / "out.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["profile"] == "smoke"
