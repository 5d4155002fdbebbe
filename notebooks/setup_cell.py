# Set-up: the same first cell in every notebook (its one copy is notebooks/setup_cell.py; a test compares).
# In a clone it finds the repository (the first folder at or above the working directory holding lib/), puts it
# first on sys.path and checks that `lib` comes from it, not from a stray lib/ folder or another package named
# lib. Opened alone (Colab from GitHub, no clone) it clones REPO_URL (at REPO_REF if set) into ./futureseg,
# installs it and changes to it. The environment variables FUTURESEG_REPO_URL / FUTURESEG_REPO_REF win.
import importlib.util
import os
import pathlib
import subprocess
import sys

REPO_URL = ""  # this repository's git URL (e.g. your fork on GitHub), used only when no clone is found
REPO_REF = ""  # a branch, tag or commit to check out after cloning ("" = the default branch)

REPO_URL = os.environ.get("FUTURESEG_REPO_URL", REPO_URL)
REPO_REF = os.environ.get("FUTURESEG_REPO_REF", REPO_REF)
here = pathlib.Path.cwd()
ROOT = next((p for p in [here, *here.parents] if (p / "lib" / "common" / "paths.py").is_file()), None)
if ROOT is None and (here / "futureseg" / "lib").is_dir():
    ROOT = here / "futureseg"  # cloned by an earlier run of this cell
if ROOT is None:
    if not REPO_URL:
        raise SystemExit("No clone of the repository found: set REPO_URL in this cell (or clone it yourself).")
    ROOT = here / "futureseg"
    subprocess.run(["git", "clone", "-q", REPO_URL, str(ROOT)], check=True)
    if REPO_REF:
        subprocess.run(["git", "-C", str(ROOT), "checkout", "-q", REPO_REF], check=True)
    missing = ["futureseg"]  # a fresh clone is installed, whatever is there already
else:
    missing = [m for m in ("torch", "pybullet", "papermill", "yaml") if importlib.util.find_spec(m) is None]
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
if ROOT not in [here, *here.parents]:
    os.chdir(ROOT)  # opened alone: work inside the clone
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))
import lib  # noqa: E402

_found = [pathlib.Path(p).resolve() for p in getattr(lib, "__path__", [])]
if _found != [ROOT.resolve() / "lib"]:
    raise ImportError(
        f"`lib` is imported from {', '.join(map(str, _found))}, not from this repository ({ROOT / 'lib'}). "
        "Remove or rename that folder or package (pip uninstall lib), or restart the kernel."
    )
