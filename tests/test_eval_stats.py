"""One paired bootstrap (speechtl.eval.stats), one sign convention, one edit counter — and the figures both former
call sites (the adaptation run's change, ``speechtl compare``) gave before they were unified."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from speechtl.eval import error_rates, utterance_edits
from speechtl.eval.bootstrap import compare_hypothesis_files, wer_difference
from speechtl.eval.stats import NUM_BOOTSTRAP, bootstrap_ci, cluster_ids
from speechtl.eval.stats import paired_bootstrap as paired_counts

# 24 utterances of 2-6 letter "words"; system a garbles every third word, b every fourth (b is better)
REFS = [" ".join("abcdefghij"[(i * 7 + k * 3) % 10] for k in range(2 + i % 5)) for i in range(24)]
A = [" ".join("x" if (i + k) % 3 == 0 else w for k, w in enumerate(r.split())) for i, r in enumerate(REFS)]
B = [" ".join("x" if (i * 5 + k) % 4 == 0 else w for k, w in enumerate(r.split())) for i, r in enumerate(REFS)]
SPEAKERS = [f"s{i % 5}" for i in range(24)]


def test_the_sign_is_b_minus_a_negative_when_b_is_better():
    # a: 1 + 0 + 2 errors, b: 0 + 0 + 1 in 10 words → Δ = (1 − 3) / 10; b never makes more errors on any item
    t = paired_counts([1, 0, 2], [0, 0, 1], [2, 3, 5])
    assert t.delta == pytest.approx(-0.2) and t.low <= t.high <= 0.0
    swapped = paired_counts([0, 0, 1], [1, 0, 2], [2, 3, 5])
    assert swapped.delta == pytest.approx(0.2) and swapped.high >= swapped.low >= 0.0
    d = wer_difference(["a b c d"], ["a b"], ["a b c d"])  # a drops two of four words, b none
    assert (d.delta, d.low, d.high) == (-0.5, -0.5, -0.5) and "lower" in d.describe()


def test_one_counter_everywhere():
    edits, words = utterance_edits(["the cat sat", "a b", "x"], ["the bat", "a b c", "x"])
    assert edits.tolist() == [2, 1, 0] and words.tolist() == [3, 2, 1]
    edits, chars = utterance_edits(["ab cd"], ["ab  d"], "chars")  # jiwer keeps inner spaces: one deletion
    assert edits.tolist() == [1] and chars.tolist() == [5]
    rates = error_rates(REFS, A)
    word_edits, num_words = utterance_edits(REFS, A)
    assert rates.wer == word_edits.sum() / num_words.sum() and rates.num_words == num_words.sum() == 94


def test_the_adaptation_change_gives_the_figures_it_gave_before():
    # speechtl.adapt.run's call (2000 resamples, seed 0), recorded on the code before the unification
    before = {None: (-0.09574468085106383, -0.14432989690721648, -0.047619047619047616),
              "speakers": (-0.09574468085106383, -0.12222222222222222, -0.07058823529411765)}
    for speakers, (delta, low, high) in before.items():
        d = wer_difference(REFS, A, B, speakers=SPEAKERS if speakers else None)
        assert (d.delta, d.low, d.high, d.level) == pytest.approx((delta, low, high, 0.95), abs=1e-12)


def test_compares_paired_test_gives_the_figures_it_gave_before():
    # speechtl compare's call (baseline a, model b, NUM_BOOTSTRAP resamples, seed 0), recorded before
    edits_a, words = utterance_edits(REFS, A)
    edits_b, _ = utterance_edits(REFS, B)
    assert NUM_BOOTSTRAP == 1000
    by_utt = paired_counts(edits_a, edits_b, words)
    by_speaker = paired_counts(edits_a, edits_b, words, cluster_ids(SPEAKERS))
    assert (by_utt.delta, by_utt.low, by_utt.high, by_utt.p_value) == pytest.approx(
        (-0.09574468085106383, -0.14285714285714285, -0.05153324216284453, 2 / 1001), abs=1e-12)
    assert (by_speaker.delta, by_speaker.low, by_speaker.high, by_speaker.p_value) == pytest.approx(
        (-0.09574468085106383, -0.12222222222222222, -0.0707070707070707, 2 / 1001), abs=1e-12)
    ci = bootstrap_ci(edits_b, words, cluster_ids(SPEAKERS))
    assert (ci.value, ci.low, ci.high) == pytest.approx((0.24468085106382978, 0.2235294117647059,
                                                         0.26584388185654007), abs=1e-12)


def test_hypothesis_files_agree_with_the_lists(tmp_path):
    for name, hyps in (("a", A), ("b", B)):
        rows = "".join(f"u{i}\t{r}\t{h}\n" for i, (r, h) in enumerate(zip(REFS, hyps)))
        (tmp_path / f"{name}.tsv").write_text("id\treference\thypothesis\n" + rows)
    assert compare_hypothesis_files(tmp_path / "a.tsv", tmp_path / "b.tsv") == wer_difference(REFS, A, B)


def test_eval_does_not_import_compare():
    import speechtl.eval

    for path in Path(speechtl.eval.__file__).parent.glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (speechtl\.\w+)", path.read_text(encoding="utf-8"), re.M)
        assert "speechtl.compare" not in imports, path
