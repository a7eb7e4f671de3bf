"""speechtl.synth_tts: multi-engine TTS sets (determinism, caching, sentence split, held-out voices, ARCTIC).

The espeak voices need no TTS engine (speechtl.synth's espeak-ng), so most cases run everywhere; a case that
needs another engine or the KJV text (Debian bible-kjv) skips, naming what to install.
"""

from __future__ import annotations

import json
import re

import pytest

from speechtl import synth_tts, tts
from speechtl.data.manifest import read_manifest
from speechtl.synth import split_of
from speechtl.synth_tts import HELD_OUT_VOICES, TRAIN_VOICES, TtsSet, TtsSetError, build_tts_set, speaker_of
from speechtl.text_sources import TextSourceError, kjv_verses

ESPEAK = ["espeak/en-us", "espeak/en-us+f2"]


def _voices() -> list[str]:
    """Two espeak voices, plus flite's fastest when flite is installed (a second engine in one set)."""
    return ESPEAK + (["flite/kal16"] if tts.engine_available("flite") else [])


def _audio(manifest) -> dict[str, bytes]:
    return {u.id: u.audio_path.read_bytes() for u in read_manifest(manifest)}


def test_set_is_bit_identical_whatever_the_workers_and_cached(tmp_path, monkeypatch):
    spec = TtsSet(tuple(_voices()), "grammar", "train", num_utterances=7, seed=3, speakers_per_voice=2)
    a = build_tts_set(tmp_path / "a", spec, workers=2, progress=False)
    b = build_tts_set(tmp_path / "b", spec, workers=1, progress=False)
    assert _audio(a) == _audio(b) and len(_audio(a)) == 7
    assert a.read_text() == b.read_text()
    assert json.loads((tmp_path / "a" / ".done").read_text()) == spec.marker()

    def boom(*args):
        raise AssertionError("a finished set was synthesised again")

    monkeypatch.setattr(synth_tts, "_synthesize", boom)
    assert build_tts_set(tmp_path / "a", spec, progress=False) == a  # the marker matches: a no-op
    changed = TtsSet(spec.voices, "grammar", "train", num_utterances=7, seed=4, speakers_per_voice=2)
    with pytest.raises(AssertionError, match="synthesised again"):
        build_tts_set(tmp_path / "a", changed, progress=False)  # another seed: rebuilt


def test_changed_parameter_rebuilds_in_place(tmp_path):
    first = TtsSet(tuple(ESPEAK), "grammar", "train", num_utterances=3, seed=0)
    path = build_tts_set(tmp_path / "set", first, progress=False)
    before = [u.text for u in read_manifest(path)]
    second = TtsSet(tuple(ESPEAK), "grammar", "train", num_utterances=3, seed=1)
    build_tts_set(tmp_path / "set", second, progress=False)
    assert [u.text for u in read_manifest(path)] != before
    assert json.loads((tmp_path / "set" / ".done").read_text())["seed"] == 1


def test_speakers_are_voice_rate_pitch_and_splits_keep_their_sentences(tmp_path):
    train = read_manifest(synth_tts.prepare_tts_set(tmp_path, _voices(), "grammar", "train", seed=0,
                                                    num_utterances=16, speakers_per_voice=2, progress=False))
    test = read_manifest(synth_tts.prepare_tts_set(tmp_path, _voices(), "grammar", "test", seed=0,
                                                   num_utterances=6, progress=False))
    assert all(split_of(u.text) == "train" for u in train) and all(split_of(u.text) == "test" for u in test)
    assert not {u.text for u in train} & {u.text for u in test}
    by_voice: dict[str, set] = {}
    for u in train:
        voice, pitch, rate = re.fullmatch(r"(\w+/[^/]+)/p([\d.]+)/r([\d.]+)", u.speaker).groups()
        assert voice in _voices() and 0.85 <= float(rate) <= 1.2 and 0.85 <= float(pitch) <= 1.2
        by_voice.setdefault(voice, set()).add((rate, pitch))
    assert all(1 <= len(s) <= 2 for s in by_voice.values()) and len(by_voice) >= 2  # 2 speakers per voice at most
    assert all(set(u.text) <= set("abcdefghijklmnopqrstuvwxyz' ") for u in train + test)


def test_held_out_voices_and_arctic_prompts_never_train(tmp_path):
    for voice in HELD_OUT_VOICES:
        for split in ("train", "dev"):
            with pytest.raises(TtsSetError, match="held-out"):
                TtsSet((voice,), "grammar", split, num_utterances=1).check()
    TtsSet((HELD_OUT_VOICES[0],), "grammar", "test", num_utterances=1).check()
    assert not {speaker_of(v) for v in TRAIN_VOICES} & {speaker_of(v) for v in HELD_OUT_VOICES}
    assert speaker_of("flite/kal") == speaker_of("festival/kal_diphone") == speaker_of("flite/kal16")
    assert speaker_of("mbrola/mb-us3") == speaker_of("festival/us3_mbrola")
    prompts = tmp_path / "cmuarctic.data"
    prompts.write_text('( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )\n'
                       '( arctic_a0002 "Not at this particular case, Tom, apologized Whittemore." )\n'
                       '( arctic_a0003 "In 1908 he left." )\n', encoding="utf-8")
    for split in ("train", "dev"):
        with pytest.raises(TtsSetError, match="test sets only"):
            TtsSet(tuple(ESPEAK), "arctic", split, num_utterances=1, arctic=str(prompts)).check()
    path = synth_tts.prepare_tts_set(tmp_path, ESPEAK, "arctic", "test", num_utterances=5, arctic=str(prompts),
                                     progress=False)
    assert [u.text for u in read_manifest(path)] == ["author of the danger trail philip steels etc",
                                                     "not at this particular case tom apologized whittemore"]
    summary = json.loads((path.parent / "summary.json").read_text())
    assert summary["skipped_sentences"] == 1 and summary["utterances"] == 2  # the prompt with digits


def test_kjv_set_reads_test_pool_verses(tmp_path):
    try:
        kjv_verses(min_words=4, max_words=4)
    except TextSourceError as e:
        pytest.skip(str(e))
    path = synth_tts.prepare_tts_set(tmp_path, ["espeak/en-us"], "kjv", "test", num_utterances=3, progress=False)
    verses = {v.transcript: v for v in kjv_verses()}
    utts = read_manifest(path)
    assert len(utts) == 3 and all(split_of(verses[u.text].text) == "test" for u in utts)


def test_bad_settings_name_what_is_allowed(tmp_path):
    with pytest.raises(TtsSetError, match="text must be one of kjv, grammar, mixed, arctic"):
        TtsSet(tuple(ESPEAK), "news", num_utterances=1).check()
    with pytest.raises(TtsSetError, match="positive minutes or num_utterances"):
        TtsSet(tuple(ESPEAK)).check()
    with pytest.raises(TtsSetError, match="unknown espeak voice"):
        build_tts_set(tmp_path / "x", TtsSet(("espeak/klingon",), "grammar", num_utterances=1), progress=False)
    present, missing = synth_tts.installed(["espeak/en-us", "hibari/heart"] if not tts.engine_available("hibari")
                                           else ["espeak/en-us"])
    assert present == ["espeak/en-us"] and missing in ([], ["hibari/heart"])
