"""Where relative paths resolve: the project root, found at run time (stated here once).

Every relative path in a parameter (``data_root``, ``run_dir``, ...) is taken relative to
the project root, never to the notebook's working directory, so a notebook in ``notebooks/`` and a script
run from anywhere write to the same ``data/`` and ``runs/``. The root is, in this order:

1. ``$FUTURESEG_ROOT`` when set;
2. the clone that this ``lib`` was imported from (the folder above ``lib/`` holding ``pyproject.toml``),
   whether or not the project is pip-installed (an editable install and ``sys.path`` both import it there);
3. otherwise (a non-editable install, ``lib`` in site-packages) the current working directory.
"""

import os
from pathlib import Path


def project_root():
    if os.environ.get("FUTURESEG_ROOT"):
        return Path(os.environ["FUTURESEG_ROOT"]).expanduser().resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").is_file() and (here / "lib").is_dir():
        return here
    return Path.cwd()


PROJ_ROOT = project_root()
DATA_DIR = PROJ_ROOT / "data"
RUNS_DIR = PROJ_ROOT / "runs"


def resolve(path):
    """A path from a parameter: absolute as given, relative to the project root otherwise."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJ_ROOT / p
