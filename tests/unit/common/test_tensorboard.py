"""TensorBoard events of ``fit`` (lib/common/tensorboard.py): the scalars are the history's numbers, panels give
images, a resumed run continues the steps, nothing is written without the package, and training is the same
with and without it (tiny CPU runs, the fixtures of test_trainer.py)."""

import random
import sys
import time

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lib.common import tensorboard as tb
from lib.common.trainer import epoch_loader, fit
from tests.unit.common.test_trainer import Net, assert_same, evaluate, loss_fn, make_data, run

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 3  # 12 samples in batches of 4 (test_trainer.run)


def events(out_dir):
    """The run's events as TensorBoard reads them (purged steps hidden)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out_dir / tb.FOLDER), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [e.step for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)]


def f32(values):
    return [float(np.float32(v)) for v in values]  # event files hold scalars as float32


def next_second():
    """Wait for the next second: event files sort by the second they were opened in (then by a per-process
    counter, as text), and TensorBoard reads them in that order, so a resumed run's file must sort last."""
    time.sleep(1.01 - time.time() % 1)


def rng_panels(seen):
    """Panels that draw from every global RNG (the loop must undo it) and note the mode they ran in."""

    def panels(model, device):
        seen.append((model.training, torch.is_grad_enabled()))
        torch.rand(3), np.random.rand(), random.random()
        grey = torch.full((3, 5, 7), 0.5)  # a (C, H, W) float tensor
        return {"rgb": np.zeros((4, 6, 3), np.uint8), "grey": grey}

    return panels


@pytest.fixture
def no_tensorboard(monkeypatch):
    """``from torch.utils.tensorboard import SummaryWriter`` fails, as without the package."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setattr(tb, "_said_missing", False)


def test_scalars_are_the_history_and_panels_are_images(tmp_path):
    seen = []
    _, hist = run(tmp_path, epochs=3, panels=rng_panels(seen), log_every=2)  # steps also flushed mid-epoch
    acc = events(tmp_path)
    assert set(acc.Tags()["scalars"]) == {
        "step/train_loss",
        "step/lr",
        "epoch/train_loss",
        "epoch/lr",
        "epoch/val_iou",
        "epoch/seconds",
    }  # per_class (a list) and the epoch number are not scalars
    ends = [STEPS * r["epoch"] for r in hist]
    for key in ("train_loss", "lr", "val_iou", "seconds"):
        assert scalars(acc, f"epoch/{key}") == (ends, f32(r[key] for r in hist)), key
    steps, losses = scalars(acc, "step/train_loss")
    assert steps == list(range(1, 3 * STEPS + 1))
    for r in hist:  # the epoch's loss is the mean of its steps'
        assert np.mean(losses[STEPS * (r["epoch"] - 1) : STEPS * r["epoch"]]) == pytest.approx(r["train_loss"])
    steps, lrs = scalars(acc, "step/lr")
    assert steps == list(range(1, 3 * STEPS + 1)) and [lrs[s - 1] for s in ends] == f32(r["lr"] for r in hist)
    assert sorted(acc.Tags()["images"]) == ["panels/grey", "panels/rgb"]
    rgb, grey = acc.Images("panels/rgb"), acc.Images("panels/grey")
    assert [i.step for i in rgb] == ends and [i.step for i in grey] == ends
    assert (rgb[0].height, rgb[0].width, grey[0].height, grey[0].width) == (4, 6, 5, 7)
    assert seen == [(False, False)] * 3  # eval mode, no gradients


def test_training_is_the_same_with_and_without_tensorboard(tmp_path, monkeypatch):
    """Same seed, same weights and history: the writer and the panels (which draw random numbers) change nothing."""
    pytest.importorskip("tensorboard")
    m1, h1 = run(tmp_path / "tb", panels=rng_panels([]))
    assert (tmp_path / "tb" / tb.FOLDER).is_dir()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    m2, h2 = run(tmp_path / "none", panels=rng_panels([]))
    assert not (tmp_path / "none" / tb.FOLDER).exists()
    assert_same(m1, h1, m2, h2)


def test_a_resumed_run_continues_the_steps(tmp_path):
    """Stopped after epoch 2, crashed in epoch 3, resumed: one event per step, and the crashed run's steps past
    its checkpoint are hidden (purged), not drawn twice."""
    run(tmp_path, epochs=4, stop_after=2)
    calls = []

    def crash_at_third_step(model, batch, device):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return loss_fn(model, batch, device)

    next_second()
    with pytest.raises(KeyboardInterrupt):
        torch.manual_seed(0)  # test_trainer.run with another loss
        loader = epoch_loader(TensorDataset(*make_data()), batch_size=4, seed=3)
        fit(Net(), loader, crash_at_third_step, evaluate, tmp_path, {"width": 4}, 4, lr=3e-3, progress=False)
    next_second()
    _, hist = run(tmp_path, epochs=4)
    acc = events(tmp_path)
    assert scalars(acc, "step/train_loss")[0] == list(range(1, 4 * STEPS + 1))
    assert scalars(acc, "epoch/val_iou") == ([STEPS * e for e in (1, 2, 3, 4)], f32(r["val_iou"] for r in hist))


def test_without_tensorboard_fit_runs_and_writes_no_events(tmp_path, no_tensorboard, capsys):
    (tmp_path / tb.FOLDER).mkdir()  # a previous run's events: a fresh start removes them
    _, h1 = run(tmp_path, epochs=2, stop_after=1, progress=True)
    _, h2 = run(tmp_path, epochs=2, progress=True)
    assert len(h2) == 2 and h2[0] == h1[0]
    assert not (tmp_path / tb.FOLDER).exists()
    assert capsys.readouterr().out.count("tensorboard is not installed") == 1  # one line, not one per call


def test_unet_run_folder_gets_image_panels(tiny_root, tmp_path):
    from lib.data.source import DataSource
    from lib.segmentation.training import train_unet

    source = DataSource(str(tiny_root))
    small = dict(width=4, depth=2, epochs=1, batch_size=2, steps_per_epoch=1, eval_videos=1, eval_frames=1)
    train_unet(source, tmp_path / "unet", progress=False, device="cpu", crop=[48, 64], **small)
    acc = events(tmp_path / "unet")
    val = source.split("val", progress=False)
    assert len(acc.Tags()["images"]) == 1 and acc.Tags()["images"][0] in {f"panels/video_{i}" for i in val.ids}
    (image,) = acc.Images(acc.Tags()["images"][0])
    h, w = val.frames.shape[2:4]
    assert (image.step, image.height, image.width) == (1, h, 3 * w + 2 * 3)  # frame | true | predicted
    assert scalars(acc, "epoch/val_iou")[0] == [1]


def test_simvp_panels():
    """Input mask of frame 11 | true frame 22 | predicted frame 22, for the first eval videos."""
    from lib.forecasting.training import DEFAULTS, _panels, build_simvp

    torch.manual_seed(0)
    model = build_simvp({**DEFAULTS, "embed_dim": 4, "hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2}).eval()
    rng = np.random.default_rng(0)
    val_in, val_true = rng.integers(0, 49, (5, 11, 16, 24), np.uint8), rng.integers(0, 49, (5, 16, 24), np.uint8)
    images = _panels(val_in, val_true)(model, torch.device("cpu"))
    assert list(images) == ["val_0", "val_1", "val_2"]
    assert all(i.shape == (16, 3 * 24 + 2 * 3, 3) and i.dtype == np.uint8 for i in images.values())
    from lib.viz.plots import colorize

    assert (images["val_1"][:, :24] == colorize(val_in[1, 10])).all()
    assert (images["val_1"][:, 27:51] == colorize(val_true[1])).all()
