"""Language-aware normalisation: literal cases per language (TEXT_RULES), lookup, vocabulary and scoring."""

from __future__ import annotations

import pytest

from speechtl.config import ConfigError
from speechtl.eval import error_rates
import speechtl.text
from speechtl.text import TEXT_RULES, build_vocab, find_oov, normalize, text_rules, text_to_model_alphabet

# (language, input, expected)
CASES = [
    # German: ß is a letter and stays (lower(), not casefold()); capital ẞ lower-cases to it; „“ quotes go
    ("de", "Straße", "straße"),
    ("de", "STRAẞE", "straße"),
    ("de", "Die Münze ist weiß.", "die münze ist weiß"),
    ("de", "„Guten Tag“, sagte Jürgen.", "guten tag sagte jürgen"),
    ("de", "Grüße aus Köln!", "grüße aus köln"),
    ("de", "Wie geht\u2019s?", "wie geht's"),
    # Spanish: ñ and accented vowels are letters; ¿ ¡ go; apostrophes are not Spanish letters
    ("es", "¿Dónde está el niño?", "dónde está el niño"),
    ("es", "¡Señor Muñoz, qué pingüino!", "señor muñoz qué pingüino"),
    ("es", "nin\u0303o", "niño"),  # decomposed n + combining tilde → one letter ñ
    ("es", "O'Donnell", "odonnell"),
    # French: élision keeps the apostrophe inside the word (typographic ’ → '); « » and spaced ? go
    ("fr", "L’homme", "l'homme"),
    ("fr", "l'homme est là", "l'homme est là"),
    ("fr", "Aujourd’hui, j’arrive.", "aujourd'hui j'arrive"),
    ("fr", "« Qu\u2019est-ce que c\u2019est\u202f? »", "qu'est ce que c'est"),
    ("fr", "Hélène a reçu l\u2019œuvre", "hélène a reçu l'œuvre"),
    ("fr", "la \ufb01n", "la fin"),  # NFKC folds the ﬁ ligature
    ("fr", "l' homme", "l homme"),  # an apostrophe at a word's edge is punctuation
    # Swedish: å ä ö are letters of their own
    ("sv", "Gå på Åland", "gå på åland"),
    ("sv", "A\u030angström", "ångström"),
    ("sv", "Märta hittar dörren.", "märta hittar dörren"),
    # Italian élision
    ("it", "C’è l’acqua all’aeroporto.", "c'è l'acqua all'aeroporto"),
    # Turkish: dotted and dotless i are different letters
    ("tr", "İstanbul’da IŞIK", "istanbul'da ışık"),
    # undetermined language: generic rules with NFKC
    ("und", "ＡＢＣ x²", "abc x2"),
    # English keeps its historic NFC rules: NFKC would fold the ligature
    ("en", "the \ufb01n", "the \ufb01n"),
]


@pytest.mark.parametrize("language, text, expected", CASES)
def test_normalize_language(language, text, expected):
    assert normalize(text, language) == expected
    assert normalize(expected, language) == expected  # idempotent


def test_default_language_is_english():
    assert text_rules(None) is text_rules("") is text_rules("en") is TEXT_RULES["en"]
    assert normalize("Don\u2019t STOP") == normalize("Don\u2019t STOP", "en") == "don't stop"
    assert text_rules("en").unicode_form == "NFC"


@pytest.mark.parametrize("code, expected", [("sv-SE", "sv"), ("pt_BR", "pt"), ("FR", "fr"), ("es-419", "es")])
def test_region_codes_fall_back_to_the_language(code, expected):
    assert text_rules(code).language == expected


def test_a_language_without_rules_gets_the_generic_ones_with_one_note(capsys, monkeypatch):
    monkeypatch.setattr(speechtl.text, "_NOTED", set())  # as in a fresh process
    assert text_rules("mdw") is TEXT_RULES["und"]  # Mboshi: no row
    assert normalize("Kyéma yéE, ikóó!", "mdw") == "kyéma yée ikóó"
    text_rules("mdw")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'mdw'" in err and "generic rules" in err  # one note, not one per call


def test_a_malformed_language_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"'English'.*known: en, und, de"):
        text_rules("English")


def test_every_alphabet_survives_its_own_normaliser():
    for code, rules in TEXT_RULES.items():
        letters = rules.alphabet.replace("'", "")
        assert normalize(letters, code) == letters, code


def test_build_vocab_for_a_language_keeps_letters_with_diacritics():
    vocab = build_vocab(["¿Dónde está el niño?"], language="es")
    assert list(vocab)[:5] == ["<pad>", "<s>", "</s>", "<unk>", "|"]
    assert {"ñ", "ó", "á"} <= set(vocab) and "¿" not in vocab and "?" not in vocab
    spanish = build_vocab([], text_rules("es").alphabet, language="es")
    assert len(spanish) == 5 + 26 + 7 and "'" not in spanish


def test_find_oov_uses_the_language_rules():
    english = build_vocab([], "abcdefghijklmnopqrstuvwxyz'")
    report = find_oov([("u1", "Où est l’hôtel ?")], english, language="fr")
    assert report.chars == {"ù": 1, "ô": 1} and report.utterances == {"ù": ["u1"], "ô": ["u1"]}


def test_upper_case_vocabulary_with_new_letters_stays_upper_case():
    vocab = {"<pad>": 0, "|": 1, "A": 2, "E": 3, "É": 4, "'": 5, "1": 6}
    assert text_to_model_alphabet("été à 1", vocab) == "ÉTÉ À 1"
    assert text_to_model_alphabet("été", {"<pad>": 0, "a": 1, "é": 2}) == "été"


def test_scoring_with_a_language():
    # French: "là" ≠ "la" (one word of three wrong), apostrophes unified before comparing
    rates = error_rates(["L\u2019homme est là."], ["l'homme est la"], language="fr")
    assert rates.wer == pytest.approx(1 / 3) and rates.num_words == 3
    assert rates.cer == pytest.approx(1 / len("l'homme est là"))
    # Spanish: ¿? do not count
    assert error_rates(["¿Qué tal?"], ["qué tal"], language="es").wer == 0.0
