import json
import logging
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lib.common import disk, lock, paths
from lib.data import dataset as data
from lib.data.torch_datasets import FrameDataset, WindowDataset
from tests.conftest import write_video

ROOT = Path(__file__).resolve().parents[3]


def test_numeric_order_and_stray_files(tiny_root, caplog):
    with caplog.at_level(logging.WARNING):
        vids = data.list_videos(tiny_root / "train")
    assert [n for n, _ in vids] == [0, 2, 10]  # string order would put video_2 last
    assert ".DS_Store" in caplog.text


def test_duplicate_numbers_rejected(tiny_root):
    write_video(tiny_root / "train" / "video_10")
    with pytest.raises(data.VideoError, match="same video number"):
        data.list_videos(tiny_root / "train")


def test_load_split_shapes_and_values(tiny_root):
    p = data.load_split(tiny_root, "train", progress=False)
    assert p.ids.tolist() == [0, 2, 10]
    assert p.frames.shape == (3, 22, 160, 240, 3) and p.frames.dtype == np.uint8
    assert p.masks.shape == (3, 22, 160, 240)
    np.testing.assert_array_equal(p.masks[1], np.load(tiny_root / "train" / "video_2" / "mask.npy"))
    np.testing.assert_array_equal(p.frames[1], data.read_frames(tiny_root / "train" / "video_2", 22))
    h = data.load_split(tiny_root, "hidden", progress=False)
    assert h.frames.shape == (2, 11, 160, 240, 3) and h.masks is None
    u = data.load_split(tiny_root, "unlabeled", progress=False)
    assert u.masks is None and u.frames.shape[1] == 22


def test_cache_reused_then_rebuilt_when_source_changes(tiny_root):
    p = data.load_split(tiny_root, "val", progress=False)
    meta = tiny_root / ".cache" / "val" / "meta.json"
    stamp = meta.stat().st_mtime_ns
    data.load_split(tiny_root, "val", progress=False)
    assert meta.stat().st_mtime_ns == stamp  # reused
    m = np.load(tiny_root / "val" / "video_01001" / "mask.npy")
    m[:] = 3
    np.save(tiny_root / "val" / "video_01001" / "mask.npy", m)
    p = data.load_split(tiny_root, "val", progress=False)
    assert (p.masks[1] == 3).all()
    assert not list((tiny_root / ".cache" / "val").glob("*.tmp"))


def _break(root, kind):
    v = root / "val" / "video_01001"
    if kind == "missing_frame":
        (v / "image_5.png").unlink()
    elif kind == "unreadable":
        (v / "image_3.png").write_bytes(b"not a png")
    elif kind == "bad_size":
        write_video(v, size=(80, 120))
    elif kind == "bad_shape":
        np.save(v / "mask.npy", np.zeros((22, 80, 240), np.uint8))
    elif kind == "bad_ids":
        m = np.load(v / "mask.npy").astype(np.int64)
        m[0, 0, 0] = 60
        np.save(v / "mask.npy", m)
    elif kind == "short_mask":
        np.save(v / "mask.npy", np.load(v / "mask.npy")[:18])
    return v


@pytest.mark.parametrize(
    "kind,text",
    [
        ("missing_frame", "image_5.png: missing frame"),
        ("unreadable", "image_3.png: unreadable image"),
        ("bad_size", "frame is 120x80"),
        ("bad_shape", "mask has shape (22, 80, 240)"),
        ("bad_ids", "class ids 0..60 outside 0..48"),
        ("short_mask", "mask has 18 frames, expected 22"),
    ],
)
def test_bad_video_errors_name_file_and_problem(tiny_root, kind, text):
    v = _break(tiny_root, kind)
    with pytest.raises(data.VideoError) as e:
        data.read_video(v, "val")
    assert text in str(e.value) and "video_01001" in str(e.value) and e.value.kind == kind
    # policy=raise stops, policy=skip drops the video and reports it (1 of 2 bad: above the default limit)
    with pytest.raises(data.VideoError):
        data.load_split(tiny_root, "val", policy="raise", progress=False)
    p = data.load_split(tiny_root, "val", policy="skip", progress=False, max_bad_fraction=1.0)
    assert p.ids.tolist() == [1000] and p.frames.shape[0] == 1 and p.masks.shape[0] == 1
    assert p.report["skipped"][0]["video"] == 1001 and text in p.report["skipped"][0]["reason"]


def test_short_mask_padded_under_pad_policy(tiny_root, caplog):
    v = _break(tiny_root, "short_mask")
    short = np.load(v / "mask.npy")
    with caplog.at_level(logging.WARNING):
        p = data.load_split(tiny_root, "val", policy="pad", progress=False, max_bad_fraction=1.0)
    assert p.ids.tolist() == [1000, 1001] and len(p.report["padded"]) == 1
    np.testing.assert_array_equal(p.masks[1, :18], short)
    assert (p.masks[1, 18:] == short[-1]).all()
    assert "padded" in caplog.text


def test_frame_and_window_datasets(tiny_root):
    p = data.load_split(tiny_root, "train", progress=False)
    ds = FrameDataset(p)
    assert len(ds) == 3 * 22
    img, mask = ds[22 + 5]
    assert img.shape == (3, 160, 240) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
    assert torch.equal(mask, torch.from_numpy(p.masks[1, 5].astype(np.int64)))
    assert len(FrameDataset(data.load_split(tiny_root, "hidden", progress=False))[0].shape) == 3
    torch.manual_seed(0)
    crops = FrameDataset(p, crop=(48, 64), object_bias=1.0)
    for i in range(0, len(crops), 7):
        img, m = crops[i]
        assert img.shape == (3, 48, 64) and m.shape == (48, 64) and (m > 0).any()  # centred on the object
        v, t = crops.index[i]
        full = torch.from_numpy(p.masks[v, t].astype(np.int64))
        assert any(
            torch.equal(full[y : y + 48, x : x + 64], m)
            for y in range(0, 160 - 47)
            for x in range(0, 240 - 63, 1)
            if full[y, x] == m[0, 0]
        )
    w = WindowDataset(p.masks)
    assert len(w) == 3 * 11
    x, y = w[11 + 3]
    assert x.shape == (11, 160, 240) and y.shape == (1, 160, 240)
    assert torch.equal(y[0], torch.from_numpy(p.masks[1, 14].astype(np.int64)))
    w5 = WindowDataset(p.masks, out_len=5)
    assert len(w5) == 3 * 7 and w5[7][1].shape == (5, 160, 240)
    with pytest.raises(ValueError, match="no 11\\+12 window"):
        WindowDataset(p.masks, out_len=12)


# ----------------------------------------------------------------------------- the hidden set and counted quirks
def _png16_rgb(path, arr):
    """A 16-bit-per-channel RGB PNG (PIL cannot write one): (h, w, 3) uint16."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    head = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _truncate_png(path):
    b = path.read_bytes()
    path.write_bytes(b[: len(b) // 2])


def test_hidden_split_packs_every_folder_by_the_fallback_chain(tiny_root, caplog):
    """A hidden video is never dropped, whatever the policy: bad frames are replaced by the nearest readable
    earlier frame (the next one when none precedes), a folder with no readable frame is all background; each is
    logged and listed with its files, reasons and fallback."""
    hid = tiny_root / "hidden"
    (hid / "video_15000" / "image_10.png").unlink()  # the real data's quirk: a hidden video without frame 10
    _truncate_png(hid / "video_15001" / "image_0.png")
    write_video(hid / "video_15002", n_frames=11, mask_frames=0, seed=3)
    for t in range(11):
        (hid / "video_15002" / f"image_{t}.png").write_bytes(b"garbage")
    write_video(hid / "video_15003", n_frames=11, mask_frames=0, seed=4, size=(80, 120))  # every frame odd-sized
    with caplog.at_level(logging.WARNING):
        h = data.load_split(tiny_root, "hidden", policy="raise", progress=False, max_bad_fraction=1.0)
    assert h.ids.tolist() == [15000, 15001, 15002, 15003] == data.hidden_ids(tiny_root)
    fb = {f["video"]: f for f in h.report["fallback"]}
    assert fb[15000]["files"] == ["image_10.png"] and fb[15000]["fallback"] == "filled"
    assert "missing frame" in fb[15000]["reasons"][0] and fb[15000]["detail"] == "image_10.png <- image_9.png"
    np.testing.assert_array_equal(h.frames[0, 10], h.frames[0, 9])
    np.testing.assert_array_equal(h.frames[0, 9], data.read_frame(hid / "video_15000", 9))
    assert fb[15001]["detail"] == "image_0.png <- image_1.png" and "unreadable" in fb[15001]["reasons"][0]
    np.testing.assert_array_equal(h.frames[1, 0], h.frames[1, 1])
    assert fb[15002]["fallback"] == fb[15003]["fallback"] == "background" and len(fb[15002]["files"]) == 11
    assert not h.frames[2].any() and not h.frames[3].any()
    assert data.report_summary(h.report)["fallback"] == {"background": 2, "filled": 2}
    assert "video_15000: image_10.png" in caplog.text and "fallback: filled" in caplog.text
    with pytest.raises(data.VideoError):  # read strictly (the other splits' reader), the same video fails
        data.read_video(hid / "video_15000", "hidden")


def test_converted_frames_are_counted_with_their_rule(tiny_root):
    v = tiny_root / "val" / "video_01000"
    rgb = data.read_frame(v, 0)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(v / "image_0.png")  # RGBA
    Image.fromarray(rgb[..., 1]).save(v / "image_1.png")  # grey (L)
    grey16 = np.random.default_rng(0).integers(0, 65536, (160, 240), dtype=np.uint16)
    Image.fromarray(grey16).save(v / "image_2.png")  # 16-bit grey (I;16): PIL's own convert would clip at 255
    rgb16 = np.random.default_rng(1).integers(0, 65536, (160, 240, 3), dtype=np.uint16)
    _png16_rgb(v / "image_3.png", rgb16)
    p = data.load_split(tiny_root, "val", policy="raise", progress=False)
    np.testing.assert_array_equal(p.frames[0, 0], rgb)  # alpha dropped
    np.testing.assert_array_equal(p.frames[0, 1], np.repeat(rgb[..., 1:2], 3, -1))
    np.testing.assert_array_equal(p.frames[0, 2], np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, -1))
    np.testing.assert_array_equal(p.frames[0, 3], (rgb16 >> 8).astype(np.uint8))
    conv = p.report["converted"]
    assert {k: c["frames"] for k, c in conv.items()} == {"alpha": 1, "grayscale": 1, "16bit": 2}
    assert all(c["videos"] == [1000] and c["rule"] == data.CONVERSIONS[k] for k, c in conv.items())
    assert data.report_summary(p.report)["converted_frames"] == {"alpha": 1, "grayscale": 1, "16bit": 2}


def test_long_and_int32_masks_are_counted(tiny_root, caplog):
    long = np.concatenate([np.load(tiny_root / "val" / "video_01000" / "mask.npy")] * 2)[:25]
    np.save(tiny_root / "val" / "video_01000" / "mask.npy", long)
    m = np.load(tiny_root / "val" / "video_01001" / "mask.npy").astype(np.int32)
    np.save(tiny_root / "val" / "video_01001" / "mask.npy", m)
    with caplog.at_level(logging.WARNING):
        p = data.load_split(tiny_root, "val", policy="raise", progress=False)
    np.testing.assert_array_equal(p.masks[0], long[:22])
    np.testing.assert_array_equal(p.masks[1], m)
    assert p.report["masks"]["long_mask:25"]["videos"] == [1000]
    assert p.report["masks"]["mask_dtype:int32"]["videos"] == [1001]
    assert data.report_summary(p.report)["masks"] == {"long_mask:25": 1, "mask_dtype:int32": 1}
    assert "long_mask:25" in caplog.text and "mask_dtype:int32" in caplog.text


def test_stray_files_and_non_numeric_folders_logged_and_counted(tiny_root, caplog):
    (tiny_root / "train" / "video_00000" / "Thumbs.db").write_text("x")
    (tiny_root / "train" / "video_00000" / "image_22.png").write_text("x")
    (tiny_root / "train" / "video_abc").mkdir()
    (tiny_root / "train" / "clip_3").mkdir()
    with caplog.at_level(logging.WARNING):
        p = data.load_split(tiny_root, "train", progress=False)
    assert p.ids.tolist() == [0, 2, 10]
    assert p.report["stray_entries"] == [".DS_Store", "clip_3", "video_abc"]
    assert p.report["stray_files"] == [{"video": 0, "file": "Thumbs.db"}, {"video": 0, "file": "image_22.png"}]
    assert "video_abc" in caplog.text and "Thumbs.db" in caplog.text
    s = data.report_summary(p.report)
    assert (s["stray_entries"], s["stray_files"]) == (3, 2)


def test_empty_split_and_all_bad_split_are_clear_errors(tiny_root):
    import shutil

    shutil.rmtree(tiny_root / "unlabeled")
    (tiny_root / "unlabeled").mkdir()
    (tiny_root / "unlabeled" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="the unlabeled split is empty .*notes.txt"):
        data.load_split(tiny_root, "unlabeled", progress=False)
    for v in ("video_01000", "video_01001"):
        (tiny_root / "val" / v / "image_4.png").unlink()
    with pytest.raises(ValueError, match="all 2 videos of val are bad .*image_4.png: missing frame"):
        data.load_split(tiny_root, "val", policy="skip", progress=False)
    assert not (tiny_root / ".cache" / "val" / "meta.json").exists()
    assert not list((tiny_root / ".cache" / "val").glob(".*tmp"))


def test_a_crash_while_packing_names_the_video(tiny_root, monkeypatch):
    real = data.read_video

    def flaky(path, *a, **k):
        if path.name == "video_2":
            raise MemoryError("out of memory")
        return real(path, *a, **k)

    monkeypatch.setattr(data, "read_video", flaky)
    with pytest.raises(RuntimeError, match="packing train: .*video_2 failed \\(MemoryError: out of memory\\)"):
        data.load_split(tiny_root, "train", progress=False)


def test_one_policy_everywhere_trainers_pack_with_the_policy_given(tiny_root, caplog):
    """Notebook 00 packs with the run's policy; the trainers of notebooks 02 and 04-05 receive the same policy
    and reuse that cache (before, they called load_split with its default and silently repacked with skip)."""
    from lib.data.source import DataSource
    from lib.segmentation.training import train_unet

    _break(tiny_root, "short_mask")
    p = data.load_split(tiny_root, "val", policy="pad", progress=False, max_bad_fraction=1.0)
    assert p.ids.tolist() == [1000, 1001]
    meta = tiny_root / ".cache" / "val" / "meta.json"
    stamp = meta.stat().st_mtime_ns
    small = dict(width=4, depth=2, epochs=1, batch_size=2, steps_per_epoch=1, eval_videos=1, eval_frames=1)
    source = DataSource(str(tiny_root), policy="pad", max_bad_fraction=1.0)
    train_unet(source, tiny_root / "unet", progress=False, device="cpu", crop=[48, 64], **small)
    assert meta.stat().st_mtime_ns == stamp  # the pad cache was reused, not rebuilt with another policy
    assert json.loads(meta.read_text())["key"]["policy"] == "pad"
    with caplog.at_level(logging.WARNING):  # another policy: repacked, and the log says why
        skip = data.load_split(tiny_root, "val", policy="skip", progress=False, max_bad_fraction=1.0)
    assert skip.ids.tolist() == [1000]
    assert "packed with policy=pad, now policy=skip" in caplog.text
    h1 = data.load_split(tiny_root, "hidden", policy="skip", progress=False)
    h2 = data.load_split(tiny_root, "hidden", policy="pad", progress=False)
    assert h1.fingerprint == h2.fingerprint  # hidden ignores the policy (it is never skipped)


# ----------------------------------------------------------------------------- limits, locks, disk, cache place
def test_too_many_bad_videos_stop_with_the_first_ones_named_and_the_cache_kept(tiny_root):
    for v in ("video_00000", "video_2"):
        (tiny_root / "train" / v / "image_4.png").unlink()
    with pytest.raises(data.TooManyBad) as e:
        data.load_split(tiny_root, "train", progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{tiny_root / 'train'}: 2 of 3 train videos are bad (policy=skip") and "66.7%" in msg
    assert "max_bad_fraction=0.05 (5.0%)" in msg
    assert "video 0 (skipped: " in msg and "video 2 (skipped: " in msg and "video_2/image_4.png: missing frame" in msg
    meta = tiny_root / ".cache" / "train" / "meta.json"
    stamp = meta.stat().st_mtime_ns  # the cache is written: a larger limit uses it without repacking
    assert data.load_split(tiny_root, "train", progress=False, max_bad_fraction=1.0).ids.tolist() == [10]
    assert meta.stat().st_mtime_ns == stamp
    with pytest.raises(data.TooManyBad, match="2 of 3 train videos"):  # opening it checks the report too
        data.load_split(tiny_root, "train", progress=False)
    with pytest.raises(data.TooManyBad):  # the limit is a share of the split: 2/3 > 0.66
        data.load_split(tiny_root, "train", progress=False, max_bad_fraction=0.66)
    assert len(data.load_split(tiny_root, "train", progress=False, max_bad_fraction=0.67)) == 1
    # the real data's quirk, 1 short mask in 1000 val videos, passes the default
    report = {**data.new_report(1000, "pad"), "padded": [{"video": 1370, "reason": "padded: mask has 18 frames"}]}
    data._check_bad(report, "val", tiny_root / "val", tiny_root / ".cache" / "val", data.MAX_BAD_FRACTION)


def test_hidden_videos_packed_by_the_fallback_chain_count_as_bad(tiny_root):
    """Every hidden video falling back (to all background) would make a submission that passes every check and
    scores nothing: too many of them stop, naming the hidden videos."""
    for t in range(11):
        (tiny_root / "hidden" / "video_15001" / f"image_{t}.png").write_bytes(b"garbage")
    with pytest.raises(data.TooManyBad) as e:
        data.load_split(tiny_root, "hidden", progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{tiny_root / 'hidden'}: 1 of 2 hidden videos are packed by the fallback chain")
    assert "video 15001 (background: image_0.png: unreadable image" in msg and "max_bad_fraction=0.05" in msg
    assert data.load_split(tiny_root, "hidden", progress=False, max_bad_fraction=0.5).ids.tolist() == [15000, 15001]


def test_a_mask_rewritten_in_place_with_the_same_size_and_time_is_noticed(tiny_root):
    """Masks count by content: a mask rewritten with the same size, its modification time put back, repacks."""
    data.load_split(tiny_root, "val", progress=False)
    path = tiny_root / "val" / "video_01001" / "mask.npy"
    st = path.stat()
    m = np.load(path)
    m[:, :5] = 7
    np.save(path, m)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    p = data.load_split(tiny_root, "val", progress=False)
    assert (p.masks[1, :, :5] == 7).all()


def test_a_failed_build_leaves_the_previous_cache_as_it_was(tiny_root):
    old = data.load_split(tiny_root, "val", policy="raise", progress=False)
    out = tiny_root / ".cache" / "val"

    def files():
        return {
            f.name: (f.stat().st_ino, f.stat().st_mtime_ns, f.read_bytes()) for f in out.iterdir() if f.name != ".lock"
        }

    before = files()
    assert set(before) == {"frames.npy", "masks.npy", "ids.npy", "meta.json"}
    _break(tiny_root, "missing_frame")
    with pytest.raises(data.VideoError, match="image_5.png: missing frame"):
        data.load_split(tiny_root, "val", policy="raise", progress=False)
    assert files() == before  # the same meta.json and arrays, nothing half-written beside them
    np.testing.assert_array_equal(old.frames[1], np.load(out / "frames.npy", mmap_mode="r")[1])
    assert old.ids.tolist() == np.load(out / "ids.npy").tolist() == [1000, 1001]


def test_packing_stops_before_writing_when_the_disk_is_too_full(tiny_root, monkeypatch):
    free = 2**20
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: SimpleNamespace(total=2**40, used=2**40, free=free))
    out = tiny_root / ".cache" / "train"
    need = 3 * 22 * 160 * 240 * 4  # frames and masks
    with pytest.raises(disk.NotEnoughSpace) as e:
        data.load_split(tiny_root, "train", progress=False)
    assert str(e.value).startswith(f"{out}: not enough free disk space for packing the train split: it needs ")
    assert f"needs {disk.human(need)} (+64.0 MiB to spare), {disk.human(free)} is free there" in str(e.value)
    assert [f.name for f in out.iterdir()] == [".lock"]  # nothing else left behind


def test_temporary_files_of_a_killed_build_are_removed_by_the_next(tiny_root, caplog):
    out = tiny_root / ".cache" / "train"
    out.mkdir(parents=True)
    stale = [out / ".frames.npy.abc123.tmp", out / ".frames.npy.abc123.tmp.trunc"]
    for f in stale:
        f.write_bytes(b"x" * 10000)
    with caplog.at_level(logging.WARNING):
        data.load_split(tiny_root, "train", progress=False)
    assert not any(f.exists() for f in stale)
    assert "removed 2 temporary files left by an earlier run" in caplog.text and ".frames.npy.abc123.tmp" in caplog.text
    assert sorted(f.name for f in out.iterdir()) == [".lock", "frames.npy", "ids.npy", "masks.npy", "meta.json"]


@contextmanager
def held_elsewhere(path):
    """Another process holding the lock at ``path`` (lib/common/lock.py) until the block ends; yields its pid."""
    code = "import sys, time\nfrom lib.common import lock\nwith lock.hold(sys.argv[1]):\n    print('ready', flush=True)\n    time.sleep(120)\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_second_process_packing_the_same_split_is_refused_at_once(tiny_root):
    out = tiny_root / ".cache" / "train"
    with held_elsewhere(out / ".lock") as pid:
        with pytest.raises(lock.Busy, match=re.escape(f"the packed cache {out} is in use by process {pid} on ")):
            data.load_split(tiny_root, "train", progress=False)
    assert not (out / "meta.json").exists()
    p = data.load_split(tiny_root, "train", progress=False)  # free again
    with held_elsewhere(out / ".lock"):  # a valid cache is read without the lock
        assert data.load_split(tiny_root, "train", progress=False).ids.tolist() == p.ids.tolist() == [0, 2, 10]
    assert data.scan_split(tiny_root / "train")[1] == [".DS_Store"]  # the lock is in the cache, not the data


def test_a_read_only_dataset_is_packed_in_the_project_folder(tiny_root, tmp_path, monkeypatch, caplog):
    """A valid cache in the read-only <data_root>/.cache is read; a split without one is packed in the project's
    .cache/packed/ (one log line says so); a cache_dir given that cannot be written is an error naming it."""
    data.load_split(tiny_root, "val", progress=False)  # packed while the dataset was writable
    monkeypatch.setattr(paths, "PROJ_ROOT", tmp_path / "proj")
    read_only = [tiny_root, tiny_root / ".cache", tiny_root / ".cache" / "val"]
    for d in read_only:
        d.chmod(0o555)
    if os.geteuid() == 0:  # root writes there anyway: the probe is told what it would find as a user
        real = data._writable
        monkeypatch.setattr(data, "_writable", lambda f: not Path(f).is_relative_to(tiny_root) and real(f))
    try:
        stamp = (tiny_root / ".cache" / "val" / "meta.json").stat().st_mtime_ns
        with caplog.at_level(logging.WARNING):
            assert data.load_split(tiny_root, "val", progress=False).ids.tolist() == [1000, 1001]
        assert (tiny_root / ".cache" / "val" / "meta.json").stat().st_mtime_ns == stamp
        assert "cannot be written" not in caplog.text
        with caplog.at_level(logging.WARNING):
            u = data.load_split(tiny_root, "unlabeled", progress=False)
        local = data.local_cache_dir(tiny_root, "unlabeled")
        assert local.parent.parent == tmp_path / "proj" / ".cache" / "packed" and local.parent.name.startswith("data-")
        assert (local / "meta.json").is_file() and not (tiny_root / ".cache" / "unlabeled").exists()
        line = f"{tiny_root / '.cache' / 'unlabeled'} cannot be written (a read-only dataset?): the unlabeled split"
        assert f"{line} is packed in {local}" in caplog.text
        stamp = (local / "meta.json").stat().st_mtime_ns
        assert data.load_split(tiny_root, "unlabeled", progress=False).ids.tolist() == u.ids.tolist() == [2000]
        assert (local / "meta.json").stat().st_mtime_ns == stamp  # reused
        with pytest.raises(PermissionError, match=re.escape(f"{tiny_root / '.cache' / 'train'}: cannot write")):
            data.load_split(tiny_root, "train", cache_dir=tiny_root / ".cache", progress=False)
    finally:
        for d in read_only:
            d.chmod(0o755)
