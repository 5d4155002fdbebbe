"""Writing synthetic CLEVRER-style datasets in the real dataset's layout (docs/dataset.md), in parallel and
resumably. Each video is simulated and rendered by lib/data/scene.py (its physics) and lib/data/shading.py
(its frames and masks); this module writes them, and beside them, outside the split folders, what only
measurement may read: the hidden videos' frame-22 truth and every video's true 3-D object states
(``.true_states/``, lib/data/true_states.py).

    from lib.data import synth

    if __name__ == "__main__":  # needed with workers > 1: each spawned worker imports the script
        synth.generate("data/synth", counts={"train": 100, "val": 100}, workers=2)
        # masks-only videos (frames 0-10 and 21) for the object dynamics model, ids after the 100 unlabeled ones
        synth.generate_masks("data/dyn_extra/masks.npy", 3000, synth.extra_first_id(100), workers=2)

Video N is a pure function of (seed, N, config) (``scene.render_video``), so the dataset does not depend on
`workers`. Video ids follow the real layout (``SPLITS``: train from 0, val from 1000, unlabeled from 2000,
hidden from 15000); a count that would run into the next split's ids is an error, so splits never share a video.
Workers are spawned processes: one that dies (a crash, or a script without the ``__main__`` guard, whose
workers die on import) stops ``generate`` with a ``RuntimeError`` saying which videos or what to do, within
seconds, instead of a pool waiting forever.
"""

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from lib.common.files import atomic_path, save_json, save_npy
from lib.data import scene, true_states

SPLITS = {"train": 0, "val": 1000, "unlabeled": 2000, "hidden": 15000}  # split -> first video id
REAL_COUNTS = {"train": 1000, "val": 1000, "unlabeled": 13000, "hidden": 5000}
TRUTH_DIR = ".hidden_truth"  # per-video frame-22 masks of hidden, outside the hidden folder
CRASH_ENV = "FUTURESEG_SYNTH_CRASH"  # tests: a worker given this video id dies (os._exit) instead of rendering it


def id_range(split):
    """(first, end) of a split's video ids: ``end`` is the next split's first id (None for hidden, the last)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {list(SPLITS)}")
    later = sorted(v for v in SPLITS.values() if v > SPLITS[split])
    return SPLITS[split], (later[0] if later else None)


def check_counts(counts):
    """Raises ValueError when a count is negative or would give a split ids of the next split."""
    bad = sorted(set(counts) - set(SPLITS))
    if bad:
        raise ValueError(f"unknown splits {bad}; splits are {list(SPLITS)}")
    for split, n in counts.items():
        first, end = id_range(split)
        if int(n) < 0:
            raise ValueError(f"n_{split}={n}: a count cannot be negative")
        if end is not None and first + int(n) > end:
            nxt = next(s for s, v in SPLITS.items() if v == end)
            raise ValueError(
                f"n_{split}={n} is more than the {end - first} ids of {split} (video_{first:05d} .. video_{end - 1:05d}): "
                f"its videos would take the ids of {nxt}, which starts at video_{end:05d}; use at most {end - first}"
            )


# ----------------------------------------------------------------------------- writing a dataset


def video_dir(data_root, split, vid):
    return Path(data_root) / split / f"video_{vid:05d}"


def _truth_path(data_root, vid):
    return Path(data_root) / TRUTH_DIR / f"video_{vid:05d}.npy"


def _has_video(data_root, split, vid):
    """Whether the video's folder is complete (and, in hidden, its frame-22 truth written)."""
    if not video_dir(data_root, split, vid).is_dir():
        return False
    return split != "hidden" or _truth_path(data_root, vid).is_file()


def _is_done(data_root, split, vid):
    return _has_video(data_root, split, vid) and true_states.path(data_root, vid).is_file()


_SLOT = None  # (shared array of the video each worker is on, this worker's index); set by _worker_init


def _worker_init(started, current, keys):
    """Runs in each spawned worker once it has imported: counts it as started and gives it a slot in ``current``."""
    global _SLOT
    for k in keys:  # single-threaded numpy in the workers
        os.environ[k] = "1"
    with started.get_lock():
        slot = started.value
        started.value += 1
    _SLOT = (current, slot)


def _run_job(job, fn=None):
    """Worker entry: records the video it is on (so that a crash can be named), then runs ``fn`` on it
    (default ``_write_video``)."""
    if _SLOT is not None:
        _SLOT[0][_SLOT[1]] = job[2]
    if os.environ.get(CRASH_ENV) == str(job[2]):
        os._exit(7)
    out = (fn or _write_video)(job)
    if _SLOT is not None:
        _SLOT[0][_SLOT[1]] = -1
    return out


def _write_video(job):
    """Render one video into a temp folder beside its final place, then rename it; its true states (and the
    frame-22 truth of hidden) are written first, so a complete folder has them. Returns (split, vid, truth or
    None, rendered): a complete video that lacks only its true states gets them from the physics alone."""
    data_root, split, vid, seed, cfg = job
    hidden = split == "hidden"
    T, n_in = cfg.n_frames, cfg.n_input
    states_file = true_states.path(data_root, vid)
    if _has_video(data_root, split, vid):
        true_states.save(states_file, scene.true_states(vid, seed, cfg))
        return split, vid, None, False
    frames, mask, info = scene.render_video(
        vid,
        seed,
        rgb_frames=range(n_in) if hidden else None,
        mask_frames=[T - 1] if hidden else None,
        cfg=cfg,
        states=True,
    )
    true_states.save(states_file, info["states"])
    final = video_dir(data_root, split, vid)
    truth = mask[T - 1].copy() if hidden else None
    if hidden:
        save_npy(_truth_path(data_root, vid), truth)  # before the folder: a complete folder has its truth
        if final.is_dir():  # only the truth was missing
            return split, vid, truth, True
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for t in range(n_in if hidden else T):
        Image.fromarray(frames[t]).save(tmp / f"image_{t}.png", compress_level=cfg.png_level)
    if not hidden:
        np.save(tmp / "mask.npy", mask)
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp)  # another run finished this video first
    return split, vid, truth, True


def _write_one(job):
    """``_write_video`` in this process, an error naming the video."""
    try:
        return _write_video(job)
    except Exception as e:
        raise RuntimeError(f"generating {job[1]}/video_{job[2]:05d} failed: {type(e).__name__}: {e}") from e


def _clean_stale(split_dir):
    """Remove temp folders left by dead processes."""
    for d in split_dir.glob(".video_*.tmp-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except (ValueError, ProcessLookupError):
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(d, ignore_errors=True)


class _Pool:
    """Spawned worker processes (single-threaded numpy, one pybullet client each) that notice dead workers.

    ``run(jobs)`` yields results as they come. A worker that dies raises ``RuntimeError``: naming the videos the
    workers were on, or, when no worker ever finished starting (a script without the ``__main__`` guard: each
    spawned worker imports it and dies starting its own pool), saying to add the guard or use workers=1."""

    KEYS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

    def __init__(self, workers, fn=None):
        ctx = multiprocessing.get_context("spawn")
        self.workers, self.fn = workers, fn  # fn: the job function (module level), default _write_video
        self.started = ctx.Value("i", 0)
        self.current = ctx.Array("q", [-1] * workers)  # video id each worker slot is on
        saved = {k: os.environ.get(k) for k in self.KEYS}
        os.environ.update({k: "1" for k in self.KEYS})  # inherited by the workers as they start
        try:
            self.ex = ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_worker_init, initargs=(self.started, self.current, self.KEYS)
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def run(self, jobs):
        names = {job[2]: f"{job[1]}/video_{job[2]:05d}" for job in jobs}
        todo = iter(jobs)
        running = {}
        try:
            while True:
                while len(running) < 2 * self.workers:  # a bounded queue: the in-flight jobs are known
                    job = next(todo, None)
                    if job is None:
                        break
                    running[self.ex.submit(_run_job, job, self.fn)] = job
                if not running:
                    return
                done, _ = wait(running, timeout=5.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool as e:
                        raise self._broken(names, running, job) from e
                    except Exception as e:
                        raise RuntimeError(
                            f"generating {names[job[2]]} failed in a worker: {type(e).__name__}: {e}"
                        ) from e
        finally:
            self.ex.shutdown(wait=False, cancel_futures=True)

    def _broken(self, names, running, job):
        if self.started.value == 0:
            return RuntimeError(
                "synth.generate: the worker processes died while starting, before any video was made. When "
                'generate(..., workers>1) runs from a script, put the call under `if __name__ == "__main__":` '
                "(each spawned worker imports the script, and without the guard it calls generate again and dies), "
                "or use workers=1."
            )
        on = [names.get(int(v), f"video {int(v)}") for v in self.current[:] if v >= 0]
        if not on:
            on = [names[job[2]]]
        return RuntimeError(
            f"synth.generate: a worker process died (crashed or was killed) while generating {', '.join(on)}; "
            "rerun to resume (finished videos are kept), or run with workers=1 to see the error"
        )


def generate(data_root, *, counts=None, seed=0, workers=None, progress=True, **cfg_overrides):
    """Write (or complete) a synthetic dataset under `data_root` in the real layout; see the module doc.

    counts: split -> number of videos (default the real sizes). Existing complete videos are skipped; one whose
    true states (``<data_root>/.true_states/``, lib/data/true_states.py) are missing gets them from the physics alone.
    Returns {"written": {split: n}, "skipped": {split: n}, "states_only": {split: n}, "seconds": s,
    "videos_per_s": v, ...}.
    """
    from tqdm.auto import tqdm

    cfg = scene.make_config(**cfg_overrides)
    counts = dict(REAL_COUNTS if counts is None else counts)
    check_counts(counts)
    root = Path(data_root)
    jobs, skipped = [], {s: 0 for s in counts}
    for split, n in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        _clean_stale(root / split)
        for vid in range(SPLITS[split], SPLITS[split] + n):
            if _is_done(root, split, vid):
                skipped[split] += 1
            else:
                jobs.append((str(root), split, vid, seed, cfg))
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    written = {s: 0 for s in counts}
    states_only = {s: 0 for s in counts}
    truths = {}
    t0 = time.time()
    bar = tqdm(total=len(jobs), desc="synth videos", unit="video", mininterval=1.0, disable=not progress or not jobs)
    results = map(_write_one, jobs) if workers <= 1 else _Pool(workers).run(jobs)
    try:
        for split, vid, truth, rendered in results:
            (written if rendered else states_only)[split] += 1
            if truth is not None:
                truths[vid] = truth
            bar.update(1)
    finally:
        bar.close()
    seconds = time.time() - t0
    if counts.get("hidden", 0) > 0:
        ids = np.arange(SPLITS["hidden"], SPLITS["hidden"] + counts["hidden"], dtype=np.int64)
        masks = np.stack([truths[v] if v in truths else np.load(_truth_path(root, v)) for v in ids.tolist()])
        with atomic_path(root / "hidden_answers.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, ids=ids, masks=masks.astype(np.uint8))
    n = sum(written.values())
    return {
        "written": written,
        "skipped": skipped,
        "states_only": states_only,
        "seconds": round(seconds, 2),
        "videos_per_s": round(n / seconds, 3) if n and seconds > 0 else 0.0,
        "workers": workers,
        "config": asdict(cfg),
    }


# ----------------------------------------------------------------------------- masks only (object dynamics)

MASK_FRAMES = tuple(range(11)) + (21,)  # the frames object tracks need: inputs 0-10 and the target 21
MASKS_CHUNK = 100  # videos per resumable chunk of ``generate_masks``


def extra_first_id(n_unlabeled=0):
    """The first id of extra masks-only videos: right after the ``n_unlabeled`` unlabeled videos a dataset
    has (``SYNTHETIC.json`` counts), so they are new videos of the unlabeled id range (2000..14999), never
    a train, val or hidden video."""
    return SPLITS["unlabeled"] + int(n_unlabeled)


def _render_masks_job(job):
    """One masks-only video: (vid, (len(MASK_FRAMES), H, W) uint8 masks of MASK_FRAMES)."""
    _, _, vid, seed, cfg = job
    _, mask, _ = scene.render_video(vid, seed, rgb_frames=[], mask_frames=MASK_FRAMES, cfg=cfg, contacts=False)
    return vid, mask[list(MASK_FRAMES)]


def _masks_one(job):
    try:
        return _render_masks_job(job)
    except Exception as e:
        raise RuntimeError(f"rendering the masks of video_{job[2]:05d} failed: {type(e).__name__}: {e}") from e


def generate_masks(path, n, first_id, seed=0, workers=2, progress=True, chunk=MASKS_CHUNK, **cfg_overrides):
    """Masks-only videos ``first_id .. first_id + n - 1`` (seed ``seed``) as one (n, 22, 160, 240) uint8 ``.npy``
    at ``path``, for training the object dynamics model (``learned.train_dynamics`` takes it as an extra set,
    e.g. ``np.load(path, mmap_mode="r")``). Video N is the same video as ``scene.render_video(N, seed)``; only the
    frames object tracks need are rendered (``MASK_FRAMES``: 0-10 and 21, about 0.1 s a video per core):
    FRAMES 11-20 ARE ZEROS. No RGB frames.

    The ids must lie in the unlabeled id range (``id_range("unlabeled")``: 2000..14999), so these are never
    train, val or hidden videos; ``extra_first_id(n_unlabeled)`` starts after the dataset's own unlabeled
    videos. Resumable: videos are rendered in chunks of ``chunk``, each written atomically to
    ``<path>.parts/``; a rerun keeps the finished chunks and renders the rest; the final file is written
    atomically (then the parts are removed) with a record ``<path>.json`` of its ids, seed and settings; an
    existing file is reused only when its record matches.
    With ``workers`` > 1 the renders run in spawned processes: call this under ``if __name__ == "__main__":``
    in a script (module doc). Returns the path.
    """
    from tqdm.auto import tqdm

    cfg = scene.make_config(**cfg_overrides)
    path = Path(path)
    lo, hi = id_range("unlabeled")
    if n < 0 or first_id < lo or first_id + n > hi:
        raise ValueError(
            f"masks-only videos {first_id}..{first_id + n - 1} must lie in the unlabeled id range {lo}..{hi - 1} "
            "(never train, val or hidden videos)"
        )
    shape = (n, cfg.n_frames, cfg.height, cfg.width)
    cfg_hash = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:8]
    key = f"seed{seed}_{cfg_hash}"  # chunks of another seed or config are never reused
    record = Path(f"{path}.json")  # what the file holds: reused only when it is these videos
    wanted = {"first_id": int(first_id), "n": int(n), "seed": int(seed), "config": cfg_hash}
    if path.is_file() and record.is_file() and json.loads(record.read_text()) == wanted:
        old = np.load(path, mmap_mode="r")
        if old.shape == shape and old.dtype == np.uint8:
            return path
    parts = path.parent / f"{path.name}.parts"
    parts.mkdir(parents=True, exist_ok=True)

    def part(s):
        return parts / f"{key}_{first_id + s:05d}_{min(chunk, n - s)}.npy"

    starts = list(range(0, n, chunk))
    todo = [s for s in starts if not part(s).is_file()]
    jobs = [(None, "masks", first_id + v, seed, cfg) for s in todo for v in range(s, min(s + chunk, n))]
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    bar = tqdm(total=n, initial=n - len(jobs), desc="synth masks", unit="video", disable=not progress)
    results = map(_masks_one, jobs) if workers <= 1 else _Pool(workers, _render_masks_job).run(jobs)
    got = {}
    try:
        for vid, m in results:
            got[vid - first_id] = m
            bar.update(1)
            s = (vid - first_id) // chunk * chunk
            rows = range(s, min(s + chunk, n))
            if all(r in got for r in rows):
                save_npy(part(s), np.stack([got.pop(r) for r in rows]))
    finally:
        bar.close()
    frames = list(MASK_FRAMES)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for s in starts:
            out[s : s + chunk, frames] = np.load(part(s))
        out.flush()
        del out
    save_json(record, wanted)
    shutil.rmtree(parts, ignore_errors=True)
    return path
