"""Where and how models run: device, precision (bf16 autocast or fp32) and CPU threads."""

from __future__ import annotations

import contextlib

import torch

from speechtl.config import ConfigError
from speechtl.settings import PRECISIONS

__all__ = ["PRECISIONS", "pick_device", "resolve_precision", "autocast", "set_threads"]


def pick_device(device: str | None = None) -> torch.device:
    """``None``/"auto": CUDA when present, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" → bf16 where the device has bf16 kernels (CPU: 2–2.4× faster than fp32 for wav2vec2 here), else fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if _cpu_has_bf16() else "fp32"


def _cpu_has_bf16() -> bool:
    """oneDNN's own test for bf16 kernels (AVX-512 and up); without them bf16 autocast is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def autocast(device: torch.device, precision: str):
    """Autocast context for the model's forward pass (the CTC loss is always computed in fp32 outside it)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads (on a busy 2-core machine one thread can train faster than two)."""
    if threads:
        torch.set_num_threads(int(threads))
