"""Labelling every frame of a split with a segmentation model, resumably.

Output per split, in ``out_dir``:
    <split>.npy      uint8 (N, T, 160, 240) predicted class ids, in the packed split's video order
    <split>.ids.npy  int64 (N,) the video numbers of those rows
While running, rows go into ``<split>.partial.npy`` (a memmap) and the finished videos into
``<split>.done.npy`` (written atomically after each chunk); the final file appears only by rename,
so an interrupted run leaves no half-written ``<split>.npy`` and a rerun continues where it stopped.
A run holds ``<split>.lock`` (lib/common/lock.py) from start to end: a second process labelling the same split in
the same folder gets ``lock.Busy`` at once, naming the first, instead of writing into the same partial file. It
checks the free disk space before writing the partial file (lib/common/disk.py) and removes the temporary files
of the split that a killed run left (``.<split>.*.tmp``; ``<split>.partial.npy`` is kept: it is the resumable state).
Optionally each video's labels are also written as ``<npy_dir>/<split>/video_NNNNN/mask.npy``
(a separate folder, never the dataset's own labels), rewritten when the labels change (``labels.json`` there
says which labels the files hold).

Labels carry what made them: ``<split>.meta.json`` holds the U-Net checkpoint's key (``checkpoint_key``) and the
fingerprint of the packed split they label (``PackedSplit.fingerprint``). Readers pass the key and fingerprint
they expect (``load_labels(..., model_key, data_key)``, ``labels_for``): labels made by another checkpoint or for
other data are a ``StaleLabels`` error naming both, or are redone when the caller asks (``relabel``).
"""

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lib.common import lock
from lib.common.device import auto_device, inference_autocast
from lib.common.disk import check_free, remove_stale_temps
from lib.common.files import durable_replace, save_json, save_npy, temp_glob
from lib.data.dataset import N_INPUT
from lib.data.torch_datasets import to_image_tensor
from lib.segmentation.decode import decode
from lib.segmentation.unet import load_unet

log = logging.getLogger(__name__)


class Interrupted(RuntimeError):
    """Raised by ``label_split(stop_after=k)`` to simulate a run killed after k videos (for tests)."""


class StaleLabels(ValueError):
    """Labels made by another U-Net checkpoint, or for other data, than the reader expects."""


def labels_path(out_dir, split):
    return Path(out_dir) / f"{split}.npy"


def labels_meta(out_dir, split):
    """The ``<split>.meta.json`` of labels ({"model", "data", "ids", "shape"}), or {} if there is none."""
    path = Path(out_dir) / f"{split}.meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def check_labels(out_dir, split, model_key=None, data_key=None):
    """Raises ``StaleLabels`` naming both sides when the labels of ``split`` were not made by ``model_key`` (a
    ``checkpoint_key``) for ``data_key`` (a ``PackedSplit.fingerprint``); None skips that check. Labels without a
    record (no ``<split>.meta.json``: not written by ``label_split``, e.g. true masks standing in for labels)
    cannot be checked: with a ``model_key`` that is an error, with only a ``data_key`` a warning."""
    meta = labels_meta(out_dir, split)
    if not meta and labels_path(out_dir, split).is_file() and model_key is None and data_key is not None:
        log.warning(
            "%s: labels without a record of what made them; their data is not checked", labels_path(out_dir, split)
        )
        return
    made = (meta.get("model"), meta.get("data"))
    wrong = []
    if model_key is not None and made[0] != model_key:
        wrong.append(f"made by U-Net checkpoint {made[0]!r}, expected {model_key!r}")
    if data_key is not None and made[1] != data_key:
        wrong.append(f"made for data {made[1]!r}, expected data {data_key!r}")
    if wrong:
        raise StaleLabels(
            f"{labels_path(out_dir, split)}: stale labels of {split}: {'; '.join(wrong)}. Relabel with the current "
            "U-Net and data: rerun notebook 03, or set relabel=True in this notebook"
        )


def load_labels(out_dir, split, model_key=None, data_key=None):
    """(ids, masks memmap) written by label_split; a clear error if missing, ``StaleLabels`` if they were made by
    another checkpoint than ``model_key`` or for other data than ``data_key`` (each checked when given)."""
    path = labels_path(out_dir, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no labels for split {split!r}; run notebook 03 (labelling) first")
    check_labels(out_dir, split, model_key, data_key)
    return np.load(Path(out_dir) / f"{split}.ids.npy"), np.load(path, mmap_mode="r")


def labels_for(labels_dir, packed, checkpoint, relabel=False, device=None, *, batch_size=44, npy_dir=None):
    """(ids, masks memmap): the labels of the packed split ``packed`` made by the U-Net checkpoint at
    ``checkpoint``. Missing or stale ones (another checkpoint, other data) are made now when ``relabel``, else
    raise (``FileNotFoundError`` / ``StaleLabels`` naming both sides). What notebooks 04-07 and the scripts use."""
    key = checkpoint_key(checkpoint)
    try:
        return load_labels(labels_dir, packed.name, key, packed.fingerprint)
    except (StaleLabels, FileNotFoundError):
        if not relabel:
            raise
    model, _ = load_unet(checkpoint, device)
    label_split(
        model, packed, labels_dir, batch_size=batch_size, device=device, model_key=key, npy_dir=npy_dir, progress=False
    )
    return load_labels(labels_dir, packed.name, key, packed.fingerprint)


def vote_window(n_frames):
    """Frames decoded together by ``vote_video``: the 11 input frames (0-10) apart from the rest (11-21), so
    that the masks of frames 0-10, the inputs of every predictor, never use a later frame (the hidden videos
    have only frames 0-10)."""
    return N_INPUT if n_frames % N_INPUT == 0 else n_frames


_KEYS = {}  # (path, size, mtime) -> key: a checkpoint is hashed once per process


def checkpoint_key(path):
    """The ``model_key`` of labels made by the checkpoint at ``path``: a hash of the file's content (with its folder
    and name, to be readable), so a retrained model's labels are redone, the same model's labels are shared
    (notebooks 02-07), and a run folder that is moved or copied keeps its labels valid."""
    path = Path(path)
    st = path.stat()
    stamp = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if stamp not in _KEYS:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _KEYS[stamp] = f"{path.parent.name}/{path.name}@sha1:{h.hexdigest()[:16]}"
    return _KEYS[stamp]


def cached_labels(out_dir, split, model_key, data_key=None):
    """(ids, masks memmap) of finished labels of ``split`` made by ``model_key`` (for ``data_key``), or None."""
    if not labels_path(out_dir, split).is_file():
        return None
    try:
        return load_labels(out_dir, split, model_key, data_key)
    except StaleLabels:
        return None


@torch.inference_mode()
def segment(model, frames, device=None, *, batch_size=32, amp=True, video_len=None):
    """uint8 (n, H, W, 3) frames (or one (H, W, 3) frame) -> uint8 (n, H, W) class ids, decoded as the model's
    ``decode`` attribute says (lib/segmentation/decode.py: per-pixel argmax, per-object vote, or per-track vote over a
    video). ``video_len``: the frames are consecutive videos of that many frames each, in order (used by
    ``vote_video``; without it every frame is decoded alone). The one inference path of the project's
    segmentation models: eval mode (restored after), ``torch.inference_mode``, mixed precision where the
    device has it (``amp``; lib.common.device.inference_autocast), the model's device by default."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        return segment(model, frames[None], device, batch_size=batch_size, amp=amp)[0]
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
    model, packed, out_dir, *, batch_size=32, device=None, model_key="", npy_dir=None, progress=True, stop_after=None
):
    """Labels every frame of ``packed`` (a lib.data.dataset.PackedSplit). Returns a dict with frames/s and paths.
    ``model_key`` identifies the model (e.g. checkpoint path and epoch): labels made by another model, or for
    other data (the packed split's fingerprint), are not resumed but redone. A failure names the videos.
    Holds ``<out_dir>/<split>.lock`` for the whole run (``lock.Busy`` if another process labels the split there);
    ``NotEnoughSpace`` before writing when the disk cannot hold the labels still to be made."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with lock.hold(out_dir / f"{packed.name}.lock", f"the labelling of {packed.name} in {out_dir}"):
        remove_stale_temps(out_dir, (temp_glob(f"{packed.name}.*"),))
        return _label_split(model, packed, out_dir, batch_size, device, model_key, npy_dir, progress, stop_after)


def _label_split(model, packed, out_dir, batch_size, device, model_key, npy_dir, progress, stop_after):
    split = packed.name
    final, ids_path = labels_path(out_dir, split), out_dir / f"{split}.ids.npy"
    partial, done_path, meta_path = (
        out_dir / f"{split}.partial.npy",
        out_dir / f"{split}.done.npy",
        out_dir / f"{split}.meta.json",
    )
    n, t = packed.frames.shape[:2]
    meta = {
        "model": model_key,
        "data": getattr(packed, "fingerprint", ""),
        "ids": packed.ids.tolist(),
        "shape": [n, t, *packed.frames.shape[2:4]],
    }
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    if final.is_file() and old == meta:
        _write_npy_dir(final, packed.ids, split, npy_dir, meta)
        return {"split": split, "path": str(final), "videos": n, "labelled": 0, "frames_per_s": None}
    fresh = old != meta or not (partial.is_file() and done_path.is_file())
    if fresh:  # start afresh
        for p in (final, partial, done_path):
            if p.exists():
                p.unlink()
    to_do = n if fresh else int((~np.load(done_path)).sum())
    row_bytes = t * packed.frames.shape[2] * packed.frames.shape[3]  # one video's uint8 labels
    check_free(out_dir, to_do * row_bytes, f"the labels of {to_do} videos of {split}")
    if fresh:
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
        try:
            frames = np.asarray(packed.frames[chunk]).reshape(-1, *packed.frames.shape[2:])
            rows[chunk] = segment(model, frames, device, batch_size=batch_size, video_len=vote_window(t)).reshape(
                len(chunk), t, *frames.shape[1:3]
            )
        except Exception as e:
            names = ", ".join(f"video_{int(v):05d}" for v in packed.ids[chunk])
            raise RuntimeError(f"labelling {split} {names} failed: {type(e).__name__}: {e}") from e
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
    durable_replace(partial, final)  # the rows are on disk before the final name appears
    done_path.unlink()
    _write_npy_dir(final, packed.ids, split, npy_dir, meta)
    return {
        "split": split,
        "path": str(final),
        "videos": n,
        "labelled": labelled,
        "frames_per_s": labelled * t / elapsed if labelled else None,
    }


def _write_npy_dir(final, ids, split, npy_dir, meta):
    """Per-video ``mask.npy`` files under npy_dir/<split>/. ``labels.json`` there names the labels they hold
    (checkpoint, data, ids): when it matches only missing files are written, otherwise every file is rewritten
    and files of videos no longer in the split are removed (no stale export survives a relabelling)."""
    if not npy_dir:
        return
    folder = Path(npy_dir) / split
    stamp = folder / "labels.json"
    want = {"model": meta["model"], "data": meta["data"], "ids": [int(v) for v in ids]}
    fresh = stamp.is_file() and json.loads(stamp.read_text()) == want
    if not fresh and stamp.exists():
        stamp.unlink()  # the files are being replaced: until the new stamp, none is trusted
    masks = np.load(final, mmap_mode="r")
    for i, vid in enumerate(ids):
        path = folder / f"video_{int(vid):05d}" / "mask.npy"
        if not (fresh and path.is_file()):
            save_npy(path, np.asarray(masks[i]))
    if not fresh:
        keep = {f"video_{int(v):05d}" for v in ids}
        for old in folder.glob("video_*/mask.npy"):
            if old.parent.name not in keep:
                old.unlink()
        save_json(stamp, want)
