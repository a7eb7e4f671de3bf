"""Word n-gram LMs: modified Kneser–Ney probabilities (literal and normalised), an ARPA file KenLM reads,
beam search that the LM pulls to a known word, and `speechtl lm build` / `--lm` on the command line."""

from __future__ import annotations

import json
import math

import pytest
import torch

from speechtl.cli import main
from speechtl.decode.lm import LmDecoder, LmError, LmSettings, pause_segments
from speechtl.decode.ngram import (EOS, UNK_WORD, arpa_vocabulary, build_arpa, count_ngrams, kneser_ney,
                                   read_text_files)
from speechtl.models import build_processor
from speechtl.text import build_vocab

CORPUS = ["a b c", "a b", "b c a", "c c a b", "a", "b a c c", "a b c", "d a b c e"]


def test_unigram_kneser_ney_literal():
    # counts a:2 b:1 </s>:3; counts-of-counts lack t4 -> fallback discounts 0.5/1.0/1.5; |V| = {a, b, </s>, <unk>}
    probs, _ = kneser_ney(count_ngrams([["a"], ["a"], ["b"]], order=1))
    p = {g[0]: v for g, v in probs[0].items()}
    assert p == pytest.approx({"a": 1 / 6 + 0.125, "b": 0.5 / 6 + 0.125, EOS: 1.5 / 6 + 0.125, UNK_WORD: 0.125})


def _backoff_prob(probs, backoffs, word, context):
    context = tuple(context)[-(len(probs) - 1):] if len(probs) > 1 else ()
    if (*context, word) in probs[len(context)]:
        return probs[len(context)][(*context, word)]
    if not context:
        return 0.0
    return backoffs[len(context) - 1].get(context, 1.0) * _backoff_prob(probs, backoffs, word, context[1:])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_is_a_distribution(order):
    probs, backoffs = kneser_ney(count_ngrams([s.split() for s in CORPUS * 3], order))
    vocab = [g[0] for g in probs[0]]
    for context in [(), ("<s>",), ("a",), ("a", "b"), ("c", "c", "a"), ("zzz",), ("<s>", "d")]:
        total = sum(_backoff_prob(probs, backoffs, w, context) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-9), context
    assert all(0 < v <= 1 for p in probs for v in p.values())


def test_arpa_file_round_trip(tmp_path):
    info = build_arpa([s.split() for s in CORPUS], 3, tmp_path / "lm.arpa")
    text = (tmp_path / "lm.arpa").read_text()
    assert info["vocabulary"] == 7 and info["ngrams"][0] == 8  # a b c d e </s> <unk>, then <s>
    assert "\\data\\\nngram 1=8\n" in text and text.rstrip().endswith("\\end\\")
    assert "-99.000000\t<s>\t" in text
    assert sorted(arpa_vocabulary(tmp_path / "lm.arpa")) == ["a", "b", "c", "d", "e"]
    line = next(x for x in text.splitlines() if x.endswith("\ta b c"))
    probs, _ = kneser_ney(count_ngrams([s.split() for s in CORPUS], 3))
    assert float(line.split("\t")[0]) == pytest.approx(math.log10(probs[2][("a", "b", "c")]), abs=1e-6)


def test_text_files_are_normalised_and_checked(tmp_path):
    (tmp_path / "t.txt").write_text("Hello, World!\n\n  it's OK  \n")
    assert read_text_files([tmp_path / "t.txt"]) == [["hello", "world"], ["it's", "ok"]]
    from speechtl.config import ConfigError

    with pytest.raises(ConfigError, match="nope.txt"):
        read_text_files([tmp_path / "nope.txt"])


def test_pause_segments_cut_in_the_longest_quiet_run():
    ids = torch.tensor([5] * 6 + [0, 0, 0, 0] + [6] * 3 + [0] + [7] * 6)  # 20 frames, quiet at 6..9 and 13
    assert pause_segments(ids, {0}, max_frames=14) == [(0, 8), (8, 20)]
    assert pause_segments(ids, {0}, max_frames=100) == [(0, 20)]
    spans = pause_segments(torch.full((50,), 5), {0}, max_frames=10)  # no pause: hard cuts
    assert spans[0] == (0, 10) and spans[-1][1] == 50 and all(b - a <= 10 for a, b in spans)


@pytest.fixture(scope="module")
def tone_tokenizer():
    return build_processor(build_vocab(["abc"])).tokenizer  # <pad>=0 <s> </s> <unk> |=4 a=5 b=6 c=7


def _emissions(path: list[int], second: dict[int, tuple[int, float]] | None = None) -> torch.Tensor:
    """Log-probs whose best path is ``path``; ``second`` gives some frames a close runner-up token."""
    lp = torch.full((len(path), 8), -8.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = -0.05
    for t, (tok, value) in (second or {}).items():
        lp[t, tok] = value
    return torch.log_softmax(lp, -1)


def test_the_lm_pulls_a_misread_word_to_a_known_one(tmp_path, tone_tokenizer):
    from speechtl.decode.timestamps import greedy_words

    (tmp_path / "text.txt").write_text("ab bca\nbca ab\nab bca ab\ncab bca\n" * 5)
    build_arpa(read_text_files([tmp_path / "text.txt"]), 2, tmp_path / "lm.arpa")
    # greedy reads "ab bcb"; at frame 11 'a' is a close second to 'b'
    path = [0, 5, 0, 6, 0, 4, 0, 6, 0, 7, 0, 6, 0]
    lp = _emissions(path, second={11: (5, -0.4)})
    assert " ".join(w.word for w in greedy_words(lp, tone_tokenizer, 0.02, 1.0)) == "ab bcb"
    dec = LmDecoder(tmp_path / "lm.arpa", tone_tokenizer, LmSettings(lm_weight=1.0, word_score=0.0))
    assert dec.text(lp) == "ab bca"
    words = dec.words(lp, frame_s=0.02, duration_s=len(path) * 0.02)
    assert [w.word for w in words] == ["ab", "bca"]
    assert words[0].start_s == 0.02 and words[1].start_s == 0.14 and words[1].end_s <= len(path) * 0.02
    assert 0 < words[1].confidence < words[0].confidence <= 1  # the LM overrode the acoustics there


def test_unusable_lm_files_are_clear_errors(tmp_path, tone_tokenizer):
    (tmp_path / "words.arpa").write_text("\\data\\\nngram 1=1\nngram 2=0\n\n\\1-grams:\n-1.0\txyz\n\n\\2-grams:\n"
                                         "\n\\end\\\n")
    with pytest.raises(LmError, match="none of its 1 words"):
        LmDecoder(tmp_path / "words.arpa", tone_tokenizer)
    from speechtl.decode.lm import load_lm_decoder

    with pytest.raises(LmError, match="lm build"):
        load_lm_decoder(tmp_path / "missing.arpa", tone_tokenizer)


def test_cli_lm_build_then_transcribe_and_evaluate_with_it(tone_data, tiny_model_dir, tmp_path, capsys):
    from speechtl.data.manifest import read_manifest

    text = tmp_path / "train.txt"
    text.write_text("\n".join(u.text for u in read_manifest(tone_data["train"])) + "\n")
    assert main(["lm", "build", str(text), "--order", "2", "--out", str(tmp_path / "lm.arpa")]) == 0
    assert "order 2" in capsys.readouterr().out and (tmp_path / "lm.arpa").is_file()
    assert main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--lm", str(tmp_path / "lm.arpa"),
                 "--beam-size", "8", "--quiet", "--output-format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["lm"]["beam_size"] == 8 and results["sets"]["test"]["num_utts"] == 4
    wav_dir = tone_data["test"].parent / "wav"
    assert main(["transcribe", str(tiny_model_dir), str(wav_dir), "--lm", str(tmp_path / "lm.arpa"), "--quiet",
                 "--output-format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    vocab = set(arpa_vocabulary(tmp_path / "lm.arpa"))
    assert len(out["transcripts"]) == 4 and all(set(t["text"].split()) <= vocab for t in out["transcripts"])
    assert main(["lm", "build", str(tmp_path / "none.txt"), "--out", str(tmp_path / "x.arpa")]) == 2
    assert main(["transcribe", str(tiny_model_dir), str(wav_dir), "--lm", str(tmp_path / "x.arpa"), "--quiet"]) == 2
