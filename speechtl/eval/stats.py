"""Bootstrap statistics for corpus error rates: confidence intervals and a paired test between two systems.
The one home of the resampling: ``speechtl compare`` and the adaptation runs' before/after change both use it.

Written by hand on numpy (about 60 lines) because no kept library resamples *clusters* (speakers) of
a ratio statistic (total errors / total reference words) and pairs two systems on the same draws;
scipy.stats.bootstrap resamples observations, not clusters of a ratio.

Corpus WER = Σ errors / Σ reference words. When speakers are known, whole speakers are drawn with
replacement (a cluster bootstrap: utterances of one speaker are not independent); otherwise
utterances are. Every statistic with the same ``seed`` and the same clusters uses the same draws,
so the paired test of A vs B is exactly the negative of B vs A.

Sign convention (everywhere): Δ = rate(b) − rate(a), the second system minus the first; negative = b is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from speechtl.settings import NUM_BOOTSTRAP

__all__ = ["NUM_BOOTSTRAP", "SIGNIFICANT", "Interval", "PairedTest", "cluster_ids", "bootstrap_ci",
           "paired_bootstrap"]

SIGNIFICANT = 0.05  # a paired difference with p below this is called significant (reports, tables, figures)
_BLOCK = 200  # resamples drawn per block (bounds memory: block × clusters counts)


@dataclass(frozen=True)
class Interval:
    value: float  # the statistic on the data as it is
    low: float  # 2.5th percentile of the bootstrap distribution (95 % interval)
    high: float


@dataclass(frozen=True)
class PairedTest:
    delta: float  # rate(b) − rate(a) on the data: negative = b makes fewer errors
    low: float
    high: float
    p_value: float  # two-sided, from the resampled Δ's sign (the interval excludes 0 about when p < 0.05)


def cluster_ids(labels: Sequence[str]) -> np.ndarray:
    """Integer cluster index per item; an empty label makes the item a cluster of its own."""
    index: dict[str, int] = {}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        key = label if label else f"\0item{i}"
        out[i] = index.setdefault(key, len(index))
    return out


def _resampled_sums(values: np.ndarray, clusters: np.ndarray | None, num: int, seed: int) -> np.ndarray:
    """values (K, N) per item → (num, K) sums over resampled clusters (or items when ``clusters`` is None)."""
    if clusters is None:
        clusters = np.arange(values.shape[1])
    num_clusters = int(clusters.max()) + 1
    per_cluster = np.zeros((values.shape[0], num_clusters))
    for k in range(values.shape[0]):
        per_cluster[k] = np.bincount(clusters, weights=values[k], minlength=num_clusters)
    rng = np.random.default_rng(seed)
    out = np.empty((num, values.shape[0]))
    uniform = np.full(num_clusters, 1.0 / num_clusters)
    for start in range(0, num, _BLOCK):
        counts = rng.multinomial(num_clusters, uniform, size=min(_BLOCK, num - start))  # (b, C)
        out[start : start + len(counts)] = counts @ per_cluster.T
    return out


def _check(errors: np.ndarray, lengths: np.ndarray, clusters: np.ndarray | None) -> None:
    if errors.shape != lengths.shape or errors.ndim != 1 or len(errors) == 0:
        raise ValueError(f"errors {errors.shape} and lengths {lengths.shape} must be equal non-empty 1-D arrays")
    if lengths.sum() <= 0:
        raise ValueError("no reference words: an error rate needs a positive total length")
    if clusters is not None and clusters.shape != errors.shape:
        raise ValueError(f"clusters {clusters.shape} must match errors {errors.shape}")


def bootstrap_ci(
    errors: Sequence[float],
    lengths: Sequence[float],
    clusters: np.ndarray | None = None,
    num: int = NUM_BOOTSTRAP,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of Σ errors / Σ lengths (clusters from :func:`cluster_ids`)."""
    e, n = np.asarray(errors, float), np.asarray(lengths, float)
    _check(e, n, clusters)
    sums = _resampled_sums(np.stack([e, n]), clusters, num, seed)
    rates = sums[:, 0] / np.maximum(sums[:, 1], 1e-12)  # a draw of only empty items has no words: rate 0
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(rates, [tail, 100 - tail])
    return Interval(float(e.sum() / n.sum()), float(low), float(high))


def paired_bootstrap(
    errors_a: Sequence[float],
    errors_b: Sequence[float],
    lengths: Sequence[float],
    clusters: np.ndarray | None = None,
    num: int = NUM_BOOTSTRAP,
    seed: int = 0,
    level: float = 0.95,
) -> PairedTest:
    """Paired bootstrap of Δ = rate(b) − rate(a) on the same items (Koehn 2004): negative = b is better.

    p = min(1, 2 (1 + min(#{Δ* ≤ 0}, #{Δ* ≥ 0})) / (num + 1)): twice the share of resamples on the far
    side of zero, the p-value dual to the percentile interval (so "interval excludes 0" and "p < 0.05"
    agree up to one resample). Never 0; identical systems give Δ = 0 and p = 1.
    """
    a, b, n = np.asarray(errors_a, float), np.asarray(errors_b, float), np.asarray(lengths, float)
    _check(a, n, clusters)
    _check(b, n, clusters)
    sums = _resampled_sums(np.stack([b, a, n]), clusters, num, seed)  # (b, a): both former callers' order
    deltas = (sums[:, 0] - sums[:, 1]) / np.maximum(sums[:, 2], 1e-12)
    delta = float((b.sum() - a.sum()) / n.sum())
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(deltas, [tail, 100 - tail])
    far_side = min(int(np.count_nonzero(deltas <= 0)), int(np.count_nonzero(deltas >= 0)))
    return PairedTest(delta, float(low), float(high), min(1.0, 2 * (1 + far_side) / (num + 1)))
