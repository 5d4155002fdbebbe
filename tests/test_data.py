import logging

import numpy as np
import pytest
import torch

from lib.data import dataset as data
from tests.conftest import write_video


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
    # policy=raise stops, policy=skip drops the video and reports it
    with pytest.raises(data.VideoError):
        data.load_split(tiny_root, "val", policy="raise", progress=False)
    p = data.load_split(tiny_root, "val", policy="skip", progress=False)
    assert p.ids.tolist() == [1000] and p.frames.shape[0] == 1 and p.masks.shape[0] == 1
    assert p.report["skipped"][0]["video"] == 1001 and text in p.report["skipped"][0]["reason"]


def test_short_mask_padded_under_pad_policy(tiny_root, caplog):
    v = _break(tiny_root, "short_mask")
    short = np.load(v / "mask.npy")
    with caplog.at_level(logging.WARNING):
        p = data.load_split(tiny_root, "val", policy="pad", progress=False)
    assert p.ids.tolist() == [1000, 1001] and len(p.report["padded"]) == 1
    np.testing.assert_array_equal(p.masks[1, :18], short)
    assert (p.masks[1, 18:] == short[-1]).all()
    assert "padded" in caplog.text


def test_frame_and_window_datasets(tiny_root):
    p = data.load_split(tiny_root, "train", progress=False)
    ds = data.FrameDataset(p)
    assert len(ds) == 3 * 22
    img, mask = ds[22 + 5]
    assert img.shape == (3, 160, 240) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
    assert torch.equal(mask, torch.from_numpy(p.masks[1, 5].astype(np.int64)))
    assert len(data.FrameDataset(data.load_split(tiny_root, "hidden", progress=False))[0].shape) == 3
    torch.manual_seed(0)
    crops = data.FrameDataset(p, crop=(48, 64), object_bias=1.0)
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
    w = data.WindowDataset(p.masks)
    assert len(w) == 3 * 11
    x, y = w[11 + 3]
    assert x.shape == (11, 160, 240) and y.shape == (1, 160, 240)
    assert torch.equal(y[0], torch.from_numpy(p.masks[1, 14].astype(np.int64)))
    w5 = data.WindowDataset(p.masks, out_len=5)
    assert len(w5) == 3 * 7 and w5[7][1].shape == (5, 160, 240)
    with pytest.raises(ValueError, match="no 11\\+12 window"):
        data.WindowDataset(p.masks, out_len=12)
