"""Planning the `full` profile on a GPU from a memory benchmark: the micro-batch each training step gets on common
GPUs, and the expected wall time of each notebook.

A benchmark is the JSON that ``scripts/bench/bench_memory.py`` writes (``results/memory_cpu.json`` for this
project's CPU, ``runs/gpu-check/memory_cuda.json`` once ``scripts/bench/gpu_check.py`` has run on a GPU): memory
per sample, fixed memory and seconds of the U-Net, SimVP and fine-tuning steps, and inference seconds.

- ``derive`` / ``gpu_table``: ``lib.common.memory.fit_micro_batch``, the rule training uses at run time, applied to
  each GPU's memory: free = the card's memory as nvidia-smi reports it, less the CUDA context (``CUDA_CONTEXT``)
  and the model's float32 weights; the rule then keeps ``FRACTION`` of that, less ``RESERVE`` and the optimizer
  state (gradients + Adam moments). On a CPU benchmark the bfloat16 figures stand in for float16 (two bytes an
  activation either way); a CUDA benchmark is used as measured.
- ``estimate`` / ``time_table``: each notebook's expected seconds under a profile (the notebooks' parameters with
  the profile's files over them). Assumptions: data loading overlaps compute (workers); a fine-tuning step costs
  a one-step training step plus, with the scheduled-sampling probability p, k-1 rollout steps (k and p as
  ScheduledSampling schedules them); early stopping does not trigger (an upper bound for notebook 05); U-Net
  labels decoded with `vote_video` cost ``DECODE_S`` a frame (README benchmark, CPU); notebooks 01 and 06 (CPU
  analysis and object models) and the figures are not estimated.

``scripts/bench/gpu_table.py`` and ``scripts/bench/estimate_time.py`` print these tables; ``gpu_check.py`` writes
them next to its benchmark.
"""

import ast
import math
from pathlib import Path

import nbformat
import yaml

from lib.common.memory import FRACTION, PEAK_OVER_SAVED, RESERVE, GiB, fit_micro_batch
from lib.common.paths import PROJ_ROOT

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

DECODE_S = {"argmax": 0.0044, "vote": 0.0188, "vote_video": 0.0212}  # README: U-Net decodings, per frame (CPU)
SYNTH_VIDEOS_PER_S_PER_PROCESS = 3.3  # README: 6.6 videos/s with 2 processes


# ---------------------------------------------------------------------------------------------- micro-batches
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


def gpu_table(bench, precision="amp", gpus=None):
    """``derive`` as a markdown table (one row a GPU) and a note saying what was measured and what derived."""
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


# ---------------------------------------------------------------------------------------------- wall time
def notebook_params(stem, profile, extra=(), root=None):
    """The parameters notebook ``stem`` runs with under ``profile`` (as run_all.sh merges them): the notebook's
    parameters cell, then ``params/<profile>/common.yaml``, ``params/<profile>/<stem>.yaml`` and the ``extra``
    files (RUN_PARAMS), each only for the keys the notebook defines."""
    root = Path(root or PROJ_ROOT)
    nb = nbformat.read(root / "notebooks" / f"{stem}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body}
    files = [root / "params" / profile / "common.yaml", root / "params" / profile / f"{stem}.yaml", *extra]
    for f in files:
        if Path(f).is_file():
            values.update({k: v for k, v in (yaml.safe_load(Path(f).read_text()) or {}).items() if k in values})
    return values


def rollout_fraction(max_rollout, p_rate, n=10_000):
    """Mean over training of p * (k - 1): the extra rollout steps of a fine-tuning step (ScheduledSampling)."""
    from lib.forecasting.training import ScheduledSampling

    ss = ScheduledSampling(max_rollout, p_rate)
    return sum(p * (k - 1) for k, p in (ss.schedule(i, n) for i in range(n))) / n


def _seconds(entry, precision):
    """Seconds a sample in ``precision``, else in the other one measured."""
    return (entry.get(precision) or entry.get("amp") or entry["fp32"])["seconds_per_sample"]


def estimate(bench, profile="full", extra=(), cores=2):
    """[(notebook, seconds or None, what)] for ``profile`` with the throughput of ``bench``."""
    P = {s: notebook_params(s, profile, extra) for s in ("00_synthetic_data", "02_unet", "03_label")}
    P.update({s: notebook_params(s, profile, extra) for s in ("04_simvp", "05_finetune", "07_predict_hidden")})
    d = P["00_synthetic_data"]
    n_train, n_val, n_unl, n_hid = d["n_train"], d["n_val"], d["n_unlabeled"], d["n_hidden"]
    s, inf = bench["steps"], bench["inference"]
    cpu = bench["device_type"] == "cpu"
    # precisions as the notebooks train: U-Net with AMP (cpu_amp on the CPU), SimVP with AMP on CUDA only
    u = P["02_unet"]
    unet_train = _seconds(s["unet"], "amp" if (u["cpu_amp"] or not cpu) else "fp32")
    simvp_train = _seconds(s["simvp"], "fp32" if cpu else "amp")
    frame = inf["unet_infer"]["seconds_per_item"] + DECODE_S.get(u["decode"], 0.0)
    step = inf["simvp_rollout"]["seconds_per_item"]  # one video, one rollout step
    rows = []

    workers = min(d["workers"], cores)
    gen = (n_train + n_val + n_unl + n_hid) / (SYNTH_VIDEOS_PER_S_PER_PROCESS * workers)
    rows.append(
        (
            "00_synthetic_data",
            gen,
            f"generating {n_train + n_val + n_unl + n_hid:,} videos on {workers} processes (skipped with real data)",
        )
    )
    rows.append(("01_explore", None, "CPU statistics and figures, not estimated"))

    per_epoch = (n_train * 22 // u["batch_size"]) * u["batch_size"]
    if u["steps_per_epoch"]:
        per_epoch = min(per_epoch, u["steps_per_epoch"] * u["batch_size"])
    ev = min(u["eval_videos"] or n_val, n_val) * (u["eval_frames"] or 22)
    t02 = u["epochs"] * (per_epoch * unet_train + ev * frame) + (n_val * 22 + min(6, n_val) * 22) * frame
    rows.append(
        (
            "02_unet",
            t02,
            f"{u['epochs']} epochs x {per_epoch:,} frames, {ev:,} eval frames an epoch, {n_val * 22:,} val frames labelled",
        )
    )

    splits = [x for x in P["03_label"]["splits"] if x != "val"]
    frames = sum({"train": n_train * 22, "unlabeled": n_unl * 22, "hidden": n_hid * 11}[x] for x in splits)
    rows.append(("03_label", frames * frame, f"{frames:,} frames ({', '.join(splits)}; val was labelled by 02)"))

    m = P["04_simvp"]
    windows = (n_train + (n_unl if m["use_unlabeled"] else 0)) * 11
    per_epoch = (windows // m["batch_size"]) * m["batch_size"]
    if m["steps_per_epoch"]:
        per_epoch = min(per_epoch, m["steps_per_epoch"] * m["batch_size"])
    ev = min(m["eval_videos"] or n_val, n_val) * 11
    t04 = m["epochs"] * (per_epoch * simvp_train + ev * step) + (n_val + min(3, n_val)) * 11 * step
    rows.append(
        (
            "04_simvp",
            t04,
            f"{m['epochs']} epochs x {per_epoch:,} windows, {ev // 11} eval rollouts an epoch, {n_val:,} val rollouts",
        )
    )

    f = P["05_finetune"]
    runs = 2 if f["compare_iou_loss"] else 1
    windows = (n_train + (n_unl if f.get("use_unlabeled", True) else 0)) * (22 - 11 - f["max_rollout"] + 1)
    per_epoch = (windows // f["batch_size"]) * f["batch_size"]
    if f["steps_per_epoch"]:
        per_epoch = min(per_epoch, f["steps_per_epoch"] * f["batch_size"])
    ft_step = simvp_train + rollout_fraction(f["max_rollout"], f["p_rate"]) * step
    ev = min(f["eval_videos"] or n_val, n_val) * 11
    t05 = runs * (ev * step + f["epochs"] * (per_epoch * ft_step + ev * step) + n_val * 11 * step)
    rows.append(
        (
            "05_finetune",
            t05,
            f"{runs} runs x {f['epochs']} epochs x {per_epoch:,} windows (no early stop), {ev // 11} eval rollouts an epoch",
        )
    )
    rows.append(("06_objects", None, "CPU object models, not estimated"))
    t07 = (2 * n_val + n_hid) * 11 * step
    rows.append(
        ("07_predict_hidden", t07, f"{2 * n_val + n_hid:,} rollouts (val: two models; hidden), U-Net labels reused")
    )
    rows.append(("08_compare_runs", None, "reads run folders, no model: seconds"))
    return rows


def human(sec):
    """Seconds as a person reads them: "-" (not estimated), s, min, h or days."""
    if sec is None:
        return "-"
    if sec < 120:
        return f"{sec:.0f} s"
    if sec < 2 * 3600:
        return f"{sec / 60:.0f} min"
    return f"{sec / 3600:.1f} h" if sec < 3 * 86400 else f"{sec / 86400:.1f} days"


def time_table(bench, profile="full", extra=(), cores=2):
    """``estimate`` as a markdown table, headed by the profile and the benchmark's device, with the total of
    notebooks 02-07 (training and inference; 00 is skipped with real data) as its last row."""
    rows = estimate(bench, profile, extra, cores)
    lines = [
        f"profile {profile} on {bench['device']} ({bench['device_type']}, measured {bench['date']}):",
        "| notebook | expected time | work |",
        "|---|---|---|",
    ]
    lines += [f"| {nb} | {human(sec)} | {what} |" for nb, sec, what in rows]
    total = sum(sec for nb, sec, _ in rows if sec is not None and not nb.startswith("00"))
    lines.append(f"| 02-07 (training and inference) | {human(total)} | |")
    return "\n".join(lines)
