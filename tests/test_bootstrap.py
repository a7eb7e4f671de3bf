"""Paired bootstrap of a WER difference: literal per-utterance edits and intervals."""

from __future__ import annotations

import numpy as np
import pytest

from speechtl.eval.bootstrap import compare_hypothesis_files, wer_difference, word_errors

REFS = ["the cat sat", "on the mat", "a dog"]


def test_word_errors_per_utterance():
    edits, words = word_errors(REFS, ["the cat", "on a mat today", ""])
    assert edits.tolist() == [1, 2, 2] and words.tolist() == [3, 3, 2]


def test_identical_systems_differ_by_nothing():
    d = wer_difference(REFS, ["the cat", "on a mat", "dog"], ["the cat", "on a mat", "dog"])
    assert (d.delta, d.low, d.high) == (0.0, 0.0, 0.0) and "no clear difference" in d.describe()


def test_a_perfect_system_is_better_everywhere():
    d = wer_difference(REFS, ["", "", ""], REFS)  # every resample: WER 1 → 0
    assert (d.delta, d.low, d.high) == (-1.0, -1.0, -1.0) and "interval -100.0 … -100.0: lower" in d.describe()


def test_interval_holds_the_difference_and_is_seeded():
    rng = np.random.default_rng(0)
    refs = [" ".join(rng.choice(list("abcdefgh"), 5)) for _ in range(60)]
    a = [r if i % 3 else "x" for i, r in enumerate(refs)]  # every third utterance wrong
    b = [r if i % 4 else "x" for i, r in enumerate(refs)]  # every fourth
    d = wer_difference(refs, a, b)
    assert d.low <= d.delta <= d.high and d.delta == pytest.approx((15 - 20) * 5 / 300)
    assert d == wer_difference(refs, a, b)


def test_speakers_resample_whole_speakers():
    rng = np.random.default_rng(0)
    refs = [" ".join(rng.choice(list("abcdefgh"), 5)) for _ in range(60)]
    b = [r if i < 50 else "x" for i, r in enumerate(refs)]  # b loses only the last 10 utterances
    per_utt = wer_difference(refs, refs, b)
    # one label per utterance draws exactly what the utterance bootstrap draws
    assert wer_difference(refs, refs, b, speakers=[f"s{i}" for i in range(60)]) == per_utt
    # the 10 bad utterances are one speaker of six: the change hangs on one cluster, the interval widens
    by_speaker = wer_difference(refs, refs, b, speakers=[f"s{i // 10}" for i in range(60)])
    assert by_speaker.delta == per_utt.delta and by_speaker.low <= 0.0 < per_utt.low


def test_hypothesis_files_must_list_the_same_utterances(tmp_path):
    (tmp_path / "a.tsv").write_text("id\treference\thypothesis\nu1\tthe cat\tthe cat\nu2\ta dog\ta\n")
    (tmp_path / "b.tsv").write_text("id\treference\thypothesis\nu1\tthe cat\tthe hat\nu2\ta dog\ta dog\n")
    assert compare_hypothesis_files(tmp_path / "a.tsv", tmp_path / "b.tsv").delta == 0.0
    (tmp_path / "c.tsv").write_text("id\treference\thypothesis\nu2\ta dog\ta dog\n")
    with pytest.raises(ValueError, match="same utterances"):
        compare_hypothesis_files(tmp_path / "a.tsv", tmp_path / "c.tsv")
