"""Atomic writes (temp file in the same folder + rename).

Nothing already written is lost when a run dies mid-write: readers see either the old file or the
complete new one, never half of one. The new file's data is fsynced before the rename and the folder after it,
so a power loss right after a "finished" write cannot leave an empty or partial file under the final name.

The temporary file of ``<name>`` is ``.<name>.XXXXXXXX.tmp`` (``temp_glob``): a run killed mid-write leaves one
behind, which the next run removes while it holds the folder's lock (lib/common/disk.py, ``remove_stale_temps``).
"""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TEMP_SUFFIX = ".tmp"


def temp_glob(name="*"):
    """The glob pattern of the temporary files ``atomic_path`` makes for the file ``name`` (default: any file)."""
    return f".{name}.*{TEMP_SUFFIX}"


@contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path`` (``.<name>.XXXXXXXX.tmp``); renames it onto ``path`` if the block
    succeeds, removes it otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        durable_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fsync_file(path):
    """Flush a written file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    """Flush a folder's entries (a rename into it) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def durable_replace(src, dst):
    """``os.replace(src, dst)`` that survives a power loss: src's data is on disk before the rename, and the
    rename is on disk (the folder fsynced) before this returns."""
    fsync_file(src)
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_npy(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_json(path, obj):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, default=_jsonable))


def save_npz(path, **arrays):
    """Compressed ``.npz`` of named arrays, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def torch_save(path, obj):
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON")
