"""Real labelled speech mixed into a synthetic training set (``scripts/build_source_model.py --real-train``).

- :func:`check_real_sets`: before any synthesis or training, the real manifests are read and checked: no
  ``reserved_*`` split anywhere, and no training set shares a speaker, an utterance id, an audio file or a
  sentence of :data:`MIN_SENTENCE_WORDS`+ words with a dev set (whose rows must be speakers never heard).
  Shorter sentences are not compared: a closed vocabulary (FSDD's ten digit words) repeats them in every set.
- :func:`check_alphabet`: every transcript has words and the vocabulary spells them;
- :func:`repeat_utterances`: each utterance ``repeat`` times per epoch (copies ``ID#rK`` share the audio array),
  so minutes of real speech are not drowned by hours of synthetic;
- :func:`set_stats`: what a model card says of a set (utterances, minutes, speakers, repeat).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

import numpy as np

from speechtl.config import ConfigError
from speechtl.data.manifest import Utterance, read_manifest, set_name, shared_with, total_minutes, unique_names
from speechtl.text import find_oov, normalize

__all__ = ["MIN_SENTENCE_WORDS", "check_real_sets", "overlap", "check_alphabet", "repeat_utterances", "set_stats"]

MIN_SENTENCE_WORDS = 4  # sentence overlap is checked for utterances of this many words or more


def _refuse_reserved(paths: Sequence[str | os.PathLike], flag: str, hint: str) -> None:
    for path in paths:
        if set_name(path).startswith("reserved_"):
            raise ConfigError(f"{flag} {path}: a reserved split is a held-out check (docs/real_corpora.md); {hint}")


def _sentences(utts: Sequence[Utterance]) -> set[str]:
    return {t for u in utts if len((t := normalize(u.text)).split()) >= MIN_SENTENCE_WORDS}


def overlap(train: Sequence[Utterance], dev: Sequence[Utterance]) -> list[str]:
    """What a training set shares with a dev set — ids, audio files, speakers, sentences of
    :data:`MIN_SENTENCE_WORDS`+ words (normalised) — as short phrases; empty when they are disjoint."""
    found = shared_with(train, dev)
    speakers = sorted({u.speaker for u in train if u.speaker} & {u.speaker for u in dev if u.speaker})
    if speakers:
        found.append(f"{len(speakers)} speaker(s), e.g. {', '.join(map(repr, speakers[:3]))}")
    sentences = sorted(_sentences(train) & _sentences(dev))
    if sentences:
        found.append(f"{len(sentences)} sentence(s) of {MIN_SENTENCE_WORDS}+ words, e.g. {sentences[0]!r}")
    return found


def check_real_sets(train: Sequence[str | os.PathLike], dev: Sequence[str | os.PathLike],
                    repeat: int = 1) -> dict[str, list[Utterance]]:
    """Read and check the ``--real-train`` and ``--real-dev`` manifests (above); returns the training sets'
    utterances by set name. A reserved split, an overlap or ``repeat`` < 1 is a :class:`ConfigError`."""
    _refuse_reserved(dev, "--real-dev", "score the model card on dev speakers")
    _refuse_reserved(train, "--real-train", "never train on it")
    if repeat < 1:
        raise ConfigError(f"--real-repeat must be 1 or more, got {repeat}")
    dev_sets = [(path, read_manifest(path)) for path in dev]
    sets = {}
    for name, path in zip(unique_names(train), train):
        utts = sets[name] = read_manifest(path)
        for dev_path, dev_utts in dev_sets:
            shared = overlap(utts, dev_utts)
            if shared:
                raise ConfigError(f"--real-train {path} and --real-dev {dev_path} share {'; '.join(shared)}: the "
                                  f"card's real rows must be speakers and sentences the model never trained on "
                                  f"(sentences of under {MIN_SENTENCE_WORDS} words, e.g. digits, may repeat)")
    return sets


def check_alphabet(utts: Sequence[Utterance], vocab: Mapping[str, int], what: str) -> None:
    """Every transcript has words after normalisation and ``vocab`` spells it, or a ConfigError naming ``what``."""
    empty = next((u for u in utts if not normalize(u.text)), None)
    if empty is not None:
        raise ConfigError(f"{what}: utterance {empty.id!r} has no words after normalisation: {empty.text!r}")
    report = find_oov([(u.id, u.text) for u in utts], vocab)
    if report:
        raise ConfigError(f"{what}: {report.describe()}")


def repeat_utterances(utts: Sequence[Utterance], audio: Sequence[np.ndarray],
                      repeat: int) -> tuple[list[Utterance], list[np.ndarray]]:
    """The utterances ``repeat`` times: the originals, then copies with ids ``ID#r2`` … ``ID#r{repeat}``; each copy
    holds the same audio array (not loaded again; augmentation still differs per copy, seeded by position)."""
    out_utts, out_audio = list(utts), list(audio)
    for k in range(2, repeat + 1):
        out_utts += [dataclasses.replace(u, id=f"{u.id}#r{k}") for u in utts]
        out_audio += list(audio)
    return out_utts, out_audio


def set_stats(name: str, path: str | os.PathLike, utts: Sequence[Utterance], repeat: int) -> dict:
    """A set's card row: name, path, utterances, minutes, speakers (count and names), repeat."""
    speakers = sorted({u.speaker for u in utts if u.speaker})
    return {"name": name, "path": str(path), "utts": len(utts), "minutes": round(total_minutes(utts), 2),
            "speakers": len(speakers), "speaker_names": speakers, "repeat": repeat}
