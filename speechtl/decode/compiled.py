"""Opt-in ``torch.compile`` of the transcription forward (``speechtl transcribe --compile``), for one batch shape.

Compiling costs tens of seconds (once per process; inductor keeps its results in an on-disk cache, so a later
process compiles faster). Measured on CPU (benchmarks/README.md): transformers' fp32 forward runs ~1.4× faster
compiled, so it pays on long fp32 jobs; the bf16 path (the fast feature encoder) runs ~10 % *slower* compiled,
so it never pays there.

Each new input shape compiles again, so exactly one shape is compiled (``dynamic=False``): a long file's batch
of ``rows`` chunks of ``samples`` each. A smaller batch (a file's last, shorter chunk, or fewer chunks) is
padded up to it — extra rows repeat the last one, extra samples are zeros outside the attention mask — and the
padding is cut from the output, so it changes no transcript (only the rounding of a bf16 matmul could move, as
with any other batch). A model that takes no attention mask (a group-norm feature encoder normalises over the
padded length) is not padded: its other shapes run eagerly. Measured against the alternatives (shipped model,
bf16): torch's automatic dynamic shapes compiled three times on a long file (full batch, batch of one, the
last chunk's length; 34 + 22 + 32 s), ``dynamic=True`` twice (63 s, then 33 s for a batch of one) and ran
~15 % slower than static; padding compiles once (~35 s).

Compilation needs a C++ compiler; where it fails (at the first call), one line says so on stderr and the
forward runs eagerly from then on: the same transcripts, only slower — a long job is not stopped for it.

Shapes: B = batch, S = samples, T = output frames, V = vocabulary.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["CompiledForward"]

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class CompiledForward:
    """``forward(inputs (B, S), mask (B, S), lengths (B,)) -> logits (B, T, V)`` (:func:`speechtl.decode.audio_forward`),
    compiled for batches of exactly ``rows`` × ``samples``; smaller batches are padded to it when ``pad`` (the model
    takes an attention mask), other shapes run eagerly. ``compile_s``: wall seconds of the call that compiled."""

    def __init__(self, forward: Forward, rows: int, samples: int, pad: bool, backend: str = "inductor"):
        self.forward, self.rows, self.samples, self.pad = forward, rows, samples, pad
        self.compiled: Forward | None = torch.compile(forward, dynamic=False, backend=backend)
        self.compile_s: float | None = None

    def __call__(self, inputs: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, s = inputs.shape
        if self.compiled is None or (b, s) != (self.rows, self.samples) and not self._fits(b, s):
            return self.forward(inputs, mask, lengths)
        if (b, s) != (self.rows, self.samples):
            inputs, mask, lengths = self._padded(inputs, mask, lengths)
        logits = self._run_compiled(inputs, mask, lengths)
        return logits[:b, : int(lengths[:b].max())]

    def _fits(self, b: int, s: int) -> bool:
        return self.pad and b <= self.rows and s <= self.samples

    def _padded(self, inputs: torch.Tensor, mask: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows repeated from the last one up to ``rows``; samples zero-padded (mask 0) up to ``samples``."""
        extra_rows, extra_samples = self.rows - len(inputs), self.samples - inputs.shape[1]
        inputs, mask = F.pad(inputs, (0, extra_samples)), F.pad(mask, (0, extra_samples))
        last = [len(lengths) - 1] * extra_rows
        keep = list(range(len(lengths))) + last
        return inputs[keep], mask[keep], lengths[keep]

    def _run_compiled(self, inputs: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        first = self.compile_s is None
        start = time.perf_counter()
        try:
            out = self.compiled(inputs, mask, lengths)
        except Exception as e:  # noqa: BLE001  (no C++ compiler, an unsupported op: the eager forward computes the same)
            self.compiled = None
            print(f"--compile: torch.compile failed ({_reason(e)}); running without it", file=sys.stderr)
            return self.forward(inputs, mask, lengths)
        if first:
            self.compile_s = time.perf_counter() - start
            log.info("torch.compile: first call (compiling) %.1f s for batches of %d x %d samples",
                     self.compile_s, self.rows, self.samples)
        return out


def _reason(error: BaseException) -> str:
    """The first line of what went wrong inside torch.compile's wrapping errors (BackendCompilerFailed ...)."""
    inner = getattr(error, "inner_exception", None) or error.__cause__ or error
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0][:200]}" if lines else type(inner).__name__
