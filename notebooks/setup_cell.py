# Set-up: the same first cell in every notebook (its one copy is notebooks/setup_cell.py; a test compares).
# Finds this repository (the first folder at or above the working directory with pyproject.toml and lib/),
# puts it first on sys.path, installs its requirements if they are missing (a fresh Colab runtime), and
# checks that `lib` comes from it, not from a stray lib/ folder or another package named lib.
import importlib.util
import pathlib
import subprocess
import sys

ROOT = next(
    (p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents] if (p / "lib" / "common" / "paths.py").is_file()),
    None,
)
if ROOT is None:
    raise SystemExit("Clone the repository first (git clone <repo-url>), then open this notebook from the clone.")
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))
if importlib.util.find_spec("pybullet") is None or importlib.util.find_spec("papermill") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
import lib  # noqa: E402

_found = [pathlib.Path(p).resolve() for p in getattr(lib, "__path__", [])]
if _found != [ROOT.resolve() / "lib"]:
    raise ImportError(
        f"`lib` is imported from {', '.join(map(str, _found))}, not from this repository ({ROOT / 'lib'}). "
        "Remove or rename that folder or package (pip uninstall lib), or restart the kernel."
    )
