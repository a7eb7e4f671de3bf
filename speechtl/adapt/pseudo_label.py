"""Pseudo-labels for untranscribed audio: a transcript and a confidence per utterance, and which to keep.

Legend: T = output frames of one utterance, V = vocabulary (index ``blank`` is the CTC blank).

Confidence measures, each in [0, 1] (higher = surer), computed from the utterance's logits (T, V):

- ``max_prob``: mean over non-blank greedy frames of the frame's highest posterior;
- ``entropy``: 1 − (mean over non-blank greedy frames of the frame's entropy) / log V;
- ``path``: the greedy path's CTC posterior per frame, exp(mean over all frames of log max posterior).

Utterances whose greedy path is all blank get 0 (nothing to learn from). The hidden reference
transcripts of an unlabelled manifest never enter this module: it sees audio and logits only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from speechtl.config import ConfigError
from speechtl.decode import greedy_decode, iter_batches
from speechtl.text import normalize

__all__ = ["CONFIDENCE_MEASURES", "Decoder", "lm_decoder", "PseudoLabel", "utterance_confidence", "select_confident",
           "pseudo_label"]

CONFIDENCE_MEASURES = ("max_prob", "entropy", "path")

# (logits (B, T, V), valid frames (B,), tokenizer) -> B transcripts, words only (no <unk>, <s>...).
# Greedy by default; :func:`lm_decoder` gives a beam search with a word n-gram LM (speechtl lm build).
Decoder = Callable[[torch.Tensor, torch.Tensor, object], list[str]]


def lm_decoder(lm_path: str) -> Decoder:
    """A :data:`Decoder` that beam-searches with the ARPA LM at ``lm_path`` (settings: ``LmSettings()``'s tuned
    defaults); the LM decoder is built once per tokenizer vocabulary."""
    from speechtl.decode.lm import load_lm_decoder

    built: dict[tuple, object] = {}

    def decode(logits: torch.Tensor, lengths: torch.Tensor, tokenizer) -> list[str]:
        key = tuple(sorted(tokenizer.get_vocab().items()))
        if key not in built:
            built[key] = load_lm_decoder(lm_path, tokenizer).batch_decoder()
        return built[key](logits, lengths)

    return decode


@dataclass(frozen=True)
class PseudoLabel:
    text: str  # the teacher's transcript, normalised ("" when it wrote nothing)
    confidence: float  # see CONFIDENCE_MEASURES


def utterance_confidence(logits: torch.Tensor, blank: int, measure: str = "max_prob") -> float:
    """Confidence of one utterance's greedy transcript from its valid-frame logits (T, V)."""
    if measure not in CONFIDENCE_MEASURES:
        raise ConfigError(f"confidence measure must be one of {CONFIDENCE_MEASURES}, got {measure!r}")
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    best, ids = log_probs.max(dim=-1)
    speech = ids != blank
    if not bool(speech.any()):
        return 0.0
    if measure == "path":
        return float(best.mean().exp())
    if measure == "max_prob":
        return float(best[speech].exp().mean())
    entropy = -(log_probs.exp() * log_probs).sum(-1)[speech].mean()
    return float(1.0 - entropy / math.log(logits.shape[-1]))


def select_confident(labels: Sequence[PseudoLabel], min_confidence: float = 0.0,
                     keep_fraction: float = 1.0) -> list[int]:
    """Indices to train on, in input order: non-empty transcripts with confidence ≥ ``min_confidence``,
    and of those at most ``keep_fraction`` × len(labels), the most confident (ties: earlier first)."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ConfigError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    eligible = [i for i, p in enumerate(labels) if p.text and p.confidence >= min_confidence]
    budget = math.floor(keep_fraction * len(labels) + 1e-9)
    ranked = sorted(eligible, key=lambda i: (-labels[i].confidence, i))[:budget]
    return sorted(ranked)


@torch.no_grad()
def pseudo_label(model, processor, arrays: Sequence[np.ndarray], measure: str = "max_prob",
                 batch_seconds: float = 60.0, precision: str = "fp32", decoder: Decoder = greedy_decode,
                 ) -> list[PseudoLabel]:
    """Transcribe 16 kHz mono arrays with ``decoder`` (greedy by default) and score each transcript's confidence."""
    blank = processor.tokenizer.pad_token_id
    out: list[PseudoLabel | None] = [None] * len(arrays)
    for b in iter_batches(model, processor, arrays, batch_seconds, precision):
        texts = decoder(b.logits, b.lengths, processor.tokenizer)
        for k, i in enumerate(b.indices):
            conf = utterance_confidence(b.logits[k, : int(b.lengths[k])], blank, measure)
            out[i] = PseudoLabel(normalize(texts[k]), round(conf, 6))
    return out
