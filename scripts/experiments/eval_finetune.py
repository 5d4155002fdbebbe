"""Why does notebook 05's fine-tune not help on the `cpu` profile? Arms from the same SimVP checkpoint, same steps.

    python scripts/experiments/eval_finetune.py --init runs/cpu-ref/simvp/best.pt --labels runs/cpu-ref/labels \
        --data-root data/embedded --params params/cpu/05_finetune.yaml --out results/experiments/finetune_cpu.json

Each arm starts from ``--init`` (notebook 04's model) and trains ``steps`` steps (default: the profile's
epochs x steps_per_epoch, batch_size) with ``fit`` exactly as ``finetune_simvp`` does (Adam, constant lr,
``ScheduledSampling`` with its progress over the arm's steps), then is scored like notebook 05: frame-22 IoU of
the 11-step rollout from the U-Net masks of frames 0-10, on the same ``--videos`` val videos for every arm, with a
95% bootstrap interval over videos and the paired difference to its starting checkpoint. Arms:

- ``start``: no training (the checkpoint itself);
- ``onestep``: continued one-step teacher-forced training (notebook 04's loss) at the profile's lr;
- ``ss``: the profile's scheduled-sampling fine-tune (notebook 05's ``ce`` run);
- ``ss_lr0``: the same run at lr 0: weights unchanged, only BatchNorm running statistics move (gSTA has BN);
- ``ss_r5p5``: the notebook's default schedule (max_rollout 5, p_rate 5) at the profile's lr;
- ``ss_lr4x`` / ``onestep_lr4x``: both at 4x the profile's lr.

With ``--extend N`` the checkpoint is first trained N more one-step steps (batch ``--extend-batch``, OneCycle up
to ``--extend-lr``, as notebook 04 trains), and ``longer_start``, ``longer_onestep``, ``longer_ss`` repeat the
comparison from that longer-trained model (``longer_start`` is also compared with ``start``).
Two groups (arms from ``--init``; the extension and its arms) run in parallel processes (``--workers``), one
torch thread each; CPU seconds are each arm's process time (training + its evaluation).
``--tiny``: 1 step a arm, 3 videos, batch 2 (a smoke test, under a minute).
"""

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))

from lib.common.losses import SegLoss  # noqa: E402
from lib.common.metrics import bootstrap_ci, bootstrap_diff_ci, per_video_confusion, stacked_iou  # noqa: E402
from lib.common.trainer import epoch_loader, fit  # noqa: E402
from lib.data import dataset as data  # noqa: E402
from lib.data.torch_datasets import WindowDataset  # noqa: E402
from lib.forecasting.training import (  # noqa: E402
    MODEL_KEYS,
    OneStep,
    ScheduledSampling,
    _val_setup,
    load_simvp_checkpoint,
    predict_frame22,
)
from lib.segmentation.label import load_labels  # noqa: E402


def arm_specs(p):
    """{name: (kind, settings)} of the arms from one checkpoint; ``p``: the profile's 05 settings."""
    lr, r, pr = p["lr"], p["max_rollout"], p["p_rate"]
    return {
        "start": ("none", {}),
        "onestep": ("onestep", dict(lr=lr)),
        "ss": ("ss", dict(lr=lr, max_rollout=r, p_rate=pr)),
        "ss_lr0": ("ss", dict(lr=0.0, max_rollout=r, p_rate=pr)),
        "ss_r5p5": ("ss", dict(lr=lr, max_rollout=5, p_rate=5.0)),
        "ss_lr4x": ("ss", dict(lr=4 * lr, max_rollout=r, p_rate=pr)),
        "onestep_lr4x": ("onestep", dict(lr=4 * lr)),
    }


LONGER_ARMS = ("start", "onestep", "ss")


def _windows(a, out_len):
    """Training windows as ``finetune_simvp`` builds them: train (true masks) + unlabeled (U-Net labels). The
    labels' video ids are checked against the packed split; their data fingerprint is not (the reference run's
    unlabeled labels predate it, which ``lib.forecasting.training._windows`` refuses as stale)."""
    train = data.load_split(a.data_root, "train", progress=False)
    unlabeled = data.load_split(a.data_root, "unlabeled", progress=False)
    ids, labels = load_labels(a.labels, "unlabeled")
    if not np.array_equal(ids, unlabeled.ids):
        raise ValueError(f"{a.labels}/unlabeled.ids.npy does not list the videos of the packed unlabeled split")
    return torch.utils.data.ConcatDataset(
        [WindowDataset(train.masks, data.N_INPUT, out_len), WindowDataset(labels, data.N_INPUT, out_len)]
    )


def _train(init, kind, s, a, work, schedule="none", batch=None):
    """A model trained from checkpoint ``init`` for ``a.steps`` steps (one ``fit`` epoch); (model, train_loss)."""
    model, cfg = load_simvp_checkpoint(init, "cpu")
    if kind == "none":
        return model, None
    out_len = 1 if kind == "onestep" else s["max_rollout"]
    ds = _windows(a, out_len)
    batch = batch or a.batch_size
    loader = epoch_loader(ds, batch, seed=a.seed, drop_last=True)
    if kind == "onestep":
        step = OneStep(flip=0.5)
    else:
        step = ScheduledSampling(s["max_rollout"], s["p_rate"], SegLoss(ce=1.0), flip=0.5)
    steps = s.get("steps", a.steps)
    torch.manual_seed(a.seed)
    hist = fit(
        model.train(),
        loader,
        step,
        None,
        work,
        {**{k: cfg[k] for k in MODEL_KEYS}, "kind": kind, **s},  # model keys: load_simvp_checkpoint reads them
        epochs=1,
        lr=s["lr"],
        schedule=schedule,
        device="cpu",
        progress=False,
        seed=a.seed,
        max_steps_per_epoch=steps,
        monitor="train_loss",
        mode="min",
        resume=False,
    )
    return model.eval(), hist[-1]["train_loss"]


def _score(model, val_in, val_true):
    return per_video_confusion(predict_frame22(model, val_in, torch.device("cpu")), val_true)


def run_group(group, a):
    """Train and score one group's arms in this process; {name: dict with "cms" and bookkeeping}."""
    torch.set_num_threads(1)
    val_in, val_true, _ = _val_setup(a.data_root, a.labels, a.videos, a.seed, False)
    specs = arm_specs(a.profile)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        init, prefix, names = a.init, "", list(specs)
        if group == "longer":
            c0 = time.process_time()
            ext = dict(lr=a.extend_lr, steps=a.extend)
            _, loss = _train(a.init, "onestep", ext, a, Path(tmp) / "ext", "onecycle", a.extend_batch)
            init, prefix, names = Path(tmp) / "ext" / "last.pt", "longer_", list(LONGER_ARMS)
            extend_cpu = time.process_time() - c0
        for name in names:
            kind, s = specs[name]
            c0, t0 = time.process_time(), time.time()
            model, loss = _train(init, kind, s, a, Path(tmp) / name)
            cms = _score(model, val_in, val_true)
            row = {
                "kind": kind,
                **s,
                "steps": 0 if kind == "none" else a.steps,
                "batch_size": a.batch_size,
                "train_loss": loss,
                "cpu_seconds": time.process_time() - c0,
                "wall_seconds": time.time() - t0,
                "cms": cms,
            }
            if group == "longer":
                row["init"] = (
                    f"--init + {a.extend} one-step steps (batch {a.extend_batch}, OneCycle lr {a.extend_lr:g})"
                )
                if name == "start":
                    row.update(
                        steps=a.extend,
                        batch_size=a.extend_batch,
                        train_loss=loss,
                        cpu_seconds=extend_cpu + row["cpu_seconds"],
                    )
            out[prefix + name] = row
            print(f"[eval_finetune] {prefix + name}: {stacked_iou(cms.sum(0)):.4f}", flush=True)
    return out


def summarise(rows, n_boot, seed):
    """Per arm: val IoU, its interval, the paired difference to its starting checkpoint (and longer vs start)."""
    res = {}
    for name, r in rows.items():
        cms = r.pop("cms")
        res[name] = {
            "val_iou": float(stacked_iou(cms.sum(0))),
            "ci": bootstrap_ci(cms, n_boot, seed=seed),
            **r,
        }
        res[name]["_cms"] = cms
    for name, r in res.items():  # longer_start itself against start: the longer-trained model vs notebook 04's
        base = "longer_start" if name.startswith("longer_") and name != "longer_start" else "start"
        r["vs"] = base
        if name != base:
            d = bootstrap_diff_ci(r["_cms"], res[base]["_cms"], n_boot, seed=seed)
            r["diff"], r["diff_ci"] = d["diff"], d["ci"]
        else:
            r["diff"], r["diff_ci"] = 0.0, [0.0, 0.0]
    for r in res.values():
        del r["_cms"]
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", default="runs/cpu-ref/simvp/best.pt", help="SimVP checkpoint of notebook 04")
    ap.add_argument("--labels", default="runs/cpu-ref/labels", help="folder of U-Net labels (notebook 03)")
    ap.add_argument("--data-root", default="data/embedded")
    ap.add_argument("--params", default=str(ROOT / "params/cpu/05_finetune.yaml"), help="profile's 05 settings")
    ap.add_argument("--steps", type=int, default=None, help="steps a arm (default: epochs x steps_per_epoch)")
    ap.add_argument("--videos", type=int, default=80, help="val videos scored (the same for every arm)")
    ap.add_argument("--extend", type=int, default=0, help="one-step steps for the longer-trained start (0: none)")
    ap.add_argument("--extend-batch", type=int, default=16)
    ap.add_argument("--extend-lr", type=float, default=1e-3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="1 step a arm, 3 videos, batch 2 (smoke test)")
    ap.add_argument("--out", required=True, help="JSON file")
    a = ap.parse_args(argv)
    a.profile = yaml.safe_load(open(a.params))
    a.batch_size = a.profile["batch_size"]
    if a.steps is None:
        a.steps = a.profile["epochs"] * a.profile["steps_per_epoch"]
    if a.tiny:
        a.steps, a.videos, a.batch_size, a.boot = 1, 3, 2, 200
        a.extend, a.extend_batch = (1, 2) if a.extend else (0, a.extend_batch)
    groups = ["base"] + (["longer"] if a.extend else [])
    t0 = time.time()
    if a.workers > 1 and len(groups) > 1:
        with ProcessPoolExecutor(min(a.workers, len(groups))) as pool:
            parts = list(pool.map(run_group, groups, [a] * len(groups)))
    else:
        parts = [run_group(g, a) for g in groups]
    rows = {k: v for p in parts for k, v in p.items()}
    res = summarise(rows, a.boot, a.seed)
    report = {
        "init": str(a.init),
        "profile_05": a.profile,
        "steps": a.steps,
        "batch_size": a.batch_size,
        "val_videos": a.videos,
        "extend": a.extend,
        "tiny": a.tiny,
        "wall_seconds": time.time() - t0,
        "cpu_seconds": sum(r["cpu_seconds"] for r in res.values()),
        "arms": res,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2))
    print(f"{'arm':16s} {'val IoU':>8s} {'95% CI':>17s} {'diff':>8s} {'diff 95% CI':>19s} {'vs':>13s} steps  CPU s")
    for name, r in res.items():
        print(
            f"{name:16s} {r['val_iou']:8.4f} [{r['ci'][0]:.4f},{r['ci'][1]:.4f}] {r['diff']:+8.4f} "
            f"[{r['diff_ci'][0]:+.4f},{r['diff_ci'][1]:+.4f}] {r['vs']:>13s} {r['steps']:5d} {r['cpu_seconds']:6.0f}"
        )
    print("wrote", a.out)


if __name__ == "__main__":
    sys.exit(main())
