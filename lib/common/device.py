"""Devices and mixed precision: the default device (``auto_device``) and the autocast contexts that training
(``train_autocast``, entered by ``lib.common.trainer.fit``) and inference (``inference_autocast``, e.g.
``lib.segmentation.label.segment``) run under."""

import torch


def auto_device(device=None):
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def inference_dtype(device):
    """The mixed-precision dtype for inference on ``device``: float16 on CUDA; bfloat16 on a CPU with native
    bf16 (AVX512-BF16 or AMX; `scripts/bench/bench_unet.py` measures the gain, 1.8x for the `cpu` U-Net on this
    project's 2-core machine); None (float32) elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def inference_autocast(device, enabled=True):
    """``torch.autocast`` in ``inference_dtype(device)``; a no-op where there is none or when not ``enabled``."""
    device = torch.device(device)
    dtype = inference_dtype(device)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=enabled and dtype is not None)


def train_autocast(device, amp=True, cpu_amp=False):
    """The autocast ``fit`` trains under: float16 on CUDA when ``amp``, bfloat16 on a CPU with native bf16
    when ``cpu_amp``, none otherwise."""
    device = torch.device(device)
    cuda = bool(amp) and device.type == "cuda"
    cpu = bool(cpu_amp) and device.type == "cpu" and inference_dtype(device) == torch.bfloat16
    return torch.autocast(device.type, dtype=torch.float16 if cuda else torch.bfloat16, enabled=cuda or cpu)
