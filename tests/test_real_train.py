"""speechtl.data.real_train: the checks on real speech mixed into a source build, and its repeats."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from speechtl.config import ConfigError
from speechtl.data.manifest import Utterance, write_manifest
from speechtl.data.real_train import check_alphabet, check_real_sets, overlap, repeat_utterances, set_stats
from speechtl.text import ENGLISH_CHARS, build_vocab


def utts(prefix: str, speaker: str, *texts: str) -> list[Utterance]:
    return [Utterance(f"{prefix}{k}", Path(f"/data/{prefix}{k}.wav"), t, speaker=speaker, duration_s=30.0)
            for k, t in enumerate(texts)]


def manifest(tmp_path: Path, name: str, items: list[Utterance]) -> str:
    """``items`` as a manifest whose audio paths exist (empty files: these checks read no audio)."""
    for u in items:
        (tmp_path / u.audio_path.name).touch()
    path = tmp_path / name
    write_manifest([dataclasses.replace(u, audio_path=tmp_path / u.audio_path.name) for u in items], path)
    return str(path)


def test_short_sentences_may_repeat_long_ones_and_speakers_may_not():
    train = utts("t", "ann", "seven", "the cat sat down", "one two")
    assert overlap(train, utts("d", "bo", "seven", "one two", "the cat sat")) == []  # a closed vocabulary: fine
    assert overlap(train, utts("d", "bo", "The cat, sat down!")) == ["1 sentence(s) of 4+ words, e.g. 'the cat sat down'"]
    assert overlap(train, utts("d", "ann", "nine")) == ["1 speaker(s), e.g. 'ann'"]
    assert overlap(train, utts("t", "bo", "nine"))[0].startswith("1 utterance id(s), e.g. 't0'")


def test_check_real_sets_names_both_manifests(tmp_path):
    train = manifest(tmp_path, "fsdd_train.jsonl", utts("t", "jackson", "zero", "one"))
    dev = manifest(tmp_path, "fsdd_dev.jsonl", utts("d", "theo", "zero", "one"))
    sets = check_real_sets([train], [dev], repeat=4)
    assert list(sets) == ["fsdd_train"] and [u.id for u in sets["fsdd_train"]] == ["t0", "t1"]
    clash = manifest(tmp_path, "other_dev.jsonl", utts("x", "jackson", "two"))
    with pytest.raises(ConfigError, match=r"--real-train .*fsdd_train\.jsonl and --real-dev .*other_dev\.jsonl share "
                                          r"1 speaker\(s\), e.g. 'jackson'"):
        check_real_sets([train], [dev, clash])
    reserved = manifest(tmp_path, "reserved_x.jsonl", utts("r", "cy", "three"))
    for args in (([reserved], []), ([], [reserved])):
        with pytest.raises(ConfigError, match=r"reserved_x\.jsonl: a reserved split is a held-out check"):
            check_real_sets(*args)
    with pytest.raises(ConfigError, match="--real-repeat must be 1 or more, got 0"):
        check_real_sets([train], [], repeat=0)


def test_check_alphabet():
    vocab = build_vocab([], ENGLISH_CHARS)
    check_alphabet(utts("t", "a", "Don't stop!"), vocab, "--real-train x")
    with pytest.raises(ConfigError, match=r"--real-train x: 1 character\(s\) in 1 utterance\(s\).*'7' ×1 \(e.g. t1\)"):
        check_alphabet(utts("t", "a", "seven", "7"), vocab, "--real-train x")
    with pytest.raises(ConfigError, match="utterance 't0' has no words after normalisation"):
        check_alphabet(utts("t", "a", "?!"), vocab, "--real-train x")


def test_repeat_utterances_shares_the_audio():
    items, audio = utts("u", "a", "one", "two"), [np.zeros(3, np.float32), np.ones(2, np.float32)]
    once = repeat_utterances(items, audio, 1)
    assert once == (items, audio)
    copies, arrays = repeat_utterances(items, audio, 3)
    assert [u.id for u in copies] == ["u0", "u1", "u0#r2", "u1#r2", "u0#r3", "u1#r3"]
    assert [u.text for u in copies] == ["one", "two"] * 3 and all(a is audio[k % 2] for k, a in enumerate(arrays))
    assert set_stats("s", "s.jsonl", items, 3) == {"name": "s", "path": "s.jsonl", "utts": 2, "minutes": 1.0,
                                                   "speakers": 1, "speaker_names": ["a"], "repeat": 3}
