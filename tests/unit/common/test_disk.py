"""Free-space checks before large writes, and the removal of temporary files a killed run left."""

import logging
from types import SimpleNamespace

import pytest

from lib.common import disk


def test_check_free_names_the_folder_and_both_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: SimpleNamespace(total=2**40, used=0, free=3 * 2**30))
    disk.check_free(tmp_path / "not" / "made" / "yet", 2 * 2**30, "the test")  # its nearest existing parent is asked
    with pytest.raises(disk.NotEnoughSpace) as e:
        disk.check_free(tmp_path / "new", 3 * 2**30, "packing the train split")
    assert isinstance(e.value, OSError)
    assert str(e.value) == (
        f"{tmp_path / 'new'}: not enough free disk space for packing the train split: it needs 3.0 GiB "
        "(+64.0 MiB to spare), 3.0 GiB is free there. Free some space on that disk, or write elsewhere"
    )
    assert [disk.human(n) for n in (512, 1536, 5 * 2**20, 2**41)] == ["512 B", "1.5 KiB", "5.0 MiB", "2.0 TiB"]


def test_remove_stale_temps_removes_only_matching_files(tmp_path, caplog):
    for name in (".frames.npy.x1.tmp", ".frames.npy.x1.tmp.trunc", "frames.npy", ".lock", "notes.tmp"):
        (tmp_path / name).write_bytes(b"x" * 5000)
    (tmp_path / ".dir.x.tmp").mkdir()
    with caplog.at_level(logging.WARNING):
        removed = disk.remove_stale_temps(tmp_path, (".*.*.tmp", "*.trunc"))
    assert [name for name, _ in removed] == [".frames.npy.x1.tmp", ".frames.npy.x1.tmp.trunc"]
    assert all(freed > 0 for _, freed in removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dir.x.tmp", ".lock", "frames.npy", "notes.tmp"]
    assert f"{tmp_path}: removed 2 temporary files left by an earlier run (" in caplog.text
    assert disk.remove_stale_temps(tmp_path, (".*.*.tmp",)) == []
