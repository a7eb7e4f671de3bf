"""Domain mismatch before adapting, from unlabelled audio alone.

Two views of how far a target sample lies from a source sample, for one model, without transcripts:

- **Fréchet distance** between Gaussians fitted to per-utterance mean-pooled hidden states of the two
  samples (the FID / Fréchet-audio-distance recipe). The headline layer is the encoder's final output —
  the representation the CTC head reads, so a shift there is a shift the head was never trained on; the
  distances at every transformer layer come with it (``frechet_by_layer``; 0 = the transformer's input,
  i = after layer i, ``final`` = after the encoder's last layer norm, = the headline).
- **Frame posteriors**: mean frame entropy (nats) and mean max-posterior confidence of the CTC outputs,
  over all valid frames, on target and on source. An unsure model is a mismatched model.

Both sides use the same number of utterances (``max_utts``, or fewer when a side has fewer): the distance
is only comparable at equal sample sizes — with fewer utterances than hidden dimensions the covariances are
rank-deficient and the distance is biased upwards (by the same amount at the same size, so rankings hold).
Cost is one forward pass over at most ``max_utts`` utterances per side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.linalg
import torch

from speechtl.audio import SAMPLE_RATE
from speechtl.decode import iter_batches
from speechtl.models.router import masked_mean

__all__ = ["SampleStats", "sample_stats", "frechet_distance", "mismatch_score", "format_mismatch"]


@dataclass
class SampleStats:
    pooled: dict[str, np.ndarray]  # layer name -> (N, D) per-utterance mean of valid frames
    entropy: float  # mean frame entropy of the CTC posteriors, nats
    confidence: float  # mean max posterior per frame
    num_utts: int
    audio_s: float


def _pick(arrays: Sequence[np.ndarray], max_utts: int, seed: int) -> list[np.ndarray]:
    if len(arrays) <= max_utts:
        return list(arrays)
    idx = np.sort(np.random.default_rng(seed).choice(len(arrays), size=max_utts, replace=False))
    return [arrays[i] for i in idx]


@torch.no_grad()
def sample_stats(model, processor, arrays: Sequence[np.ndarray], batch_seconds: float = 60.0,
                 precision: str = "fp32") -> SampleStats:
    """Pooled hidden states per layer and frame-posterior statistics of 16 kHz arrays."""
    pooled: dict[str, list] = {}
    order: list[int] = []
    entropy = confidence = frames = 0.0
    for b in iter_batches(model, processor, arrays, batch_seconds, precision, hidden_states=True):
        logits, lengths = b.logits, b.lengths
        valid = (torch.arange(logits.shape[1], device=logits.device)[None, :] < lengths[:, None]).float()  # (B, T)
        states = {str(i): h for i, h in enumerate(b.hidden_states)} | {"final": b.last_hidden_state}
        for name, h in states.items():  # (B, T, D) -> (B, D) mean over valid frames
            pooled.setdefault(name, []).append(masked_mean(h, lengths).cpu().numpy())
        logp = torch.log_softmax(logits, dim=-1)
        entropy += float((-(logp.exp() * logp).sum(-1) * valid).sum())
        confidence += float((logp.max(-1).values.exp() * valid).sum())
        frames += float(valid.sum())
        order += b.indices
    durations = [len(a) / SAMPLE_RATE for a in arrays]
    back = np.argsort(order)  # batches run longest first: restore input order
    return SampleStats({k: np.concatenate(v)[back] for k, v in pooled.items()}, entropy / max(frames, 1),
                       confidence / max(frames, 1), len(arrays), sum(durations))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(ΣaΣb)^½) between Gaussians fitted to the rows of a (N, D) and b (M, D)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 vectors per side (got {len(a)} and {len(b)})")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Tr (ΣaΣb)^½ = Σ √λ of the symmetric PSD Σa^½ Σb Σa^½: stable when the covariances are singular (N < D)
    w, v = scipy.linalg.eigh(cov_a)
    half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    trace_root = np.sqrt(np.clip(scipy.linalg.eigvalsh(half @ cov_b @ half), 0, None)).sum()
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)
    return max(value, 0.0)


def mismatch_score(model, processor, source: Sequence[np.ndarray], target: Sequence[np.ndarray],
                   max_utts: int = 100, seed: int = 0, batch_seconds: float = 60.0, precision: str = "fp32") -> dict:
    """How far ``target`` audio lies from ``source`` audio for ``model`` (see the module doc), as a JSON-able dict."""
    start = time.perf_counter()
    n = min(max_utts, len(source), len(target))  # equal sizes: the distance's bias depends on them
    src = sample_stats(model, processor, _pick(source, n, seed), batch_seconds, precision)
    tgt = sample_stats(model, processor, _pick(target, n, seed + 1), batch_seconds, precision)
    by_layer = {name: round(frechet_distance(src.pooled[name], tgt.pooled[name]), 6) for name in src.pooled}
    return {
        "frechet": by_layer["final"],
        "frechet_by_layer": by_layer,
        "entropy": {"source": round(src.entropy, 6), "target": round(tgt.entropy, 6)},
        "confidence": {"source": round(src.confidence, 6), "target": round(tgt.confidence, 6)},
        "utterances": {"source": src.num_utts, "target": tgt.num_utts},
        "audio_s": {"source": round(src.audio_s, 1), "target": round(tgt.audio_s, 1)},
        "wall_s": round(time.perf_counter() - start, 2),
    }


def format_mismatch(m: dict) -> str:
    """One line for reports."""
    return (f"Fréchet distance (final layer) {m['frechet']:.3g} · frame entropy target {m['entropy']['target']:.3f} "
            f"vs source {m['entropy']['source']:.3f} nats · confidence target {m['confidence']['target']:.3f} vs "
            f"source {m['confidence']['source']:.3f} ({m['utterances']['target']} target / "
            f"{m['utterances']['source']} source utterances)")
