#!/usr/bin/env bash
# Run the numbered notebooks in order through papermill for one profile.
#
#   ./run_all.sh [smoke|cpu|full] [run_dir]          e.g. ./run_all.sh cpu
#   ONLY="02 03" ./run_all.sh cpu runs/my-run        re-run some notebooks into an existing run folder
#                                                     (numbers or stems, space or comma separated)
#   RUN_PARAMS=my.yaml ./run_all.sh cpu               one more parameter file for every notebook (wins)
#
# Creates or reuses the virtual environment (.venv) first. Each notebook gets params/<profile>/common.yaml,
# then params/<profile>/<notebook>.yaml, then RUN_PARAMS, then run_dir and profile: lib/common/params.py checks
# them all before the first notebook (unknown keys, wrong types, ONLY) and writes what each notebook gets to
# <run_dir>/parameters/<notebook>.yaml, the file papermill reads. A run holds a lock on its folder (<run_dir>/.lock):
# a second run_all.sh on the same folder stops at once, naming the first.
# Executed notebooks, logs, metrics and timings go under the run folder; stops at the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
profile="${1:-cpu}"
run_dir="${2:-runs/${profile}-$(date +%Y%m%d-%H%M%S)}"
[ -d "params/$profile" ] || { echo "run_all.sh: no parameter folder params/$profile (profiles: $(ls params | tr '\n' ' '))" >&2; exit 2; }
source scripts/setup/env.sh
# one run a folder: a second run_all.sh on it stops here, naming the first (the lock is released when this
# script and the notebooks it started have ended, however they end)
new_folder=0; [ -d "$run_dir" ] || { mkdir -p "$run_dir"; new_folder=1; }
if command -v flock >/dev/null; then
  exec 9>>"$run_dir/.lock"
  if ! flock -n 9; then
    echo "run_all.sh: $run_dir is in use by another run: $(cat "$run_dir/.lock"); wait for it or use another run folder" >&2
    exit 3
  fi
  printf '{"pid": %d, "host": "%s", "cmd": "run_all.sh %s %s", "since": "%s"}\n' \
    $$ "$(hostname)" "$profile" "$run_dir" "$(date '+%F %T')" > "$run_dir/.lock"
else
  echo "[run_all] no flock(1) on this machine: $run_dir is not locked against a second run" >&2
fi
# every check before anything runs; prints the notebooks to run
if ! notebooks=$(python -m lib.common.params "$profile" "$run_dir" --only "${ONLY:-}" --extra "${RUN_PARAMS:-}"); then
  [ "$new_folder" = 0 ] || { rm -f "$run_dir/.lock"; rmdir "$run_dir"; }   # leave no empty run folder behind
  exit 2
fi
mkdir -p "$run_dir/notebooks" "$run_dir/logs"
timings="$run_dir/timings.tsv"
[ -f "$timings" ] || printf "notebook\tseconds\tstatus\n" > "$timings"
echo "[run_all] profile=$profile run_dir=$run_dir"
python -m lib.common.provenance "$run_dir"   # git commit, packages, device: provenance.json
total_start=$(date +%s)
for stem in $notebooks; do
  echo "[run_all] $stem ..."
  start=$(date +%s)
  if papermill "notebooks/$stem.ipynb" "$run_dir/notebooks/$stem.ipynb" -f "$run_dir/parameters/$stem.yaml" \
       --log-output --request-save-on-cell-execute > "$run_dir/logs/$stem.log" 2>&1; then
    secs=$(( $(date +%s) - start ))
    printf "%s\t%s\tok\n" "$stem" "$secs" >> "$timings"
    python -m lib.common.provenance "$run_dir" "$run_dir/notebooks/$stem.ipynb"   # parameters/<stem>.json
    echo "[run_all] $stem done in ${secs}s"
  else
    secs=$(( $(date +%s) - start ))
    printf "%s\t%s\tFAILED\n" "$stem" "$secs" >> "$timings"
    echo "[run_all] FAILED: $stem after ${secs}s; log: $run_dir/logs/$stem.log, notebook: $run_dir/notebooks/$stem.ipynb" >&2
    tail -n 25 "$run_dir/logs/$stem.log" >&2
    exit 1
  fi
done
echo "[run_all] all done in $(( $(date +%s) - total_start ))s; timings:"
column -t -s $'\t' "$timings" 2>/dev/null || cat "$timings"
