#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the project into it.
# Sourced by run_all.sh and scripts/setup/test.sh; safe to run again (it only installs what is missing).
# Override the location with VENV=/path, the torch pin with TORCH_SPEC (default: torch==2.13.0 CPU build
# where available; on a GPU machine set TORCH_SPEC=torch to get the CUDA build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.futureseg-installed"
want="$(cat "$ROOT/pyproject.toml" | cksum)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[env] installing torch and the project (first run takes a few minutes)"
  log="$VENV/install.log"
  pipi() { "$VENV/bin/python" -m pip install -q "$@" >>"$log" 2>&1 || { cat "$log" >&2; echo "[env] pip install $* failed (log: $log)" >&2; exit 1; }; }
  pipi --upgrade pip
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    pipi "${TORCH_SPEC:-torch==2.13.0}"
  fi
  pipi -e "$ROOT[test]"
  echo "$want" > "$stamp"
fi
# Strip notebook outputs on commit (keeps the 'parameters' tags); the filter is named in .gitattributes.
if [ -d "$ROOT/.git" ] && ! git -C "$ROOT" config filter.nbstripout.clean >/dev/null 2>&1; then
  (cd "$ROOT" && "$VENV/bin/nbstripout" --install) || echo "[env] warning: could not configure nbstripout" >&2
fi
export PATH="$VENV/bin:$PATH"
