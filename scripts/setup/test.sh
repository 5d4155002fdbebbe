#!/usr/bin/env bash
# The test suite: creates or reuses .venv, then runs pytest over tests/ with the arguments given.
#   bash scripts/setup/test.sh                # everything, as CI (.ci/run)
#   bash scripts/setup/test.sh -m "not slow"  # the fast tier: unit tests, notebook checks, script tests, and
#                                             # ruff and nbstripout as the pre-commit hooks run them
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source scripts/setup/env.sh
python -m pytest --durations=12 "$@"   # the slowest tests, with their times, at the end
