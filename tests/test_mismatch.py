"""The domain-mismatch score: Fréchet distance on literal cases, and the score on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from speechtl.eval.mismatch import frechet_distance, mismatch_score, sample_stats
from speechtl.models import random_model
from speechtl.text import build_vocab


def test_frechet_distance_of_one_dimensional_gaussians():
    # N(1, 2) vs N(5, 8): (1 − 5)² + (√2 − √8)² = 16 + 2 = 18
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[3.0], [7.0]])) == pytest.approx(18.0)
    same = np.random.default_rng(0).normal(size=(20, 3))
    assert frechet_distance(same, same) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2 vectors"):
        frechet_distance(same[:1], same)


def test_frechet_distance_equals_the_textbook_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(200, 4)) @ np.diag([1.0, 2.0, 3.0, 0.5]) + 1.0
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb) - 2 * np.trace(scipy.linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(textbook, rel=1e-9)
    assert np.isfinite(frechet_distance(rng.normal(size=(5, 50)), rng.normal(size=(5, 50))))  # N < D: singular


def test_pooled_states_follow_the_input_order_and_ignore_padding():
    model, processor = random_model(build_vocab([], "abc"), size="tiny")
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=n).astype(np.float32) for n in (4000, 12000, 8000)]
    together = sample_stats(model, processor, arrays, batch_seconds=10)
    alone = [sample_stats(model, processor, [a], batch_seconds=10) for a in arrays]
    for name in ("0", "final"):
        assert together.pooled[name].shape == (3, 32)
        for i, one in enumerate(alone):
            np.testing.assert_allclose(together.pooled[name][i], one.pooled[name][0], atol=1e-4)
    assert 0 < together.confidence <= 1 and 0 <= together.entropy <= np.log(len(processor.tokenizer))


def test_mismatch_score_caps_the_utterances_and_grows_with_the_shift():
    model, processor = random_model(build_vocab([], "abc"), size="tiny")
    rng = np.random.default_rng(0)
    noise = [0.1 * rng.normal(size=8000).astype(np.float32) for _ in range(12)]
    t = np.arange(8000) / 16000
    tones = [(0.5 * np.sin(2 * np.pi * (300 + 50 * i) * t)).astype(np.float32) for i in range(12)]
    near = mismatch_score(model, processor, noise[:6], noise[6:], max_utts=5)
    far = mismatch_score(model, processor, noise[:6], tones, max_utts=5)
    assert near["utterances"] == far["utterances"] == {"source": 5, "target": 5}
    assert far["frechet"] > near["frechet"] and set(far["frechet_by_layer"]) == {"0", "1", "2", "final"}
