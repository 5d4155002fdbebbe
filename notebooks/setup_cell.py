# Set-up, the same first cell in every notebook (its one copy: notebooks/setup_cell.py). In a clone it puts the
# repository first on sys.path and checks that `lib` is this repository's. Opened alone (Colab) it clones
# REPO_URL (at REPO_REF) into ./futureseg, installs it and works there. FUTURESEG_REPO_URL/_REF win.
import importlib.util
import os
import pathlib
import subprocess
import sys

REPO_URL = os.environ.get("FUTURESEG_REPO_URL", "")  # your fork's git URL: used only when no clone is found
REPO_REF = os.environ.get("FUTURESEG_REPO_REF", "")  # a branch, tag or commit ("": the default branch)

here = pathlib.Path.cwd()
found = [p for p in (here, *here.parents, here / "futureseg") if (p / "lib" / "common" / "paths.py").is_file()]
ROOT = found[0] if found else here / "futureseg"
if not found:
    if not REPO_URL:
        raise SystemExit("No clone of the repository found: set REPO_URL in this cell (or clone it yourself).")
    subprocess.run(["git", "clone", "-q", REPO_URL, str(ROOT)], check=True)
    if REPO_REF:
        subprocess.run(["git", "-C", str(ROOT), "checkout", "-q", REPO_REF], check=True)
if not found or any(importlib.util.find_spec(m) is None for m in ("torch", "pybullet", "papermill", "yaml")):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
if ROOT not in (here, *here.parents):
    os.chdir(ROOT)  # opened alone: work inside the clone
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))
import lib  # noqa: E402

if [pathlib.Path(p).resolve() for p in getattr(lib, "__path__", [])] != [ROOT.resolve() / "lib"]:
    raise ImportError(
        f"`lib` is imported from {getattr(lib, '__path__', lib)}, not from this repository ({ROOT / 'lib'}). "
        "Remove or rename that folder or package (pip uninstall lib), or restart the kernel."
    )
