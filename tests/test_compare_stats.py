"""speechtl.eval.stats and speechtl.compare.analysis: bootstrap intervals with known answers, the paired test's
symmetry, per-utterance counts that add up to jiwer's corpus rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechtl.compare.analysis import error_counts, score_utterances, utterance_changes
from speechtl.eval import error_rates
from speechtl.eval.stats import bootstrap_ci, cluster_ids, paired_bootstrap


def binomial_quantile(n: int, p: float, q: float) -> int:
    """Smallest k with P(Binomial(n, p) ≤ k) ≥ q (by summing the pmf)."""
    total = 0.0
    for k in range(n + 1):
        total += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if total >= q:
            return k
    return n


def test_cluster_ids_give_empty_labels_their_own_cluster():
    assert cluster_ids(["a", "b", "a", "", ""]).tolist() == [0, 1, 0, 2, 3]


def test_constant_error_rate_has_a_zero_width_interval():
    # every utterance: 1 error in 4 words, so every resample has WER 0.25 exactly
    ci = bootstrap_ci([1] * 30, [4] * 30, num=500)
    assert (ci.value, ci.low, ci.high) == (0.25, 0.25, 0.25)


def test_bootstrap_of_one_word_utterances_matches_the_binomial_quantiles():
    # 100 one-word utterances, 30 wrong: resampled WER = Binomial(100, 0.3) / 100
    errors = np.array([1] * 30 + [0] * 70)
    ci = bootstrap_ci(errors, np.ones(100), num=20_000, seed=1)
    assert ci.value == 0.3
    assert ci.low == pytest.approx(binomial_quantile(100, 0.3, 0.025) / 100, abs=0.0101)  # 0.21
    assert ci.high == pytest.approx(binomial_quantile(100, 0.3, 0.975) / 100, abs=0.0101)  # 0.39


def test_cluster_bootstrap_resamples_speakers_not_utterances():
    # speaker A gets every word right, speaker B every word wrong, 50 utterances each
    errors, lengths = np.array([0] * 50 + [1] * 50), np.ones(100)
    speakers = cluster_ids(["A"] * 50 + ["B"] * 50)
    by_utt = bootstrap_ci(errors, lengths, num=2000)
    by_speaker = bootstrap_ci(errors, lengths, speakers, num=2000)
    assert by_utt.value == by_speaker.value == 0.5
    assert 0.35 < by_utt.low < 0.45 and 0.55 < by_utt.high < 0.65
    # two speakers: a resample is AA, AB, BA or BB, so WER 0, 0.5 or 1 — the interval spans all of it
    assert (by_speaker.low, by_speaker.high) == (0.0, 1.0)


def test_bootstrap_is_seeded():
    e, n = np.arange(20) % 5, np.arange(20) % 7 + 4
    assert bootstrap_ci(e, n, num=200, seed=7) == bootstrap_ci(e, n, num=200, seed=7)
    assert bootstrap_ci(e, n, num=200, seed=7) != bootstrap_ci(e, n, num=200, seed=8)


@pytest.mark.parametrize("clusters", [None, cluster_ids([f"s{i % 7}" for i in range(60)])])
def test_paired_test_is_antisymmetric(clusters):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 12, 60)
    a = rng.binomial(lengths, 0.3)
    b = rng.binomial(lengths, 0.35)
    ab = paired_bootstrap(a, b, lengths, clusters)
    ba = paired_bootstrap(b, a, lengths, clusters)
    assert ab.delta == -ba.delta
    assert (ab.low, ab.high) == pytest.approx((-ba.high, -ba.low), abs=1e-12)
    assert ab.p_value == ba.p_value


def test_identical_systems_have_zero_delta_and_p_one():
    lengths = np.array([5, 8, 3, 9, 4])
    errors = np.array([1, 0, 2, 3, 0])
    t = paired_bootstrap(errors, errors, lengths)
    assert (t.delta, t.low, t.high, t.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_a_clearly_better_system_is_significant_and_a_tie_on_noise_is_not():
    lengths = np.full(200, 10)
    rng = np.random.default_rng(3)
    worse = rng.binomial(10, 0.5, 200)
    better = rng.binomial(10, 0.2, 200)
    t = paired_bootstrap(worse, better, lengths)  # Δ = better − worse
    assert t.delta < 0 and t.p_value == 2 / 1001  # no resample on the far side of 0
    noise = worse + rng.choice([-1, 0, 1], 200).clip(-worse, 10 - worse)
    t = paired_bootstrap(worse, noise, lengths)
    assert t.low < 0 < t.high and t.p_value > 0.05


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(5)
    for _ in range(40):
        lengths = rng.integers(2, 10, 40)
        a, b = rng.binomial(lengths, 0.3), rng.binomial(lengths, rng.uniform(0.25, 0.4))
        t = paired_bootstrap(a, b, lengths, num=1000)
        excludes_zero = t.low > 0 or t.high < 0
        assert excludes_zero == (t.p_value < 0.05) or abs(t.p_value - 0.05) < 0.006


def test_bootstrap_rejects_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="must be equal"):
        bootstrap_ci([1, 2], [3])
    with pytest.raises(ValueError, match="positive total length"):
        bootstrap_ci([0, 0], [0, 0])


def test_per_utterance_counts_add_up_to_the_corpus_rates():
    refs = ["The cat sat.", "Hello, World!", "a b c d e"]
    hyps = ["the cat sat on", "hello word", "a c d x e y"]
    s = score_utterances(refs, hyps)
    assert s.words.tolist() == [3, 2, 5]
    assert s.word_errors.tolist() == [1, 1, 3]  # +on; world→word; −b, +x, +y
    rates = error_rates(refs, hyps)
    assert s.rate("words") == pytest.approx(rates.wer)
    assert s.rate("chars") == pytest.approx(rates.cer)
    # orthographic: case and punctuation count ("The"≠"the", "sat."≠"sat", "Hello,"≠"hello", "World!"≠"word")
    assert s.orth_words.tolist() == [3, 2, 5]
    assert s.orth_word_errors.tolist() == [3, 2, 3]


def test_error_counts_list_the_most_frequent_first():
    refs = ["the cat sat", "the cat ran", "a dog"]
    hyps = ["the bat sat", "the bat ran now", "dog"]
    e = error_counts(refs, hyps)
    assert e.substitutions == [("cat", "bat", 2)]
    assert e.insertions == [("now", 1)]
    assert e.deletions == [("a", 1)]
    assert e.totals == {"substitutions": 2, "insertions": 1, "deletions": 1, "hits": 5}


def test_utterance_changes_sorts_by_the_size_of_the_change():
    baseline = np.array([2, 0, 3, 1, 0, 4])
    model = np.array([0, 1, 1, 1, 0, 5])
    ch = utterance_changes(baseline, model)
    assert ch["improved"].tolist() == [0, 2]  # both −2: stable order
    assert ch["fixed"].tolist() == [0]
    assert ch["worsened"].tolist() == [5, 1]  # +1, +1
    assert ch["broken"].tolist() == [1]
