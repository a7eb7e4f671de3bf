"""Dropout whose masks are drawn fast on CPUs where torch draws them one element at a time.

torch's CPU dropout draws its Bernoulli mask with MKL's vectorised generator only on Intel CPUs
(``bernoulli_scalar_kernel`` checks the vendor); on AMD and ARM CPUs it makes one Mersenne-Twister draw per element,
serially. On the 2-core AMD EPYC here that is ~8 ns an element: a 0.1 dropout of a (20, 150, 1024) bf16 activation
took 24 ms, fifty times the multiply it feeds, and the model's dropouts were a fifth of a demo training step
(py-spy over ``speechtl demo``: 138 of 650 s of training).

:class:`FastDropout` is ``nn.Dropout`` with, on such CPUs while training, its mask drawn by numpy's PCG64 instead:
16 random bits per element, kept where the draw is at least p·2¹⁶ (p rounded to 1/65,536), the kept values scaled
by 1/(1 − p) in the input's dtype as torch's are. The generator is seeded by one draw from torch's, so
``torch.manual_seed`` and a resumed run's saved RNG state fix the masks as they fix torch's. Anywhere else (Intel
with MKL, CUDA, eval mode, p of 0 or 1) it is ``nn.Dropout``. Training swaps the model's ``nn.Dropout`` modules
for it (:func:`use_fast_dropout`; they hold no weights, so checkpoints are unchanged). The attention modules'
dropout (a float passed to torch's attention function) stays torch's: it is drawn inside the fused kernel.
"""

from __future__ import annotations

import functools
import math
import platform

import numpy as np
import torch

__all__ = ["FastDropout", "dropout_mask", "torch_draws_serially", "use_fast_dropout"]


def _cpu_vendor() -> str:
    """The CPU vendor string (``GenuineIntel``, ``AuthenticAMD``, ...; '' when unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "GenuineIntel" if "GenuineIntel" in platform.processor() else ""


@functools.cache
def torch_draws_serially() -> bool:
    """Whether torch's CPU dropout draws its mask one element at a time here (no MKL, or not an Intel CPU)."""
    return not (torch.backends.mkl.is_available() and _cpu_vendor() == "GenuineIntel")


def dropout_mask(shape: tuple[int, ...] | torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor of ``shape`` in ``dtype``: 0 with probability p, else 1/(1 − p) (rounded to ``dtype``).
    ``0 < p < 1``; one draw from torch's default generator seeds it."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    draws = np.random.PCG64(seed).random_raw((n + 3) // 4).view(np.int16)[:n]  # four 16-bit draws per 64 bits
    keep = draws >= round(p * 65536) - 32768
    scale = torch.tensor(1.0 / (1.0 - p), dtype=dtype)
    if dtype.itemsize == 2:  # bf16 / fp16: the scale's bit pattern where kept (a positive value: below 2**15)
        bits = keep.astype(np.int16) * np.int16(scale.view(torch.int16).item())
        return torch.from_numpy(bits).view(dtype).view(shape)
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype  # float32 / float64
    return torch.from_numpy(keep.astype(np_dtype) * np_dtype.type(scale.item())).view(shape)


class FastDropout(torch.nn.Dropout):
    """``nn.Dropout``, with the mask from :func:`dropout_mask` while training on a CPU where torch's is serial."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and 0 < self.p < 1 and x.device.type == "cpu" and torch_draws_serially()):
            return super().forward(x)
        mask = dropout_mask(x.shape, self.p, x.dtype)
        return x.mul_(mask) if self.inplace else x * mask


def use_fast_dropout(model: torch.nn.Module) -> int:
    """Replace every plain ``nn.Dropout`` inside ``model`` by a :class:`FastDropout` of the same p; returns how
    many. Subclasses are left alone. Training calls it before the strategy wraps the model, so peft's LoRA
    dropout, added later, stays torch's."""
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(module, name, FastDropout(child.p, child.inplace))
                swapped += 1
    return swapped
