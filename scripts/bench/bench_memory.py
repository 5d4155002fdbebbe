"""Memory per sample (and seconds) of the full profile's training steps, float32 and mixed precision.

Steps (the `full` profile's sizes, params/full/*.yaml over the library defaults, on random 160x240 data):
``unet`` (a U-Net step on whole frames), ``simvp`` (SimVP one step ahead), ``finetune`` (scheduled sampling with
the longest rollout: 4 steps on its own output without gradients, then the supervised step). Each runs through
``fit``'s own step (lib.common.trainer._train_step) and an Adam step, in a fresh process per (step, precision,
batch): the peak is the process's peak RSS (``ru_maxrss``) on the CPU, ``torch.cuda.max_memory_allocated`` on
CUDA, less the baseline after the model, optimizer and data are made. Over batches 1 and 2 (or more):
``per_sample_bytes`` = the slope, ``fixed_bytes`` = the rest of the batch-1 peak (gradients, Adam state,
workspaces). Precisions: ``fp32`` and ``amp`` (float16 autocast + GradScaler on CUDA, bfloat16 autocast on the
CPU: the same two bytes an activation). Also recorded: the bytes autograd saves for backward per sample (what
lib/common/memory.py estimates a sample's cost from; ``peak_over_saved`` is the ratio it uses) and, for the
time estimates of scripts/bench/estimate_time.py, the seconds of each step and of inference (U-Net frames, SimVP
rollout steps) in the precision the notebooks use on that device.

    python scripts/bench/bench_memory.py                            # CPU, batches 1 2 -> results/memory_cpu.json (~30 min on 2 cores)
    python scripts/bench/bench_memory.py --device cuda --batches 1 2 4 --out runs/gpu-check/memory_cuda.json
    python scripts/bench/bench_memory.py --tiny --out /tmp/m.json   # smoke sizes, seconds (the tests)
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

STEPS = ("unet", "simvp", "finetune")
H, W = 160, 240


def settings(tiny):
    """{step: config} of the full (or smoke, ``tiny``) profile over the library defaults."""
    from lib.forecasting.training import DEFAULTS as SIMVP
    from lib.forecasting.training import FT_DEFAULTS
    from lib.segmentation.training import DEFAULTS as UNET

    prof = ROOT / "params" / ("smoke" if tiny else "full")
    read = lambda name: yaml.safe_load((prof / f"{name}.yaml").read_text()) or {}
    simvp = {**SIMVP, **read("04_simvp")}
    return {
        "unet": {**UNET, **read("02_unet"), "crop": None},
        "simvp": simvp,
        "finetune": {**simvp, **{k: v for k, v in {**FT_DEFAULTS, **read("05_finetune")}.items() if k != "flip"}},
    }


def cpu_name():
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "CPU"


def _rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def child(spec):
    """One measurement in this (fresh) process; prints one JSON line."""
    from lib.common.classes import NUM_CLASSES
    from lib.common.device import inference_autocast, train_autocast
    from lib.common.losses import SegLoss
    from lib.common.memory import sample_cost
    from lib.common.trainer import _train_step
    from lib.forecasting.simvp import rollout
    from lib.forecasting.training import OneStep, ScheduledSampling, build_simvp
    from lib.segmentation.training import _SegStep, build_unet

    device, kind, batch, amp = torch.device(spec["device"]), spec["step"], spec["batch"], spec["precision"] == "amp"
    cuda = device.type == "cuda"
    cfg = settings(spec["tiny"])[kind.replace("_infer", "").replace("_rollout", "")]
    torch.manual_seed(0)
    if kind.startswith("unet"):
        model = build_unet(cfg).to(device)
        x = torch.rand(batch, 3, H, W)
        y = torch.randint(0, NUM_CLASSES, (batch, H, W))
        loss_fn, data = _SegStep(SegLoss(ce=cfg["ce"], jaccard=cfg["jaccard"], lovasz=cfg["lovasz"])), (x, y)
    else:
        model = build_simvp(cfg).to(device)
        out_len = cfg["max_rollout"] if kind == "finetune" else 1
        clip = torch.randint(0, NUM_CLASSES, (batch, 11 + out_len, H, W))
        data = (clip[:, :11], clip[:, 11:])
        if kind == "finetune":
            loss_fn = ScheduledSampling(cfg["max_rollout"], cfg["p_rate"], SegLoss(ce=cfg["ce"]), flip=0.0)
            loss_fn.k, loss_fn.p = cfg["max_rollout"], 1.0  # the longest rollout, always taken
            loss_fn.set_step = None
        else:
            loss_fn = OneStep(flip=0.0)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _rss()
    out = {**spec, "params": sum(p.numel() for p in model.parameters())}
    seconds = []
    if kind.endswith("_infer") or kind.endswith("_rollout"):
        model.eval()
        with torch.inference_mode():
            for _ in range(spec["repeat"]):
                t0 = time.perf_counter()
                if kind == "unet_infer":  # as lib.segmentation.label.segment: mixed precision where the device has it
                    with inference_autocast(device, amp):
                        model(x.to(device)).float().argmax(1)
                else:  # as predict_frame22: float16 autocast on CUDA, float32 on the CPU; per rollout step
                    with torch.autocast(device.type, enabled=cuda and amp):
                        rollout(model, data[0].to(device), spec["rollout_steps"])
                if cuda:
                    torch.cuda.synchronize(device)
                seconds.append(time.perf_counter() - t0)
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp)
        cast = train_autocast(device, amp, cpu_amp=amp)  # as fit: float16 on CUDA, bfloat16 on a bf16 CPU
        for _ in range(spec["repeat"]):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            _train_step(model, loss_fn, data, device, None, cast, scaler, not cuda)
            scaler.step(opt)
            scaler.update()
            if cuda:
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - t0)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
        out["total_bytes"] = torch.cuda.get_device_properties(device).total_memory
    else:
        peak = _rss()
    out.update(peak_bytes=peak - base, baseline_bytes=base, seconds=seconds)
    if spec["estimate"]:  # after the peak was read: the estimate's own forward pass does not count
        one = tuple(t[:1] for t in data)
        out["saved_bytes_per_sample"] = sample_cost(model, loss_fn, one, device, amp=amp, cpu_amp=amp)[1]
    print("RESULT " + json.dumps(out), flush=True)


def run_child(spec, timeout):
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"{spec} failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def summarize(rows, steps, precisions, configs):
    """Per step and precision: slope over the batches (per sample), the rest (fixed), peak/saved ratio."""
    out = {}
    for step in steps:
        entry = {"batch_size": configs[step]["batch_size"]}
        for prec in precisions:
            rs = sorted((r for r in rows if r["step"] == step and r["precision"] == prec), key=lambda r: r["batch"])
            if len(rs) < 2:
                continue
            b, p = [r["batch"] for r in rs], [r["peak_bytes"] for r in rs]
            n = len(b)
            mb, mp = sum(b) / n, sum(p) / n
            slope = sum((x - mb) * (y - mp) for x, y in zip(b, p)) / sum((x - mb) ** 2 for x in b)
            saved = next((r["saved_bytes_per_sample"] for r in rs if "saved_bytes_per_sample" in r), None)
            big = rs[-1]
            entry[prec] = {
                "per_sample_bytes": slope,
                "fixed_bytes": max(0.0, p[0] - slope * b[0]),
                "peak_bytes": dict(zip(map(str, b), p)),
                "saved_bytes_per_sample": saved,
                "peak_over_saved": slope / saved if saved else None,
                "seconds_per_sample": min(big["seconds"]) / big["batch"],
            }
            entry["params"] = rs[0]["params"]
            entry["optimizer_bytes"] = 3 * 4 * rs[0]["params"]  # gradients + Adam's two moments, float32
        out[step] = entry
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "amp"], choices=["fp32", "amp"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1, help="steps per process (the fastest is timed)")
    ap.add_argument("--tiny", action="store_true", help="the smoke profile's sizes: seconds, for the tests")
    ap.add_argument("--no-infer", action="store_true", help="skip the inference timings")
    ap.add_argument("--out", default=None, help="JSON file (default results/memory_<device type>.json)")
    ap.add_argument("--merge", action="store_true", help="keep the other steps' runs already in --out")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per process")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(json.loads(a.child))
    device = torch.device(a.device)
    out = Path(a.out or ROOT / "results" / f"memory_{device.type}.json")
    configs = settings(a.tiny)
    cuda = device.type == "cuda"
    rows = []
    base = dict(device=a.device, tiny=a.tiny, repeat=a.repeat, rollout_steps=3)
    for step in a.steps:
        for prec in a.precisions:
            for i, b in enumerate(a.batches):
                spec = {**base, "step": step, "precision": prec, "batch": b, "estimate": i == 0}
                t0 = time.time()
                r = run_child(spec, a.timeout)
                rows.append(r)
                print(
                    f"{step:9s} {prec:5s} batch {b:3d}: peak {r['peak_bytes'] / 1e9:7.3f} GB over the baseline, "
                    f"step {min(r['seconds']):7.2f} s  ({time.time() - t0:.0f} s with start-up)",
                    flush=True,
                )
    old = json.loads(out.read_text()) if a.merge and out.is_file() else {}
    rows = [r for r in old.get("runs", []) if r["step"] not in a.steps] + rows
    steps = [x for x in STEPS if any(r["step"] == x for r in rows)]
    infer = dict(old.get("inference", {}))
    if not a.no_infer:  # precisions as the notebooks use them on this device
        prec = "amp"
        for kind, batch in (("unet_infer", 32 if cuda else 4), ("simvp_rollout", 16 if cuda else 1)):
            spec = {**base, "step": kind, "precision": prec, "batch": batch, "estimate": False}
            r = run_child(spec, a.timeout)
            per = min(r["seconds"]) / batch / (base["rollout_steps"] if kind == "simvp_rollout" else 1)
            infer[kind] = {
                "seconds_per_item": per,
                "batch": batch,
                "item": "frame" if kind == "unet_infer" else "video step",
            }
            print(f"{kind:14s} {per:.3f} s a {infer[kind]['item']} (batch {batch})", flush=True)
    name = torch.cuda.get_device_name(device) if cuda else f"{cpu_name()}, {torch.get_num_threads()} threads"
    result = {
        "device": name,
        "device_type": device.type,
        "total_bytes": next((r["total_bytes"] for r in rows if "total_bytes" in r), None),
        "torch": torch.__version__,
        "profile": "smoke" if a.tiny else "full",
        "measured": "peak RSS (ru_maxrss) less the baseline"
        if not cuda
        else "torch.cuda.max_memory_allocated less the baseline",
        "amp": "float16 autocast + GradScaler" if cuda else "bfloat16 autocast",
        "date": time.strftime("%Y-%m-%d"),
        "steps": summarize(rows, steps, ("fp32", "amp"), configs),
        "inference": infer,
        "runs": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    for step, e in result["steps"].items():
        for prec in ("fp32", "amp"):
            if prec in e:
                s = e[prec]
                ratio = f"{s['peak_over_saved']:.2f}" if s["peak_over_saved"] else "-"
                print(
                    f"{step:9s} {prec:5s} {s['per_sample_bytes'] / 1e9:6.2f} GB a sample + {s['fixed_bytes'] / 1e9:5.2f} GB "
                    f"fixed; peak/saved {ratio}; {s['seconds_per_sample']:.2f} s a sample"
                )


if __name__ == "__main__":
    main()
