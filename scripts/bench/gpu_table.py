"""The micro-batch the `full` profile's training steps get on common GPUs, derived from measured memory.

Reads a memory benchmark (scripts/bench/bench_memory.py: memory per sample and fixed memory of the U-Net, SimVP and
fine-tuning steps, with AMP) and applies lib.common.memory.fit_micro_batch, the rule training uses at run time,
to each GPU's memory: free = the card's memory as nvidia-smi reports it, less the CUDA context (CUDA_CONTEXT)
and the model's float32 weights; the rule then keeps FRACTION of that, less RESERVE and the optimizer state
(gradients + Adam moments). On a CPU benchmark the bfloat16 figures stand in for float16 (two bytes an
activation either way); a CUDA benchmark (memory_cuda.json of scripts/bench/gpu_check.py) is used as measured.

    python scripts/bench/gpu_table.py                                   # from results/memory_cpu.json
    python scripts/bench/gpu_table.py --bench runs/gpu-check/memory_cuda.json --precision fp32
"""

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lib.common.memory import FRACTION, PEAK_OVER_SAVED, RESERVE, GiB, fit_micro_batch  # noqa: E402

MiB = 2**20
# memory as nvidia-smi reports it
GPUS = {
    "T4 16 GB (Colab)": 15360 * MiB,
    "V100 16 GB": 16384 * MiB,
    "V100 32 GB": 32768 * MiB,
    "A100 40 GB": 40960 * MiB,
    "A100 80 GB": 81920 * MiB,
    "H100 80 GB": 81559 * MiB,
}
CUDA_CONTEXT = 0.5 * GiB  # the CUDA context and torch's kernels, assumed
STEPS = {"unet": "U-Net (02)", "simvp": "SimVP (04)", "finetune": "fine-tune (05)"}


def derive(bench, precision="amp", gpus=None):
    """{gpu: {step: {...}}}: ``chosen``, the micro-batch training picks at run time (its estimate: bytes saved
    for backward x PEAK_OVER_SAVED), with its accumulation steps and the memory it then uses by the measured
    cost (``used_gb``); ``fits``, the largest micro-batch the measured cost alone allows."""
    out = {}
    for gpu, total in (gpus or GPUS).items():
        row = {}
        for step, e in bench["steps"].items():
            if precision not in e:
                continue
            m, batch = e[precision], e["batch_size"]
            weights = e["params"] * 4
            free = total - CUDA_CONTEXT - weights
            estimate = (m["saved_bytes_per_sample"] or m["per_sample_bytes"]) * PEAK_OVER_SAVED["cuda"]
            chosen = fit_micro_batch(batch, estimate, free, e["optimizer_bytes"], "cuda")
            used = CUDA_CONTEXT + weights + e["optimizer_bytes"] + m["fixed_bytes"] + chosen * m["per_sample_bytes"]
            row[step] = {
                "chosen": chosen,
                "accumulation": math.ceil(batch / chosen),
                "used_gb": used / 1e9,
                "fits": fit_micro_batch(batch, m["per_sample_bytes"], free, e["optimizer_bytes"], "cuda"),
                "total_gb": total / 1e9,
            }
        out[gpu] = row
    return out


def markdown(bench, precision="amp", gpus=None):
    table = derive(bench, precision, gpus)
    steps = [s for s in STEPS if s in bench["steps"] and precision in bench["steps"][s]]
    head = [f"{STEPS[s]}, batch {bench['steps'][s]['batch_size']}" for s in steps]
    lines = ["| GPU | " + " | ".join(head) + " |", "|---|" + "---|" * len(steps)]
    for gpu, row in table.items():
        cells = [
            f"{row[s]['chosen']} x {row[s]['accumulation']} ({row[s]['used_gb']:.1f} GB; {row[s]['fits']} fit)"
            for s in steps
        ]
        lines.append(f"| {gpu} | " + " | ".join(cells) + " |")
    per = ", ".join(f"{STEPS[s]} {bench['steps'][s][precision]['per_sample_bytes'] / 1e9:.2f}" for s in steps)
    source = bench["device"] + (" in bfloat16, standing in for float16" if bench["device_type"] == "cpu" else "")
    note = (
        f"Micro-batch chosen at run time x accumulation steps (memory it uses by the measured cost; the largest "
        f"micro-batch the measured cost allows). {precision}. Measured: GB a sample ({per}) on {source}. "
        f"Derived: the card's memory less {CUDA_CONTEXT / GiB:.1f} GiB CUDA context and the weights; of that "
        f"{FRACTION['cuda']:.0%}, less {RESERVE['cuda'] / GiB:.1f} GiB reserve, gradients and Adam state; the run-time "
        f"estimate is the bytes saved for backward x {PEAK_OVER_SAVED['cuda']} (lib/common/memory.py)."
    )
    return "\n".join(lines) + "\n\n" + note


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=str(ROOT / "results" / "memory_cpu.json"))
    ap.add_argument("--precision", default="amp", choices=["amp", "fp32"])
    a = ap.parse_args()
    print(markdown(json.loads(Path(a.bench).read_text()), a.precision))


if __name__ == "__main__":
    main()
