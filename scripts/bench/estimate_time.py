"""Expected wall time of each notebook of a profile (default `full`) on a device, from measured throughput.

Throughput comes from a memory benchmark file of scripts/bench/bench_memory.py, which times one training step of
each full-size model (U-Net, SimVP, fine-tuning with the longest rollout) and inference (U-Net frames, SimVP
rollout steps) in the precisions the notebooks use on that device: results/memory_cpu.json for this CPU,
runs/gpu-check/memory_cuda.json once a GPU has run scripts/bench/gpu_check.py. The counts (videos, epochs, batches,
evaluation subsets) are the notebooks' parameters with the profile's files over them. The estimate and its
assumptions: lib.common.gpu_plan.estimate.

    python scripts/bench/estimate_time.py                                  # full profile, this CPU's measurements
    python scripts/bench/estimate_time.py --bench runs/gpu-check/memory_cuda.json
    python scripts/bench/estimate_time.py --params params/full-rehearsal.yaml   # with RUN_PARAMS-style overrides
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lib.common.gpu_plan import time_table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=str(ROOT / "results" / "memory_cpu.json"))
    ap.add_argument("--profile", default="full")
    ap.add_argument("--params", action="append", default=[], help="more parameter files (as RUN_PARAMS)")
    ap.add_argument("--cores", type=int, default=2, help="CPU cores for data generation")
    a = ap.parse_args(argv)
    print(time_table(json.loads(Path(a.bench).read_text()), a.profile, a.params, a.cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
