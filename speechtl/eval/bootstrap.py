"""Is a WER difference more than chance? A paired bootstrap over utterances (Bisani & Ney 2004).

Two systems transcribe the same utterances; resampling utterances with replacement gives the
spread of corpus-WER(b) − corpus-WER(a). The resampling is :func:`speechtl.compare.stats.paired_bootstrap`
(the one `speechtl compare` uses); this module gives it hypothesis files and plain words.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import jiwer
import numpy as np

from speechtl.compare import stats
from speechtl.text import normalize

__all__ = ["word_errors", "WerDifference", "paired_bootstrap", "compare_hypothesis_files"]


def word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance: word edits (substitutions + deletions + insertions) and reference words, normalised text."""
    edits, words = [], []
    for ref, hyp in zip(refs, hyps, strict=True):
        out = jiwer.process_words(normalize(ref), normalize(hyp))
        edits.append(out.substitutions + out.deletions + out.insertions)
        words.append(len(normalize(ref).split()))
    return np.array(edits), np.array(words)


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


def paired_bootstrap(refs: Sequence[str], hyps_a: Sequence[str], hyps_b: Sequence[str], resamples: int = 2000,
                     level: float = 0.95, seed: int = 0, speakers: Sequence[str] | None = None) -> WerDifference:
    """WER(b) − WER(a) on the same references, with a percentile bootstrap interval over utterances — or over
    whole speakers when ``speakers`` (one label per utterance; "" = a speaker of its own) is given."""
    edits_a, words = word_errors(refs, hyps_a)
    edits_b, _ = word_errors(refs, hyps_b)
    clusters = None if speakers is None else stats.cluster_ids(speakers)
    test = stats.paired_bootstrap(edits_b, edits_a, words, clusters, num=resamples, seed=seed, level=level)
    return WerDifference(test.delta, test.low, test.high, level)


def compare_hypothesis_files(path_a, path_b, **kwargs) -> WerDifference:
    """:func:`paired_bootstrap` on two hypothesis TSVs (``id, reference, hypothesis``, as ``write_hypotheses``
    writes them) of the same utterances."""
    a, b = (list(csv.DictReader(Path(p).read_text(encoding="utf-8").splitlines(), delimiter="\t"))
            for p in (path_a, path_b))
    if [r["id"] for r in a] != [r["id"] for r in b]:
        raise ValueError(f"{path_a} and {path_b} do not list the same utterances in the same order")
    return paired_bootstrap([r["reference"] for r in a], [r["hypothesis"] for r in a],
                            [r["hypothesis"] for r in b], **kwargs)
