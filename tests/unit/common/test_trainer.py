"""The training loop: exact resume, best checkpoint, atomic writes, config checks (tiny CPU runs)."""

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from lib.common import lock, trainer
from lib.common.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from lib.common.device import inference_dtype
from lib.common.metrics import jaccard
from lib.common.trainer import RUN_FILES, EpochSampler, epoch_loader, fit
from lib.segmentation.augment import Augment
from lib.segmentation.unet import UNet

C = 4
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and much faster on a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, C, (n, 1, 4, 6), generator=g)
    masks = F.interpolate(masks.float(), size=(16, 24), mode="nearest")[:, 0].long()
    images = (masks[:, None].float() / C).expand(n, 3, 16, 24) + 0.1 * torch.rand(n, 3, 16, 24, generator=g)
    return images.clamp(0, 1), masks


class Net(nn.Module):
    """Tiny U-Net with dropout, so the global RNG matters during training."""

    def __init__(self):
        super().__init__()
        self.unet = UNet(num_classes=C, width=4, depth=2)
        self.drop = nn.Dropout2d(0.2)

    def forward(self, x):
        return self.unet(self.drop(x))


AUG = Augment()


def loss_fn(model, batch, device):
    x, y = batch
    pairs = [AUG(a, b) for a, b in zip(x, y)]  # global RNG: restored on resume
    x = torch.stack([p[0] for p in pairs]).to(device)
    y = torch.stack([p[1] for p in pairs]).to(device)
    return F.cross_entropy(model(x), y)


VAL = make_data(6, seed=1)


def evaluate(model, device):
    model.eval()
    with torch.no_grad():
        pred = model(VAL[0]).argmax(1)
    mean, per_class = jaccard(pred, VAL[1], num_classes=C)
    return {"val_iou": mean, "per_class": per_class}


def run(out_dir, epochs=4, config=None, **kw):
    torch.manual_seed(0)
    model = Net()
    loader = epoch_loader(TensorDataset(*make_data()), batch_size=4, seed=3)
    kw = {"lr": 3e-3, "progress": False, **kw}
    hist = fit(model, loader, loss_fn, evaluate, out_dir, config or {"width": 4}, epochs, **kw)
    return model, hist


def strip_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same(m1, h1, m2, h2):
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k
    assert strip_time(h1) == strip_time(h2)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    model, hist = run(out)
    return out, model, hist


def test_resume_after_stop_equals_uninterrupted(straight, tmp_path):
    _, m1, h1 = straight
    _, h_part = run(tmp_path, stop_after=2)
    assert [r["epoch"] for r in h_part] == [1, 2]
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    m2, h2 = run(tmp_path)  # a fresh model and loader, resumed from last.pt
    assert [r["epoch"] for r in h2] == [1, 2, 3, 4]
    assert_same(m1, h1, m2, h2)
    assert json.loads((tmp_path / "log.json").read_text())[-1]["val_iou"] == h1[-1]["val_iou"]


def test_resume_after_crash_mid_epoch(straight, tmp_path):
    _, m1, h1 = straight
    calls = {"n": 0}

    def crashing(model, batch, device):
        calls["n"] += 1
        if calls["n"] == 8:  # 3 steps per epoch: dies in epoch 3
            raise KeyboardInterrupt
        return loss_fn(model, batch, device)

    with pytest.raises(KeyboardInterrupt):
        _run_with(tmp_path, crashing)
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    m2, h2 = run(tmp_path)
    assert_same(m1, h1, m2, h2)


def _run_with(out_dir, lf):
    torch.manual_seed(0)
    model = Net()
    loader = epoch_loader(TensorDataset(*make_data()), batch_size=4, seed=3)
    return fit(model, loader, lf, evaluate, out_dir, {"width": 4}, 4, lr=3e-3, progress=False)


def test_extend_without_schedule(tmp_path):
    m1, h1 = run(tmp_path / "a", epochs=3, schedule="none")
    run(tmp_path / "b", epochs=1, schedule="none")
    m2, h2 = run(tmp_path / "b", epochs=3, schedule="none")
    assert_same(m1, h1, m2, h2)


def test_cpu_amp_trains_in_bf16_and_resumes_exactly(tmp_path):
    """cpu_amp: the forward pass runs under bfloat16 autocast where the CPU has native bf16 (float32
    elsewhere), the loss stays finite, and a resumed run still equals an uninterrupted one."""
    seen = []

    def recording(model, batch, device):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return loss_fn(model, batch, device)

    torch.manual_seed(0)
    loader = epoch_loader(TensorDataset(*make_data()), batch_size=4, seed=3)
    h0 = fit(Net(), loader, recording, evaluate, tmp_path / "a", {"width": 4}, 2, lr=3e-3, cpu_amp=True, progress=False)
    assert seen and all(s == (inference_dtype("cpu") == torch.bfloat16) for s in seen)
    seen.clear()
    fit(Net(), loader, recording, evaluate, tmp_path / "b", {"width": 4}, 2, lr=3e-3, progress=False)
    assert seen and not any(seen)  # off by default
    assert all(r["train_loss"] == r["train_loss"] for r in h0)
    m1, h1 = run(tmp_path / "c", epochs=3, cpu_amp=True)
    run(tmp_path / "d", epochs=3, cpu_amp=True, stop_after=1)
    m2, h2 = run(tmp_path / "d", epochs=3, cpu_amp=True)
    assert_same(m1, h1, m2, h2)


def test_best_checkpoint_holds_best_epoch(tmp_path):
    scores = iter([0.3, 0.7, 0.5, 0.7])
    snapshots = {}

    def scripted(model, device):
        epoch = len(snapshots) + 1
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"val_iou": next(scores)}

    torch.manual_seed(0)
    model = Net()
    loader = epoch_loader(TensorDataset(*make_data()), batch_size=4)
    hist = fit(model, loader, loss_fn, scripted, tmp_path, {"width": 4}, 4, progress=False)
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and best["best"] == {"monitor": "val_iou", "value": 0.7, "epoch": 2}
    assert read_checkpoint(tmp_path / "last.pt")["best"]["epoch"] == 2  # a tie is not an improvement
    for k, v in best["model"].items():
        assert torch.equal(v, snapshots[2][k]), k
    assert [r["val_iou"] for r in hist] == [0.3, 0.7, 0.5, 0.7]
    # loading helpers
    m2, cfg = load_checkpoint(tmp_path / "best.pt", Net())
    assert cfg == {"width": 4} and torch.equal(m2.state_dict()["unet.head.weight"], snapshots[2]["unet.head.weight"])
    state, cfg = load_checkpoint(tmp_path / "best.pt")
    assert isinstance(state, dict) and "unet.head.bias" in state


def test_monitor_min(tmp_path):
    torch.manual_seed(0)
    loader = epoch_loader(TensorDataset(*make_data()), batch_size=4)
    hist = fit(Net(), loader, loss_fn, None, tmp_path, {}, 3, monitor="train_loss", mode="min", progress=False)
    best = read_checkpoint(tmp_path / "best.pt")["best"]
    assert best["value"] == min(r["train_loss"] for r in hist)


def test_checkpoints_atomic_and_logs(straight):
    out, _, hist = straight
    events = ["tensorboard"] if importlib.util.find_spec("tensorboard") else []  # its scalars, when installed
    assert sorted(os.listdir(out)) == [".lock", "best.pt", "last.pt", "log.csv", "log.json", *events]
    assert (out / ".lock").read_text() == ""  # released: nobody holds it
    ck = read_checkpoint(out / "last.pt")
    assert set(ck) >= {"model", "optimizer", "scheduler", "scaler", "epoch", "config", "history", "best", "rng"}
    assert set(ck["rng"]) == {"torch", "numpy", "python", "cuda"}
    assert ck["config"] == {"width": 4} and ck["epoch"] == 4
    best = read_checkpoint(out / "best.pt")  # for evaluation: the weights and what they are, no optimizer state
    assert set(best) == set(ck) - {"optimizer", "scheduler", "scaler", "rng"}
    assert best["config"] == ck["config"] and best["model"].keys() == ck["model"].keys()
    lines = (out / "log.csv").read_text().splitlines()
    assert lines[0].split(",") == ["epoch", "train_loss", "lr", "val_iou", "seconds"]
    assert len(lines) == 5
    rows = json.loads((out / "log.json").read_text())
    assert len(rows[0]["per_class"]) == C and strip_time(rows) == strip_time(hist)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    run(tmp_path, epochs=2, stop_after=1)
    real_save = torch.save

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run(tmp_path, epochs=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(CheckpointError, match=str(tmp_path / "last.pt")):
        run(tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "last.pt", Net())
    # resume=False starts over instead
    run(tmp_path, epochs=1, resume=False)
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_config_mismatch_refuses(tmp_path):
    run(tmp_path, epochs=2, stop_after=1, config={"width": 4, "data": {"n": 12}, "num_workers": 0})
    with pytest.raises(CheckpointError) as e:
        run(tmp_path, epochs=2, config={"width": 8, "data": {"n": 12}, "num_workers": 0})
    assert str(tmp_path / "last.pt") in str(e.value) and "width" in str(e.value)
    with pytest.raises(CheckpointError, match=r"data\.n"):
        run(tmp_path, epochs=2, config={"width": 4, "data": {"n": 99}})
    with pytest.raises(CheckpointError, match=r"fit\.lr"):
        run(tmp_path, epochs=2, config={"width": 4, "data": {"n": 12}}, lr=1e-2)
    with pytest.raises(CheckpointError, match=r"fit\.epochs"):  # the OneCycle schedule spans the epochs
        run(tmp_path, epochs=3, config={"width": 4, "data": {"n": 12}})
    # keys that do not change the experiment may differ
    _, hist = run(tmp_path, epochs=2, config={"width": 4, "data": {"n": 12}, "num_workers": 2})
    assert len(hist) == 2


def test_epoch_sampler():
    s = EpochSampler(10, seed=1)
    s.set_epoch(1)
    a = list(s)
    s.set_epoch(2)
    b = list(s)
    s.set_epoch(1)
    assert list(s) == a and a != b and sorted(a) == list(range(10))
    parts = [list(EpochSampler(10, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(p) == 4 for p in parts) and set(sum(parts, [])) == set(range(10))


def test_augment_joint_and_deterministic():
    from lib.segmentation.augment import flip_masks

    img = torch.rand(3, 8, 12)
    mask = torch.arange(96).reshape(8, 12)
    img[0] = mask / 96.0  # the image's red channel encodes the mask
    aug = Augment(brightness=0.0, contrast=0.0)
    flips = 0
    for s in range(20):
        a, m = aug(img, mask, torch.Generator().manual_seed(s))
        assert torch.allclose(a[0], m / 96.0)  # image and mask transformed together
        flips += int(not torch.equal(m, mask))
        b, m2 = aug(img, mask, torch.Generator().manual_seed(s))
        assert torch.equal(a, b) and torch.equal(m, m2)
    assert 3 < flips < 17
    a, m = Augment(hflip=0.0)(img, mask, torch.Generator().manual_seed(0))
    assert torch.equal(m, mask) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert (a - img).abs().max() < 0.25  # light jitter only
    stack = torch.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert torch.equal(flip_masks(stack, p=1.0), stack.flip(-1))
    assert torch.equal(flip_masks(stack, p=0.0), stack)
    assert (flip_masks(stack.numpy(), p=1.0) == stack.flip(-1).numpy()).all()


def test_resume_refuses_a_checkpoint_made_on_other_data(tmp_path):
    """The same config on other data (another packed split, labels of another U-Net) is not resumed."""
    run(tmp_path, epochs=2, stop_after=1, data={"train": "aaaa", "val": "vvvv"})
    assert read_checkpoint(tmp_path / "last.pt")["data"] == {"train": "aaaa", "val": "vvvv"}
    with pytest.raises(CheckpointError, match="made on other data .*differing: train"):
        run(tmp_path, epochs=2, data={"train": "bbbb", "val": "vvvv"})
    _, hist = run(tmp_path, epochs=2, data={"train": "aaaa", "val": "vvvv"})  # the same data: resumed
    assert len(hist) == 2


def test_unet_training_records_its_data_and_refuses_other_data(tiny_root, tmp_path):
    from lib.data.source import DataSource
    from lib.segmentation.training import train_unet
    from tests.unit.data.test_dataset import _break

    source = DataSource(str(tiny_root), max_bad_fraction=1.0)  # the broken video below is 1 of 2 val videos
    small = dict(width=4, depth=2, epochs=2, batch_size=2, steps_per_epoch=1, eval_videos=1, eval_frames=1)
    train_unet(source, tmp_path, progress=False, device="cpu", crop=[48, 64], **small)
    ck = read_checkpoint(tmp_path / "last.pt")
    assert set(ck["data"]) == {"train", "val"}
    _break(tiny_root, "short_mask")  # the val data change
    with pytest.raises(CheckpointError, match="other data .*differing: val"):
        train_unet(source, tmp_path, progress=False, device="cpu", crop=[48, 64], **{**small, "epochs": 2})


# ------------------------------------------------------------------------------------ losses that are not finite
@pytest.fixture
def scaler_on_cpu(monkeypatch):
    """The CUDA path's GradScaler on the CPU (torch.amp.GradScaler("cpu") works with float32 since torch 2.3):
    its scale, skipped steps and state in the checkpoint, without a GPU."""
    monkeypatch.setattr(trainer, "_SCALER_ON_CPU", True)


def test_gradient_scaler_on_cpu_trains_exactly_as_without(straight, tmp_path, scaler_on_cpu):
    """The scale is a power of 2, so scaling and unscaling float32 gradients is exact: with the scaler the same
    weights and losses as without, also through a resume (the scaler's state is in the checkpoint). The checks
    on skipped steps only observe."""
    _, m1, h1 = straight
    run(tmp_path, stop_after=2)
    assert read_checkpoint(tmp_path / "last.pt")["scaler"]["scale"] == 65536.0
    m2, h2 = run(tmp_path)
    assert_same(m1, h1, m2, h2)


def test_nan_loss_under_the_gradient_scaler_stops_at_the_epoch_end(tmp_path, scaler_on_cpu):
    """Under amp the loss is not checked step by step (the scaler skips the steps it overflows); one nan step
    makes the epoch's mean loss nan, and that stops the run instead of logging train_loss=nan and going on."""
    calls = {"n": 0}

    def nan_once(model, batch, device):
        calls["n"] += 1
        loss = loss_fn(model, batch, device)
        return loss * float("nan") if calls["n"] == 2 else loss

    with pytest.raises(FloatingPointError) as e:
        _run_with(tmp_path, nan_once)
    assert str(e.value).startswith(f"the mean train loss of epoch 1 is nan in the run in {tmp_path}:")
    assert "Try a lower lr, or amp=False (float32)" in str(e.value)
    assert calls["n"] == 3 and not (tmp_path / "last.pt").exists()  # the whole epoch ran; nothing was saved


def test_scaler_skipping_every_step_stops_after_max_skipped_steps(tmp_path, scaler_on_cpu):
    """Gradients that overflow at every scale (finite loss, so the epoch means stay finite): the scaler skips
    every step and the weights never change; fit stops after ``max_skipped_steps`` in a row. Skipped steps that
    end (as at the start of every float16 run, while the scaler lowers its scale) only reset the count."""
    calls = {"n": 0}

    def inf_grads(first_n):
        def lf(model, batch, device):
            calls["n"] += 1
            x, y = batch
            out = model(x.to(device))
            if calls["n"] <= first_n:
                out.register_hook(lambda g: torch.full_like(g, math.inf))
            return F.cross_entropy(out, y.to(device))

        return lf

    torch.manual_seed(0)
    model, loader = Net(), epoch_loader(TensorDataset(*make_data()), batch_size=4, seed=3)
    start = {k: v.clone() for k, v in model.named_parameters()}
    kw = dict(progress=False, max_skipped_steps=4)
    fit(model, loader, inf_grads(99), evaluate, tmp_path / "a", {}, 4, stop_after=1, **kw)
    assert read_checkpoint(tmp_path / "a" / "last.pt")["skipped"] == 3  # epoch 1's mean loss was finite
    with pytest.raises(FloatingPointError) as e:  # resumed (in chunks): 3 steps an epoch, the 4th is epoch 2's first
        fit(model, loader, inf_grads(99), evaluate, tmp_path / "a", {}, 4, **kw)
    said = "the gradient scaler skipped the last 4 optimizer steps in a row (epoch 2 step 0 of the run in"
    assert str(e.value).startswith(f"{said} {tmp_path / 'a'}):")
    assert "at every loss scale down to 4096" in str(e.value) and "amp=False (float32)" in str(e.value)
    assert all(torch.equal(v, start[k]) for k, v in model.named_parameters())
    calls["n"] = 0
    hist = fit(Net(), loader, inf_grads(3), None, tmp_path / "b", {}, 2, monitor="train_loss", mode="min", **kw)
    assert len(hist) == 2 and read_checkpoint(tmp_path / "b" / "last.pt")["scaler"]["scale"] == 65536 / 8
    with pytest.raises(ValueError, match="max_skipped_steps must be a positive int, not 0"):
        fit(Net(), loader, loss_fn, None, tmp_path / "c", {}, 1, monitor="train_loss", max_skipped_steps=0)


def test_nan_loss_without_scaler_stops_at_the_step(tmp_path):
    calls = {"n": 0}

    def nan_at_5(model, batch, device):
        calls["n"] += 1
        return loss_fn(model, batch, device) * (float("nan") if calls["n"] == 5 else 1.0)

    with pytest.raises(FloatingPointError) as e:
        _run_with(tmp_path, nan_at_5)
    assert str(e.value) == f"loss is nan at epoch 2 step 1 of the run in {tmp_path}; try a lower lr (or grad_clip)"
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 1


# ------------------------------------------------------------------------------------ the training folder
def test_a_fresh_start_removes_the_previous_runs_files(tmp_path):
    """resume=False (or no last.pt) starts over: the previous run's best.pt, last.pt and logs are gone before
    training, so a crash in the new run's first epoch, or a metric that never improves, leaves no stale best.pt
    to be read as the new run's."""
    run(tmp_path, epochs=1)
    assert all((tmp_path / name).exists() for name in RUN_FILES)

    def crash(model, batch, device):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            Net(),
            epoch_loader(TensorDataset(*make_data()), batch_size=4),
            crash,
            evaluate,
            tmp_path,
            {},
            1,
            resume=False,
            progress=False,
        )
    assert not [name for name in RUN_FILES if (tmp_path / name).exists()]

    run(tmp_path / "b", epochs=1)
    (tmp_path / "b" / "last.pt").unlink()  # nothing to resume (resume=True): a fresh start too

    def nan_metric(model, device):  # never an improvement: this run writes no best.pt
        return {"val_iou": float("nan")}

    loader = epoch_loader(TensorDataset(*make_data()), batch_size=4)
    fit(Net(), loader, loss_fn, nan_metric, tmp_path / "b", {}, 1, progress=False)
    assert not (tmp_path / "b" / "best.pt").exists() and (tmp_path / "b" / "last.pt").exists()


def test_a_second_process_on_the_training_folder_is_refused(tmp_path):
    """Two runs on one folder would both resume from and overwrite last.pt: while another process (a real one)
    holds the folder's lock, fit raises lock.Busy at once, naming that process, before training anything."""
    holder = (
        "import sys, time\n"
        "from lib.common import lock\n"
        "with lock.hold(sys.argv[1], 'x'):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / ".lock")], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline() == "ready\n"
        calls = []
        t0 = time.time()
        with pytest.raises(lock.Busy) as e:
            _run_with(tmp_path, lambda *a: calls.append(1))
        assert time.time() - t0 < 10 and not calls and not (tmp_path / "last.pt").exists()
        assert str(e.value).startswith(f"the training folder {tmp_path} is in use by process {p.pid} on ")
    finally:
        p.kill()
        p.wait()
    _, hist = run(tmp_path, epochs=1)  # the holder is gone (killed): its lock went with it
    assert len(hist) == 1


def test_torch_floor_is_2_6():
    """torch.load(weights_only=True), which reads every checkpoint (lib/common/checkpoint.py), can be bypassed
    in torch 2.5.1 and older (CVE-2025-32434): pyproject.toml requires 2.6 or newer."""
    text = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'^\s*"torch>=([0-9.]+)"', text, re.M)
    assert floor, "no torch>=... requirement in pyproject.toml"
    assert tuple(int(x) for x in floor.group(1).split(".")[:2]) >= (2, 6)
