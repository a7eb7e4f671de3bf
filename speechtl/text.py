"""Text: the one normaliser used for training targets *and* scoring, and the character vocabulary.

The vocabulary is in the ``Wav2Vec2CTCTokenizer`` format, laid out like facebook/wav2vec2-base-960h's:
``<pad>`` is the CTC blank (id 0), ``<s>``/``</s>`` the tokenizer's (unused) sentence markers,
``<unk>`` the unknown character and ``|`` the word delimiter that stands for a space.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

__all__ = [
    "PAD",
    "UNK",
    "WORD_DELIMITER",
    "normalize",
    "ENGLISH_CHARS",
    "build_vocab",
    "OovReport",
    "find_oov",
    "text_to_model_alphabet",
]

PAD = "<pad>"
UNK = "<unk>"
WORD_DELIMITER = "|"
BOS, EOS = "<s>", "</s>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, WORD_DELIMITER)

# Apostrophes that are part of a word ("don't", "o'clock") survive; all other punctuation goes.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_INNER_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lowercase, Unicode NFC, punctuation removed (word-internal apostrophes kept), single spaces.

    >>> normalize("  Hello,   World! Don’t-stop. ")
    "hello world don't stop"
    """
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES).lower()
    text = _INNER_APOSTROPHE.sub("\0", text)  # protect inner apostrophes
    # Unicode categories: keep letters (L*), marks (M*), numbers (N*); everything else is a separator.
    text = "".join(c if unicodedata.category(c)[0] in "LMN" or c == "\0" else " " for c in text)
    return _SPACE.sub(" ", text.replace("\0", "'")).strip()


ENGLISH_CHARS = "abcdefghijklmnopqrstuvwxyz'"


def build_vocab(texts: Iterable[str], extra_chars: str = "") -> dict[str, int]:
    """Character vocabulary from (normalised) training text plus ``extra_chars``, in Wav2Vec2CTCTokenizer layout."""
    chars = sorted({c for t in texts for c in normalize(t) if c != " "} | set(extra_chars) - {" "})
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    return vocab


def text_to_model_alphabet(text: str, vocab: Mapping[str, int]) -> str:
    """Map normalised text into the model's letter case (e.g. wav2vec2-base-960h has an upper-case vocabulary)."""
    letters = [t for t in vocab if len(t) == 1 and t.isalpha()]
    if letters and all(t.isupper() for t in letters):
        return text.upper()
    return text


@dataclass(frozen=True)
class OovReport:
    """Characters of normalised text that the model's vocabulary lacks."""

    chars: dict[str, int]  # character -> occurrences
    utterances: dict[str, list[str]]  # character -> ids of (up to 5) utterances containing it
    num_utterances: int  # utterances with at least one such character

    def __bool__(self) -> bool:
        return bool(self.chars)

    def describe(self) -> str:
        if not self.chars:
            return "all characters are in the model's vocabulary"
        parts = [f"{c!r} ×{n} (e.g. {', '.join(self.utterances[c])})" for c, n in sorted(self.chars.items())]
        return (
            f"{len(self.chars)} character(s) in {self.num_utterances} utterance(s) are not in the model's "
            f"vocabulary: " + "; ".join(parts)
        )


def find_oov(items: Sequence[tuple[str, str]], vocab: Mapping[str, int]) -> OovReport:
    """items: (utterance id, raw text). Returns which normalised characters the vocabulary cannot spell."""
    chars: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    bad_utts = 0
    for utt_id, text in items:
        target = text_to_model_alphabet(normalize(text), vocab)
        missing = [c for c in target if c != " " and c not in vocab]
        if missing:
            bad_utts += 1
            chars.update(missing)
            for c in set(missing):
                ex = examples.setdefault(c, [])
                if len(ex) < 5:
                    ex.append(utt_id)
    return OovReport(dict(chars), examples, bad_utts)


def save_vocab(vocab: Mapping[str, int], path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(vocab), f, ensure_ascii=False, indent=0)
