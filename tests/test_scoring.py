"""speechtl.eval: WER/CER on literal cases worked out by hand, and the hypotheses TSV.

Conventions checked here (those of jiwer, on text after speechtl.text.normalize):
- WER = (S + D + I) / N over the whole corpus, N = reference words, summed over utterances
  (not the mean of per-utterance WERs).
- CER = the same over characters, and the single spaces between words count as characters,
  both in the edits and in N (``num_chars``).
"""

from __future__ import annotations

import pytest
import torch

from speechtl.eval import EvalResult, ErrorRates, error_rates, write_hypotheses


def test_identical_is_zero():
    assert error_rates(["hello world", "good morning"], ["hello world", "good morning"]) == ErrorRates(
        wer=0.0, cer=0.0, num_words=4, num_chars=23
    )


def test_one_substitution_in_four_words():
    r = error_rates(["the cat sat down"], ["the cat sat town"])
    assert r.wer == pytest.approx(1 / 4)
    assert r.cer == pytest.approx(1 / 16)  # d→t; 16 characters with the 3 spaces
    assert (r.num_words, r.num_chars) == (4, 16)


def test_one_deletion():
    r = error_rates(["the cat sat down"], ["the cat down"])
    assert r.wer == pytest.approx(1 / 4)
    assert r.cer == pytest.approx(4 / 16)  # "sat" and one space deleted


def test_one_insertion():
    r = error_rates(["the cat sat"], ["the black cat sat"])
    assert r.wer == pytest.approx(1 / 3)
    assert r.cer == pytest.approx(6 / 11)  # "black" and one space inserted; ref has 11 characters


def test_insertions_can_push_wer_above_one():
    assert error_rates(["hi"], ["hi there you"]).wer == pytest.approx(2.0)


def test_empty_hypothesis_is_all_deletions():
    r = error_rates(["a b"], [""])
    assert r.wer == pytest.approx(1.0)
    assert r.cer == pytest.approx(1.0)


def test_corpus_level_aggregation():
    # utterance 1: 1 substitution / 4 words; utterance 2: 2 deletions / 2 words
    r = error_rates(["a b c d", "e f"], ["a x c d", ""])
    assert r.wer == pytest.approx((1 + 2) / (4 + 2))  # 0.5
    assert r.wer != pytest.approx((1 / 4 + 2 / 2) / 2)  # not the mean of per-utterance WERs (0.625)
    # characters: "a b c d" (7) + "e f" (3) = 10; edits: b→x (1) + "e f" deleted (3)
    assert r.cer == pytest.approx(4 / 10)
    assert (r.num_words, r.num_chars) == (6, 10)


def test_cer_counts_spaces_as_characters():
    # a missing space: one word error per word pair, but a single character edit
    r = error_rates(["ab cd"], ["abcd"])
    assert r.wer == pytest.approx(2 / 2)  # ab→abcd substituted, cd deleted
    assert r.cer == pytest.approx(1 / 5)  # the space deleted; "ab cd" has 5 characters
    assert r.num_chars == 5


def test_normalisation_before_scoring():
    assert error_rates(["Hello, World!"], ["hello world"]).wer == 0.0
    assert error_rates(["Don\u2019t   STOP."], ["don't stop"]) == ErrorRates(0.0, 0.0, 2, 10)
    assert error_rates(["well-known"], ["well known"]).wer == 0.0


@pytest.mark.parametrize("refs", [[""], ["ok", "   "], ["!!!"]])
def test_empty_reference_is_an_error(refs):
    with pytest.raises(ValueError, match="empty after normalisation"):
        error_rates(refs, ["x"] * len(refs))


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rates(["a", "b"], ["a"])


def test_write_hypotheses_tsv(tmp_path):
    result = EvalResult(
        wer=0.25, cer=0.1, num_utts=2, num_words=4, audio_s=3.0, rtf=0.1,
        rows=[
            {"id": "u1", "reference": "hello world", "hypothesis": "hello word"},
            {"id": "u2", "reference": "don't stop", "hypothesis": ""},
        ],
    )
    path = tmp_path / "out" / "hypotheses.tsv"  # the folder is created
    write_hypotheses(result, path)
    assert path.read_text(encoding="utf-8") == (
        "id\treference\thypothesis\n"
        "u1\thello world\thello word\n"
        "u2\tdon't stop\t\n"
    )
    assert [p.name for p in path.parent.iterdir()] == ["hypotheses.tsv"]  # no temporary file left
    assert "rows" not in result.summary()


def test_greedy_decode_drops_special_tokens_but_keeps_double_letters():
    from speechtl.decode import greedy_decode
    from speechtl.models import build_processor
    from speechtl.text import build_vocab

    tokenizer = build_processor(build_vocab(["abc"])).tokenizer  # <pad>=0 <s>=1 </s>=2 <unk>=3 |=4 a=5 b=6 c=7
    path = [5, 0, 5, 3, 6, 4, 1, 7, 7, 0, 2]  # a a <unk> b | <s> c c </s>
    logits = torch.full((1, len(path), 8), -8.0)
    logits[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert greedy_decode(logits, torch.tensor([len(path)]), tokenizer) == ["aa b c"]
