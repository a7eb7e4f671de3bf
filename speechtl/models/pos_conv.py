"""wav2vec2's positional convolution by FFT while training on CPU.

The positional convolution (hidden → hidden, a kernel of 64 or 128 frames, 16 groups) is ~4 % of a training step's
arithmetic but ran at a fraction of the matmul rate on CPU: forward + backward of the shipped model's layer on a
60-s batch took ~145 ms on one thread of the AMD EPYC here, whatever the utterance lengths — about a fifth of a step
(RESULTS.md, "The training loop against the Hugging Face Trainer recipe"). As a product in the frequency domain it
is 3-4x faster at every length: :func:`grouped_conv1d_fft` computes ``F.conv1d`` (zero padding, stride 1, groups)
in fp32 with transforms of at most :data:`FFT_POINTS` points (longer inputs are cut into overlapping segments:
overlap-save), so its cost per frame does not grow with the length.

:func:`use_fft_pos_conv` makes a model's positional convolutions take that path while they train on CPU (module in
training mode, gradients on). In eval mode, without gradients and on other devices the layer runs as before —
every transcript and evaluation stays exactly what it was; training sees fp32 products where bf16 autocast ran the
convolution in bf16 (closer to fp32, not equal to the old bf16 output). The layer's weights are untouched
(checkpoints unchanged). Layers with a batch norm before the convolution (HuBERT's ``conv_pos_batch_norm``) and
other positional embeddings (data2vec's stack of small convolutions) are left alone.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len

__all__ = ["FFT_POINTS", "fft_size", "grouped_conv1d_fft", "use_fft_pos_conv"]

FFT_POINTS = 256  # the longest transform for kernels up to 64 frames (see _points): 193 outputs per segment


def fft_size(n: int) -> int:
    """The smallest 2^a·3^b·5^c ≥ ``n`` (sizes pocketfft, torch's CPU FFT, transforms fast)."""
    return next_fast_len(n, real=True)


def _points(kernel: int, needed: int) -> int:
    """Transform size: one transform when ``needed`` (outputs + kernel − 1) points fit in the segment size, else
    segments of ``max(FFT_POINTS, 4 · kernel)`` points (at least three quarters of each are outputs)."""
    segment = fft_size(max(FFT_POINTS, 4 * kernel))
    return fft_size(needed) if needed <= segment else segment


def grouped_conv1d_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int,
                       padding: int) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, padding=padding, groups=groups)`` (stride 1, zero padding) in fp32 by FFT.

    x (B, C, T), weight (O, C/groups, K) → (B, O, T + 2·padding − K + 1), fp32 whatever the inputs' dtype."""
    with torch.autocast(x.device.type, enabled=False):
        x, weight = x.float(), weight.float()
        (b, c, t), (o, cg, k) = x.shape, weight.shape
        og, t_out = o // groups, t + 2 * padding - k + 1
        n = _points(k, t_out + k - 1)
        per = n - k + 1  # valid outputs per segment
        segments = -(-t_out // per)
        x = F.pad(x, (padding, segments * per + k - 1 - t - padding))  # (B, C, segments · per + K − 1)
        xf = torch.fft.rfft(x.unfold(-1, n, per), n=n)  # (B, C, S, F); cross-correlation = convolution with w flipped
        wf = torch.fft.rfft(weight.flip(-1), n=n)  # (O, C/g, F)
        f = xf.shape[-1]
        xg = xf.reshape(b, groups, cg, segments, f).permute(1, 4, 0, 3, 2).reshape(groups, f, b * segments, cg)
        wg = wf.reshape(groups, og, cg, f).permute(0, 3, 2, 1)  # (G, F, C/g, O/g)
        yf = torch.matmul(xg, wg).reshape(groups, f, b, segments, og).permute(2, 0, 4, 3, 1).reshape(b, o, segments, f)
        y = torch.fft.irfft(yf, n=n)[..., k - 1:].reshape(b, o, segments * per)[:, :, :t_out]
        return y if bias is None else y + bias.float()[:, None]


def _fft_applies(module, hidden_states: torch.Tensor) -> bool:
    return module.training and torch.is_grad_enabled() and hidden_states.device.type == "cpu"


def _forward(module, hidden_states: torch.Tensor) -> torch.Tensor:
    """The positional convolution's forward (B, T, D) → (B, T, D), by FFT where :func:`_fft_applies`."""
    if not _fft_applies(module, hidden_states):
        return module.forward_before_fft(module, hidden_states)
    conv = module.conv
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden_states.dtype
    y = grouped_conv1d_fft(hidden_states.transpose(1, 2), conv.weight, conv.bias, conv.groups, conv.padding[0])
    return module.activation(module.padding(y)).transpose(1, 2).to(dtype)


def _swappable(module) -> bool:
    conv = getattr(module, "conv", None)
    return type(module).__name__.endswith("PositionalConvEmbedding") and isinstance(conv, torch.nn.Conv1d) \
        and conv.stride == (1,) and conv.dilation == (1,) and conv.padding_mode == "zeros" \
        and isinstance(conv.padding, tuple) and hasattr(module, "padding") and hasattr(module, "activation") \
        and getattr(module, "batch_norm", None) is None


def use_fft_pos_conv(model: torch.nn.Module) -> torch.nn.Module:
    """Route every plain positional convolution of ``model`` through :func:`grouped_conv1d_fft` while it trains on
    CPU (see the module doc); the forward it had (the class's, or :mod:`speechtl.models.numerics`' fp32 guard)
    serves everything else. Idempotent; returns ``model``."""
    for module in model.modules():
        bound = module.__dict__.get("forward")
        if not _swappable(module) or getattr(bound, "__func__", None) is _forward:
            continue
        module.forward_before_fft = bound.__func__ if bound is not None else type(module).forward
        module.forward = types.MethodType(_forward, module)  # deepcopy rebinds it to the copy
    return model
