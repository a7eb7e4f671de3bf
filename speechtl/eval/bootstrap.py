"""Is a WER difference more than chance? The paired bootstrap of :mod:`speechtl.eval.stats` on two hypothesis
lists (or files) of the same utterances, in plain words (Bisani & Ney 2004).

Two systems transcribe the same utterances; resampling utterances (or whole speakers) with replacement gives
the spread of Δ = corpus-WER(b) − corpus-WER(a): negative = b is better.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from speechtl.eval import stats
from speechtl.eval.scoring import utterance_edits
from speechtl.text import normalize

__all__ = ["word_errors", "WerDifference", "wer_difference", "compare_hypothesis_files"]


def word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance: word edits (substitutions + deletions + insertions) and reference words, on text normalised
    with the default (English) rules."""
    return utterance_edits([normalize(r) for r in refs], [normalize(h) for h in hyps], "words")


@dataclass(frozen=True)
class WerDifference:
    delta: float  # corpus WER of b minus corpus WER of a (fraction; negative: b is better)
    low: float  # the bootstrap interval's ends (fractions)
    high: float
    level: float  # e.g. 0.95

    def describe(self) -> str:
        sure = "lower" if self.high < 0 else "higher" if self.low > 0 else "no clear difference"
        return (f"{100 * self.delta:+.1f} points ({100 * self.level:g} % interval {100 * self.low:+.1f} … "
                f"{100 * self.high:+.1f}: {sure})")


def wer_difference(refs: Sequence[str], hyps_a: Sequence[str], hyps_b: Sequence[str], resamples: int = 2000,
                   level: float = 0.95, seed: int = 0, speakers: Sequence[str] | None = None) -> WerDifference:
    """WER(b) − WER(a) on the same references, with a percentile bootstrap interval over utterances — or over
    whole speakers when ``speakers`` (one label per utterance; "" = a speaker of its own) is given.

    ``resamples`` stays 2000 here (``speechtl compare`` uses :data:`~speechtl.eval.stats.NUM_BOOTSTRAP`): the
    adaptation runs' results.json ``change`` and the self-training verdicts were drawn with 2000, seed 0."""
    edits_a, words = word_errors(refs, hyps_a)
    edits_b, _ = word_errors(refs, hyps_b)
    clusters = None if speakers is None else stats.cluster_ids(speakers)
    test = stats.paired_bootstrap(edits_a, edits_b, words, clusters, num=resamples, seed=seed, level=level)
    return WerDifference(test.delta, test.low, test.high, level)


def compare_hypothesis_files(path_a, path_b, **kwargs) -> WerDifference:
    """:func:`wer_difference` on two hypothesis TSVs (``id, reference, hypothesis``, as ``write_hypotheses``
    writes them) of the same utterances."""
    a, b = (list(csv.DictReader(Path(p).read_text(encoding="utf-8").splitlines(), delimiter="\t"))
            for p in (path_a, path_b))
    if [r["id"] for r in a] != [r["id"] for r in b]:
        raise ValueError(f"{path_a} and {path_b} do not list the same utterances in the same order")
    return wer_difference([r["reference"] for r in a], [r["hypothesis"] for r in a],
                          [r["hypothesis"] for r in b], **kwargs)
