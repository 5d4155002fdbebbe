"""Training SimVP in mask space (docs/recipe.md, steps 2 and 3).

Step 2, ``train_simvp``: one step ahead (11 masks -> the 12th) on sliding windows of train (true masks)
and unlabeled (U-Net labels), horizontal flips, cross-entropy, Adam + OneCycle. Never val.
Step 3, ``finetune_simvp``: scheduled sampling. With a probability that rises on an exponential schedule the
model first rolls out k steps on its own argmax output, then takes the supervised step on frame 11+k+1;
k grows from 1 to ``max_rollout`` over training. Optional IoU-aware loss (CE + soft Jaccard / Lovasz).
Both select checkpoints by the val frame-22 IoU of the full 11-step rollout from U-Net masks of frames 0-10.
The U-Net labels they read must be those of the packed splits (the same DataSource) and, when ``unet_key`` is given, of
that U-Net checkpoint: stale labels are a ``StaleLabels`` error (lib/segmentation/label.py). Resuming refuses a
checkpoint made on other data.
"""

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lib.common.checkpoint import load_checkpoint
from lib.common.device import auto_device
from lib.common.distributed import is_main, main_first, per_rank_batch, wrap
from lib.common.losses import SegLoss
from lib.common.memory import choose_micro_batch
from lib.common.metrics import jaccard
from lib.common.trainer import epoch_loader, fit
from lib.data import dataset as data
from lib.data.source import as_source
from lib.data.torch_datasets import WindowDataset
from lib.forecasting.simvp import MaskSimVP, rollout
from lib.segmentation.label import labels_meta, load_labels

MODEL_KEYS = ("embed_dim", "hid_S", "hid_T", "N_S", "N_T", "down", "mlp_ratio", "drop_path", "backend", "copy_prior")
# The recipe defaults; notebooks 04 (DEFAULTS) and 05 (FT_DEFAULTS) hold the same values (a test compares them).
DEFAULTS = dict(
    embed_dim=8,
    hid_S=16,
    hid_T=128,
    N_S=2,
    N_T=4,
    down=2,
    mlp_ratio=4.0,
    drop_path=0.0,
    copy_prior=False,
    backend="lib",
    epochs=4,
    batch_size=16,
    lr=1e-3,
    weight_decay=0.0,
    flip=0.5,
    use_unlabeled=True,
    steps_per_epoch=None,
    eval_videos=60,
    micro_batch=None,
    num_workers=0,
    seed=0,
)
FT_DEFAULTS = dict(
    epochs=3,
    batch_size=8,
    lr=1e-4,
    max_rollout=5,
    p_rate=5.0,
    ce=1.0,
    jaccard=0.0,
    lovasz=0.0,
    patience=2,
    flip=0.5,
    use_unlabeled=True,
    steps_per_epoch=None,
    eval_videos=60,
    micro_batch=None,
    num_workers=0,
    seed=0,
)


def build_simvp(cfg):
    return MaskSimVP(num_classes=49, in_len=data.N_INPUT, **{k: cfg[k] for k in MODEL_KEYS if k in cfg})


def load_simvp_checkpoint(path, device=None, backend=None):
    """(model in eval mode, config) from a checkpoint of train_simvp or finetune_simvp. ``backend`` ('lib' or
    'openstl') overrides the one it was trained with (the weights are the same; config then names the new one)."""
    state, config = load_checkpoint(path)
    if backend is not None:
        config = {**config, "backend": backend}
    model = build_simvp(config)
    model.load_state_dict(state)
    return model.to(auto_device(device)).eval(), config


def _flip(x, y, p):
    """Mirror each sample of a batch with probability p (inputs and targets alike; torch's global RNG,
    which checkpoints carry, so resumed runs draw the same flips)."""
    if p <= 0:
        return x, y
    f = torch.rand(x.shape[0]) < p
    if f.any():
        x, y = x.clone(), y.clone()
        x[f], y[f] = x[f].flip(-1), y[f].flip(-1)
    return x, y


class OneStep:
    """Cross-entropy of the next frame from the 11 before it.

    ``prepare`` draws the batch's flips, ``compute`` is the loss of a prepared batch or a piece of one
    (``fit`` splits prepared batches into micro-batches); calling the object does both."""

    def __init__(self, flip=0.5):
        self.flip = flip

    def prepare(self, batch):
        return _flip(*batch, self.flip)

    def compute(self, model, batch, device):
        x, y = batch
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return F.cross_entropy(model(x).float(), y[:, 0])

    def __call__(self, model, batch, device):
        return self.compute(model, self.prepare(batch), device)


class ScheduledSampling:
    """Scheduled sampling on clips of 11 + max_rollout frames.

    At training progress s = step / total_steps: rollout length k = 1 + floor(s * max_rollout) capped at
    max_rollout, and sampling probability p = 1 - exp(-p_rate * s) (0 at the start, close to 1 at the end).
    With probability p (per batch) the model predicts frames 12..11+k-1 from its own argmax outputs
    (no gradient), otherwise it sees the true frames (teacher forcing); the loss is on frame 11+k.
    """

    def __init__(self, max_rollout=5, p_rate=5.0, loss=None, flip=0.5):
        self.max_rollout, self.p_rate, self.flip = max_rollout, p_rate, flip
        self.loss = loss or SegLoss()
        self.k, self.p = 1, 0.0

    def schedule(self, step, total):
        s = step / max(total, 1)
        return min(self.max_rollout, 1 + int(s * self.max_rollout)), 1.0 - math.exp(-self.p_rate * s)

    def set_step(self, step, total):
        self.k, self.p = self.schedule(step, total)

    def prepare(self, batch):
        """Flips and whether this batch rolls out (one draw for the batch, shared by its micro-batches)."""
        x, y = _flip(*batch, self.flip)
        return x, y, self.k > 1 and float(torch.rand(())) < self.p

    def __call__(self, model, batch, device):
        return self.compute(model, self.prepare(batch), device)

    def compute(self, model, batch, device):
        x, y, roll = batch
        clip = torch.cat([x, y], 1).to(device, non_blocking=True)  # (B, 11 + max_rollout, H, W)
        n_in, k = x.shape[1], self.k
        window = clip[:, :n_in]
        if roll:
            with torch.no_grad():
                window = torch.cat([window[:, k - 1 :], rollout(model, window, k - 1, return_all=True)], 1)
        else:
            window = clip[:, k - 1 : k - 1 + n_in]
        return self.loss(model(window).float(), clip[:, n_in + k - 1])


@torch.inference_mode()
def predict_frame22(model, inputs, device, *, batch_size=16, steps=11, return_conf=False):
    """Frame-22 masks (N, H, W) uint8 by rolling the model out 11 steps from masks of frames 0-10; with
    ``return_conf`` also the model's confidence in them (max softmax probability of the last step, float16)."""
    model.eval()
    out = np.empty((len(inputs), *inputs.shape[2:]), np.uint8)
    conf = np.empty(out.shape, np.float16) if return_conf else None
    for i in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.asarray(inputs[i : i + batch_size, -data.N_INPUT :], np.int64)).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            if not return_conf:
                out[i : i + batch_size] = rollout(model, x, steps).to(torch.uint8).cpu().numpy()
                continue
            window = torch.cat([x, rollout(model, x, steps - 1, return_all=True)], 1) if steps > 1 else x
            c, pred = model(window[:, -data.N_INPUT :]).float().softmax(1).max(1)
        out[i : i + batch_size] = pred.to(torch.uint8).cpu().numpy()
        conf[i : i + batch_size] = c.cpu().numpy()
    return (out, conf) if return_conf else out


def _val_setup(source, labels_dir, eval_videos, seed, progress, unet_key=None):
    val = main_first(as_source(source).split, "val", progress=progress)
    ids, val_labels = load_labels(labels_dir, "val", unet_key, val.fingerprint)
    if not np.array_equal(ids, val.ids):
        raise ValueError(
            f"{labels_dir}/val.ids.npy does not list the videos of the packed val split; relabel (notebook 03)"
        )
    idx = np.arange(len(val))
    if eval_videos:
        idx = np.sort(np.random.default_rng(seed).permutation(len(val))[:eval_videos])
    return np.asarray(val_labels[idx, : data.N_INPUT]), np.asarray(val.masks[idx, 21]), val.fingerprint


def _windows(source, labels_dir, *, in_len, out_len, use_unlabeled, progress, unet_key=None):
    source = as_source(source)
    train = main_first(source.split, "train", progress=progress)
    sets = [WindowDataset(train.masks, in_len, out_len)]
    fingerprints = {"train": train.fingerprint}
    if use_unlabeled:
        unlabeled = main_first(source.split, "unlabeled", progress=progress)
        sets.append(
            WindowDataset(load_labels(labels_dir, "unlabeled", unet_key, unlabeled.fingerprint)[1], in_len, out_len)
        )
        fingerprints["unlabeled"] = unlabeled.fingerprint
    return (
        torch.utils.data.ConcatDataset(sets),
        {"train_videos": len(train), "unlabeled_videos": len(sets[1].masks) if use_unlabeled else 0},
        fingerprints,
    )


def labels_meta_keys(labels_dir, use_unlabeled):
    """{split: U-Net checkpoint key} of the labels a SimVP run reads (part of its data fingerprint)."""
    splits = ("val", "unlabeled") if use_unlabeled else ("val",)
    return {s: labels_meta(labels_dir, s).get("model") for s in splits}


def _evaluator(val_in, val_true, batch_size):
    def ev(model, device):
        return {"val_iou": jaccard(predict_frame22(model, val_in, device, batch_size=batch_size), val_true)[0]}

    return ev


def _panels(val_in, val_true, n=3):
    """``fit``'s TensorBoard images for the first ``n`` eval videos: the input mask of frame 11 | the true mask of
    frame 22 | the predicted one (the 11-step rollout that the val IoU scores), named ``val_<i>``."""

    def panels(model, device):
        from lib.viz.plots import colorize, side_by_side  # matplotlib: imported only when TensorBoard writes

        pred = predict_frame22(model, val_in[:n], device)
        return {
            f"val_{i}": side_by_side(colorize(val_in[i, -1]), colorize(val_true[i]), colorize(p))
            for i, p in enumerate(pred)
        }

    return panels


def train_simvp(source, labels_dir, out_dir, *, progress=True, device=None, unet_key=None, **overrides):
    """Recipe step 2; returns (best model, history, config). Resumes from out_dir/last.pt (same data only).
    ``source``: a lib.data.source.DataSource or a data root read with the defaults; ``unet_key``: the ``checkpoint_key`` the U-Net labels must carry (None: any)."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown SimVP settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **overrides}
    device = auto_device(device)
    ds, sizes, fps = _windows(
        source,
        labels_dir,
        in_len=data.N_INPUT,
        out_len=1,
        use_unlabeled=cfg["use_unlabeled"],
        progress=progress,
        unet_key=unet_key,
    )
    val_in, val_true, val_fp = _val_setup(source, labels_dir, cfg["eval_videos"], cfg["seed"], progress, unet_key)
    torch.manual_seed(cfg["seed"])
    model = build_simvp(cfg)
    params = sum(p.numel() for p in model.parameters())
    model = wrap(model.to(device), device)
    loader = epoch_loader(
        ds, per_rank_batch(cfg["batch_size"]), seed=cfg["seed"], num_workers=cfg["num_workers"], drop_last=True
    )
    step = OneStep(cfg["flip"])
    micro, memory = choose_micro_batch(cfg["micro_batch"], loader, model, step, device, progress=progress and is_main())
    # micro_batch is left out of the checkpoint's config: it does not change the experiment, resuming may change it
    config = {"model": "simvp", **_without(cfg, "micro_batch"), "params": params, "windows": len(ds), **sizes}
    history = fit(
        model,
        loader,
        step,
        _evaluator(val_in, val_true, cfg["batch_size"]),
        out_dir,
        config,
        epochs=cfg["epochs"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        schedule="onecycle",
        device=device,
        progress=progress,
        seed=cfg["seed"],
        max_steps_per_epoch=cfg["steps_per_epoch"],
        data={**fps, "val": val_fp, "labels": labels_meta_keys(labels_dir, cfg["use_unlabeled"])},
        micro_batch=micro,
        panels=_panels(val_in, val_true),
    )
    model, config = load_simvp_checkpoint(Path(out_dir) / "best.pt", device)
    return model, history, {**config, "memory": memory}


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def finetune_simvp(
    init_checkpoint,
    source,
    labels_dir,
    out_dir,
    *,
    progress=True,
    device=None,
    unet_key=None,
    **overrides,
):
    """Recipe step 3 from a train_simvp checkpoint; returns (best model, history, config).
    The returned model is the best of the fine-tuned epochs and the starting point (epoch 0).
    ``source`` and ``unet_key`` as for ``train_simvp``."""
    unknown = set(overrides) - set(FT_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown fine-tuning settings {sorted(unknown)}; known: {sorted(FT_DEFAULTS)}")
    cfg = {**FT_DEFAULTS, **overrides}
    device = auto_device(device)
    base, base_cfg = load_simvp_checkpoint(init_checkpoint, device)
    ds, sizes, fps = _windows(
        source,
        labels_dir,
        in_len=data.N_INPUT,
        out_len=cfg["max_rollout"],
        use_unlabeled=cfg["use_unlabeled"],
        progress=progress,
        unet_key=unet_key,
    )
    val_in, val_true, val_fp = _val_setup(source, labels_dir, cfg["eval_videos"], cfg["seed"], progress, unet_key)
    fingerprints = {**fps, "val": val_fp, "labels": labels_meta_keys(labels_dir, cfg["use_unlabeled"])}
    evaluate = _evaluator(val_in, val_true, cfg["batch_size"])
    start_iou = evaluate(base, device)["val_iou"]
    model = wrap(base.train(), device)
    loader = epoch_loader(
        ds, per_rank_batch(cfg["batch_size"]), seed=cfg["seed"], num_workers=cfg["num_workers"], drop_last=True
    )
    step = ScheduledSampling(
        cfg["max_rollout"],
        cfg["p_rate"],
        SegLoss(ce=cfg["ce"], jaccard=cfg["jaccard"], lovasz=cfg["lovasz"]),
        cfg["flip"],
    )
    micro, memory = choose_micro_batch(cfg["micro_batch"], loader, model, step, device, progress=progress and is_main())
    config = {
        **{k: base_cfg[k] for k in MODEL_KEYS},
        "model": "simvp",
        "finetune": _without(cfg, "micro_batch"),
        "init": str(init_checkpoint),
        "init_val_iou": start_iou,
        **sizes,
    }
    for epoch in range(1, cfg["epochs"] + 1):  # one epoch per call (exact resume), to stop early
        history = fit(
            model,
            loader,
            step,
            evaluate,
            out_dir,
            config,
            epochs=cfg["epochs"],
            lr=cfg["lr"],
            schedule="none",
            device=device,
            progress=progress,
            seed=cfg["seed"],
            max_steps_per_epoch=cfg["steps_per_epoch"],
            stop_after=epoch,
            data=fingerprints,
            micro_batch=micro,
            panels=_panels(val_in, val_true),
        )
        best_epoch = max(history, key=lambda r: r["val_iou"])["epoch"]
        if cfg["patience"] and len(history) - best_epoch >= cfg["patience"]:
            if progress:
                print(f"[finetune] early stop: no val improvement for {cfg['patience']} epochs")
            break
    best = max(history, key=lambda r: r["val_iou"])
    if best["val_iou"] > start_iou:
        model, _ = load_simvp_checkpoint(Path(out_dir) / "best.pt", device)
    else:
        model = load_simvp_checkpoint(init_checkpoint, device)[0]
    selected = "finetuned" if best["val_iou"] > start_iou else "initial"
    return model, history, {**config, "selected": selected, "memory": memory}
