"""A guard against a wrong bf16 kernel: grouped 1-D convolutions with few channels per group on CPUs with AMX.

On Intel CPUs with AMX (oneDNN 3.12, torch 2.14), a grouped ``Conv1d`` with ≤ 8 channels per group and a long kernel
returns garbage under bf16 autocast (relative error ~1, not ~0.003): wav2vec2's positional convolution of small models
(hidden 32/64 with 4/16 groups) is such a layer, so their bf16 outputs are wrong there and right on other CPUs. Models
whose layer passes a one-off numerical check (hidden 256 / 16 groups, wav2vec2-base 768 / 16) are left untouched; a
failing layer runs in fp32 inside autocast — correct everywhere, a little slower.
"""

from __future__ import annotations

import functools
import types

import torch
import torch.nn.functional as F

__all__ = ["bf16_grouped_conv_ok", "protect_pos_conv"]

MAX_REL_ERROR = 0.05  # bf16 rounding alone gives ~0.003


@functools.lru_cache(maxsize=None)
def bf16_grouped_conv_ok(channels: int, kernel: int, groups: int) -> bool:
    """Whether this CPU's bf16 autocast computes such a grouped convolution correctly (own generator: the global
    RNG is not touched, so seeded runs are unaffected)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, 4 * kernel, generator=g)
    w = torch.randn(channels, channels // groups, kernel, generator=g)
    with torch.no_grad():
        ref = F.conv1d(x, w, padding=kernel // 2, groups=groups)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = F.conv1d(x, w, padding=kernel // 2, groups=groups)
    return bool(((y.float() - ref).norm() / ref.norm()) < MAX_REL_ERROR)


def protect_pos_conv(model: torch.nn.Module) -> torch.nn.Module:
    """Run every positional convolution that fails :func:`bf16_grouped_conv_ok` in fp32 under CPU autocast."""
    for module in model.modules():
        conv = getattr(module, "conv", None)
        if type(module).__name__.endswith("PositionalConvEmbedding") and isinstance(conv, torch.nn.Conv1d) \
                and conv.groups > 1 and not bf16_grouped_conv_ok(conv.in_channels, conv.kernel_size[0], conv.groups):
            module.forward = types.MethodType(_forward_fp32_on_cpu_autocast, module)  # deepcopy rebinds it
    return model


def _forward_fp32_on_cpu_autocast(module, hidden_states):
    if hidden_states.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return type(module).forward(module, hidden_states.float())
    return type(module).forward(module, hidden_states)
