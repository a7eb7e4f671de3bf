"""speechtl.text: literal normalisation pairs, the vocabulary layout, OOV reports, and the CTC tokenizer round trip."""

from __future__ import annotations

import pytest

from speechtl.models import build_processor
from speechtl.text import build_vocab, find_oov, normalize, text_to_model_alphabet

# (input, expected) — like whisper's tests/test_normalizer.py
NORMALIZE_CASES = [
    # case
    ("Hello World", "hello world"),
    ("HELLO", "hello"),
    ("Straße", "straße"),  # lower(), not casefold(): ß stays
    # Unicode NFC: a decomposed "e" + combining acute becomes the single code point é
    ("cafe\u0301", "caf\u00e9"),
    ("E\u0301TE\u0301", "\u00e9t\u00e9"),
    ("naïve", "naïve"),
    # apostrophes: curly ones become "'", word-internal ones stay
    ("don't", "don't"),
    ("Don\u2019t", "don't"),
    ("it\u2018s", "it's"),
    ("o\u02bcclock", "o'clock"),
    ("rock`n", "rock'n"),
    ("o'clock", "o'clock"),
    # apostrophes and quotes at the edge of a word go
    ("'tis", "tis"),
    ("the dogs' toys", "the dogs toys"),
    ("rock 'n' roll", "rock n roll"),
    ("\u2018quoted\u2019", "quoted"),
    ('"hi" she said', "hi she said"),
    ("«bonjour»", "bonjour"),
    # hyphens and punctuation become spaces
    ("well-known", "well known"),
    ("e-mail", "e mail"),
    ("Hello, world! How are you?", "hello world how are you"),
    ("wait... what?!", "wait what"),
    ("a/b (c) [d] {e}", "a b c d e"),
    ("semi;colon:here", "semi colon here"),
    ("under_score", "under score"),
    # whitespace collapses and is stripped
    ("a  \t b\n c", "a b c"),
    ("   padded   ", "padded"),
    ("  Hello,   World! Don\u2019t-stop. ", "hello world don't stop"),
    # digits are kept (not spelled out)
    ("route 66", "route 66"),
    ("3.5", "3 5"),
    ("R2-D2", "r2 d2"),
    # non-Latin letters (and their combining marks) are kept
    ("Привет, мир!", "привет мир"),
    ("日本語です。", "日本語です"),
    ("नमस्ते", "नमस्ते"),
    ("Ελληνικά", "ελληνικά"),
    # nothing left
    ("", ""),
    ("!!! ... ???", ""),
]


@pytest.mark.parametrize("text, expected", NORMALIZE_CASES)
def test_normalize(text: str, expected: str):
    assert normalize(text) == expected


@pytest.mark.parametrize("text, expected", NORMALIZE_CASES)
def test_normalize_is_idempotent(text: str, expected: str):
    assert normalize(expected) == expected


# --- vocabulary -------------------------------------------------------------------------------


def test_build_vocab_exact_layout():
    vocab = build_vocab(["Hello, World!", "hello again"])
    assert vocab == {
        "<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4,
        "a": 5, "d": 6, "e": 7, "g": 8, "h": 9, "i": 10, "l": 11, "n": 12, "o": 13, "r": 14, "w": 15,
    }
    assert list(vocab.values()) == list(range(len(vocab)))


def test_build_vocab_uses_only_the_given_normalised_text():
    vocab = build_vocab(["Don\u2019t-stop 42", "Café"])
    assert " " not in vocab
    assert "-" not in vocab and "\u2019" not in vocab and "C" not in vocab
    assert list(vocab)[5:] == ["'", "2", "4", "a", "c", "d", "f", "n", "o", "p", "s", "t", "é"]  # code-point order
    assert "z" not in vocab and "b" not in vocab


def test_build_vocab_of_nothing_has_only_the_specials():
    assert build_vocab([]) == {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    assert build_vocab(["!?"]) == {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}


# facebook/wav2vec2-base-960h's vocab.json: upper-case letters and the apostrophe
VOCAB_960H = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
VOCAB_960H.update({c: 5 + k for k, c in enumerate("ETAONIHSRDLUMWCFGYPBVK'XJQZ")})


def test_text_to_model_alphabet_uppercases_for_an_uppercase_vocabulary():
    assert text_to_model_alphabet("don't stop", VOCAB_960H) == "DON'T STOP"


def test_text_to_model_alphabet_keeps_a_lowercase_vocabulary_lowercase():
    vocab = build_vocab(["hello world"])
    assert text_to_model_alphabet("hello world", vocab) == "hello world"


# --- out-of-vocabulary report -----------------------------------------------------------------


def test_find_oov_reports_characters_counts_and_utterances():
    vocab = build_vocab(["hello world"])
    report = find_oov([("u1", "Hello!"), ("u2", "héllo wörld"), ("u3", "zoo zoo")], vocab)
    assert report  # truthy: something is missing
    assert report.chars == {"é": 1, "ö": 1, "z": 2}
    assert report.utterances == {"é": ["u2"], "ö": ["u2"], "z": ["u3"]}
    assert report.num_utterances == 2
    text = report.describe()
    assert "3 character(s) in 2 utterance(s)" in text
    assert "'z' ×2 (e.g. u3)" in text
    assert "'é' ×1 (e.g. u2)" in text and "'ö'" in text


def test_find_oov_keeps_at_most_five_example_ids():
    vocab = build_vocab(["abc"])
    report = find_oov([(f"u{k}", "xa") for k in range(7)], vocab)
    assert report.chars == {"x": 7}
    assert report.utterances == {"x": ["u0", "u1", "u2", "u3", "u4"]}
    assert report.num_utterances == 7


def test_find_oov_empty_report_is_falsy():
    vocab = build_vocab(["hello world"])
    report = find_oov([("u1", "Hello, World!"), ("u2", "  world  ")], vocab)
    assert not report
    assert report.chars == {} and report.utterances == {} and report.num_utterances == 0
    assert report.describe() == "all characters are in the model's vocabulary"


def test_find_oov_against_an_uppercase_vocabulary():
    report = find_oov([("u1", "Don't stop"), ("u2", "café 9")], VOCAB_960H)
    assert report.chars == {"É": 1, "9": 1}  # compared in the model's (upper) case
    assert report.utterances == {"É": ["u2"], "9": ["u2"]}
    assert report.num_utterances == 1


# --- tokenizer round trip ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def processor():
    return build_processor(build_vocab(["hello world"]))


def test_tokenizer_maps_spaces_to_the_word_delimiter(processor):
    tok = processor.tokenizer
    vocab = tok.get_vocab()
    ids = tok("hello world").input_ids
    assert ids == [vocab[c] for c in "hello|world"]
    assert tok.convert_ids_to_tokens(ids) == list("hello|world")
    # label ids are decoded without CTC grouping; plain decode() would merge the double l
    assert tok.decode(ids, group_tokens=False) == "hello world"
    assert tok.decode(ids) == "helo world"


def test_tokenizer_ctc_decode_collapses_repeats_and_drops_blanks(processor):
    tok = processor.tokenizer
    vocab = tok.get_vocab()
    blank = vocab["<pad>"]
    assert blank == tok.pad_token_id == 0
    # h h _ e l l _ l o | | w _ o o   (_ = blank): repeats collapse, a blank separates the double l
    frames = [vocab["h"], vocab["h"], blank, vocab["e"], vocab["l"], vocab["l"], blank, vocab["l"], vocab["o"],
              vocab["|"], vocab["|"], vocab["w"], blank, vocab["o"], vocab["o"]]
    assert tok.decode(frames) == "hello wo"
    # without a blank between them the two l's merge into one
    assert tok.decode([vocab["h"], vocab["e"], vocab["l"], vocab["l"], vocab["o"]]) == "helo"
    # leading/trailing blanks and delimiters leave no spaces behind
    assert tok.decode([blank, vocab["|"], vocab["h"], vocab["e"], vocab["|"], blank]) == "he"
