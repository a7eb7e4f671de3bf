"""Per-utterance error counts (normalised and orthographic), word-level error analysis, fixes and breaks.

Counts come from :func:`speechtl.eval.scoring.utterance_edits` (jiwer; what :func:`speechtl.eval.error_rates`
sums), so the per-utterance counts add up to exactly the corpus WER/CER that ``error_rates`` reports.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import jiwer
import numpy as np

from speechtl.eval.scoring import utterance_counts, utterance_edits
from speechtl.text import normalize

__all__ = ["UttScores", "score_utterances", "ErrorCounts", "error_counts", "utterance_changes"]


@dataclass(frozen=True)
class UttScores:
    """Per-utterance counts, each an int array (N,). ``orth_*``: raw text split on whitespace, case and
    punctuation kept; the others: after :func:`speechtl.text.normalize`."""

    words: np.ndarray  # reference words
    word_errors: np.ndarray  # substitutions + deletions + insertions
    chars: np.ndarray  # reference characters, spaces included
    char_errors: np.ndarray
    orth_words: np.ndarray
    orth_word_errors: np.ndarray
    orth_chars: np.ndarray
    orth_char_errors: np.ndarray
    hits: np.ndarray  # reference words right (normalised)
    hyp_words: np.ndarray  # hypothesis words (normalised; 0: an empty output)

    def rate(self, kind: str, mask: np.ndarray | None = None) -> float:
        """Corpus rate of ``kind`` in ``("words", "chars", "orth_words", "orth_chars")`` over ``mask``."""
        err = getattr(self, kind[:-1] + "_errors")
        length = getattr(self, kind)
        if mask is not None:
            err, length = err[mask], length[mask]
        return float(err.sum() / max(length.sum(), 1))


def _orthographic(text: str) -> str:
    return " ".join(text.split())


def score_utterances(refs: Sequence[str], hyps: Sequence[str]) -> UttScores:
    """Count errors per utterance. References must have words after normalisation (check with ``speechtl check``)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    norm_refs, norm_hyps = [normalize(r) for r in refs], [normalize(h) for h in hyps]
    empty = [k for k, r in enumerate(norm_refs) if not r]
    if empty:
        raise ValueError(f"reference {empty[0]} is empty after normalisation; WER needs words to count")
    orth_refs, orth_hyps = [_orthographic(r) for r in refs], [_orthographic(h) for h in hyps]
    w = utterance_counts(norm_refs, norm_hyps, "words")  # edits, hits and lengths from one alignment
    char_errors, chars = utterance_edits(norm_refs, norm_hyps, "chars")
    orth_word_errors, orth_words = utterance_edits(orth_refs, orth_hyps, "words")
    orth_char_errors, orth_chars = utterance_edits(orth_refs, orth_hyps, "chars")
    return UttScores(w.lengths, w.edits, chars, char_errors, orth_words, orth_word_errors, orth_chars, orth_char_errors,
                     w.hits, w.hyp_lengths)


@dataclass(frozen=True)
class ErrorCounts:
    """Word errors on normalised text, most frequent first."""

    substitutions: list[tuple[str, str, int]]  # (reference word, hypothesis word, count)
    insertions: list[tuple[str, int]]  # (hypothesis word, count)
    deletions: list[tuple[str, int]]  # (reference word, count)
    totals: dict[str, int]  # "substitutions", "insertions", "deletions", "hits"


def error_counts(refs: Sequence[str], hyps: Sequence[str], top: int = 15) -> ErrorCounts:
    """The ``top`` most frequent substitutions, insertions and deletions (jiwer alignments, normalised text)."""
    out = jiwer.process_words([normalize(r) for r in refs], [normalize(h) for h in hyps])
    subs, ins, dels = jiwer.collect_error_counts(out)
    by_count = lambda c: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top]  # noqa: E731 ties: alphabetical
    return ErrorCounts(
        substitutions=[(r, h, n) for (r, h), n in by_count(Counter(subs))],
        insertions=by_count(Counter(ins)),
        deletions=by_count(Counter(dels)),
        totals={"substitutions": out.substitutions, "insertions": out.insertions, "deletions": out.deletions,
                "hits": out.hits},
    )


def utterance_changes(baseline_errors: np.ndarray, model_errors: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of utterances a model fixes (baseline wrong, model right), breaks (the reverse), improves or
    worsens (fewer / more word errors), each sorted by the size of the change, largest first."""
    diff = model_errors - baseline_errors
    order = np.argsort(diff, kind="stable")
    improved = [i for i in order if diff[i] < 0]
    worsened = [i for i in order[::-1] if diff[i] > 0]
    return {
        "fixed": np.array([i for i in improved if model_errors[i] == 0], dtype=np.int64),
        "broken": np.array([i for i in worsened if baseline_errors[i] == 0], dtype=np.int64),
        "improved": np.array(improved, dtype=np.int64),
        "worsened": np.array(worsened, dtype=np.int64),
    }
