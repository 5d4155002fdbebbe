"""The micro-batch the `full` profile's training steps get on common GPUs, derived from measured memory.

Reads a memory benchmark (scripts/bench/bench_memory.py: memory per sample and fixed memory of the U-Net, SimVP and
fine-tuning steps, with AMP) and prints lib.common.gpu_plan.gpu_table: lib.common.memory.fit_micro_batch, the rule
training uses at run time, applied to each GPU's memory (less the CUDA context and the weights; the module's
docstring says how). On a CPU benchmark the bfloat16 figures stand in for float16 (two bytes an activation either
way); a CUDA benchmark (memory_cuda.json of scripts/bench/gpu_check.py) is used as measured.

    python scripts/bench/gpu_table.py                                   # from results/memory_cpu.json
    python scripts/bench/gpu_table.py --bench runs/gpu-check/memory_cuda.json --precision fp32
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lib.common.gpu_plan import gpu_table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=str(ROOT / "results" / "memory_cpu.json"))
    ap.add_argument("--precision", default="amp", choices=["amp", "fp32"])
    a = ap.parse_args(argv)
    print(gpu_table(json.loads(Path(a.bench).read_text()), a.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
