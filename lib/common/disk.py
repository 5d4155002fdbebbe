"""Disk space and leftovers of killed runs.

Packing (lib/data/dataset.py) and labelling (lib/segmentation/label.py) write through memory maps of files that
are created at their full size but sparse: disk blocks are taken only as rows are written, so on a full disk the
process dies with SIGBUS (no Python error, no message) and leaves a temporary file of several GB. ``check_free``
is called before such a file is made, and says how much is needed, how much is free, and where.

A run killed mid-write leaves its temporary files behind (``.<name>.XXXXXXXX.tmp`` of lib/common/files.py,
``*.trunc``). ``remove_stale_temps`` removes them; it is called only while holding the folder's lock
(lib/common/lock.py), when no other process can be writing there.
"""

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARGIN = 64 * 2**20  # bytes to spare beyond the estimate: the small files written meanwhile (json, ids, logs)


class NotEnoughSpace(OSError):
    """Too little free disk space for a write of known size."""


def human(n_bytes):
    """A size for people: ``512 B``, ``7.5 MiB``, ``1.2 GiB``."""
    n = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_free(folder, n_bytes, what):
    """Raises ``NotEnoughSpace`` unless the disk holding ``folder`` (or its nearest existing parent) has
    ``n_bytes`` plus ``MARGIN`` free; ``what`` says what the space is for."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < n_bytes + MARGIN:
        raise NotEnoughSpace(
            f"{folder}: not enough free disk space for {what}: it needs {human(n_bytes)} (+{human(MARGIN)} to "
            f"spare), {human(free)} is free there. Free some space on that disk, or write elsewhere"
        )


def remove_stale_temps(folder, patterns):
    """Removes the files of ``folder`` (not its subfolders) matching the glob ``patterns``: temporary files left
    by a killed run. Call it only while holding the folder's lock. Returns [(name, bytes freed)] of what was
    removed (the space the file took on disk: a sparse memmap takes less than its size)."""
    removed = []
    for pattern in patterns:
        for path in sorted(Path(folder).glob(pattern)):
            if path.is_file():
                freed = path.stat().st_blocks * 512
                path.unlink()
                removed.append((path.name, freed))
    if removed:
        log.warning(
            "%s: removed %d temporary file%s left by an earlier run (%s freed): %s",
            folder,
            len(removed),
            "" if len(removed) == 1 else "s",
            human(sum(freed for _, freed in removed)),
            ", ".join(name for name, _ in removed[:5]) + (" ..." if len(removed) > 5 else ""),
        )
    return removed
