"""Training that survives a non-finite batch: the update is skipped, counted, and too many in a row stop the run.

As torch.amp's ``GradScaler`` and fairseq do it: when an optimizer step's loss (any micro-batch of a gradient
accumulation, on any process) or its gradient norm is NaN or infinite, the loop drops the gradients instead of
stepping the optimizer, so one bad batch cannot poison the weights for good. The learning-rate schedule and the
data order go on as if the step had been taken: both depend on the step count alone, which keeps ``--resume``
exact. The count goes into :class:`~speechtl.adapt.select.TrainState` (``trainer_state.json``), the training
record of ``results.json`` and the run's warnings (:func:`skipped_warning`); :data:`MAX_SKIPPED_IN_A_ROW`
skipped steps in a row stop the run with :class:`NonFiniteTrainingError` (:func:`check_skips`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from speechtl.adapt.select import TrainState
from speechtl.errors import SpeechtlError
from speechtl.settings import MAX_SKIPPED_IN_A_ROW

__all__ = ["NonFiniteTrainingError", "MAX_SKIPPED_IN_A_ROW", "all_finite", "note_step", "check_skips",
           "skipped_warning"]

MAX_IDS = 8  # utterance ids a message names


class NonFiniteTrainingError(SpeechtlError, RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradients: training cannot go on."""


def all_finite(accelerator, loss_finite: bool, grad_norm: torch.Tensor) -> bool:
    """Whether this step may update the weights: the loss and the gradient norm finite on every process (the
    processes must agree, or their weights would drift apart; the gradients are already all-reduced)."""
    bad = torch.tensor(0.0 if loss_finite and bool(torch.isfinite(grad_norm)) else 1.0, device=accelerator.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="max")
    return not bool(bad)


def note_step(state: TrainState, stepped: bool, ids: Sequence[str]) -> None:
    """Count the optimizer step ``state.step`` just taken (``stepped``) or skipped, with its batches' ``ids``."""
    if stepped:
        state.skipped_in_a_row = 0
        return
    state.skipped_steps += 1
    state.skipped_in_a_row += 1
    if state.first_skipped is None:
        state.first_skipped = {"step": state.step, "ids": list(ids[:MAX_IDS])}


def _names(ids: Sequence[str]) -> str:
    more = f" and {len(ids) - MAX_IDS} more" if len(ids) > MAX_IDS else ""
    return ", ".join(ids[:MAX_IDS]) + more if ids else "(no ids)"


def check_skips(state: TrainState, ids: Sequence[str], lr: float, precision: str, augment: str) -> None:
    """Stop with :class:`NonFiniteTrainingError` after :data:`MAX_SKIPPED_IN_A_ROW` skipped steps in a row,
    naming the step, the last batch's utterances and the likely causes."""
    if state.skipped_in_a_row < MAX_SKIPPED_IN_A_ROW:
        return
    aug = f"augmentation (--augment {augment}: try without it); " if augment else ""
    raise NonFiniteTrainingError(
        f"training stopped at step {state.step}: the last {state.skipped_in_a_row} steps had a non-finite loss or "
        f"gradients (NaN/inf) and were skipped ({state.skipped_steps} in all); last batch: {_names(ids)}. "
        f"Likely causes: the learning rate (--lr {lr:g}: try 3-10x lower, or a longer --warmup-ratio); the "
        f"precision ({precision}: try --precision fp32); {aug}audio or transcripts of those utterances. The best "
        f"weights so far are in the run folder's best/ and checkpoint/.")


def skipped_warning(skipped_steps: int, steps: int, first_skipped: dict | None) -> str:
    """The run's warning about skipped steps ("" when none was skipped)."""
    if not skipped_steps:
        return ""
    where = (f" (the first at step {first_skipped['step']}: {_names(first_skipped['ids'])})"
             if first_skipped else "")
    return f"{skipped_steps} of {steps} steps skipped: non-finite loss/gradients{where}"
