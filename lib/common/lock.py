"""One writer at a time: an advisory lock on a file (``fcntl.flock``) that says who holds it.

    with lock.hold(out_dir / ".lock", f"the training folder {out_dir}"):
        ...  # a second process trying the same lock gets ``Busy`` at once, naming this one

The lock file holds the holder's pid, host, command line and start time (JSON) for the message; the lock
itself is the kernel's, so it is released when the process ends, however it ends (killed, out of memory):
a lock file left behind by a dead process never blocks anyone. ``run_all.sh`` takes the same kind of lock on
its run folder with flock(1) and writes the same fields, so a notebook run and a script see each other.
"""

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path


class Busy(RuntimeError):
    """Another process holds the lock."""


def describe(path):
    """What the lock file at ``path`` says of its holder ("process 123 on host (cmd) since ..."), or ''."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return ""
    if not info:
        return ""
    text = f"process {info.get('pid')} on {info.get('host')}"
    if info.get("cmd"):
        text += f" ({info['cmd']})"
    if info.get("since"):
        text += f" since {info['since']}"
    return text


@contextmanager
def hold(path, what=None):
    """Holds the lock at ``path`` for the block; ``Busy`` at once if another process holds it.

    ``what`` names the thing protected in the message (default: the lock file's folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # no truncation before the lock is ours: the holder's record stays readable
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = describe(path) or "another process"
            raise Busy(
                f"{what or path.parent} is in use by {who} (lock file {path}); wait for it to finish or "
                "stop it, or use another folder"
            ) from None
        f.seek(0)
        f.truncate()
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "cmd": " ".join(sys.argv)[:200],
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        f.write(json.dumps(record))
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()  # an empty file: nobody holds it
            f.flush()
    finally:
        f.close()  # closing the file releases the lock
