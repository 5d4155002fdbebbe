"""Run some notebooks over a grid or a list of parameter sets, each set into its own run folder (lib/sweep.py).

    python scripts/tools/sweep.py sweeps/smoke_example.yaml --dry-run     # members, folders, parameters, reuse
    python scripts/tools/sweep.py sweeps/smoke_example.yaml               # run (finished members are skipped)
    python scripts/tools/sweep.py sweeps/dynamics_10k.yaml --base runs/cpu-ref6 --out runs/sweeps/dyn10k-ref6
    python scripts/tools/sweep.py sweeps/seeds_cpu.yaml --summary         # only summarize the finished members

Each member runs ``run_all.sh PROFILE <out>/<member>`` with ONLY = the sweep's notebooks and RUN_PARAMS = its
parameters; what the notebooks before the first one wrote comes from the base run (hard-linked or copied).
Everything is checked before the first member starts. When all have finished, ``<out>/summary.json`` lays their
numbers side by side with mean and spread (``--summary`` writes it for the finished members alone). The sweep
file's format: docs/sweeps.md.

Exit status: 0 every member finished; 1 a member failed (named, with its folder and log; rerun to go on);
2 the sweep file, a member's parameters or the base do not check (nothing ran); 3 the sweep folder is in use.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))

from lib import sweep  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="the sweep file (sweeps/*.yaml)")
    ap.add_argument("--base", default=None, help="the base run folder (instead of the file's base)")
    ap.add_argument("--out", default=None, help="the sweep's folder (default: runs/sweeps/<name>)")
    ap.add_argument("--dry-run", action="store_true", help="check and list the members; run nothing")
    ap.add_argument("--summary", action="store_true", help="only write summary.json of the finished members")
    a = ap.parse_args(argv)
    try:
        s = sweep.load(a.file, base=a.base, out=a.out)
    except sweep.SweepError as e:
        print(f"[sweep] stopped before running any member:\n{e}", file=sys.stderr)
        return 2
    if a.summary:
        return 0 if sweep.summarize(s) else 1
    return sweep.run(s, dry_run=a.dry_run)


if __name__ == "__main__":
    sys.exit(main())
