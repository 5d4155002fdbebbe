"""Reading the dataset layout of docs/dataset.md (real or synthetic), validation, packed caches and
torch Datasets.

    <data_root>/{train,val,unlabeled}/video_N/image_0.png .. image_21.png (+ mask.npy for train, val)
    <data_root>/hidden/video_N/image_0.png .. image_10.png

Bad videos never crash a long run: each problem is raised as a ``VideoError`` naming the video folder,
the file and what is wrong, and ``load_split`` applies an explicit policy to it (``skip`` the video,
``pad`` a short mask by repeating its last frame, or ``raise``), logs it and counts it in ``report``.
"""

import hashlib
import json
import logging
import os
import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from lib.common.classes import NUM_CLASSES
from lib.common.files import atomic_path, save_json, save_npy
from lib.common.paths import resolve

log = logging.getLogger(__name__)

H, W = 160, 240
N_FRAMES = 22  # frames per video (image_0 .. image_21)
N_INPUT = 11  # frames given for prediction (image_0 .. image_10); the target is image_21 ("frame 22")
SPLITS = ("train", "val", "unlabeled", "hidden")
FIRST_ID = {"train": 0, "val": 1000, "unlabeled": 2000, "hidden": 15000}
POLICIES = ("skip", "pad", "raise")
CACHE_VERSION = 1

_VIDEO_RE = re.compile(r"^video_(\d+)$")
_IMAGE_RE = re.compile(r"^image_(\d+)\.png$")


class VideoError(ValueError):
    """A problem with one video: names the folder, the file and what is wrong."""

    def __init__(self, video, file, problem, kind="invalid"):
        self.video, self.file, self.problem, self.kind = Path(video), file, problem, kind
        super().__init__(f"{self.video}/{file}: {problem}")


def split_layout(split):
    """(frames per video, has mask) of a split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return (N_INPUT if split == "hidden" else N_FRAMES), split in ("train", "val")


def list_videos(split_dir):
    """Video folders of a split as [(number, path)] in numeric order (``video_7`` and ``video_00007``
    alike). Stray entries (``.DS_Store``, ``.ipynb_checkpoints``, ...) are logged and ignored."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: split folder not found")
    videos, stray = {}, []
    for entry in os.scandir(split_dir):
        m = _VIDEO_RE.match(entry.name)
        if not (m and entry.is_dir()):
            stray.append(entry.name)
            continue
        num = int(m.group(1))
        if num in videos:
            raise VideoError(split_dir / entry.name, "", f"same video number as {videos[num].name}")
        videos[num] = Path(entry.path)
    if stray:
        log.warning(
            "%s: ignored %d stray entr%s: %s",
            split_dir,
            len(stray),
            "y" if len(stray) == 1 else "ies",
            ", ".join(sorted(stray)[:5]) + (" ..." if len(stray) > 5 else ""),
        )
    return sorted(videos.items())


def read_frames(video_dir, n_frames):
    """Frames image_0 .. image_{n-1} as uint8 (n, 160, 240, 3)."""
    video_dir = Path(video_dir)
    out = np.empty((n_frames, H, W, 3), np.uint8)
    for t in range(n_frames):
        name = f"image_{t}.png"
        path = video_dir / name
        if not path.is_file():
            raise VideoError(video_dir, name, "missing frame", kind="missing_frame")
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                arr = np.asarray(im)
        except Exception as e:  # PIL raises several types for broken files
            raise VideoError(video_dir, name, f"unreadable image ({e})", kind="unreadable") from e
        if arr.shape != (H, W, 3):
            raise VideoError(
                video_dir, name, f"frame is {arr.shape[1]}x{arr.shape[0]} (WxH), expected {W}x{H}", kind="bad_size"
            )
        out[t] = arr
    return out


def read_mask(video_dir, n_frames=N_FRAMES):
    """mask.npy as uint8 (n_frames, 160, 240); a short mask raises VideoError(kind="short_mask")."""
    video_dir = Path(video_dir)
    path = video_dir / "mask.npy"
    if not path.is_file():
        raise VideoError(video_dir, "mask.npy", "missing mask", kind="missing_mask")
    try:
        m = np.load(path, allow_pickle=False)
    except Exception as e:
        raise VideoError(video_dir, "mask.npy", f"unreadable mask ({e})", kind="unreadable") from e
    if m.ndim != 3 or m.shape[1:] != (H, W):
        raise VideoError(
            video_dir, "mask.npy", f"mask has shape {m.shape}, expected ({n_frames}, {H}, {W})", kind="bad_shape"
        )
    if not np.issubdtype(m.dtype, np.integer):
        raise VideoError(
            video_dir, "mask.npy", f"mask has dtype {m.dtype}, expected integer class ids", kind="bad_dtype"
        )
    if m.size and (m.min() < 0 or m.max() >= NUM_CLASSES):
        raise VideoError(
            video_dir, "mask.npy", f"class ids {m.min()}..{m.max()} outside 0..{NUM_CLASSES - 1}", kind="bad_ids"
        )
    m = m.astype(np.uint8)
    if m.shape[0] < n_frames:
        err = VideoError(video_dir, "mask.npy", f"mask has {m.shape[0]} frames, expected {n_frames}", kind="short_mask")
        err.partial = m
        raise err
    return m[:n_frames]


def read_video(video_dir, split, policy="raise"):
    """(frames, mask or None, note) of one video; ``note`` says what the policy did (None if clean)."""
    n_frames, has_mask = split_layout(split)
    frames = read_frames(video_dir, n_frames)
    if not has_mask:
        return frames, None, None
    try:
        return frames, read_mask(video_dir, n_frames), None
    except VideoError as e:
        if e.kind == "short_mask" and policy == "pad":
            m = e.partial
            pad = np.repeat(m[-1:], n_frames - m.shape[0], axis=0)
            return frames, np.concatenate([m, pad]), f"padded: {e}"
        raise


# ----------------------------------------------------------------------------- packed cache


@dataclass
class PackedSplit:
    """A split packed into memory-mapped uint8 arrays (read-only)."""

    name: str
    ids: np.ndarray  # (N,) int64 video numbers, numeric order
    frames: np.ndarray  # (N, T, 160, 240, 3) uint8 memmap
    masks: np.ndarray | None  # (N, 22, 160, 240) uint8 memmap, None for unlabeled and hidden
    report: dict = field(default_factory=dict)  # {"skipped": [...], "padded": [...], "stray": n}

    def __len__(self):
        return len(self.ids)

    def index_of(self, video_id):
        hits = np.nonzero(self.ids == int(video_id))[0]
        if not len(hits):
            raise KeyError(f"video {video_id} is not in split {self.name}")
        return int(hits[0])


def fingerprint(videos):
    """Hash of every file's name, size and mtime in the given video folders (the cache's source)."""
    h = hashlib.sha1()
    for num, path in videos:
        h.update(f"{num}:{path.name}\n".encode())
        for e in sorted(os.scandir(path), key=lambda e: e.name):
            if _IMAGE_RE.match(e.name) or e.name == "mask.npy":
                st = e.stat()
                h.update(f"{e.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_dir_for(data_root, split, cache_dir=None):
    base = resolve(cache_dir) if cache_dir else resolve(data_root) / ".cache"
    return base / split


def load_split(data_root, split, cache_dir=None, policy="skip", progress=True, rebuild=False):
    """The packed split, built once and rebuilt when the source files (or the policy) change."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    split_dir = resolve(data_root) / split
    videos = list_videos(split_dir)
    if not videos:
        raise FileNotFoundError(f"{split_dir}: no video_N folders")
    out = cache_dir_for(data_root, split, cache_dir)
    key = {"version": CACHE_VERSION, "policy": policy, "source": fingerprint(videos)}
    meta_path = out / "meta.json"
    if not rebuild and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return _open_packed(out, split, meta)
        log.info("%s: source changed, rebuilding the packed cache", out)
    return _build(videos, split, out, key, policy, progress)


def _open_packed(out, split, meta):
    ids = np.load(out / "ids.npy")
    frames = np.load(out / "frames.npy", mmap_mode="r")
    masks = np.load(out / "masks.npy", mmap_mode="r") if (out / "masks.npy").is_file() else None
    return PackedSplit(split, ids, frames, masks, meta["report"])


def _build(videos, split, out, key, policy, progress):
    n_frames, has_mask = split_layout(split)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    if meta_path.exists():
        meta_path.unlink()  # the cache is invalid from here until the new one is complete
    report = {"videos": len(videos), "skipped": [], "padded": []}
    ids = []
    with ExitStack() as stack:
        ftmp = stack.enter_context(atomic_path(out / "frames.npy"))
        fm = np.lib.format.open_memmap(ftmp, "w+", np.uint8, (len(videos), n_frames, H, W, 3))
        mm = mtmp = None
        if has_mask:
            mtmp = stack.enter_context(atomic_path(out / "masks.npy"))
            mm = np.lib.format.open_memmap(mtmp, "w+", np.uint8, (len(videos), n_frames, H, W))
        for num, path in tqdm(videos, desc=f"packing {split}", disable=not progress, unit="video"):
            try:
                frames, mask, note = read_video(path, split, policy)
            except VideoError as e:
                if policy == "raise":
                    raise
                log.warning("skipping %s", e)
                report["skipped"].append({"video": int(num), "reason": str(e)})
                continue
            if note:
                log.warning("%s", note)
                report["padded"].append({"video": int(num), "reason": note})
            fm[len(ids)] = frames
            if mm is not None:
                mm[len(ids)] = mask
            ids.append(num)
        del fm, mm  # flushes the memmaps
        if len(ids) < len(videos):  # drop the rows of skipped videos
            for tmp in (ftmp, mtmp):
                if tmp is not None:
                    _truncate(tmp, len(ids))
    if not has_mask and (out / "masks.npy").exists():
        (out / "masks.npy").unlink()
    save_npy(out / "ids.npy", np.asarray(ids, np.int64))
    if report["skipped"] or report["padded"]:
        log.warning(
            "%s: %d of %d videos skipped, %d padded (policy=%s)",
            split,
            len(report["skipped"]),
            len(videos),
            len(report["padded"]),
            policy,
        )
    meta = {"key": key, "report": report, "shape": [len(ids), n_frames, H, W]}
    save_json(meta_path, meta)  # written last: its presence marks a complete cache
    return _open_packed(out, split, meta)


def _truncate(path, n):
    """Keep the first n rows of a .npy file (copied through a memmap, chunk by chunk)."""
    src = np.load(path, mmap_mode="r")
    tmp = Path(str(path) + ".trunc")
    dst = np.lib.format.open_memmap(tmp, "w+", src.dtype, (n, *src.shape[1:]))
    for i in range(0, n, 64):
        dst[i : i + 64] = src[i : min(i + 64, n)]
    dst.flush()
    del dst, src
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- torch datasets


def to_image_tensor(frames):
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1]."""
    t = torch.from_numpy(np.array(frames))  # a copy: memmaps are read-only
    return t.movedim(-1, -3).float().div_(255)


class FrameDataset(torch.utils.data.Dataset):
    """Every frame of a packed split as (image float (3,H,W), mask int64 (H,W)); image only when the split
    has no masks. ``augment(image, mask)`` is applied if given.

    ``crop=(h, w)`` returns random crops instead of whole frames (training a fully convolutional net on
    crops is several times cheaper per step and it still segments whole frames). Objects cover ~6% of a
    frame, so with probability ``object_bias`` the crop is centred on a random object pixel. Draws use
    torch's global RNG (which training checkpoints carry)."""

    def __init__(self, packed, videos=None, frames=None, augment=None, crop=None, object_bias=0.75):
        self.packed, self.augment, self.crop, self.object_bias = packed, augment, crop, object_bias
        vids = np.arange(len(packed)) if videos is None else np.asarray(videos)
        ts = np.arange(packed.frames.shape[1]) if frames is None else np.asarray(frames)
        self.index = [(int(v), int(t)) for v in vids for t in ts]

    def __len__(self):
        return len(self.index)

    def _window(self, mask):
        ch, cw = self.crop
        fg = np.flatnonzero(mask) if mask is not None else ()
        if len(fg) and float(torch.rand(())) < self.object_bias:
            cy, cx = divmod(int(fg[int(torch.randint(len(fg), ()))]), W)
        else:
            cy, cx = int(torch.randint(H, ())), int(torch.randint(W, ()))
        y0 = min(max(cy - ch // 2, 0), H - ch)
        x0 = min(max(cx - cw // 2, 0), W - cw)
        return slice(y0, y0 + ch), slice(x0, x0 + cw)

    def __getitem__(self, i):
        v, t = self.index[i]
        frame = self.packed.frames[v, t]
        mask = None if self.packed.masks is None else np.asarray(self.packed.masks[v, t])
        if self.crop:
            ys, xs = self._window(mask)
            frame = frame[ys, xs]
            mask = None if mask is None else mask[ys, xs]
        image = to_image_tensor(frame)
        if mask is None:
            return image
        mask = torch.from_numpy(mask.astype(np.int64))
        if self.augment is not None:
            image, mask = self.augment(image, mask)
        return image, mask


class WindowDataset(torch.utils.data.Dataset):
    """Sliding windows over mask videos (N, T, H, W): ``in_len`` frames in, the next ``out_len`` frames out,
    as int64 tensors. With 22 frames, in_len=11 and out_len=1 there are 11 windows a video.
    (Flips are drawn in the training step, lib/forecasting/training.py, from the RNG that checkpoints carry.)"""

    def __init__(self, masks, in_len=N_INPUT, out_len=1):
        self.masks, self.in_len, self.out_len = masks, in_len, out_len
        self.per_video = masks.shape[1] - in_len - out_len + 1
        if self.per_video < 1:
            raise ValueError(f"videos of {masks.shape[1]} frames hold no {in_len}+{out_len} window")

    def __len__(self):
        return len(self.masks) * self.per_video

    def __getitem__(self, i):
        v, s = divmod(i, self.per_video)
        clip = torch.from_numpy(np.asarray(self.masks[v, s : s + self.in_len + self.out_len], np.int64))
        return clip[: self.in_len], clip[self.in_len :]
