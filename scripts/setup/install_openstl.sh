#!/usr/bin/env bash
# Install the real OpenSTL (SimVP backend="openstl"; tests/test_openstl.py) from its source folder into the
# project's virtual environment, with only what `from openstl.models import SimVP_Model` needs.
#
#   bash scripts/setup/install_openstl.sh [OPENSTL_SOURCE]
#
# Source: the argument, else $OPENSTL_SRC, else shared/third_party/OpenSTL in the clone's parent folder (where
# CI's copy of the shared folder lies). Without a source it says so and exits 0 (the OpenSTL tests are then
# skipped). Environment: the active one ($VIRTUAL_ENV), else $VENV, else .venv (`source scripts/setup/env.sh` makes
# it). Safe to run again: when the same source is installed and imports, it only checks that (a few seconds).
#
# OpenSTL is not on PyPI under its name (PyPI's `openstl` is an unrelated STL-file library, removed here if
# present) and its full requirements are heavy, so: the source is copied to a writable folder (the share is
# read-only and setuptools writes into the tree it builds), installed with --no-deps (not editable: the copy
# is removed afterwards), then what `openstl.models` imports: torchvision, timm, opencv-python-headless,
# imageio, pytorch-lightning. torch is pinned to the installed build (a constraint file), so nothing here
# replaces it; torchvision (the release made for that torch) and timm (its hub packages are not needed for
# the import) go in with --no-deps. PyPI's x86-64 Linux torchvision is a CUDA build: beside a CPU-only torch
# its C++ ops do not load, which SimVP does not need (lib/forecasting/openstl.py, import_torchvision).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="${1:-${OPENSTL_SRC:-$(dirname "$ROOT")/shared/third_party/OpenSTL}}"
say() { echo "[openstl] $*"; }

if [ ! -f "$SRC/setup.py" ] || [ ! -d "$SRC/openstl/models" ]; then
  say "no OpenSTL source at $SRC; nothing installed (tests/test_openstl.py will be skipped)."
  say "pass its folder as argument or in OPENSTL_SRC to install it."
  exit 0
fi
SRC="$(cd "$SRC" && pwd)"
if [ -n "${VIRTUAL_ENV:-}" ]; then
  VENV="$VIRTUAL_ENV"
else
  VENV="${VENV:-$ROOT/.venv}"
fi
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  say "no virtual environment at $VENV: run \`source scripts/setup/env.sh\` first (or activate one)." >&2
  exit 1
fi
start=$SECONDS
cd "$ROOT"
# the same check as the tests: lib's loader, which also explains the PyPI name clash
check='from lib.forecasting.openstl import simvp_backend; c = simvp_backend("openstl"); import openstl, timm, torch
print(f"OpenSTL {openstl.__version__} ({c.__module__}), timm {timm.__version__}, torch {torch.__version__}")'
stamp="$VENV/.openstl-installed"
want="$(cd "$SRC" && find . -type f \( -name '*.py' -o -name '*.txt' \) -print0 | sort -z | xargs -0 cat | cksum)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && got="$("$PY" -c "$check" 2>/dev/null)"; then
  say "already installed from $SRC: $got ($((SECONDS - start)) s)"
  exit 0
fi

log="$VENV/openstl-install.log"
: >"$log"
pins="$(mktemp)"
work="${TMPDIR:-/tmp}/futureseg-openstl"
trap 'rm -rf "$pins" "$work"' EXIT
torch_version="$("$PY" -c 'import torch; print(torch.__version__)')"
echo "torch==$torch_version" >"$pins"
pipi() {
  say "pip install $*"
  "$PY" -m pip install -q -c "$pins" "$@" >>"$log" 2>&1 || {
    cat "$log" >&2
    say "pip install $* failed (log: $log)" >&2
    exit 1
  }
}

if "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("openstl") is None)' 2>/dev/null &&
  ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("openstl.models") is None)' 2>/dev/null; then
  say "removing the unrelated PyPI package \`openstl\` (STL files), which takes OpenSTL's import name"
  "$PY" -m pip uninstall -q -y openstl >>"$log" 2>&1
fi
say "copying $SRC to $work"
rm -rf "$work"
cp -R "$SRC" "$work"
chmod -R u+w "$work"
pipi --no-deps --force-reinstall "$work"

# torchvision built for this torch: torch 2.N goes with torchvision 0.(N+15)
if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torchvision") is None)'; then
  tv="$("$PY" -c 'import torch; major, minor = torch.__version__.split(".")[:2]; print(f"0.{int(minor) + 15}.*" if major == "2" else "")')"
  [ -n "$tv" ] || {
    say "no torchvision known for torch $torch_version; install a matching one and run this again" >&2
    exit 1
  }
  pipi --no-deps "torchvision==$tv"
fi
pipi --no-deps "timm>=0.9"
pipi opencv-python-headless imageio pytorch-lightning

if ! got="$("$PY" -c "$check" 2>>"$log")"; then
  tail -n 20 "$log" >&2
  say "installed, but \`from openstl.models import SimVP_Model\` still fails (log: $log)" >&2
  exit 1
fi
[ "$("$PY" -c 'import torch; print(torch.__version__)')" = "$torch_version" ] || {
  say "torch changed from $torch_version: not expected" >&2
  exit 1
}
echo "$want" >"$stamp"
say "installed from $SRC: $got ($((SECONDS - start)) s; pip's log: $log)"
