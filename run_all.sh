#!/usr/bin/env bash
# Run the numbered notebooks in order through papermill for one profile.
#
#   ./run_all.sh [smoke|cpu|full] [run_dir]          e.g. ./run_all.sh cpu
#   ONLY="02 03" ./run_all.sh cpu runs/my-run        re-run some notebooks into an existing run folder
#   RUN_PARAMS=my.yaml ./run_all.sh cpu               one more parameter file for every notebook (wins)
#
# Creates or reuses the virtual environment (.venv) first. Each notebook gets
# params/<profile>/common.yaml, then params/<profile>/<notebook>.yaml, then run_dir and profile.
# Executed notebooks, logs, metrics and timings go under the run folder; stops at the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
profile="${1:-cpu}"
run_dir="${2:-runs/${profile}-$(date +%Y%m%d-%H%M%S)}"
[ -d "params/$profile" ] || { echo "run_all.sh: no parameter folder params/$profile (profiles: $(ls params | tr '\n' ' '))" >&2; exit 2; }
source scripts/setup/env.sh
mkdir -p "$run_dir/notebooks" "$run_dir/logs"
timings="$run_dir/timings.tsv"
[ -f "$timings" ] || printf "notebook\tseconds\tstatus\n" > "$timings"
echo "[run_all] profile=$profile run_dir=$run_dir"
python -m lib.common.provenance "$run_dir"   # git commit, packages, device: provenance.json
total_start=$(date +%s)
for nb in notebooks/[0-9][0-9]_*.ipynb; do
  stem="$(basename "$nb" .ipynb)"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ${stem:0:2} "* ]]; then continue; fi
  args=(-f "params/$profile/common.yaml")
  [ -f "params/$profile/$stem.yaml" ] && args+=(-f "params/$profile/$stem.yaml")
  [ -n "${RUN_PARAMS:-}" ] && args+=(-f "$RUN_PARAMS")
  echo "[run_all] $stem ..."
  start=$(date +%s)
  if papermill "$nb" "$run_dir/notebooks/$stem.ipynb" "${args[@]}" -p run_dir "$run_dir" -p profile "$profile" \
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
