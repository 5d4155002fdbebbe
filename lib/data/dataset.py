"""Reading the dataset layout of docs/dataset.md (real or synthetic), validation, and packed caches (the torch
Datasets that read packed splits are in lib/data/torch_datasets.py).

    <data_root>/{train,val,unlabeled}/video_N/image_0.png .. image_21.png (+ mask.npy for train, val)
    <data_root>/hidden/video_N/image_0.png .. image_10.png

Bad videos never crash a long run: each problem is raised as a ``VideoError`` naming the video folder,
the file and what is wrong, and ``load_split`` applies an explicit policy to it (``skip`` the video,
``pad`` a short mask by repeating its last frame, or ``raise``), logs it and counts it in ``report``.
One policy serves every notebook (the ``policy`` key of params/<profile>/common.yaml).

The hidden split is never skipped: every ``video_N`` folder of ``hidden/`` gets a row (and so a prediction).
A hidden video with a missing, unreadable or odd-sized frame is packed from what it has (``read_hidden``):
each bad frame is replaced by the nearest readable earlier frame (the next readable one when none precedes
it), so a video whose last frames are gone repeats its last readable frame; a folder with no readable frame
at all gets black frames and is marked ``background`` (notebook 07 predicts all background for it). Each such
video is logged and listed in ``report["fallback"]`` with the files, the reasons and the fallback used.

Inputs that are read but not as stored are converted by a stated rule (``CONVERSIONS``) and counted in the
report: RGBA, grey and 16-bit PNGs, masks longer than 22 frames (cut), masks of another integer dtype (cast).

A few bad videos are a quirk of the data; many are a broken copy. ``load_split`` stops with ``TooManyBad`` when
more than ``max_bad_fraction`` of a split's videos are bad (skipped or padded; for hidden, packed by the fallback
chain), naming the first ones. The real data has 1 short mask in 1000 val videos, well under the default 5%.
"""

import hashlib
import json
import logging
import os
import re
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from lib.common import lock, paths
from lib.common.classes import NUM_CLASSES
from lib.common.disk import check_free, remove_stale_temps
from lib.common.files import atomic_path, durable_replace, fsync_dir, save_json, temp_glob
from lib.common.paths import resolve
from lib.data.synth import SPLITS as FIRST_ID  # split -> first video id of the layout (one definition)

log = logging.getLogger(__name__)

H, W = 160, 240
N_FRAMES = 22  # frames per video (image_0 .. image_21)
N_INPUT = 11  # frames given for prediction (image_0 .. image_10); the target is image_21 ("frame 22")
SPLITS = tuple(FIRST_ID)  # train, val, unlabeled, hidden
POLICIES = ("skip", "pad", "raise")
MAX_BAD_FRACTION = 0.05  # load_split's default limit on the share of bad videos in a split (TooManyBad)
CACHE_VERSION = 2
CONVERSIONS = {
    "alpha": "RGBA/LA/PA frame: the alpha channel is dropped, the colours kept (the real frames are opaque)",
    "grayscale": "grey (L or 1) frame: the grey level is copied to R, G and B",
    "16bit": "16-bit frame: the high byte of each value is kept (v >> 8); grey is copied to R, G and B",
    "palette": "palette (P) frame: the palette colours are looked up",
    "other": "other PIL mode: converted by PIL's convert('RGB')",
}
MASK_RULES = {
    "long_mask": f"mask with more than {N_FRAMES} frames: the first {N_FRAMES} are kept",
    "mask_dtype": "integer mask of another dtype (int32, int64, ...): cast to uint8 after the 0..48 range check",
}

_VIDEO_RE = re.compile(r"^video_(\d+)$")
_IMAGE_RE = re.compile(r"^image_(\d+)\.png$")


class VideoError(ValueError):
    """A problem with one video: names the folder, the file and what is wrong."""

    def __init__(self, video, file, problem, kind="invalid"):
        self.video, self.file, self.problem, self.kind = Path(video), file, problem, kind
        super().__init__(f"{self.video}/{file}: {problem}")


class TooManyBad(ValueError):
    """More of a split's videos are bad than ``max_bad_fraction`` allows (the packed cache is kept)."""


def split_layout(split):
    """(frames per video, has mask) of a split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return (N_INPUT if split == "hidden" else N_FRAMES), split in ("train", "val")


def scan_split(split_dir):
    """(videos, stray): the video folders as [(number, path)] in numeric order (``video_7`` and ``video_00007``
    alike), and the names of the other entries (``.DS_Store``, ``video_abc``, ...), which are logged and ignored.
    Two folders with the same number are a ``VideoError``."""
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
    stray.sort()
    if stray:
        log.warning(
            "%s: ignored %d stray entr%s: %s",
            split_dir,
            len(stray),
            "y" if len(stray) == 1 else "ies",
            ", ".join(stray[:5]) + (" ..." if len(stray) > 5 else ""),
        )
    return sorted(videos.items()), stray


def list_videos(split_dir):
    """Video folders of a split as [(number, path)] in numeric order; see ``scan_split``."""
    return scan_split(split_dir)[0]


def hidden_ids(data_root):
    """The numbers of the ``video_N`` folders of ``<data_root>/hidden``, in numeric order: the ids a submission
    must hold, one each."""
    return [num for num, _ in list_videos(resolve(data_root) / "hidden")]


def _png_rgb(path):
    """uint8 (h, w, 3) of one PNG and the conversions applied to it (``CONVERSIONS`` keys; [] for 8-bit RGB)."""
    with Image.open(path) as im:
        args = im.tile[0][3] if im.tile else ""
        raw = args if isinstance(args, str) else (args[0] if args and isinstance(args[0], str) else "")
        mode, kinds = im.mode, []
        if ";16" in raw:
            kinds.append("16bit")
        if mode == "RGB":
            return np.asarray(im), kinds
        if mode.startswith("I"):  # 16-bit grey (I;16, I;16B) or 32-bit integer grey
            a = np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8
            return np.repeat(a.astype(np.uint8)[..., None], 3, -1), kinds if kinds else ["16bit"]
        if mode in ("RGBA", "LA", "PA"):
            kinds.append("alpha")
        elif mode in ("L", "1"):
            kinds.append("grayscale")
        elif mode == "P":
            kinds.append("palette")
        else:
            kinds.append("other")
        return np.asarray(im.convert("RGB")), kinds


def read_frame(video_dir, t, notes=None):
    """Frame ``image_<t>.png`` as uint8 (160, 240, 3); conversions are appended to ``notes`` as (file, kind)."""
    video_dir = Path(video_dir)
    name = f"image_{t}.png"
    path = video_dir / name
    if not path.is_file():
        raise VideoError(video_dir, name, "missing frame", kind="missing_frame")
    try:
        arr, kinds = _png_rgb(path)
    except Exception as e:  # PIL raises several types for broken files
        raise VideoError(video_dir, name, f"unreadable image ({e})", kind="unreadable") from e
    if arr.shape != (H, W, 3):
        raise VideoError(
            video_dir, name, f"frame is {arr.shape[1]}x{arr.shape[0]} (WxH), expected {W}x{H}", kind="bad_size"
        )
    if notes is not None:
        notes.extend((name, k) for k in kinds)
    return arr


def read_frames(video_dir, n_frames, notes=None):
    """Frames image_0 .. image_{n-1} as uint8 (n, 160, 240, 3); the first bad one raises a ``VideoError``."""
    out = np.empty((n_frames, H, W, 3), np.uint8)
    for t in range(n_frames):
        out[t] = read_frame(video_dir, t, notes)
    return out


def read_hidden(video_dir, n_frames=N_INPUT, notes=None):
    """(frames, fallback) of a hidden video, never raising for a bad frame (module doc: the fallback chain).

    ``fallback`` is None when every frame was read, else {"files", "reasons", "fallback", "detail"} where
    ``fallback`` is ``"filled"`` (bad frames replaced by the nearest readable earlier frame, else the next
    readable one; ``detail`` says which by which) or ``"background"`` (no readable frame: black frames, and the
    prediction is all background)."""
    out = np.zeros((n_frames, H, W, 3), np.uint8)
    ok, bad = [], []
    for t in range(n_frames):
        try:
            out[t] = read_frame(video_dir, t, notes)
            ok.append(t)
        except VideoError as e:
            bad.append((t, e))
    if not bad:
        return out, None
    info = {"files": [e.file for _, e in bad], "reasons": [e.problem for _, e in bad]}
    if not ok:
        return out, {**info, "fallback": "background", "detail": "no readable frame: all-background prediction"}
    filled = []
    for t, _ in bad:
        src = max((s for s in ok if s < t), default=None)
        src = min(s for s in ok if s > t) if src is None else src
        out[t] = out[src]
        filled.append(f"image_{t}.png <- image_{src}.png")
    return out, {**info, "fallback": "filled", "detail": "; ".join(filled)}


def read_mask(video_dir, n_frames=N_FRAMES, notes=None):
    """mask.npy as uint8 (n_frames, 160, 240); a short mask raises VideoError(kind="short_mask"). A longer mask is
    cut and a mask of another integer dtype cast (both appended to ``notes`` as ("mask.npy", kind))."""
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
    if notes is not None and m.dtype != np.uint8:
        notes.append(("mask.npy", f"mask_dtype:{m.dtype}"))
    m = m.astype(np.uint8)
    if m.shape[0] < n_frames:
        err = VideoError(video_dir, "mask.npy", f"mask has {m.shape[0]} frames, expected {n_frames}", kind="short_mask")
        err.partial = m
        raise err
    if m.shape[0] > n_frames and notes is not None:
        notes.append(("mask.npy", f"long_mask:{m.shape[0]}"))
    return m[:n_frames]


def read_video(video_dir, split, policy="raise", notes=None):
    """(frames, mask or None, note) of one video; ``note`` says what the policy did (None if clean)."""
    n_frames, has_mask = split_layout(split)
    frames = read_frames(video_dir, n_frames, notes)
    if not has_mask:
        return frames, None, None
    try:
        return frames, read_mask(video_dir, n_frames, notes), None
    except VideoError as e:
        if e.kind == "short_mask" and policy == "pad":
            m = e.partial
            pad = np.repeat(m[-1:], n_frames - m.shape[0], axis=0)
            return frames, np.concatenate([m, pad]), f"padded: {e}"
        raise


def stray_files(video_dir, split):
    """Names in a video folder that the split's layout does not hold (``Thumbs.db``, ``image_11.png`` or ``mask.npy``
    in hidden, ...). A ``mask.npy`` in unlabeled (the embedded dataset keeps one) is not read, and not a stray."""
    n_frames = split_layout(split)[0]
    want = {f"image_{t}.png" for t in range(n_frames)} | ({"mask.npy"} if split != "hidden" else set())
    return sorted(e.name for e in os.scandir(video_dir) if e.name not in want)


# ----------------------------------------------------------------------------- packed cache


@dataclass
class PackedSplit:
    """A split packed into memory-mapped uint8 arrays (read-only)."""

    name: str
    ids: np.ndarray  # (N,) int64 video numbers, numeric order
    frames: np.ndarray  # (N, T, 160, 240, 3) uint8 memmap
    masks: np.ndarray | None  # (N, 22, 160, 240) uint8 memmap, None for unlabeled and hidden
    report: dict = field(default_factory=dict)  # what packing skipped, padded, converted, ... (``new_report``)
    fingerprint: str = ""  # of the packed content: cache version, policy and source files (labels carry it)

    def __len__(self):
        return len(self.ids)

    def index_of(self, video_id):
        hits = np.nonzero(self.ids == int(video_id))[0]
        if not len(hits):
            raise KeyError(f"video {video_id} is not in split {self.name}")
        return int(hits[0])


def fingerprint(videos, masks=True):
    """Hash of the source files of the given video folders (the cache's source): each ``mask.npy`` by its
    content (blake2b), so a mask rewritten in place with the same size, within the resolution of the
    modification time, is noticed; each frame (``image_N.png``) by its name, size and modification time
    (hashing every frame of a 13,000-video split each time a notebook opens it would be too slow).
    ``masks=False`` (splits whose masks are not read: unlabeled, hidden): a ``mask.npy`` there counts by name,
    size and modification time like a frame, as it always did, so the keys of those caches stay as they were."""
    h = hashlib.sha1()
    for num, path in videos:
        h.update(f"{num}:{path.name}\n".encode())
        for e in sorted(os.scandir(path), key=lambda e: e.name):
            if e.name == "mask.npy" and masks:
                h.update(f"mask.npy:blake2b:{_content_hash(e.path)}\n".encode())
            elif _IMAGE_RE.match(e.name) or e.name == "mask.npy":
                st = e.stat()
                h.update(f"{e.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _content_hash(path):
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def key_fingerprint(key):
    """Short hash of a cache key: the ``fingerprint`` of the packed split (and of labels made from it)."""
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir_for(data_root, split, cache_dir=None):
    """The packed cache folder of a split: ``<cache_dir>/<split>``, by default ``<data_root>/.cache/<split>``."""
    base = resolve(cache_dir) if cache_dir else resolve(data_root) / ".cache"
    return base / split


def local_cache_dir(data_root, split):
    """Where a split of a read-only dataset is packed: ``<project>/.cache/packed/<root name>-<hash>/<split>``,
    the hash of the resolved data root telling apart two datasets of the same name."""
    root = resolve(data_root).resolve()
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:8]
    return paths.PROJ_ROOT / ".cache" / "packed" / f"{root.name}-{tag}" / split


def _writable(folder):
    """Whether files can be made in ``folder`` (created when missing): the probe of a read-only dataset."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _valid_meta(out, key):
    """The meta.json of the complete cache in ``out`` if it was packed with ``key``, else None."""
    meta_path = out / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    return meta if meta.get("key") == key else None


def effective_policy(split, policy):
    """The policy packing applies: the hidden split always uses its fallback chain (never skipped)."""
    return "fallback" if split == "hidden" else policy


def load_split(
    data_root,
    split,
    *,
    cache_dir=None,
    policy="skip",
    progress=True,
    rebuild=False,
    max_bad_fraction=MAX_BAD_FRACTION,
):
    """The packed split, built once and rebuilt when the source files (or the policy) change.

    ``policy`` (skip, pad, raise) decides what happens to a bad video of train, val and unlabeled; pass the same
    one everywhere (every notebook passes its ``policy`` parameter): another policy repacks the split. The hidden
    split ignores it and packs every folder (module doc). An empty split, or one whose every video is bad, is a
    ``ValueError`` naming the folder.

    The cache is rebuilt when a mask's content, or a frame's name, size or modification time, changes
    (``fingerprint``). It is in ``<cache_dir>/<split>``, by default ``<data_root>/.cache/<split>``; when that
    cannot be written (a read-only dataset) and holds no valid cache, the split is packed in the project's
    ``.cache/packed/`` (``local_cache_dir``) instead, and the log says so. A ``cache_dir`` given that cannot be
    written is a ``PermissionError``. A build holds the cache folder's lock (``<split folder>/.lock``,
    lib/common/lock.py): a second process packing the same split gets ``lock.Busy`` at once. A failed build
    leaves the previous cache as it was; leftovers of a killed build are removed by the next one.

    More bad videos than ``max_bad_fraction`` of the split (skipped or padded; for hidden, packed by the
    fallback chain) is a ``TooManyBad`` error naming the first ones, when the split is packed and each time it
    is opened; the cache is kept, so a larger limit uses it without repacking."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not 0 <= max_bad_fraction <= 1:
        raise ValueError(f"max_bad_fraction must be between 0 and 1, got {max_bad_fraction!r}")
    split_dir = resolve(data_root) / split
    _, has_mask = split_layout(split)
    videos, stray = scan_split(split_dir)
    if not videos:
        raise ValueError(
            f"{split_dir}: the {split} split is empty (no video_N folders"
            + (f"; ignored: {', '.join(stray[:5])}" if stray else "")
            + ")"
        )
    out = cache_dir_for(data_root, split, cache_dir)
    key = {"version": CACHE_VERSION, "policy": effective_policy(split, policy), "source": fingerprint(videos, has_mask)}
    meta = None if rebuild else _valid_meta(out, key)
    if meta is None and not _writable(out):
        if cache_dir:
            raise PermissionError(
                f"{out}: cannot write the packed cache of {split} there (the cache_dir given); give a writable "
                "cache_dir, or none (<data_root>/.cache, or the project's .cache/ when the dataset is read-only)"
            )
        local = local_cache_dir(data_root, split)
        log.warning("%s cannot be written (a read-only dataset?): the %s split is packed in %s", out, split, local)
        out = local
        meta = None if rebuild else _valid_meta(out, key)
    if meta is None:
        with lock.hold(out / ".lock", f"the packed cache {out}"):
            meta = None if rebuild else _valid_meta(out, key)  # packed by another process meanwhile?
            if meta is None:
                _log_rebuild(out, key)
                remove_stale_temps(out, (temp_glob(), "*.trunc"))
                meta = _build(videos, split, out, key, policy, progress, stray)
    packed = _open_packed(out, split, meta)
    _check_bad(packed.report, split, split_dir, out, max_bad_fraction)
    return packed


def _log_rebuild(out, key):
    meta_path = out / "meta.json"
    old = (json.loads(meta_path.read_text()).get("key") or {}) if meta_path.is_file() else {}
    if not old:
        return
    if old.get("policy") != key["policy"] and old.get("source") == key["source"]:
        log.warning("%s: packed with policy=%s, now policy=%s: repacking", out, old.get("policy"), key["policy"])
    else:
        log.info("%s: source changed, rebuilding the packed cache", out)


def bad_videos(report, split):
    """[(video id, what was wrong)] of a packing report: the skipped and padded videos, and for hidden those
    packed by the fallback chain (``TooManyBad`` counts them)."""
    if split == "hidden":
        return [
            (
                f["video"],
                f"{f['fallback']}: {f['files'][0]}: {f['reasons'][0]}" + (", ..." if len(f["files"]) > 1 else ""),
            )
            for f in report.get("fallback", [])
        ]
    bad = [(r["video"], f"skipped: {r['reason']}") for r in report.get("skipped", [])]
    return sorted(bad + [(r["video"], r["reason"]) for r in report.get("padded", [])])


def _check_bad(report, split, split_dir, out, max_bad_fraction):
    bad, n = bad_videos(report, split), report["videos"]
    if len(bad) <= max_bad_fraction * n:
        return
    listed = "; ".join(f"video {v} ({what})" for v, what in bad[:5]) + (
        f"; ... ({len(bad) - 5} more in {out / 'meta.json'})" if len(bad) > 5 else ""
    )
    if split == "hidden":
        what = "packed by the fallback chain (missing or unreadable frames: filled, or predicted all background)"
        fix = "fix those hidden folders"
    else:
        what = f"bad (policy={report['policy']}: skipped or padded)"
        fix = "fix or remove those videos"
    raise TooManyBad(
        f"{split_dir}: {len(bad)} of {n} {split} videos are {what}: {len(bad) / n:.1%}, more than "
        f"max_bad_fraction={max_bad_fraction} ({max_bad_fraction:.1%}) allows: {listed}. The packed cache {out} "
        f"is kept: {fix}, or pass a larger max_bad_fraction (at most 1.0) to use the split as it is"
    )


def _open_packed(out, split, meta):
    ids = np.load(out / "ids.npy")
    frames = np.load(out / "frames.npy", mmap_mode="r")
    masks = np.load(out / "masks.npy", mmap_mode="r") if (out / "masks.npy").is_file() else None
    fp = meta.get("fingerprint") or key_fingerprint(meta["key"])
    return PackedSplit(split, ids, frames, masks, meta["report"], fp)


def new_report(n_videos, policy, stray=()):
    return {
        "videos": n_videos,  # video folders found
        "packed": 0,  # rows of the packed arrays
        "policy": policy,
        "skipped": [],  # {"video", "reason"}
        "padded": [],  # {"video", "reason"}
        "fallback": [],  # hidden only: {"video", "files", "reasons", "fallback", "detail"}
        "converted": {},  # kind -> {"rule", "frames", "videos": [ids]}
        "masks": {},  # "long_mask" / "mask_dtype:int32" -> {"rule", "videos": [ids]}
        "stray_entries": list(stray),  # names in the split folder that are not video_N folders
        "stray_files": [],  # {"video", "file"}: names in a video folder the layout does not read
    }


def _count_notes(report, num, notes):
    for _file, kind in notes:
        if kind in CONVERSIONS:
            c = report["converted"].setdefault(kind, {"rule": CONVERSIONS[kind], "frames": 0, "videos": []})
            c["frames"] += 1
            if not c["videos"] or c["videos"][-1] != int(num):
                c["videos"].append(int(num))
        else:
            base = kind.split(":")[0]
            m = report["masks"].setdefault(kind, {"rule": MASK_RULES[base], "videos": []})
            m["videos"].append(int(num))


def report_summary(report):
    """Counts of every quirk in a packing report (what notebook 00 prints and records)."""
    fb = [f["fallback"] for f in report.get("fallback", [])]
    return {
        "videos": report.get("videos"),
        "packed": report.get("packed"),
        "skipped": len(report.get("skipped", [])),
        "padded": len(report.get("padded", [])),
        "fallback": {k: fb.count(k) for k in sorted(set(fb))},
        "converted_frames": {k: v["frames"] for k, v in report.get("converted", {}).items()},
        "masks": {k: len(v["videos"]) for k, v in report.get("masks", {}).items()},
        "stray_entries": len(report.get("stray_entries", [])),
        "stray_files": len(report.get("stray_files", [])),
    }


def _build(videos, split, out, key, policy, progress, stray=()):
    """Packs ``videos`` into ``out`` and returns the new meta.json (the caller holds the folder's lock).

    Everything is written under temporary names first, so a failure (a bad video under policy raise, a full
    disk, Ctrl-C) leaves the previous cache as it was. Once the new arrays are complete, meta.json is removed,
    the arrays are renamed onto the old ones, and the new meta.json is written last: a crash in between leaves
    no meta.json, an invalid cache that the next call packs again."""
    n_frames, has_mask = split_layout(split)
    hidden = split == "hidden"
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    check_free(out, len(videos) * n_frames * H * W * (4 if has_mask else 3), f"packing the {split} split")
    report = new_report(len(videos), key["policy"], stray)
    ids = []
    with ExitStack() as stack:
        ftmp = stack.enter_context(atomic_path(out / "frames.npy"))
        fm = np.lib.format.open_memmap(ftmp, "w+", np.uint8, (len(videos), n_frames, H, W, 3))
        mm = mtmp = None
        if has_mask:
            mtmp = stack.enter_context(atomic_path(out / "masks.npy"))
            mm = np.lib.format.open_memmap(mtmp, "w+", np.uint8, (len(videos), n_frames, H, W))
        for num, path in tqdm(videos, desc=f"packing {split}", disable=not progress, unit="video"):
            notes, note, mask = [], None, None
            try:
                if hidden:
                    frames, fb = read_hidden(path, n_frames, notes)
                    if fb:
                        log.warning(
                            "%s: %s (%s); fallback: %s", path, ", ".join(fb["files"]), fb["detail"], fb["fallback"]
                        )
                        report["fallback"].append({"video": int(num), **fb})
                else:
                    frames, mask, note = read_video(path, split, policy, notes)
            except VideoError as e:
                if policy == "raise":
                    raise
                log.warning("skipping %s", e)
                report["skipped"].append({"video": int(num), "reason": str(e)})
                continue
            except Exception as e:  # not a problem of the video's files: say which video it was
                raise RuntimeError(f"packing {split}: {path} failed ({type(e).__name__}: {e})") from e
            if note:
                log.warning("%s", note)
                report["padded"].append({"video": int(num), "reason": note})
            _count_notes(report, num, notes)
            report["stray_files"] += [{"video": int(num), "file": f} for f in stray_files(path, split)]
            fm[len(ids)] = frames
            if mm is not None:
                mm[len(ids)] = mask
            ids.append(num)
        del fm, mm  # flushes the memmaps
        if not ids:  # raised inside the block: the temporary files are removed
            reasons = "; ".join(r["reason"] for r in report["skipped"][:3])
            raise ValueError(
                f"{videos[0][1].parent}: all {len(videos)} videos of "
                f"{split} are bad (policy={policy}), nothing to train or score on; e.g. {reasons}"
            )
        if len(ids) < len(videos):  # drop the rows of skipped videos
            for tmp in (ftmp, mtmp):
                if tmp is not None:
                    _truncate(tmp, len(ids))
        with open(stack.enter_context(atomic_path(out / "ids.npy")), "wb") as f:
            np.save(f, np.asarray(ids, np.int64))
        # complete: the old cache is invalid from here until the new meta.json
        for old in [meta_path] + ([] if has_mask else [out / "masks.npy"]):
            if old.exists():
                old.unlink()
        fsync_dir(out)
    # leaving the block renamed ids.npy, masks.npy and frames.npy onto the old ones
    report["packed"] = len(ids)
    _log_report(split, report)
    meta = {"key": key, "fingerprint": key_fingerprint(key), "report": report, "shape": [len(ids), n_frames, H, W]}
    save_json(meta_path, meta)  # written last: its presence marks a complete cache
    return meta


def _log_report(split, report):
    s = report_summary(report)
    if s["skipped"] or s["padded"]:
        log.warning(
            "%s: %d of %d videos skipped, %d padded (policy=%s)",
            split,
            s["skipped"],
            s["videos"],
            s["padded"],
            report["policy"],
        )
    if s["fallback"]:
        log.warning("%s: %s videos packed by the fallback chain, none dropped", split, s["fallback"])
    for c in report["converted"].values():
        log.warning("%s: %d frames of %d videos converted: %s", split, c["frames"], len(c["videos"]), c["rule"])
    for kind, m in report["masks"].items():
        log.warning("%s: %d masks (%s): %s", split, len(m["videos"]), kind, m["rule"])
    if s["stray_files"]:
        names = sorted({f["file"] for f in report["stray_files"]})
        log.warning("%s: ignored %d stray files in video folders (%s)", split, s["stray_files"], ", ".join(names[:5]))


def _truncate(path, n):
    """Keep the first n rows of a .npy file (copied through a memmap, chunk by chunk)."""
    src = np.load(path, mmap_mode="r")
    tmp = Path(str(path) + ".trunc")
    check_free(tmp.parent, n * src[0].nbytes, "the packed rows without the skipped videos")
    dst = np.lib.format.open_memmap(tmp, "w+", src.dtype, (n, *src.shape[1:]))
    for i in range(0, n, 64):
        dst[i : i + 64] = src[i : min(i + 64, n)]
    dst.flush()
    del dst, src
    durable_replace(tmp, path)
