"""The training objective: CTC plus the regularisers a config asks for, chosen once before the loop.

:func:`objective` picks the terms (like whisper's ``DecodingTask`` picking its logit filters in ``__init__``):
CTC always, :class:`L2SpTerm` when ``l2sp`` is set, :class:`DistillTerm` when ``distill`` is set and some
training rows are source replay. The loop then calls one :class:`Objective` per batch. Shapes: logits
(B, T, V), lengths (B,) valid frames, labels (B, L) padded with -100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from speechtl.decode import batch_rows, forward_logits

__all__ = ["ctc_loss", "l2sp_penalty", "distill_loss", "L2SpTerm", "DistillTerm", "Objective", "objective"]


def ctc_loss(logits: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, label_lengths: torch.Tensor, blank: int):
    """Mean CTC loss per target token, always in fp32 (outside autocast). logits (B, T, V), labels (B, L) padded -100."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
        targets = labels.masked_select(labels >= 0)
        loss = F.ctc_loss(
            log_probs, targets, lengths, label_lengths, blank=blank, reduction="sum", zero_infinity=True
        )
    return loss / label_lengths.sum().clamp(min=1)


def l2sp_penalty(params: Sequence[torch.Tensor], start: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ‖θ − θ₀‖² over the trainable parameters (Li et al. 2018, "explicit inductive bias")."""
    return sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean KL(teacher ‖ student) per valid frame, in fp32 (learning without forgetting, Li & Hoiem 2016,
    on the source audio: the frame posteriors the source accent was decoded with stay where they were)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_p = F.log_softmax(logits.float(), dim=-1)
        log_q = F.log_softmax(teacher_logits.float(), dim=-1)
        kl = (log_q.exp() * (log_q - log_p)).sum(-1)  # (B, T)
        valid = torch.arange(kl.shape[1], device=kl.device)[None, :] < lengths[:, None].to(kl.device)
        return (kl * valid).sum() / valid.sum().clamp(min=1)


@dataclass
class L2SpTerm:
    """``weight · Σ‖θ − θ₀‖²``: pulls the trainable weights toward the starting model."""

    weight: float
    params: list[torch.Tensor]
    start: list[torch.Tensor]  # the anchor, in ``params`` order

    def __call__(self, batch: dict, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        return self.weight * l2sp_penalty(self.params, self.start)


@dataclass
class DistillTerm:
    """``weight · KL(teacher ‖ student)`` on the batch's source replay rows (none in the batch: no term)."""

    weight: float
    teacher: torch.nn.Module  # a frozen copy of the starting model
    pass_mask: bool
    precision: str

    def __call__(self, batch: dict, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        rows = batch["distill"]
        if not rows.any():
            return None
        with torch.no_grad():
            teacher_logits, _ = forward_logits(self.teacher, batch_rows(batch, rows), self.pass_mask, self.precision)
        return self.weight * distill_loss(logits[rows.to(logits.device)], teacher_logits,
                                          lengths[rows.to(lengths.device)])


@dataclass
class Objective:
    """CTC on every batch, then each extra term in order (a term may sit a batch out by returning None)."""

    blank: int
    terms: list

    def __call__(self, batch: dict, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        loss = ctc_loss(logits, lengths, batch["labels"].to(logits.device),
                        batch["label_lengths"].to(logits.device), self.blank)
        for term in self.terms:
            value = term(batch, logits, lengths)
            if value is not None:
                loss = loss + value
        return loss


def objective(blank: int, l2sp: float, params: list[torch.Tensor], start: list[torch.Tensor], distill: float,
              teacher: torch.nn.Module | None, pass_mask: bool, precision: str) -> Objective:
    """The terms this run needs: L2-SP when ``l2sp`` is set, distillation when there is a ``teacher``."""
    terms: list = []
    if l2sp:
        terms.append(L2SpTerm(l2sp, params, start))
    if teacher is not None:
        terms.append(DistillTerm(distill, teacher, pass_mask, precision))
    return Objective(blank, terms)
