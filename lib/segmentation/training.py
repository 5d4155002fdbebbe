"""Training and evaluating the U-Net that segments frames (docs/recipe.md, step 1).

Trains on frames of the train split only (never val); the val IoU is the task metric stacked over val
frames. Config is a plain dict stored in every checkpoint, so a checkpoint rebuilds its own model
(``build_unet`` / ``load_unet``, lib/segmentation/unet.py).
"""

from pathlib import Path

import numpy as np
import torch

from lib.common.device import auto_device
from lib.common.distributed import is_main, main_first, per_rank_batch, wrap
from lib.common.losses import SegLoss
from lib.common.memory import choose_micro_batch
from lib.common.metrics import IoUMeter
from lib.common.trainer import epoch_loader, fit
from lib.data.dataset import N_INPUT
from lib.data.source import as_source
from lib.data.torch_datasets import FrameDataset
from lib.segmentation.augment import Augment
from lib.segmentation.label import segment, vote_window
from lib.segmentation.unet import build_unet, count_params, load_unet

# The recipe defaults; notebook 02's parameters cell holds the same values (a test compares them).
DEFAULTS = dict(
    width=16,
    depth=4,
    norm="batch",
    head="plain",
    decode="argmax",
    crop=None,
    epochs=6,
    batch_size=16,
    lr=2e-3,
    weight_decay=0.0,
    ce=1.0,
    jaccard=0.5,
    lovasz=0.0,
    hflip=0.5,
    brightness=0.1,
    contrast=0.1,
    steps_per_epoch=None,
    eval_videos=40,
    eval_frames=6,
    cpu_amp=True,
    micro_batch=None,
    num_workers=0,
    seed=0,
)


class _SegStep:
    def __init__(self, loss):
        self.loss = loss

    def __call__(self, model, batch, device):
        x, y = (t.to(device, non_blocking=True) for t in batch)
        return self.loss(model(x), y)


@torch.inference_mode()
def evaluate(model, packed, device, videos=None, frames=None, *, batch_size=32, return_confusion=False):
    """Stacked IoU of the model's decoded masks over the chosen val videos and frames (all by default)."""
    model.eval()
    meter = IoUMeter()
    vids = range(len(packed)) if videos is None else videos
    ts = np.arange(packed.frames.shape[1]) if frames is None else np.asarray(frames)
    for v in vids:  # a video's chosen frames at a time (vote_video decodes them together, as label_split)
        pred = segment(
            model, np.asarray(packed.frames[v, ts]), device, batch_size=batch_size, video_len=vote_window(len(ts))
        )
        meter.update(pred, np.asarray(packed.masks[v, ts]))
    return _result(meter, return_confusion)


def score_masks(pred, true, return_confusion=False):
    """The same result as ``evaluate`` for masks already predicted: (N, T, H, W) predicted and true ids
    (memmaps are read video by video), e.g. the val labels written by ``lib.segmentation.label.label_split``."""
    if pred.shape != true.shape:
        raise ValueError(f"predicted masks {tuple(pred.shape)} and true masks {tuple(true.shape)} differ in shape")
    meter = IoUMeter()
    for p, t in zip(pred, true):
        meter.update(np.asarray(p), np.asarray(t))
    return _result(meter, return_confusion)


def _result(meter, return_confusion):
    mean, per_class = meter.compute()
    out = {"val_iou": mean, "per_class": per_class}
    if return_confusion:
        out["confusion"] = meter.cm.numpy()
    return out


def train_unet(source, out_dir, *, progress=True, device=None, **overrides):
    """Train (or resume) a U-Net; returns (model with the best weights, history, config). ``source``: a
    lib.data.source.DataSource (notebooks build one from their common parameters) or a data root read with the
    defaults. Resuming refuses a checkpoint made on other train or val data."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown U-Net settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **overrides}
    device = auto_device(device)
    source = as_source(source)
    train = main_first(source.split, "train", progress=progress)
    val = main_first(source.split, "val", progress=progress)
    torch.manual_seed(cfg["seed"])
    model = build_unet(cfg)
    params = count_params(model)
    model = wrap(model.to(device), device)  # DDP under torchrun, unchanged otherwise
    aug = Augment(hflip=cfg["hflip"], brightness=cfg["brightness"], contrast=cfg["contrast"])
    ds = FrameDataset(train, augment=aug, crop=tuple(cfg["crop"]) if cfg["crop"] else None)
    loader = epoch_loader(
        ds,
        per_rank_batch(cfg["batch_size"]),
        shuffle=True,
        seed=cfg["seed"],
        num_workers=cfg["num_workers"],
        drop_last=True,
    )
    rng = np.random.default_rng(cfg["seed"])
    ev_videos = None if not cfg["eval_videos"] else np.sort(rng.permutation(len(val))[: cfg["eval_videos"]])
    ev_frames = (
        None
        if not cfg["eval_frames"]
        else np.linspace(0, val.frames.shape[1] - 1, cfg["eval_frames"]).round().astype(int)
    )

    def ev(model, device):
        r = evaluate(model, val, device, ev_videos, ev_frames)
        return {"val_iou": r["val_iou"]}

    panel_videos = (np.arange(len(val)) if ev_videos is None else ev_videos)[:3]

    step = _SegStep(SegLoss(ce=cfg["ce"], jaccard=cfg["jaccard"], lovasz=cfg["lovasz"]))
    micro, memory = choose_micro_batch(
        cfg["micro_batch"], loader, model, step, device, cpu_amp=cfg["cpu_amp"], progress=progress and is_main()
    )
    # micro_batch is left out of the checkpoint's config: it does not change the experiment, resuming may change it
    config = {"model": "unet", **_without(cfg, "micro_batch"), "params": params, "train_videos": len(train)}
    history = fit(
        model,
        loader,
        step,
        ev,
        out_dir,
        config,
        epochs=cfg["epochs"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        schedule="onecycle",
        cpu_amp=cfg["cpu_amp"],
        device=device,
        progress=progress,
        seed=cfg["seed"],
        max_steps_per_epoch=cfg["steps_per_epoch"],
        data={"train": train.fingerprint, "val": val.fingerprint},
        micro_batch=micro,
        panels=_panels(val, panel_videos, min(N_INPUT, val.frames.shape[1]) - 1),
    )
    model, _ = load_unet(Path(out_dir) / "best.pt", device)
    return model, history, {**config, "memory": memory}


def _panels(val, videos, t):
    """``fit``'s TensorBoard images: frame ``t`` of a few fixed val videos (train_unet: frame 10, the last one the
    forecasters read) | its true mask | the predicted one; one image per video, named by its id."""

    def panels(model, device):
        from lib.viz.plots import colorize, side_by_side  # matplotlib: imported only when TensorBoard writes

        frames, true = np.asarray(val.frames[videos, t]), np.asarray(val.masks[videos, t])
        pred = segment(model, frames, device)
        return {
            f"video_{val.ids[v]}": side_by_side(f, colorize(m), colorize(p))
            for v, f, m, p in zip(videos, frames, true, pred)
        }

    return panels


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def most_confused(confusion, k=10):
    """The k largest off-diagonal entries of a confusion matrix: [(true, predicted, pixels)]."""
    cm = np.array(confusion, dtype=np.int64)
    np.fill_diagonal(cm, 0)
    flat = np.argsort(cm, axis=None)[::-1][:k]
    return [(int(i // cm.shape[1]), int(i % cm.shape[1]), int(cm.flat[i])) for i in flat if cm.flat[i] > 0]
