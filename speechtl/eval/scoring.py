"""Edit counting with jiwer: per utterance (:func:`utterance_counts`, the one place that counts edits) and the
corpus WER/CER on normalised text (:func:`error_rates`, the sum of those counts).

Beside them, what a WER near 100 % hides (an empty transcript scores exactly 100 %): the words a system got right
(jiwer's hits), how many words it wrote against the reference (:func:`utterance_hits`) and how many of its outputs
are empty, in one place (:func:`word_figures`) for every report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import jiwer
import numpy as np

from speechtl.data.manifest import ManifestError
from speechtl.text import normalize

__all__ = ["UtteranceCounts", "utterance_counts", "utterance_edits", "utterance_hits", "word_figures", "ErrorRates",
           "error_rates"]


class UtteranceCounts(NamedTuple):
    """Per utterance, int arrays (N,), from one jiwer alignment."""

    edits: np.ndarray  # substitutions + deletions + insertions
    lengths: np.ndarray  # reference length (words or characters)
    hits: np.ndarray  # reference units the hypothesis got right
    hyp_lengths: np.ndarray  # hypothesis length


def utterance_counts(refs: Sequence[str], hyps: Sequence[str], unit: str = "words") -> UtteranceCounts:
    """Edits, reference length, hits and hypothesis length of each utterance, from one jiwer alignment of the
    texts as given (normalise first); ``unit`` "words" (split on whitespace) or "chars" (spaces count). Summed,
    edits / lengths give jiwer's corpus rate exactly."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if unit not in ("words", "chars"):
        raise ValueError(f"unit {unit!r}: use 'words' or 'chars'")
    process = jiwer.process_words if unit == "words" else jiwer.process_characters
    output = process(list(refs), list(hyps))
    edits = np.zeros(len(output.references), dtype=np.int64)
    hits = np.zeros(len(output.references), dtype=np.int64)
    for i, chunks in enumerate(output.alignments):
        for c in chunks:
            if c.type == "insert":
                edits[i] += c.hyp_end_idx - c.hyp_start_idx
            elif c.type == "equal":
                hits[i] += c.ref_end_idx - c.ref_start_idx
            else:  # substitute, delete
                edits[i] += c.ref_end_idx - c.ref_start_idx
    return UtteranceCounts(edits, np.array([len(r) for r in output.references], dtype=np.int64), hits,
                           np.array([len(h) for h in output.hypotheses], dtype=np.int64))


def utterance_edits(refs: Sequence[str], hyps: Sequence[str], unit: str = "words") -> tuple[np.ndarray, np.ndarray]:
    """Per utterance: (edits, reference length), int arrays (N,) (:func:`utterance_counts`)."""
    counts = utterance_counts(refs, hyps, unit)
    return counts.edits, counts.lengths


def utterance_hits(refs: Sequence[str], hyps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance: (hits = reference words the hypothesis got right, hypothesis words), int arrays (N,)
    (:func:`utterance_counts`)."""
    counts = utterance_counts(refs, hyps, "words")
    return counts.hits, counts.hyp_lengths


def word_figures(hits: np.ndarray, hyp_words: np.ndarray, ref_words: int) -> dict:
    """The figures every report shows beside WER/CER, from :func:`utterance_hits`' arrays (N,) and the reference
    words: ``hits`` (reference words right), ``hyp_words`` (words written), ``hyp_ratio`` (hypothesis / reference
    words: below 1 the system drops words, above 1 it inserts) and ``empty_share`` (share of utterances with no
    word written)."""
    hits, hyp_words = np.asarray(hits), np.asarray(hyp_words)
    return {"hits": int(hits.sum()), "hyp_words": int(hyp_words.sum()),
            "hyp_ratio": int(hyp_words.sum()) / max(int(ref_words), 1),
            "empty_share": int((hyp_words == 0).sum()) / max(len(hyp_words), 1)}


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
