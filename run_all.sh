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
# <run_dir>/parameters/<notebook>.yaml, the file papermill reads.
# Executed notebooks, logs, metrics and timings go under the run folder; stops at the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
profile="${1:-cpu}"
run_dir="${2:-runs/${profile}-$(date +%Y%m%d-%H%M%S)}"
[ -d "params/$profile" ] || { echo "run_all.sh: no parameter folder params/$profile (profiles: $(ls params | tr '\n' ' '))" >&2; exit 2; }
source scripts/setup/env.sh
# every check before anything runs; prints the notebooks to run
notebooks=$(python -m lib.common.params "$profile" "$run_dir" --only "${ONLY:-}" --extra "${RUN_PARAMS:-}")
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
