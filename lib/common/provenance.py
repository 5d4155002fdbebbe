"""What made a run folder's numbers: code version, packages, device, and each notebook's merged parameters.

    python -m lib.common.provenance RUN_DIR                       # provenance.json (run_all.sh, at the start)
    python -m lib.common.provenance RUN_DIR executed.ipynb        # + parameters/<notebook>.json (after each one)

``provenance.json`` holds the git commit and whether the tree was dirty, the Python and package versions, the
machine and the torch device; ``parameters/<notebook>.json`` the parameters papermill actually ran the notebook
with (notebook defaults, then the profile's files, then RUN_PARAMS and the command line), read from the
executed notebook's own record.
"""

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from lib.common.files import save_json
from lib.common.paths import PROJ_ROOT, resolve

PACKAGES = ("torch", "numpy", "scipy", "pybullet", "papermill", "ipywidgets", "matplotlib", "torchmetrics")


def _git(*args):
    try:
        out = subprocess.run(["git", "-C", str(PROJ_ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def collect():
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "python": sys.version.split()[0],
        "packages": versions,
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": _cpus()},
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def _cpus():
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def write_provenance(run_dir, only=None):
    """Writes provenance.json; a later call on the same folder (``ONLY="06 07" run_all.sh``) keeps the first
    record and appends its own to ``reruns``, with the notebooks it reran."""
    path = resolve(run_dir) / "provenance.json"
    record = collect()
    if path.is_file():
        first = json.loads(path.read_text())
        rerun = {k: record[k] for k in ("written", "git_commit", "git_dirty", "device")}
        first.setdefault("reruns", []).append({**rerun, "notebooks": only or "all"})
        record = first
    save_json(path, record)
    return path


def record_parameters(run_dir, executed_notebook):
    """Copies the parameters papermill ran ``executed_notebook`` with to ``parameters/<stem>.json``."""
    nb = json.loads(Path(executed_notebook).read_text())
    params = nb.get("metadata", {}).get("papermill", {}).get("parameters")
    if params is None:
        raise ValueError(f"{executed_notebook}: no papermill parameters in its metadata (not run by papermill?)")
    path = resolve(run_dir) / "parameters" / f"{Path(executed_notebook).stem}.json"
    save_json(path, params)
    return path


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(f"[provenance] {write_provenance(sys.argv[1], os.environ.get('ONLY'))}")
    elif len(sys.argv) == 3:
        record_parameters(sys.argv[1], sys.argv[2])
    else:
        sys.exit(__doc__)
