#!/usr/bin/env bash
# The test suite: creates or reuses .venv, then runs pytest (unit tests and the smoke notebooks).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source scripts/setup/env.sh
python -m pytest --durations=12 "$@"   # the slowest tests, with their times, at the end
