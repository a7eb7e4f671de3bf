"""A faster inference forward of the convolutional feature encoder: (B, T, C) activations throughout, one dtype.

transformers' wav2vec2 feature encoder keeps its activations as (B, C, T) and transposes them around every layer
norm; under CPU bf16 autocast the layer norms also run in fp32, so each layer copies its activations several times
(layout and dtype), and on CPU those copies, not the convolutions, take most of the time (about two thirds of a
wav2vec2-base forward on a 30-s chunk). Here the activations stay (B, T, C): each convolution is one matrix
product of its input windows (a strided view: the frames of a window lie next to each other) with the reshaped
kernel, the layer norm reads that layout as it is, and everything stays in one dtype (bf16 or fp32). Same weights, same arithmetic up to rounding: in fp32 the output equals the
model's own to ~1e-6 (the test checks it), in bf16 it is as close to the fp32 output as transformers' bf16 path is.

Used by transcription in bf16 (``decode.forward_arrays(..., fast=True)``) and, in the variant for training
(:func:`fast_encode_features_for_training`: differentiable, each norm in fp32 as autocast runs it), by training in
bf16 (``adapt.train``): ~1.3x per step with the encoder trained (the source build), the same arithmetic as autocast
in another layout. Evaluation and every fp32 path keep transformers' own forward, so their figures do not move.

Shapes: B = batch, S = samples, C = channels, T = frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Wav2Vec2ForCTC

from speechtl.models.features import ctc_model

__all__ = ["fast_features_supported", "fast_encode_features", "fast_encode_features_for_training"]


def _layers_supported(encoder: torch.nn.Module) -> bool:
    for layer in getattr(encoder, "conv_layers", []):
        conv, norm = getattr(layer, "conv", None), getattr(layer, "layer_norm", None)
        if not isinstance(conv, torch.nn.Conv1d) or conv.groups != 1 or conv.dilation != (1,) \
                or conv.padding != (0,) or not hasattr(layer, "activation"):
            return False
        if norm is not None and not isinstance(norm, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
            return False
    return bool(getattr(encoder, "conv_layers", None))


def fast_features_supported(model) -> bool:
    """Whether :func:`fast_encode_features` computes this model's feature encoder and
    :func:`speechtl.models.features.ctc_logits_from_features` the rest: a plain ``Wav2Vec2ForCTC`` (or one inside
    a peft wrapper) without an output adapter, whose convolution layers are what transformers builds (conv,
    optional layer/group norm, activation)."""
    ctc = ctc_model(model)
    return type(ctc) is Wav2Vec2ForCTC and not ctc.config.add_adapter \
        and _layers_supported(ctc.wav2vec2.feature_extractor)


def _windows(h: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """The convolution's input windows of contiguous (B, T, C) activations as a (B, T', kernel * C) view: the
    ``kernel`` frames of window t lie next to each other in memory, starting at frame t * stride."""
    b, t, c = h.shape
    frames = (t - kernel) // stride + 1
    return h.as_strided((b, frames, kernel * c), (t * c, stride * c, 1))


def _norm(norm: torch.nn.Module | None, h: torch.Tensor) -> torch.Tensor:
    """``norm`` applied to (B, T, C) activations (a layer norm over C; a group norm over T per channel group)."""
    if norm is None:
        return h
    w, b = norm.weight.to(h.dtype), norm.bias.to(h.dtype)
    if isinstance(norm, torch.nn.LayerNorm):
        return F.layer_norm(h, norm.normalized_shape, w, b, norm.eps)
    return F.group_norm(h.transpose(1, 2), norm.num_groups, w, b, norm.eps).transpose(1, 2)


@torch.no_grad()
def fast_encode_features(model, input_values: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The feature encoder's output (B, T, C) for normalised audio (B, S), computed in ``dtype`` (autocast off
    inside: the dtype is explicit), each convolution one matrix product over its input windows. Equals
    ``encode_features`` up to rounding."""
    encoder = ctc_model(model).wav2vec2.feature_extractor
    with torch.autocast(input_values.device.type, enabled=False):
        h = input_values.to(dtype)[:, :, None]  # (B, S, 1)
        for layer in encoder.conv_layers:
            conv = layer.conv
            weight = conv.weight.to(dtype).permute(0, 2, 1).reshape(conv.out_channels, -1)  # (C_out, kernel * C_in)
            bias = None if conv.bias is None else conv.bias.to(dtype)
            h = F.linear(_windows(h.contiguous(), conv.kernel_size[0], conv.stride[0]), weight, bias)
            h = layer.activation(_norm(getattr(layer, "layer_norm", None), h))
        return h.contiguous()


def fast_encode_features_for_training(model, input_values: torch.Tensor,
                                      dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The feature encoder's output (B, T, C) as :func:`fast_encode_features` computes it, for training: the windows
    are ``Tensor.unfold``'s (its backward is a plain sum into the input; ``as_strided``'s is slow for overlapping
    windows), each norm runs in fp32 and the rest in ``dtype``, as autocast would run transformers' layers, and
    gradients flow when the encoder's weights require them (a frozen encoder is computed without a graph)."""
    encoder = ctc_model(model).wav2vec2.feature_extractor
    trainable = torch.is_grad_enabled() and any(p.requires_grad for p in encoder.parameters())
    with torch.autocast(input_values.device.type, enabled=False), torch.set_grad_enabled(trainable):
        h = input_values.to(dtype)[:, :, None]  # (B, S, 1)
        for layer in encoder.conv_layers:
            conv = layer.conv
            windows = h.unfold(1, conv.kernel_size[0], conv.stride[0])  # (B, T', C_in, kernel)
            weight = conv.weight.to(dtype).reshape(conv.out_channels, -1)  # (C_out, C_in * kernel)
            h = F.linear(windows.flatten(2), weight, None if conv.bias is None else conv.bias.to(dtype))
            norm = getattr(layer, "layer_norm", None)
            h = layer.activation(h if norm is None else _norm(norm, h.float()).to(dtype))
        return h
