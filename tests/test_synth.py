"""speechtl.synth: espeak-ng speech sets that are reproducible, sane, and never leak test sentences."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtl import synth
from speechtl.data.manifest import read_manifest
from speechtl.espeak import SILENCE_LEVEL
from speechtl.synth import ENGLISH_ACCENTS, sentences, speak, speakers, split_of, synthesize

DIACRITICS = {"de": "äöüß", "es": "ñáéíóú", "fr": "éèàçê", "sv": "åäö", "it": "àèìòù"}


def _wav_bytes(utts) -> list[bytes]:
    return [Path(u.audio_path).read_bytes() for u in utts]


def test_same_arguments_give_identical_texts_speakers_and_audio(tmp_path):
    kw = dict(accent="en-gb-scotland", split="test", num_utterances=4, seed=5, progress=False)
    a = synthesize(tmp_path / "a", **kw)
    speak("Something else first, to change the state of this process's espeak.", "en-gb-scotland+f5")
    b = synthesize(tmp_path / "b", **kw)
    assert [u.text for u in a] == [u.text for u in b]
    assert [u.speaker for u in a] == [u.speaker for u in b]
    assert _wav_bytes(a) == _wav_bytes(b)


def test_audio_does_not_depend_on_workers_and_smaller_sets_are_prefixes(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK_SIZE", 3)  # several chunks (= fresh processes) in a small set
    kw = dict(accent="en-us", seed=1, progress=False)
    one = synthesize(tmp_path / "one", num_utterances=7, workers=1, **kw)
    two = synthesize(tmp_path / "two", num_utterances=7, workers=2, **kw)
    small = synthesize(tmp_path / "small", num_utterances=4, workers=1, **kw)
    assert _wav_bytes(one) == _wav_bytes(two)
    assert _wav_bytes(small) == _wav_bytes(one)[:4]


def test_manifest_matches_the_audio_files(tmp_path):
    utts = synthesize(tmp_path, accent="en-029", split="dev", num_utterances=3, seed=2, progress=False)
    back = read_manifest(tmp_path / "manifest.jsonl")
    assert [u.id for u in back] == [f"en-029-dev-2-{i:05d}" for i in range(3)]
    for u, v in zip(utts, back):
        assert (v.text, v.speaker, v.accent, v.language) == (u.text, u.speaker, "en-029", "en")
        assert v.audio_path == (tmp_path / "wav" / f"{u.id}.wav").resolve() and v.audio_path.is_file()
        info = sf.info(v.audio_path)
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert v.duration_s == pytest.approx(info.frames / info.samplerate, abs=1e-9)
        assert re.fullmatch(r"en-029/[a-z0-9]+/p\d+/r\d+", v.speaker)
        assert not list(tmp_path.glob("wav/.*.tmp"))


def test_minutes_stops_once_enough_audio_is_made(tmp_path):
    utts = synthesize(tmp_path, accent="en", minutes=0.2, progress=False)
    total = sum(u.duration_s for u in utts)
    assert total >= 12.0 and total - utts[-1].duration_s < 12.0


def test_speak_returns_sane_16k_audio_with_light_silence():
    audio = speak("The quick brown fox doesn't jump over the lazy dog.", "en-us+f2", rate=170, pitch=55)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 0.1  # not silent
    assert 1.5 < len(audio) / 16_000 < 6.0
    loud = np.flatnonzero(np.abs(audio) > SILENCE_LEVEL)
    assert loud[0] <= 0.1 * 16_000 + 1 and len(audio) - 1 - loud[-1] <= 0.1 * 16_000 + 1


def test_accents_sound_different_for_the_same_text():
    text = "Where did the old farmer put the water?"
    clips = {accent: speak(text, f"{accent}+m3") for accent in ("en-us", "en-gb-scotland", "en-029", "de")}
    for a in clips:
        for b in clips:
            if a < b:
                x, y = clips[a], clips[b]
                assert len(x) != len(y) or not np.allclose(x, y), (a, b)


def test_sentence_pools_are_disjoint_and_stable():
    pools = {split: set(sentences("en", split, 2000, seed=i)) for i, split in enumerate(synth.SPLITS)}
    assert all(len(p) == 2000 for p in pools.values())
    assert not pools["train"] & pools["test"] and not pools["train"] & pools["dev"] and not pools["dev"] & pools["test"]
    assert all(split_of(s) == split for split, p in pools.items() for s in p)
    # frozen: the pool is a hash of the normalised text, the same on every machine and every day
    assert split_of("Aren't they stiff tomorrow?") == "test"
    assert split_of("aren't   they STIFF tomorrow") == "test"
    assert split_of("The referees have never described the lemon.") == "dev"
    assert split_of("Where did Anna put the keys?") == "train"


def test_sentences_are_seeded_plain_and_4_to_15_words():
    assert sentences("en", "train", 50, seed=3) == sentences("en", "train", 50, seed=3)
    assert sentences("en", "train", 50, seed=3) != sentences("en", "train", 50, seed=4)
    for s in sentences("en", "train", 300, seed=0):
        assert 4 <= len(s.split()) <= 15 and s[0].isupper() and s[-1] in ".?", s
    joined = " ".join(sentences("en", "train", 500, seed=0))
    assert "," in joined and "'" in joined and "?" in joined


@pytest.mark.parametrize("language", sorted(DIACRITICS))
def test_other_languages_write_their_own_letters(language):
    text = " ".join(sentences(language, "train", 300, seed=0))
    assert set(DIACRITICS[language]) <= set(text.lower()), set(DIACRITICS[language]) - set(text.lower())
    assert len(synth.vocabulary(language, 5000)) >= 300


def test_english_vocabulary_is_broad():
    assert len(synth.vocabulary("en")) >= 1500
    assert len({w for s in sentences("en", "train", 5000, seed=0) for w in synth._normalise(s).split()}) >= 1500


def test_native_and_foreign_voices(tmp_path):
    sv = synthesize(tmp_path / "sv", accent="sv", num_utterances=2, progress=False)
    assert sv[0].id == "sv-train-0-00000" and sv[0].language == "sv"
    de_en = synthesize(tmp_path / "de_en", accent="de", language="en", num_utterances=2, progress=False)
    assert de_en[0].id == "de_en-train-0-00000" and (de_en[0].accent, de_en[0].language) == ("de", "en")
    us = synthesize(tmp_path / "us", accent="en-us", num_utterances=2, progress=False)
    assert [u.text for u in us] != [u.text for u in de_en]  # the accent is mixed into the text seed


def test_speakers_are_shared_by_default_and_disjoint_when_asked():
    assert speakers("en", 10, seed=1) == speakers("en", 10, seed=1)
    assert speakers("en", 10, seed=1) != speakers("en", 10, seed=2)
    by_split = {split: {s.id for s in speakers("en", 40, seed=1, split=split)} for split in synth.SPLITS}
    assert not by_split["train"] & by_split["test"] and not by_split["dev"] & by_split["test"]
    assert all(split_of(s) == "test" for s in by_split["test"])


def test_speaker_disjoint_sets(tmp_path):
    kw = dict(accent="en-us-nyc", num_utterances=3, num_speakers=3, progress=False)
    shared_train = synthesize(tmp_path / "a", split="train", **kw)
    shared_test = synthesize(tmp_path / "b", split="test", **kw)
    assert {u.speaker for u in shared_train} == {u.speaker for u in shared_test}
    own_test = synthesize(tmp_path / "c", split="test", speaker_disjoint=True, **kw)
    assert not {u.speaker for u in own_test} & {u.speaker for u in shared_train}


def test_clear_errors_name_what_is_allowed(tmp_path):
    with pytest.raises(ValueError, match="unknown accent 'xx'.*en-gb-scotland"):
        synthesize(tmp_path, accent="xx", num_utterances=1)
    with pytest.raises(ValueError, match="unknown language 'zz'.*de, en, es"):
        sentences("zz")
    with pytest.raises(ValueError, match="no 'nl' text generator"):
        synthesize(tmp_path, accent="nl", num_utterances=1)
    with pytest.raises(ValueError, match="unknown split"):
        synthesize(tmp_path, split="validation", num_utterances=1)
    with pytest.raises(ValueError, match="minutes or num_utterances"):
        synthesize(tmp_path)
    with pytest.raises(ValueError, match="voice variant 'm99'"):
        speak("hello there", "en-us+m99")
    with pytest.raises(ValueError, match="num_speakers must be 1.."):
        speakers("en", 10_000)
    assert set(ENGLISH_ACCENTS) <= set(synth.ACCENTS) and "en-us" in ENGLISH_ACCENTS


def _cli():
    path = Path(__file__).resolve().parents[1] / "scripts" / "synthesize.py"
    spec = importlib.util.spec_from_file_location("synthesize_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_a_set_and_reports_it(tmp_path, capsys):
    cli = _cli()
    out = tmp_path / "set"
    assert cli.main(["--out", str(out), "--accent", "fr", "--language", "en", "--split", "dev", "--num-utterances",
                     "3", "--seed", "4", "--num-speakers", "2", "--speaker-disjoint", "--workers", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 utterances" in printed and "2 speakers" in printed and "real time" in printed
    utts = read_manifest(out / "manifest.jsonl")
    assert [u.id for u in utts] == [f"fr_en-dev-4-{i:05d}" for i in range(3)]
    assert cli.main(["--out", str(tmp_path / "m"), "--minutes", "0.05", "--quiet"]) == 0
    assert cli.main(["--list"]) == 0 and "en-gb-x-gbcwmd" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--out", str(tmp_path / "x"), "--accent", "xx", "--num-utterances", "1"])
    with pytest.raises(SystemExit):
        cli.main(["--num-utterances", "1"])  # no --out


def test_set_folder_names_come_from_the_parameters():
    name = lambda **kw: synth.SyntheticSet(**kw).folder_name()  # noqa: E731
    assert name(accent="en-gb-scotland", split="test", minutes=6, seed=0, num_speakers=40, stream=2,
                label="test") == "en-gb-scotland-test-6min-40spk-seed0"  # the demo's names stay
    assert name(accent="en-us", split="test", minutes=6.0, label="source-test") == "en-us-source-test-6min-seed0"
    assert name(accent="es", split="train", minutes=2, stream=0) == "es-train-2min-seed0"
    assert name(accent="de", language="en", split="dev", num_utterances=3, seed=4, num_speakers=2,
                speaker_disjoint=True) == "de_en-dev-3utt-2spk-disjoint-seed4"
    assert synth.SyntheticSet("en-us", seed=3, stream=5).synthesis_seed == 35
    assert synth.SyntheticSet("en-us", seed=3).synthesis_seed == 3
    with pytest.raises(synth.SynthError, match="unknown accent"):
        name(accent="xx", minutes=1)


def test_prepare_synthetic_is_idempotent_and_rebuilds_what_is_not_marked_done(tmp_path):
    kw = dict(num_utterances=2, progress=False)
    manifest = synth.prepare_synthetic(tmp_path, "en-029", "dev", None, 7, 3, **kw)
    folder = manifest.parent
    assert folder == tmp_path / "en-029-dev-2utt-3spk-seed7" and (folder / synth.DONE).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # built aside, moved into place
    reference = _wav_bytes(read_manifest(manifest))
    assert reference == _wav_bytes(synthesize(tmp_path / "plain", accent="en-029", split="dev", num_utterances=2,
                                              seed=7, num_speakers=3, progress=False))
    wav = read_manifest(manifest)[0].audio_path
    stamp = wav.stat().st_mtime_ns
    assert synth.prepare_synthetic(tmp_path, "en-029", "dev", None, 7, 3, **kw) == manifest
    assert wav.stat().st_mtime_ns == stamp  # reused, not re-synthesised

    (folder / synth.DONE).unlink()  # a crash before the marker: half-trusted never
    wav.write_bytes(b"truncated")
    synth.prepare_synthetic(tmp_path, "en-029", "dev", None, 7, 3, **kw)
    assert _wav_bytes(read_manifest(manifest)) == reference and (folder / synth.DONE).is_file()

    marker = json.loads((folder / synth.DONE).read_text())
    (folder / synth.DONE).write_text(json.dumps({**marker, "num_speakers": 5}))  # made with other parameters
    synth.prepare_synthetic(tmp_path, "en-029", "dev", None, 7, 3, **kw)
    assert json.loads((folder / synth.DONE).read_text()) == marker


def test_build_set_refuses_a_folder_that_is_not_a_synthetic_set(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(synth.SynthError, match="did not make"):
        synth.build_set(tmp_path / "mine", synth.SyntheticSet("en-us", num_utterances=1), progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli_data_folder_reuses_a_finished_set(tmp_path, capsys):
    cli = _cli()
    args = ["--data", str(tmp_path), "--accent", "en-029", "--split", "test", "--num-utterances", "2", "--quiet"]
    assert cli.main(args) == 0 and "wrote 2 utterances" in capsys.readouterr().out
    assert (tmp_path / "en-029-test-2utt-seed0" / synth.DONE).is_file()
    assert cli.main(args) == 0 and "reused 2 utterances" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main([*args, "--out", str(tmp_path / "x")])  # one or the other
