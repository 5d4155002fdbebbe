"""Expected wall time of each notebook of a profile (default `full`) on a device, from measured throughput.

Throughput comes from a memory benchmark file of scripts/bench/bench_memory.py, which times one training step of
each full-size model (U-Net, SimVP, fine-tuning with the longest rollout) and inference (U-Net frames, SimVP
rollout steps) in the precisions the notebooks use on that device: results/memory_cpu.json for this CPU,
runs/gpu-check/memory_cuda.json once a GPU has run scripts/bench/gpu_check.py. The counts (videos, epochs, batches,
evaluation subsets) are the notebooks' parameters with the profile's files over them.

Assumptions: data loading overlaps compute (workers); a fine-tuning step costs a one-step training step plus, with
the scheduled-sampling probability p, k-1 rollout steps (k and p as ScheduledSampling schedules them); early
stopping does not trigger (an upper bound for notebook 05); U-Net labels decoded with `vote_video` cost
DECODE_S a frame (README benchmark, CPU); notebooks 01 and 06 (CPU analysis and object models) and the
figures are not estimated.

    python scripts/bench/estimate_time.py                                  # full profile, this CPU's measurements
    python scripts/bench/estimate_time.py --bench runs/gpu-check/memory_cuda.json
    python scripts/bench/estimate_time.py --params params/full-rehearsal.yaml   # with RUN_PARAMS-style overrides
"""

import argparse
import ast
import json
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DECODE_S = {"argmax": 0.0044, "vote": 0.0188, "vote_video": 0.0212}  # README: U-Net decodings, per frame (CPU)
SYNTH_VIDEOS_PER_S_PER_PROCESS = 3.3  # README: 6.6 videos/s with 2 processes


def notebook_params(stem, profile, extra=()):
    """The parameters notebook ``stem`` runs with under ``profile`` (as run_all.sh merges them)."""
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body}
    files = [ROOT / "params" / profile / "common.yaml", ROOT / "params" / profile / f"{stem}.yaml", *extra]
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
    return rows


def human(sec):
    if sec is None:
        return "-"
    if sec < 120:
        return f"{sec:.0f} s"
    if sec < 2 * 3600:
        return f"{sec / 60:.0f} min"
    return f"{sec / 3600:.1f} h" if sec < 3 * 86400 else f"{sec / 86400:.1f} days"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=str(ROOT / "results" / "memory_cpu.json"))
    ap.add_argument("--profile", default="full")
    ap.add_argument("--params", action="append", default=[], help="more parameter files (as RUN_PARAMS)")
    ap.add_argument("--cores", type=int, default=2, help="CPU cores for data generation")
    a = ap.parse_args()
    bench = json.loads(Path(a.bench).read_text())
    rows = estimate(bench, a.profile, a.params, a.cores)
    print(f"profile {a.profile} on {bench['device']} ({bench['device_type']}, measured {bench['date']}):")
    print("| notebook | expected time | work |\n|---|---|---|")
    for nb, sec, what in rows:
        print(f"| {nb} | {human(sec)} | {what} |")
    total = sum(x for _, x, _ in rows if x is not None and not _.startswith("00"))
    print(f"| 02-07 (training and inference) | {human(total)} | |")
    return rows


if __name__ == "__main__":
    main()
