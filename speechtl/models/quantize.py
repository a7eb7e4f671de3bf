"""int8 inference on CPU: a CTC model's linear layers as dynamically quantised int8 matrix products.

``transcribe --int8`` and ``evaluate --int8`` (the second measures what it costs on your labelled data). Every
``nn.Linear`` of the encoder and the CTC head (attention projections, feed-forward, feature projection, head) is
replaced by torch's dynamic int8 linear (``torch.ao.quantization.quantize_dynamic``: weights int8 per tensor,
activations quantised per call; fbgemm's VNNI kernels on x86). The rest (the feature encoder's convolutions,
attention itself, norms) runs as before, in bf16 autocast or fp32 (``--precision``); each int8 layer reads its input
as fp32 and answers in the dtype autocast's linear would (bf16 under bf16 autocast), so the layers after it run as
they did.

Measured on an AMD EPYC with avx512_bf16 and VNNI but no AMX (``benchmarks/transcribe_rtf.py``, one thread, RESULTS.md):
a base-sized model transcribed 1.11x faster than in bf16 and 1.38x faster than in fp32 (the option for CPUs without
bf16 kernels); the small shipped model (256-wide layers, most of its time in attention) ran slower than in bf16. On
CPUs with AMX, bf16 was faster than int8 (an Intel Xeon). So: measure both on yours; the benchmark prints both, with
their WER on its speech, and ``evaluate --int8`` gives the WER on your own dev set.

torch marks ``torch.ao.quantization`` as deprecated in favour of torchao; it is still part of the pinned torch, and
its warnings are silenced here. CPU only (fbgemm), and not for models holding unmerged LoRA layers (a folder written
by ``speechtl combine``): both are refused with the reason.
"""

from __future__ import annotations

import warnings

import torch

from speechtl.config import ConfigError

__all__ = ["Int8Linear", "quantize_int8", "is_int8"]


def _dynamic_linear() -> type:
    try:
        from torch.ao.nn.quantized.dynamic import Linear
        from torch.ao.quantization import quantize_dynamic  # noqa: F401  (used below; checked here, at import)
    except ImportError as e:  # a torch without the eager quantisation API
        raise ConfigError(f"--int8 needs torch's dynamic quantisation (torch.ao.nn.quantized.dynamic), which this "
                          f"torch {torch.__version__} lacks; run without --int8") from e
    return Linear


class Int8Linear(_dynamic_linear()):
    """torch's dynamic int8 linear, fed fp32; it answers as autocast's linear would: in autocast's dtype when
    autocast is on (bf16: the GELU after it runs in bf16), else in its input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x.float())
        device = x.device.type
        return y.to(torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype)

    def _get_name(self) -> str:
        return "Int8Linear"


def _ctc_models(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The CTC models inside ``model`` (itself, or the members of a routed system): modules with a ``lm_head``."""
    return [m for m in model.modules() if isinstance(getattr(m, "lm_head", None), torch.nn.Linear)]


def is_int8(model: torch.nn.Module) -> bool:
    return any(isinstance(m, Int8Linear) for m in model.modules())


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (on CPU, in eval mode) with the linear layers of each CTC model inside it int8, in place: a
    routed system's start and adapted models both (its router has no layers: it reads the start model's states)."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ConfigError("--int8 runs on CPU only (torch's dynamic int8 kernels are CPU kernels); use --device cpu "
                          "or leave --int8 out (on a GPU, bf16 is the fast path)")
    if any(type(m).__module__.startswith("peft.") for m in model.modules()):
        raise ConfigError("--int8 needs plain linear layers; this model holds unmerged LoRA layers (a folder written "
                          "by `speechtl combine`): transcribe a member's run folder with --int8 instead")
    ctcs = _ctc_models(model)
    if not ctcs:
        raise ConfigError(f"--int8: no CTC model (a module with an lm_head) inside {type(model).__name__}")
    model.eval()
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices, printed on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for ctc in ctcs:
            torch.ao.quantization.quantize_dynamic(ctc, {torch.nn.Linear}, dtype=torch.qint8,
                                                   mapping={torch.nn.Linear: Int8Linear}, inplace=True)
    return model
