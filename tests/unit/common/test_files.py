"""Atomic writes are durable: the file's data is fsynced before the rename, the folder after it."""

import os

import numpy as np
import pytest
import torch

from lib.common import files


@pytest.fixture
def events(monkeypatch):
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        log.append(("replace", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


@pytest.mark.parametrize(
    "write",
    [
        lambda p: files.save_json(p, {"a": 1}),
        lambda p: files.save_npy(p, np.arange(3)),
        lambda p: files.torch_save(p, {"model": torch.zeros(2)}),
        lambda p: files.save_npz(p, a=np.arange(3)),
    ],
    ids=["json", "npy", "torch", "npz"],
)
def test_atomic_writes_fsync_the_file_before_the_rename_and_the_folder_after(tmp_path, events, write):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name file descriptors")
    path = tmp_path / "out.bin"
    write(path)
    assert path.is_file() and path.stat().st_size > 0
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    tmp = events[1][1]
    assert events[0][1] == tmp and events[1][2] == str(path)  # the temporary file's data, then the rename
    assert events[2][1] == str(tmp_path)  # then the folder holding the new name


def test_labels_are_fsynced_before_their_final_name_appears(tiny_root, tmp_path, events):
    from lib.data import dataset as data
    from lib.segmentation import label
    from tests.unit.segmentation.test_label import ColourModel

    packed = data.load_split(tiny_root, "hidden", progress=False)
    events.clear()
    label.label_split(ColourModel(), packed, tmp_path, progress=False)
    final = str(tmp_path / "hidden.npy")
    i = next(i for i, e in enumerate(events) if e[0] == "replace" and e[2] == final)
    assert events[i - 1] == ("fsync", str(tmp_path / "hidden.partial.npy")) and events[i + 1] == (
        "fsync",
        str(tmp_path),
    )


def test_temp_glob_finds_the_temporary_files_of_atomic_path(tmp_path):
    """The temporary files are recognisable, so a later run can remove those a killed run left
    (lib/common/disk.py)."""
    with files.atomic_path(tmp_path / "frames.npy") as tmp:
        tmp.write_bytes(b"x")
        assert list(tmp_path.glob(files.temp_glob("frames.npy"))) == [tmp]
        assert list(tmp_path.glob(files.temp_glob())) == [tmp]
        assert list(tmp_path.glob(files.temp_glob("masks.npy"))) == []
    assert list(tmp_path.glob(files.temp_glob())) == [] and (tmp_path / "frames.npy").read_bytes() == b"x"
