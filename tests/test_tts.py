"""speechtl.tts (offline TTS engines) and speechtl.text_sources (real sentences).

Each engine's cases skip with the install command when the engine is not on this machine
(scripts/setup.sh installs them); the error paths run everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA
from speechtl import tts
from speechtl.errors import SpeechtlError
from speechtl.text import ENGLISH_CHARS
from speechtl.text_sources import TextSourceError, arctic_prompts, kjv_verses

TEXT = "For the twentieth time that evening, the two men shook hands."
ARCTIC = SHARED_DATA / "fixtures" / "cathy_arctic" / "cmuarctic.data"


def _first_voice(engine: str, pitch: bool = False) -> tts.Voice:
    """The first installed voice of ``engine`` (pitch-capable if asked), or skip saying what to install."""
    if not tts.engine_available(engine):
        pytest.skip(f"TTS engine {engine} not installed: {tts.ENGINES[engine].install}")
    voices = [v for v in tts.list_voices(engine) if v.pitch or not pitch]
    if not voices:
        pytest.skip(f"no {'pitch-capable ' if pitch else ''}{engine} voice installed")
    return voices[0]


def _median_f0(audio: np.ndarray) -> float:
    import librosa

    f0 = librosa.yin(audio, fmin=60, fmax=500, sr=16_000)
    energy = librosa.feature.rms(y=audio)[0][: len(f0)]
    return float(np.median(f0[: len(energy)][energy > 0.3 * energy.max()]))


@pytest.mark.parametrize("engine", list(tts.ENGINES))
def test_render_is_deterministic_16k_speech(engine):
    voice = _first_voice(engine)
    a = tts.render(TEXT, engine, voice.name)
    b = tts.render(TEXT, engine, voice.name)
    assert a.dtype == np.float32 and a.ndim == 1
    assert a.tobytes() == b.tobytes()  # bit-identical for the same arguments
    assert 1.5 < len(a) / 16_000 < 10  # ~11 words at 16 kHz, silence trimmed
    assert float(np.sqrt(np.mean(a**2))) > 0.01 and np.abs(a).max() <= 1.0
    lead = np.flatnonzero(np.abs(a) > tts.SILENCE_LEVEL)[0] / 16_000
    assert lead <= tts.KEEP_SILENCE_S + 0.01


@pytest.mark.parametrize("engine", list(tts.ENGINES))
def test_rate_scales_duration(engine):
    voice = _first_voice(engine)
    slow = tts.render(TEXT, engine, voice.name, rate=0.8)
    fast = tts.render(TEXT, engine, voice.name, rate=1.25)
    assert len(slow) / len(fast) > 1.25  # 1.56 in tempo; pauses and trimmed edges scale less


@pytest.mark.parametrize("engine", [e for e in tts.ENGINES if any(v.pitch for v in tts.VOICES if v.engine == e)])
def test_pitch_moves_f0(engine):
    voice = _first_voice(engine, pitch=True)
    low = _median_f0(tts.render(TEXT, engine, voice.name, pitch=0.8))
    high = _median_f0(tts.render(TEXT, engine, voice.name, pitch=1.3))
    assert high / low > 1.2, (low, high)


def test_missing_engine_names_package_and_install_command(monkeypatch):
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    monkeypatch.setattr(tts.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tts.TtsEngineMissing, match=r"flite.*apt-get install flite"):
        tts.list_voices("flite")
    with pytest.raises(tts.TtsEngineMissing, match=r"missing piper, onnxruntime.*pip install piper-tts"):
        tts.render(TEXT, "piper", "en_US-joe-medium")
    assert not any(tts.engine_available(e) for e in tts.ENGINES)
    assert issubclass(tts.TtsEngineMissing, SpeechtlError)


def test_missing_voice_data_names_its_package(monkeypatch):
    monkeypatch.setattr(tts, "_present", lambda need: not need.startswith("/usr/share/mbrola"))
    with pytest.raises(tts.TtsEngineMissing, match=r"mbrola/mb-us2 is not installed.*mbrola-us2"):
        tts.render(TEXT, "mbrola", "mb-us2")


def test_bad_engine_voice_and_arguments_are_refused(monkeypatch):
    monkeypatch.setattr(tts, "_present", lambda need: True)  # pretend everything is installed: no engine runs
    with pytest.raises(tts.TtsError, match=r"unknown TTS engine 'espeak'; allowed: flite, festival"):
        tts.render(TEXT, "espeak", "en-us")
    with pytest.raises(tts.TtsError, match=r"unknown flite voice 'kevin'; known: kal16, kal, rms, slt, awb"):
        tts.render(TEXT, "flite", "kevin")
    with pytest.raises(tts.TtsError, match=r"hibari/heart cannot shift pitch"):
        tts.render(TEXT, "hibari", "heart", pitch=1.2)
    with pytest.raises(tts.TtsError, match=r"rate and pitch are factors"):
        tts.render(TEXT, "flite", "slt", rate=3.0)
    with pytest.raises(tts.TtsError, match=r"empty text"):
        tts.render("  ", "pico", "en-US")


def test_voice_table():
    ids = [v.id for v in tts.VOICES]
    assert len(ids) == len(set(ids)) and {v.engine for v in tts.VOICES} == set(tts.ENGINES)
    assert all(v.accent.startswith("en") and v.gender in "fm" for v in tts.VOICES)
    assert tts.voice_label(tts.VOICES[0], rate=0.9, pitch=1.1) == "flite/kal16/p1.10/r0.90"


# --- text sources ------------------------------------------------------------------------------------

def test_arctic_prompts_parse_and_normalise(tmp_path):
    f = tmp_path / "cmuarctic.data"
    f.write_text('( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )\n'
                 '( arctic_a0002 "Not at this particular case, Tom, apologized Whittemore." )\n'
                 '( arctic_x "In 1908 he left." )\n', encoding="utf-8")
    got = arctic_prompts(f)
    assert [(s.id, s.transcript) for s in got] == [
        ("arctic_a0001", "author of the danger trail philip steels etc"),
        ("arctic_a0002", "not at this particular case tom apologized whittemore"),
    ]  # the line with digits is dropped: the label would not spell what the engine says
    assert got[0].text == "Author of the danger trail, Philip Steels, etc."


def test_arctic_prompts_report_file_and_line(tmp_path):
    f = tmp_path / "bad.data"
    f.write_text('( arctic_a0001 "fine" )\narctic_a0002 missing quotes\n', encoding="utf-8")
    with pytest.raises(TextSourceError, match=r"bad.data:2: expected"):
        arctic_prompts(f)
    with pytest.raises(TextSourceError, match="no such ARCTIC prompt file"):
        arctic_prompts(tmp_path / "absent.data")


def test_arctic_prompts_real_list():
    if not ARCTIC.is_file():
        pytest.skip(f"{ARCTIC} absent (../shared/data)")
    prompts = arctic_prompts(ARCTIC)
    assert len(prompts) == 1132 and len({s.id for s in prompts}) == 1132
    assert all(set(s.transcript) <= set(ENGLISH_CHARS + " ") for s in prompts)


def test_kjv_verses():
    try:
        verses = kjv_verses(min_words=4, max_words=20)
    except TextSourceError as e:
        pytest.skip(str(e))
    assert len(verses) > 10_000 and len({s.id for s in verses}) == len(verses)
    assert verses[0].id == "kjv-Ge1:1"
    assert verses[0].transcript == "in the beginning god created the heaven and the earth"
    assert all(4 <= len(s.transcript.split()) <= 20 for s in verses)
