"""Project paths, anchored at the repository root (never the notebook's working directory)."""
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = PROJ_ROOT / "data"
FIGURES_DIR = PROJ_ROOT / "figures"
RUNS_DIR = PROJ_ROOT / "runs"


def resolve(path):
    """A path from a parameter: absolute as given, relative to the project root otherwise."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJ_ROOT / p
