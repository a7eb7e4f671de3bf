"""Edit counting with jiwer: per utterance (:func:`utterance_edits`, the one place that counts edits) and the
corpus WER/CER on normalised text (:func:`error_rates`, the sum of those counts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jiwer
import numpy as np

from speechtl.data.manifest import ManifestError
from speechtl.text import normalize

__all__ = ["utterance_edits", "ErrorRates", "error_rates"]


def utterance_edits(refs: Sequence[str], hyps: Sequence[str], unit: str = "words") -> tuple[np.ndarray, np.ndarray]:
    """Per utterance: (edits, reference length), int arrays (N,), of jiwer's alignment of the texts as given
    (normalise first). Edits = substitutions + deletions + insertions; ``unit`` "words" (split on whitespace)
    or "chars" (spaces count). Summed, they give jiwer's corpus rate exactly."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if unit not in ("words", "chars"):
        raise ValueError(f"unit {unit!r}: use 'words' or 'chars'")
    process = jiwer.process_words if unit == "words" else jiwer.process_characters
    output = process(list(refs), list(hyps))
    lengths = np.array([len(r) for r in output.references], dtype=np.int64)
    edits = np.zeros(len(lengths), dtype=np.int64)
    for i, chunks in enumerate(output.alignments):
        for c in chunks:
            if c.type == "insert":
                edits[i] += c.hyp_end_idx - c.hyp_start_idx
            elif c.type != "equal":  # substitute, delete
                edits[i] += c.ref_end_idx - c.ref_start_idx
    return edits, lengths


@dataclass(frozen=True)
class ErrorRates:
    wer: float  # fraction, e.g. 0.123
    cer: float
    num_words: int  # reference words behind the WER
    num_chars: int  # reference characters (spaces included) behind the CER


def error_rates(refs: Sequence[str], hyps: Sequence[str], language: str | None = None) -> ErrorRates:
    """Corpus-level WER/CER (total edits / total reference length) after :func:`speechtl.text.normalize`
    with ``language``'s rules."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    refs = [normalize(r, language) for r in refs]
    hyps = [normalize(h, language) for h in hyps]
    empty = [k for k, r in enumerate(refs) if not r]
    if empty:
        raise ManifestError(f"reference {empty[0]} is empty after normalisation; WER needs words to count")
    word_edits, words = utterance_edits(refs, hyps, "words")
    char_edits, chars = utterance_edits(refs, hyps, "chars")
    num_words, num_chars = int(words.sum()), int(chars.sum())
    # int / int: the same correctly rounded division as jiwer's (S + D + I) / (H + S + D)
    return ErrorRates(wer=int(word_edits.sum()) / num_words, cer=int(char_edits.sum()) / num_chars,
                      num_words=num_words, num_chars=num_chars)
