"""The full profile's first run on a GPU, in one short script (about 15 minutes on a T4; nothing else needed).

1. ``rehearsal``: notebooks 00-07 of the full profile with params/full-rehearsal.yaml (full model sizes, tiny
   data; run_all.sh as a user runs it) into OUT/rehearsal.
2. ``epochs``: one epoch of each full model (U-Net, SimVP, fine-tuning) at the profile's real batch sizes, on a
   small dataset of real-size videos (``--videos`` train and unlabeled, a quarter of that val), through
   train_unet / train_simvp / finetune_simvp with ``micro_batch=None``: records the micro-batch each chose,
   its memory estimate, the device's peak memory (``torch.cuda.max_memory_allocated``) and the training
   throughput.
3. ``bench``: scripts/bench/bench_memory.py on the device (memory per sample in float32 and AMP, batches 1 2 4;
   training and inference seconds) into OUT/memory_<device>.json; then the GPU table and the time estimates
   from it (lib.common.gpu_plan, what scripts/bench/gpu_table.py and estimate_time.py print) into
   OUT/gpu_table.log and OUT/estimate_time.log.

Everything lands in OUT (default runs/gpu-check): ``gpu_check.json`` (the records), logs, the benchmark.
Copy OUT/memory_cuda.json to results/ to have the README's GPU figures measured rather than derived.

    python scripts/bench/gpu_check.py                     # on the GPU machine, from the repository root
    python scripts/bench/gpu_check.py --only epochs bench
    python scripts/bench/gpu_check.py --tiny              # the same on the CPU at the smoke profile's sizes (a test)
    python scripts/bench/gpu_check.py --dry               # print what it would run
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from lib.common.gpu_plan import gpu_table, time_table  # noqa: E402

PARTS = ("rehearsal", "epochs", "bench")


def sh(cmd, log, dry, env=None):
    print("$ " + " ".join(map(str, cmd)), flush=True)
    if dry:
        return 0
    t0 = time.time()
    with open(log, "w") as f:
        p = subprocess.run(list(map(str, cmd)), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    print(f"  exit {p.returncode} after {time.time() - t0:.0f} s; log {log}", flush=True)
    if p.returncode:
        print(Path(log).read_text()[-3000:], flush=True)
    return p.returncode


def rehearsal(out, dry, tiny):
    """run_all.sh full with the rehearsal file (data under OUT)."""
    over = out / "rehearsal.yaml"
    values = yaml.safe_load((ROOT / "params" / "full-rehearsal.yaml").read_text())
    values.update(data_root=str(out / "rehearsal-data"))
    over.write_text(yaml.safe_dump(values))
    env = {**os.environ, "RUN_PARAMS": str(over), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    profile = "smoke" if tiny else "full"
    t0 = time.time()
    rc = sh(["bash", ROOT / "run_all.sh", profile, out / "rehearsal"], out / "rehearsal.log", dry, env)
    timings = out / "rehearsal" / "timings.tsv"
    rows = [r.split("\t") for r in timings.read_text().splitlines()[1:]] if timings.is_file() else []
    return {"exit": rc, "seconds": time.time() - t0, "notebooks": {r[0]: [int(r[1]), r[2]] for r in rows}}


def _peak(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def epochs(out, device, tiny, videos):
    """One epoch of each model at the profile's batch sizes, micro-batch chosen for the device."""
    from lib.data import dataset as data
    from lib.data import prepare
    from lib.forecasting.training import DEFAULTS as SIMVP
    from lib.forecasting.training import FT_DEFAULTS, finetune_simvp, train_simvp
    from lib.segmentation import label
    from lib.segmentation.training import DEFAULTS as UNET
    from lib.segmentation.training import train_unet

    prof = ROOT / "params" / ("smoke" if tiny else "full")

    def settings(name, defaults, **over):
        values = yaml.safe_load((prof / f"{name}.yaml").read_text()) or {}
        return {
            **defaults,
            **{k: v for k, v in values.items() if k in defaults},
            "epochs": 1,
            "micro_batch": None,
            **over,
        }

    root, work = out / "epochs-data", out / "epochs"
    prepare.prepare_dataset(
        root, {"train": videos, "val": max(2, videos // 4), "unlabeled": videos}, generate=True, workers=4
    )
    records = {}

    def run(name, fn, samples, cfg):
        b, steps = cfg["batch_size"], cfg.get("steps_per_epoch")
        samples = (min(samples // b, steps) if steps else samples // b) * b  # drop_last
        _reset(device)
        t0 = time.time()
        model, history, config = fn()
        row = history[-1]
        records[name] = {
            "memory": config["memory"],
            "peak_gb": _peak(device) / 1e9,
            "epoch_seconds": row["seconds"],
            "samples": samples,
            "samples_per_s": samples / row["seconds"],  # the epoch's evaluation included: a lower bound
            "wall_seconds": time.time() - t0,
            "val_iou": row.get("val_iou"),
        }
        print(f"[gpu_check] {name}: {json.dumps(records[name])}", flush=True)
        return model

    u = settings("02_unet", UNET, eval_videos=2, eval_frames=4)
    unet = run("unet", lambda: train_unet(root, work / "unet", device=device, **u), videos * 22, u)
    labels = work / "labels"
    for split in ("val", "unlabeled"):
        label.label_split(unet, data.load_split(root, split), labels, batch_size=32, device=device, progress=False)
    s = settings("04_simvp", SIMVP, eval_videos=2)
    run("simvp", lambda: train_simvp(root, labels, work / "simvp", device=device, **s), 2 * videos * 11, s)
    f = settings("05_finetune", FT_DEFAULTS, eval_videos=2)
    windows = 2 * videos * (22 - 11 - f["max_rollout"] + 1)
    init = work / "simvp" / "best.pt"
    run("finetune", lambda: finetune_simvp(init, root, labels, work / "finetune", device=device, **f), windows, f)
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "runs" / "gpu-check"))
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--device", default=None, help="default: cuda if available (cpu with --tiny)")
    ap.add_argument("--videos", type=int, default=32, help="train and unlabeled videos for the epochs part")
    ap.add_argument("--tiny", action="store_true", help="CPU, smoke sizes, 2 videos: the script's own test")
    ap.add_argument("--dry", action="store_true", help="print the commands, run nothing")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(a.device or ("cpu" if a.tiny or not torch.cuda.is_available() else "cuda"))
    if device.type != "cuda" and not (a.tiny or a.dry):
        print("[gpu_check] no CUDA device: use --tiny (CPU, smoke sizes) or --dry", file=sys.stderr)
        return 2
    record = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "tiny": a.tiny,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if a.dry:
        print(f"[gpu_check] would run {a.only} on {device} into {out}")
    if "rehearsal" in a.only:
        record["rehearsal"] = rehearsal(out, a.dry, a.tiny)
    if "epochs" in a.only and not a.dry:
        record["epochs"] = epochs(out, device, a.tiny, 2 if a.tiny else a.videos)
    if "bench" in a.only:
        bench = out / f"memory_{device.type}.json"
        cmd = [sys.executable, ROOT / "scripts" / "bench" / "bench_memory.py", "--device", device.type, "--out", bench]
        cmd += ["--tiny", "--precisions", "amp"] if a.tiny else ["--batches", "1", "2", "4", "--repeat", "3"]
        record["bench_exit"] = sh(cmd, out / "bench.log", a.dry)
        if not a.dry and bench.is_file():  # what scripts/bench/gpu_table.py and estimate_time.py print
            measured = json.loads(bench.read_text())
            for text, log in ((gpu_table(measured), "gpu_table.log"), (time_table(measured), "estimate_time.log")):
                (out / log).write_text(text + "\n")
                print(text, flush=True)
    if not a.dry:
        (out / "gpu_check.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
        print(f"[gpu_check] wrote {out / 'gpu_check.json'}")
    failed = record.get("rehearsal", {}).get("exit") or record.get("bench_exit")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
