"""Micro-batches and gradient accumulation (fit's ``micro_batch``), the micro-batch chooser
(lib/common/memory.py) and the out-of-memory message; tiny models on the CPU.

Tolerances: without BatchNorm, accumulating micro-batches gives the weights of whole batches up to float32
rounding (the same gradients summed in another order): 1e-5 absolute + 1e-4 relative after a few Adam steps.
With BatchNorm (the U-Net) each piece is normalised by its own statistics, so the runs differ by more: the
U-Net case is checked to stay within 5e-2 absolute of the whole-batch weights (and to differ, which shows the
test would see a broken accumulation).
"""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from lib.common import memory
from lib.common.trainer import OutOfMemory, _micro_batches, epoch_loader, fit
from lib.forecasting.training import OneStep, ScheduledSampling
from lib.segmentation.unet import UNet

ROOT = Path(__file__).resolve().parents[3]
TIGHT = dict(atol=1e-5, rtol=1e-4)
UNET_ATOL = 5e-2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_micro_batches_split_every_tensor_and_weigh_by_size():
    x, y = torch.arange(10), torch.arange(10) * 2
    pieces = _micro_batches((x, y, "tag"), 4)
    assert [len(p[0]) for p, _ in pieces] == [4, 3, 3]  # balanced: ceil(10/4) = 3 pieces
    assert math.isclose(sum(s for _, s in pieces), 1.0)
    assert torch.equal(torch.cat([p[1] for p, _ in pieces]), y) and all(p[2] == "tag" for p, _ in pieces)
    d = _micro_batches({"a": x, "b": [y, y]}, 5)
    assert [len(p["b"][1]) for p, _ in d] == [5, 5]
    assert _micro_batches((x, y), None) == [((x, y), 1.0)] and _micro_batches((x, y), 10) == [((x, y), 1.0)]


# ------------------------------------------------------------------------------------ accumulation
def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n, 8, 12), generator=g)
    x = F.one_hot(y, 4).permute(0, 3, 1, 2).float() + 0.3 * torch.randn(n, 4, 8, 12, generator=g)
    return x[:, :3], y


class NoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.GELU(), nn.Conv2d(8, 4, 1))

    def forward(self, x):
        return self.net(x)


def seg_loss(model, batch, device):
    x, y = (t.to(device) for t in batch)
    return F.cross_entropy(model(x), y)


def train(make_model, loss_fn, data, tmp, micro_batch, batch=8, epochs=2, **kw):
    torch.manual_seed(0)
    model = make_model()
    loader = epoch_loader(TensorDataset(*data), batch_size=batch, seed=1, drop_last=True)
    hist = fit(
        model,
        loader,
        loss_fn,
        None,
        tmp,
        {"t": 1},
        epochs,
        lr=3e-3,
        monitor="train_loss",
        mode="min",
        progress=False,
        micro_batch=micro_batch,
        **kw,
    )
    return model.state_dict(), hist


def assert_close_states(a, b, **tol):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], **tol, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("micro_batch", [1, 3])
def test_accumulation_equals_whole_batches_without_batchnorm(tmp_path, micro_batch):
    whole, h1 = train(NoBN, seg_loss, images(), tmp_path / "whole", None)
    micro, h2 = train(NoBN, seg_loss, images(), tmp_path / "micro", micro_batch)
    assert_close_states(whole, micro, **TIGHT)
    assert len(h1) == len(h2) == 2  # both trained their 2 epochs (zip below would stop at the shorter)
    for a, b in zip(h1, h2):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5


def test_accumulation_with_the_unet_batchnorm_stays_close(tmp_path):
    """BatchNorm normalises each piece by its own statistics: close to whole batches, not equal."""
    unet = lambda: UNet(in_ch=3, num_classes=4, width=4, depth=2, norm="batch")
    whole, _ = train(unet, seg_loss, images(), tmp_path / "whole", None)
    micro, _ = train(unet, seg_loss, images(), tmp_path / "micro", 2)
    weights = [k for k in whole if "running_" not in k and "num_batches" not in k]
    diff = max((whole[k] - micro[k]).abs().max().item() for k in weights)
    print(f"U-Net, batch 8 in micro-batches of 2 vs whole: largest weight difference {diff:.2e}")
    assert 1e-6 < diff < UNET_ATOL


class MaskNet(nn.Module):
    """Masks (B, 11, H, W) -> next-frame logits, without BatchNorm (the exact case for SimVP's losses)."""

    in_len = 11

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(4, 2)
        self.conv = nn.Conv2d(22, 4, 3, padding=1)

    def forward(self, masks):
        b, t, h, w = masks.shape
        return self.conv(self.embed(masks.long()).permute(0, 1, 4, 2, 3).reshape(b, t * 2, h, w))


def windows(n=16, extra=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    clips = torch.randint(0, 4, (n, 11 + extra, 6, 8), generator=g)
    return clips[:, :11], clips[:, 11:]


def test_one_step_flips_are_drawn_once_per_batch(tmp_path):
    """OneStep.prepare flips the whole batch, then fit splits it: the same flips as whole batches."""
    whole, _ = train(MaskNet, OneStep(flip=0.5), windows(), tmp_path / "whole", None)
    micro, _ = train(MaskNet, OneStep(flip=0.5), windows(), tmp_path / "micro", 3)
    assert_close_states(whole, micro, **TIGHT)


def test_scheduled_sampling_rollouts_shared_by_micro_batches(tmp_path):
    """Rolled-out windows (scheduled sampling, p close to 1 late in training): one draw per batch."""
    ss = lambda: ScheduledSampling(max_rollout=3, p_rate=50.0, flip=0.5)
    whole, _ = train(MaskNet, ss(), windows(extra=3), tmp_path / "whole", None, epochs=3)
    micro, _ = train(MaskNet, ss(), windows(extra=3), tmp_path / "micro", 2, epochs=3)
    assert_close_states(whole, micro, **TIGHT)


# ------------------------------------------------------------------------------------ out of memory
@pytest.mark.parametrize(
    "err",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
    ],
    ids=["cuda", "cpu"],
)
def test_out_of_memory_names_the_setting_to_lower(tmp_path, err):
    def oom(model, batch, device):
        raise err

    # caught as a MemoryError (what a caller catches), and it is fit's own OutOfMemory, not torch's error passed on
    with pytest.raises(MemoryError, match=r"micro_batch lower \(e.g. micro_batch = 2\)") as e:
        train(NoBN, oom, images(), tmp_path, 4)
    assert type(e.value) is OutOfMemory
    said = str(err).splitlines()[0]
    assert "a training step of 4 samples at once (batch_size 8, micro_batch 4)" in str(e.value)
    assert str(e.value).endswith(f"torch said: {said}")  # torch's own message, CUDA's or the CPU allocator's
    with pytest.raises(MemoryError, match="one sample at a time does not fit") as one:
        train(NoBN, oom, images(), tmp_path / "one", 1)
    assert type(one.value) is OutOfMemory
    assert "a training step of 1 samples at once (batch_size 8, micro_batch 1)" in str(one.value)
    assert str(one.value).endswith(f"torch said: {said}")


def test_other_errors_pass_through(tmp_path):
    def bad(model, batch, device):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        train(NoBN, bad, images(), tmp_path, None)


# ------------------------------------------------------------------------------------ the chooser
def loader_of(data, batch=8):
    return epoch_loader(TensorDataset(*data), batch_size=batch, seed=1)


def test_sample_cost_counts_saved_bytes_and_restores_state():
    torch.manual_seed(0)
    model = UNet(in_ch=3, num_classes=4, width=4, depth=2, norm="batch")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    x, y = images(1)
    per_sample, saved = memory.sample_cost(model, seg_loss, (x, y), "cpu")
    # at least the input and the first activations are kept: > 3 float32 feature maps of 4 x 8 x 12
    assert saved > 3 * 4 * 8 * 12 * 4 and per_sample == pytest.approx(memory.PEAK_OVER_SAVED["cpu"] * saved)
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm statistics untouched
    # twice the pixels, twice the saved activations (within the few constant-size tensors)
    x2, y2 = F.interpolate(x, scale_factor=2), F.interpolate(y[:, None].float(), scale_factor=2)[:, 0].long()
    saved2 = memory.sample_cost(model, seg_loss, (x2, y2), "cpu")[1]
    assert 3.5 < saved2 / saved < 4.5


def fake_memory(monkeypatch, free):
    monkeypatch.setattr(memory, "device_memory", lambda device: (free, free))


def test_choose_micro_batch_fits_the_free_memory(monkeypatch):
    torch.manual_seed(0)
    model, loader = NoBN(), loader_of(images())
    per_sample, _ = memory.sample_cost(model, seg_loss, next(iter(loader_of(images(1), 1))), "cpu")
    fixed = memory.optimizer_bytes(model)
    for n in (1, 3, 8):  # exactly enough for n samples after the fraction, reserve and optimizer state
        free = (memory.RESERVE["cpu"] + fixed + n * per_sample + 1) / memory.FRACTION["cpu"]
        fake_memory(monkeypatch, free)
        mb, info = memory.choose_micro_batch(None, loader, model, seg_loss, "cpu", progress=False)
        assert mb == n and info["accumulation_steps"] == math.ceil(8 / n)
        assert info["fits"] == info["fits_here"] == n  # one process: nothing to agree with
    fake_memory(monkeypatch, 1e15)
    assert memory.choose_micro_batch(None, loader, model, seg_loss, "cpu", progress=False)[0] == 8
    fake_memory(monkeypatch, 1.0)  # nothing fits: one at a time (and fit reports it if that fails)
    assert memory.choose_micro_batch(None, loader, model, seg_loss, "cpu", progress=False)[0] == 1
    assert memory.choose_micro_batch(2, loader, model, seg_loss, "cpu", progress=False)[0] == 2
    assert memory.choose_micro_batch(64, loader, model, seg_loss, "cpu", progress=False)[0] == 8
    for bad in (0, -1, 2.5, "4", True):
        with pytest.raises(ValueError, match="micro_batch"):
            memory.choose_micro_batch(bad, loader, model, seg_loss, "cpu", progress=False)


def test_device_memory_on_cpu_is_plausible(monkeypatch):
    free, total = memory.device_memory("cpu")
    assert 0 < free <= total
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: processes of one machine share it
    assert memory.device_memory("cpu")[0] <= free // 2 * 1.2


BENCH = ROOT / "results" / "memory_cpu.json"
T4 = 15_637_086_208  # bytes torch.cuda.mem_get_info reports as total on a 16 GB T4
CUDA_CONTEXT = 0.5 * memory.GiB


@pytest.mark.skipif(
    not BENCH.is_file(), reason="results/memory_cpu.json not written yet (scripts/bench/bench_memory.py)"
)
@pytest.mark.parametrize("step", ["unet", "simvp", "finetune"])
def test_a_16gb_gpu_gets_a_micro_batch_that_fits(monkeypatch, step):
    """The full profile on a T4: free memory faked to what a T4 has after the CUDA context; the measured cost
    of a sample with AMP (results/memory_cpu.json, bfloat16 on the CPU standing in for float16)."""
    bench = json.loads(BENCH.read_text())
    row = bench["steps"][step]
    per_sample, fixed = row["amp"]["per_sample_bytes"], row["optimizer_bytes"]
    free = T4 - CUDA_CONTEXT
    mb = memory.fit_micro_batch(row["batch_size"], per_sample, free, fixed, "cuda")
    assert 1 <= mb <= row["batch_size"]
    assert mb * per_sample + fixed + row["amp"]["fixed_bytes"] <= 0.95 * free
    if step == "simvp":  # the profile's 16 windows at once do not fit a T4: accumulation is what makes it run
        assert mb < row["batch_size"]
    # the same through choose_micro_batch with the free memory faked (a tiny stand-in model, cost patched)
    fake_memory(monkeypatch, free)
    monkeypatch.setattr(memory, "sample_cost", lambda *a, **k: (per_sample, per_sample / 1.3))
    monkeypatch.setattr(memory, "optimizer_bytes", lambda m: fixed)
    loader = loader_of(images(), batch=row["batch_size"])
    device = torch.device("cpu")
    monkeypatch.setitem(memory.FRACTION, "cpu", memory.FRACTION["cuda"])
    assert memory.choose_micro_batch(None, loader, NoBN(), seg_loss, device, progress=False)[0] == mb


def test_train_unet_resumes_with_another_micro_batch(tiny_root, tmp_path):
    """micro_batch is not part of the experiment: a run resumes on a device where another one fits."""
    from lib.segmentation.training import train_unet

    kw = dict(width=4, depth=2, batch_size=4, steps_per_epoch=2, eval_videos=1, eval_frames=2, progress=False)
    _, h1, c1 = train_unet(tiny_root, tmp_path, device="cpu", epochs=1, micro_batch=None, **kw)
    assert c1["memory"]["micro_batch"] == 4 and "micro_batch" not in {k for k in c1 if k != "memory"}
    _, h2, c2 = train_unet(tiny_root, tmp_path, device="cpu", epochs=1, micro_batch=1, **kw)
    assert c2["memory"]["micro_batch"] == 1 and c2["memory"]["accumulation_steps"] == 4
    assert h2 == h1  # resumed: nothing left to train, same history, no config error
