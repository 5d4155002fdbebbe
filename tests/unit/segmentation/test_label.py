import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lib.common import disk, lock
from lib.data import dataset as data
from lib.segmentation import label
from tests.unit.data.test_dataset import held_elsewhere


class ColourModel(torch.nn.Module):
    """A deterministic stand-in for the U-Net: 1x1 conv to 49 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 49, 1)

    def forward(self, x):
        return self.conv(x)


def test_label_resumes_after_interruption(tiny_root, tmp_path):
    packed = data.load_split(tiny_root, "train", progress=False)
    model = ColourModel()
    ref = label.label_split(model, packed, tmp_path / "ref", batch_size=22, progress=False)
    ids, ref_masks = label.load_labels(tmp_path / "ref", "train")
    assert ref_masks.shape == (3, 22, 160, 240) and ids.tolist() == [0, 2, 10] and ref["frames_per_s"] > 0
    expected = label.segment(model, np.asarray(packed.frames[1]), torch.device("cpu"))
    np.testing.assert_array_equal(ref_masks[1], expected)

    out = tmp_path / "run"
    with pytest.raises(label.Interrupted):
        label.label_split(model, packed, out, batch_size=22, progress=False, stop_after=1)
    assert not (out / "train.npy").exists()  # no half-written result
    assert np.load(out / "train.done.npy").tolist() == [True, False, False]
    res = label.label_split(model, packed, out, batch_size=22, progress=False, npy_dir=tmp_path / "npy")
    assert res["labelled"] == 2  # only the unfinished videos
    np.testing.assert_array_equal(label.load_labels(out, "train")[1], ref_masks)
    assert not (out / "train.partial.npy").exists() and not (out / "train.done.npy").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "npy" / "train" / "video_00002" / "mask.npy"), ref_masks[1])
    assert not (tiny_root / "train" / "video_2" / "labels").exists()
    # finished: nothing to do; another model: redone
    assert label.label_split(model, packed, out, batch_size=22, progress=False)["labelled"] == 0
    assert label.label_split(model, packed, out, batch_size=22, progress=False, model_key="other")["labelled"] == 3


def test_hidden_split_labels_eleven_frames(tiny_root, tmp_path):
    packed = data.load_split(tiny_root, "hidden", progress=False)
    label.label_split(ColourModel(), packed, tmp_path, progress=False)
    assert label.load_labels(tmp_path, "hidden")[1].shape == (2, 11, 160, 240)


def test_missing_labels_error_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="val.npy"):
        label.load_labels(tmp_path, "val")


def test_video_votes_of_frames_0_10_never_see_later_frames(tiny_root, tmp_path, monkeypatch):
    """With per-track video votes, the labels of frames 0-10 (every predictor's input) are decoded from frames
    0-10 alone, as for a hidden video; frames 11-21 vote among themselves."""
    packed = data.load_split(tiny_root, "train", progress=False)
    model = ColourModel()
    model.decode = "vote_video"
    seen = []
    decode = label.decode
    monkeypatch.setattr(label, "decode", lambda logits, how: seen.append((len(logits), how)) or decode(logits, how))
    label.label_split(model, packed, tmp_path, batch_size=22, progress=False)
    assert seen and set(seen) == {(11, "vote_video")}
    labels = label.load_labels(tmp_path, "train")[1]
    frames = np.asarray(packed.frames[0])
    np.testing.assert_array_equal(labels[0, :11], label.segment(model, frames[:11], video_len=11))
    np.testing.assert_array_equal(labels[0, 11:], label.segment(model, frames[11:], video_len=11))
    assert label.vote_window(22) == 11 and label.vote_window(11) == 11 and label.vote_window(4) == 4


def _unet_checkpoint(path):
    """A tiny U-Net checkpoint as train_unet writes it (model + config)."""
    from lib.common.files import torch_save
    from lib.segmentation.training import DEFAULTS
    from lib.segmentation.unet import build_unet

    cfg = {**DEFAULTS, "width": 4, "depth": 2}
    torch.manual_seed(0)
    torch_save(path, {"model": build_unet(cfg).state_dict(), "config": cfg})
    return path


def test_stale_labels_are_refused_naming_both_or_relabelled(tiny_root, tmp_path):
    """Labels carry the checkpoint and the data they were made for: another checkpoint, or other data (here
    the same files packed under another policy), is an error naming both, unless the caller asks to relabel."""
    from tests.unit.data.test_dataset import _break

    out = tmp_path / "labels"
    ckpt = _unet_checkpoint(tmp_path / "unet" / "best.pt")
    key = label.checkpoint_key(ckpt)
    val = data.load_split(tiny_root, "val", policy="skip", progress=False)
    label.label_split(ColourModel(), val, out, batch_size=22, model_key="unet-old", progress=False)
    assert label.labels_meta(out, "val")["data"] == val.fingerprint
    with pytest.raises(label.StaleLabels, match="made by U-Net checkpoint 'unet-old', expected 'unet/best.pt@sha1:"):
        label.load_labels(out, "val", key, val.fingerprint)
    with pytest.raises(label.StaleLabels, match="unet-old"):
        label.labels_for(out, val, ckpt, relabel=False)
    ids, masks = label.labels_for(out, val, ckpt, relabel=True)  # asked to: relabelled with this checkpoint
    assert label.labels_meta(out, "val")["model"] == key and ids.tolist() == val.ids.tolist()
    assert label.labels_for(out, val, ckpt)[1].shape == masks.shape  # fresh now: no error
    _break(tiny_root, "short_mask")
    padded = data.load_split(tiny_root, "val", policy="pad", progress=False, max_bad_fraction=1.0)  # other data
    assert padded.fingerprint != val.fingerprint
    with pytest.raises(
        label.StaleLabels, match=f"made for data '{val.fingerprint}', expected data '{padded.fingerprint}'"
    ):
        label.labels_for(out, padded, ckpt)
    from lib import pipeline

    with pytest.raises(label.StaleLabels):
        pipeline.split_unet_masks(None, padded, "cpu", out, key, relabel=False)


def test_mask_npy_export_replaces_stale_files(tiny_root, tmp_path):
    packed = data.load_split(tiny_root, "train", progress=False)
    npy = tmp_path / "npy"
    label.label_split(ColourModel(), packed, tmp_path / "a", batch_size=22, model_key="a", npy_dir=npy, progress=False)
    stale = npy / "train" / "video_00099" / "mask.npy"  # a video no longer in the split
    stale.parent.mkdir()
    np.save(stale, np.zeros((22, 160, 240), np.uint8))
    other = ColourModel()
    with torch.no_grad():
        other.conv.bias += torch.linspace(0, 5, 49)  # another model: other labels
    label.label_split(other, packed, tmp_path / "a", batch_size=22, model_key="b", npy_dir=npy, progress=False)
    new = label.load_labels(tmp_path / "a", "train", "b")[1]
    for i, vid in enumerate(packed.ids):
        np.testing.assert_array_equal(np.load(npy / "train" / f"video_{vid:05d}" / "mask.npy"), new[i])
    assert not stale.exists()
    assert json.loads((npy / "train" / "labels.json").read_text())["model"] == "b"


def test_a_crash_while_labelling_names_the_video(tiny_root, tmp_path):
    packed = data.load_split(tiny_root, "train", progress=False)

    class Flaky(ColourModel):
        calls = 0

        def forward(self, x):
            Flaky.calls += 1
            if Flaky.calls == 2:  # the second video (one video of 22 frames per chunk and per forward pass)
                raise RuntimeError("device lost")
            return super().forward(x)

    with pytest.raises(RuntimeError, match="labelling train video_00002 failed: RuntimeError: device lost"):
        label.label_split(Flaky(), packed, tmp_path, batch_size=22, progress=False)


def test_labels_without_a_record(tiny_root, tmp_path, caplog):
    """Labels not written by label_split (true masks standing in, no meta.json) cannot be checked: asking for a
    checkpoint is an error, a data check alone only warns."""
    import logging

    val = data.load_split(tiny_root, "val", progress=False)
    np.save(tmp_path / "val.ids.npy", val.ids)
    np.save(tmp_path / "val.npy", np.asarray(val.masks))
    with pytest.raises(label.StaleLabels, match="made by U-Net checkpoint None, expected 'unet-a'"):
        label.load_labels(tmp_path, "val", "unet-a", val.fingerprint)
    with caplog.at_level(logging.WARNING):
        assert label.load_labels(tmp_path, "val", None, val.fingerprint)[1].shape == val.masks.shape
    assert "without a record" in caplog.text


def test_checkpoint_key_follows_the_content_not_the_place(tmp_path):
    import shutil

    a = _unet_checkpoint(tmp_path / "run1" / "unet" / "best.pt")
    (tmp_path / "run2" / "unet").mkdir(parents=True)
    b = Path(shutil.copy(a, tmp_path / "run2" / "unet" / "best.pt"))  # a copied run folder: the same model
    assert label.checkpoint_key(a) == label.checkpoint_key(b)
    torch.save({"model": {}, "config": {}}, b)  # retrained: another model
    assert label.checkpoint_key(a) != label.checkpoint_key(b)


def test_a_second_process_labelling_the_same_split_is_refused_at_once(tiny_root, tmp_path):
    hidden = data.load_split(tiny_root, "hidden", progress=False)
    with held_elsewhere(tmp_path / "hidden.lock") as pid:
        with pytest.raises(
            lock.Busy, match=re.escape(f"the labelling of hidden in {tmp_path} is in use by process {pid} ")
        ):
            label.label_split(ColourModel(), hidden, tmp_path, progress=False)
        assert not (tmp_path / "hidden.partial.npy").exists() and not (tmp_path / "hidden.meta.json").exists()
        val = data.load_split(tiny_root, "val", progress=False)  # another split in the same folder: its own lock
        assert label.label_split(ColourModel(), val, tmp_path, batch_size=22, progress=False)["labelled"] == 2
    assert label.label_split(ColourModel(), hidden, tmp_path, progress=False)["labelled"] == 2  # free again


def test_stale_temporary_files_of_the_split_are_removed_and_the_partial_labels_kept(tiny_root, tmp_path, caplog):
    packed = data.load_split(tiny_root, "train", progress=False)
    with pytest.raises(label.Interrupted):
        label.label_split(ColourModel(), packed, tmp_path, batch_size=22, progress=False, stop_after=1)
    stale = tmp_path / ".train.done.npy.abc123.tmp"  # as a run killed while saving train.done.npy leaves it
    stale.write_bytes(b"x" * 10000)
    other = tmp_path / ".val.done.npy.abc123.tmp"  # another split's: maybe being written by its own run
    other.write_bytes(b"x")
    with caplog.at_level(logging.WARNING):
        res = label.label_split(ColourModel(), packed, tmp_path, batch_size=22, progress=False)
    assert res["labelled"] == 2  # resumed from train.partial.npy
    assert not stale.exists() and other.exists()
    assert "removed 1 temporary file left by an earlier run" in caplog.text and stale.name in caplog.text


def test_labelling_stops_before_writing_when_the_disk_is_too_full(tiny_root, tmp_path, monkeypatch):
    hidden = data.load_split(tiny_root, "hidden", progress=False)
    free = 10 * 2**20
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: SimpleNamespace(total=2**40, used=2**40, free=free))
    with pytest.raises(disk.NotEnoughSpace) as e:
        label.label_split(ColourModel(), hidden, tmp_path / "labels", progress=False)
    need = 2 * 11 * 160 * 240
    assert str(e.value) == (
        f"{tmp_path / 'labels'}: not enough free disk space for the labels of 2 videos of hidden: it needs {disk.human(need)} "
        f"(+{disk.human(disk.MARGIN)} to spare), {disk.human(free)} is free there. Free some space on that disk, "
        "or write elsewhere"
    )
    assert [f.name for f in (tmp_path / "labels").iterdir()] == ["hidden.lock"]  # nothing else left behind
