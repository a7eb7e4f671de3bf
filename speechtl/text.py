"""Text: the one normaliser used for training targets *and* scoring, and the character vocabulary.

The normaliser follows a language's row of :data:`TEXT_RULES` (Unicode form, Turkic casing,
apostrophes, alphabet); without a language it is the English default (``"en"``).

The vocabulary is in the ``Wav2Vec2CTCTokenizer`` format, laid out like facebook/wav2vec2-base-960h's:
``<pad>`` is the CTC blank (id 0), ``<s>``/``</s>`` the tokenizer's (unused) sentence markers,
``<unk>`` the unknown character and ``|`` the word delimiter that stands for a space.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from speechtl.config import ConfigError
from speechtl.errors import SpeechtlError

__all__ = [
    "PAD",
    "UNK",
    "WORD_DELIMITER",
    "normalize",
    "TextRules",
    "TEXT_RULES",
    "text_rules",
    "ENGLISH_CHARS",
    "build_vocab",
    "OovReport",
    "find_oov",
    "text_to_model_alphabet",
    "read_utf8",
    "utf8_lines",
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


def normalize(text: str, language: str | None = None) -> str:
    """Lowercase, Unicode NFC (NFKC for most languages), punctuation removed (word-internal apostrophes kept),
    single spaces; ``language`` picks the row of :data:`TEXT_RULES` (default: English).

    >>> normalize("  Hello,   World! Don’t-stop. ")
    "hello world don't stop"
    >>> normalize("¿Qué tal, señor?", "es")
    'qué tal señor'
    """
    rules = text_rules(language)
    text = unicodedata.normalize(rules.unicode_form, text).translate(_APOSTROPHES)
    if rules.turkic_case:
        text = text.translate(_TURKIC_UPPER)
    text = unicodedata.normalize(rules.unicode_form, text.lower())  # lower() can decompose (İ → i + U+0307)
    if rules.apostrophes:
        text = _INNER_APOSTROPHE.sub("\0", text)  # protect inner apostrophes
    else:
        text = text.replace("'", "")  # not a letter of this language: O'Donnell → odonnell
    # Unicode categories: keep letters (L*), marks (M*), numbers (N*); everything else is a separator.
    text = "".join(c if unicodedata.category(c)[0] in "LMN" or c == "\0" else " " for c in text)
    return _SPACE.sub(" ", text.replace("\0", "'")).strip()


ENGLISH_CHARS = "abcdefghijklmnopqrstuvwxyz'"
_LATIN = "abcdefghijklmnopqrstuvwxyz"
_TURKIC_UPPER = str.maketrans({"I": "ı", "İ": "i"})  # Turkish/Azerbaijani: dotless and dotted i are two letters


@dataclass(frozen=True)
class TextRules:
    """How one language's text becomes training targets and scoring text.

    Punctuation is removed by Unicode category in every language (so Spanish ¿¡, German „“ and French « »
    quotes go), letters with diacritics are letters (é, ñ, ß, å stay), and case is folded with ``lower()``,
    never ``casefold()`` (which would turn ß into ss).
    """

    language: str
    unicode_form: str = "NFKC"  # NFKC also folds ligatures (ﬁ → fi), full-width forms, superscripts; NFC keeps them
    turkic_case: bool = False  # I → ı and İ → i before lower-casing (Turkish, Azerbaijani)
    apostrophes: bool = True  # keep word-internal apostrophes (don't, l'homme, c'è); False: drop them (O'Donnell → odonnell)
    alphabet: str = ""  # the characters the language writes: added to a vocabulary built from its text


# One row per language: a small table, not a registry. "en" is the historic default (NFC, unchanged);
# "und" (undetermined, BCP 47) is the same rules with NFKC and no alphabet, for any other language.
TEXT_RULES: dict[str, TextRules] = {r.language: r for r in (
    TextRules("en", unicode_form="NFC", alphabet=ENGLISH_CHARS),
    TextRules("und"),
    TextRules("de", alphabet=_LATIN + "äöüß'"),  # ß is a letter (ẞ lower-cases to it); "STRASSE" stays strasse
    TextRules("es", apostrophes=False, alphabet=_LATIN + "áéíóúüñ"),
    TextRules("fr", alphabet=_LATIN + "àâæçéèêëîïôœùûüÿ'"),  # élision: l'homme, aujourd'hui stay one word
    TextRules("it", alphabet=_LATIN + "àèéìíîòóùú'"),  # c'è, l'acqua stay one word
    TextRules("sv", alphabet=_LATIN + "åäö"),
    TextRules("nl", alphabet=_LATIN + "äëïöüáéíóú'"),
    TextRules("pt", alphabet=_LATIN + "áâãàçéêíóôõú'"),
    TextRules("pl", alphabet=_LATIN + "ąćęłńóśźż"),
    TextRules("tr", turkic_case=True, alphabet="abcçdefgğhıijklmnoöprsştuüvyz'"),
)}


_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")  # BCP 47-like: "mdw", "sv-se", "es-419"
_NOTED: set[str] = set()  # languages already told about the generic fallback (one note per process)


def text_rules(language: str | None = None) -> TextRules:
    """The row of :data:`TEXT_RULES` for a language code ("fr", "sv-SE", "pt_BR"); None or "" is English.

    A well-formed code without a row (Mboshi, "mdw") gets the generic rules ("und") and a one-line note on
    stderr; anything else ("English", "e n") is refused, since it is likely a typo."""
    if not language:
        return TEXT_RULES["en"]
    code = language.lower().replace("_", "-")
    rules = TEXT_RULES.get(code) or TEXT_RULES.get(code.split("-")[0])
    if rules is not None:
        return rules
    if not _LANGUAGE_TAG.match(code):
        raise ConfigError(f"no text normalisation rules for language {language!r}, and it is not a language code "
                          f"such as 'fr' or 'sv-SE'; known: {', '.join(TEXT_RULES)} ('und' = generic rules)")
    if code not in _NOTED:
        _NOTED.add(code)
        print(f"note: no text rules for language {language!r}; using the generic rules ('und': NFKC, lower case, "
              f"punctuation removed; known: {', '.join(TEXT_RULES)})", file=sys.stderr)
    return TEXT_RULES["und"]


def build_vocab(texts: Iterable[str], extra_chars: str = "", language: str | None = None) -> dict[str, int]:
    """Character vocabulary from (normalised) training text plus ``extra_chars``, in Wav2Vec2CTCTokenizer layout."""
    chars = sorted({c for t in texts for c in normalize(t, language) if c != " "} | set(extra_chars) - {" "})
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    return vocab


def text_to_model_alphabet(text: str, vocab: Mapping[str, int]) -> str:
    """Map normalised text into the model's letter case (e.g. wav2vec2-base-960h has an upper-case vocabulary)."""
    letters = [t for t in vocab if len(t) == 1 and t.lower() != t.upper()]  # letters that have a case
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


def find_oov(items: Sequence[tuple[str, str]], vocab: Mapping[str, int], language: str | None = None) -> OovReport:
    """items: (utterance id, raw text). Returns which normalised characters the vocabulary cannot spell."""
    chars: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    bad_utts = 0
    for utt_id, text in items:
        target = text_to_model_alphabet(normalize(text, language), vocab)
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


def _not_utf8(path, data: bytes, e: UnicodeDecodeError, what: str, line: int) -> str:
    column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
    return (f"{path}:{line}: {what} is not UTF-8 (byte 0x{data[e.start]:02x} at column {column}, e.g. Latin-1 or "
            f"Windows-1252); save it as UTF-8 (iconv -f latin1 -t utf-8 IN > OUT)")


def read_utf8(path, error: type[SpeechtlError] = SpeechtlError, what: str = "text") -> str:
    """The text of a UTF-8 file (a leading BOM dropped); ``error`` naming the file and the first line that is not
    UTF-8 (e.g. Latin-1), or a file that cannot be read."""
    try:
        data = Path(path).read_bytes().removeprefix(b"\xef\xbb\xbf")  # the UTF-8 BOM some editors write
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(_not_utf8(path, data, e, what, data.count(b"\n", 0, e.start) + 1)) from e


def utf8_lines(path, error: type[SpeechtlError] = SpeechtlError, what: str = "text") -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 file, read as a stream (for files too big to hold); ``error`` as in
    :func:`read_utf8`."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from e
    with f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(_not_utf8(path, raw, e, what, lineno)) from e
