"""Labelling every frame of a split with a segmentation model, resumably.

Output per split, in ``out_dir``:
    <split>.npy      uint8 (N, T, 160, 240) predicted class ids, in the packed split's video order
    <split>.ids.npy  int64 (N,) the video numbers of those rows
While running, rows go into ``<split>.partial.npy`` (a memmap) and the finished videos into
``<split>.done.npy`` (written atomically after each chunk); the final file appears only by rename,
so an interrupted run leaves no half-written ``<split>.npy`` and a rerun continues where it stopped.
Optionally each video's labels are also written as ``<npy_dir>/<split>/video_NNNNN/mask.npy``
(a separate folder, never the dataset's own labels).
"""

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lib.common.files import save_json, save_npy
from lib.common.trainer import auto_device, inference_autocast
from lib.data.dataset import N_INPUT, to_image_tensor
from lib.segmentation.decode import decode


class Interrupted(RuntimeError):
    """Raised by ``label_split(stop_after=k)`` to simulate a run killed after k videos (for tests)."""


def labels_path(out_dir, split):
    return Path(out_dir) / f"{split}.npy"


def load_labels(out_dir, split):
    """(ids, masks memmap) written by label_split; a clear error if missing."""
    path = labels_path(out_dir, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no labels for split {split!r}; run notebook 03 (labelling) first")
    return np.load(Path(out_dir) / f"{split}.ids.npy"), np.load(path, mmap_mode="r")


def vote_window(n_frames):
    """Frames decoded together by ``vote_video``: the 11 input frames (0-10) apart from the rest (11-21), so
    that the masks of frames 0-10, the inputs of every predictor, never use a later frame (the hidden videos
    have only frames 0-10)."""
    return N_INPUT if n_frames % N_INPUT == 0 else n_frames


def checkpoint_key(path):
    """The ``model_key`` of labels made by the checkpoint at ``path``: its path and modification time, so a
    retrained model's labels are redone and the same model's labels are shared (notebooks 02, 03, 07)."""
    path = Path(path)
    return f"{path}:{path.stat().st_mtime_ns}"


def cached_labels(out_dir, split, model_key):
    """(ids, masks memmap) of finished labels of ``split`` made by ``model_key``, or None."""
    meta_path = Path(out_dir) / f"{split}.meta.json"
    if not (labels_path(out_dir, split).is_file() and meta_path.is_file()):
        return None
    if json.loads(meta_path.read_text()).get("model") != model_key:
        return None
    return load_labels(out_dir, split)


@torch.inference_mode()
def segment(model, frames, device=None, batch_size=32, amp=True, video_len=None):
    """uint8 (n, H, W, 3) frames (or one (H, W, 3) frame) -> uint8 (n, H, W) class ids, decoded as the model's
    ``decode`` attribute says (lib/segmentation/decode.py: per-pixel argmax, per-object vote, or per-track vote over a
    video). ``video_len``: the frames are consecutive videos of that many frames each, in order (used by
    ``vote_video``; without it every frame is decoded alone). The one inference path of the project's
    segmentation models: eval mode (restored after), ``torch.inference_mode``, mixed precision where the
    device has it (``amp``; lib.common.trainer.inference_autocast), the model's device by default."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        return segment(model, frames[None], device, batch_size, amp)[0]
    device = torch.device(device) if device is not None else next(model.parameters()).device
    how = getattr(model, "decode", "argmax")
    if how == "vote_video" and not video_len:
        how = "vote"
    if video_len and len(frames) % video_len:
        raise ValueError(f"{len(frames)} frames are not whole videos of {video_len} frames")
    step = video_len if how == "vote_video" else batch_size  # frames decoded together
    was_training = model.training
    model.eval()
    out = np.empty(frames.shape[:-1], np.uint8)
    try:
        for i in range(0, len(frames), step):
            logits = []
            for j in range(i, min(i + step, len(frames)), batch_size):
                x = to_image_tensor(frames[j : min(j + batch_size, i + step)]).to(device, non_blocking=True)
                with inference_autocast(device, amp):
                    logits.append(model(x).float())
            out[i : i + step] = decode(torch.cat(logits), how)
    finally:
        model.train(was_training)
    return out


def label_split(
    model, packed, out_dir, batch_size=32, device=None, model_key="", npy_dir=None, progress=True, stop_after=None
):
    """Labels every frame of ``packed`` (a lib.data.dataset.PackedSplit). Returns a dict with frames/s and paths.
    ``model_key`` identifies the model (e.g. checkpoint path and epoch): labels made by another model
    are not resumed but redone."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = packed.name
    final, ids_path = labels_path(out_dir, split), out_dir / f"{split}.ids.npy"
    partial, done_path, meta_path = (
        out_dir / f"{split}.partial.npy",
        out_dir / f"{split}.done.npy",
        out_dir / f"{split}.meta.json",
    )
    n, t = packed.frames.shape[:2]
    meta = {"model": model_key, "ids": packed.ids.tolist(), "shape": [n, t, *packed.frames.shape[2:4]]}
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    if final.is_file() and old == meta:
        _write_npy_dir(final, packed.ids, split, npy_dir)
        return {"split": split, "path": str(final), "videos": n, "labelled": 0, "frames_per_s": None}
    if old != meta or not (partial.is_file() and done_path.is_file()):  # start afresh
        for p in (final, partial, done_path):
            if p.exists():
                p.unlink()
        save_json(meta_path, meta)
        np.lib.format.open_memmap(partial, "w+", np.uint8, (n, t, *packed.frames.shape[2:4])).flush()
        save_npy(done_path, np.zeros(n, bool))
    done = np.load(done_path)
    rows = np.lib.format.open_memmap(partial, "r+")
    device = auto_device(device)
    model = model.to(device).eval()
    per_chunk = max(1, batch_size // t)
    todo = np.nonzero(~done)[0]
    labelled, t0 = 0, time.perf_counter()
    bar = tqdm(total=n, initial=int(done.sum()), desc=f"labelling {split}", unit="video", disable=not progress)
    for s in range(0, len(todo), per_chunk):
        chunk = todo[s : s + per_chunk]
        frames = np.asarray(packed.frames[chunk]).reshape(-1, *packed.frames.shape[2:])
        rows[chunk] = segment(model, frames, device, batch_size, video_len=vote_window(t)).reshape(
            len(chunk), t, *frames.shape[1:3]
        )
        rows.flush()  # rows on disk before they are marked done
        done[chunk] = True
        save_npy(done_path, done)
        labelled += len(chunk)
        bar.update(len(chunk))
        if stop_after is not None and labelled >= stop_after and not done.all():
            bar.close()
            raise Interrupted(f"stopped after {labelled} videos of {split}")
    bar.close()
    del rows
    elapsed = time.perf_counter() - t0
    save_npy(ids_path, packed.ids)
    os.replace(partial, final)
    done_path.unlink()
    _write_npy_dir(final, packed.ids, split, npy_dir)
    return {
        "split": split,
        "path": str(final),
        "videos": n,
        "labelled": labelled,
        "frames_per_s": labelled * t / elapsed if labelled else None,
    }


def _write_npy_dir(final, ids, split, npy_dir):
    """Per-video ``mask.npy`` files under npy_dir/<split>/ (skips those already written)."""
    if not npy_dir:
        return
    masks = np.load(final, mmap_mode="r")
    for i, vid in enumerate(ids):
        path = Path(npy_dir) / split / f"video_{int(vid):05d}" / "mask.npy"
        if not path.is_file():
            save_npy(path, np.asarray(masks[i]))
