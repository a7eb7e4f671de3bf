"""speechtl.audio: generated tones in many formats, every error case, and the real fixtures in ../shared/data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtl import audio
from speechtl.audio import SAMPLE_RATE, AudioError, audio_info, load_audio
from speechtl.data.manifest import add_durations
from speechtl.data.manifest import Utterance

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURES = SHARED_DATA / "fixtures"
NO_FIXTURES = f"real speech fixtures not found at {FIXTURES} (expected ../shared/data beside the repo)"


def tone(sampling_rate: int, duration_s: float = 1.0, freq_hz: float = 440.0, seed: int = 0) -> np.ndarray:
    """A sine plus a little fixed-seed noise, float32 in [-1, 1]."""
    t = np.arange(round(sampling_rate * duration_s)) / sampling_rate
    noise = np.random.default_rng(seed).normal(0.0, 0.01, t.shape)
    return (0.5 * np.sin(2 * np.pi * freq_hz * t) + noise).astype(np.float32)


def peak_hz(x: np.ndarray, sampling_rate: int = SAMPLE_RATE) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x)))) * sampling_rate / len(x)


# (file name, soundfile format, subtype, sampling rate, channels, lossless)
FORMATS = [
    ("pcm16_8k.wav", "WAV", "PCM_16", 8000, 1, True),
    ("pcm16_11k.wav", "WAV", "PCM_16", 11025, 1, True),
    ("pcm16_16k.wav", "WAV", "PCM_16", 16000, 1, True),
    ("pcm16_22k.wav", "WAV", "PCM_16", 22050, 1, True),
    ("pcm24_44k.wav", "WAV", "PCM_24", 44100, 1, True),
    ("float_48k.wav", "WAV", "FLOAT", 48000, 1, True),
    ("stereo_48k.wav", "WAV", "PCM_16", 48000, 2, True),
    ("flac_44k.flac", "FLAC", "PCM_16", 44100, 1, True),
    ("aiff_22k.aiff", "AIFF", "PCM_16", 22050, 1, True),
    ("nist_8k.sph", "NIST", "PCM_16", 8000, 1, True),
    ("vorbis_48k.ogg", "OGG", "VORBIS", 48000, 2, False),
    ("opus_48k.opus", "OGG", "OPUS", 48000, 1, False),
    ("mp3_44k.mp3", "MP3", "MPEG_LAYER_III", 44100, 1, False),
]


@pytest.mark.parametrize("name, fmt, subtype, sampling_rate, channels, lossless", FORMATS, ids=[f[0] for f in FORMATS])
def test_load_audio_formats(tmp_path, name, fmt, subtype, sampling_rate, channels, lossless):
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    x = tone(sampling_rate, duration_s=1.0)
    path = tmp_path / name
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, sampling_rate, format=fmt, subtype=subtype)

    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - SAMPLE_RATE) <= 2
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert abs(peak_hz(y) - 440.0) <= 2.0

    info = audio_info(path)
    assert (info.sampling_rate, info.channels, info.format) == (sampling_rate, channels, f"{fmt}/{subtype}")
    assert abs(info.num_samples - sampling_rate) <= (0 if lossless else sampling_rate // 100)
    assert info.duration_s == pytest.approx(info.num_samples / sampling_rate)


def test_load_audio_other_target_rate(tmp_path):
    sf.write(tmp_path / "a.wav", tone(44100), 44100)
    y = load_audio(tmp_path / "a.wav", sampling_rate=8000)
    assert abs(len(y) - 8000) <= 2 and abs(peak_hz(y, 8000) - 440.0) <= 2.0


def test_stereo_is_averaged(tmp_path):
    x = tone(SAMPLE_RATE)
    sf.write(tmp_path / "st.wav", np.stack([x, 0.5 * x], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav"), 0.75 * x, atol=1e-6)


def test_int_pcm_scaled_to_unit_range(tmp_path):
    pcm = np.array([0, 16384, -32768, 32767] * 100, dtype=np.int16)
    sf.write(tmp_path / "int.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
    y = load_audio(tmp_path / "int.wav")
    assert y.min() == -1.0 and y.max() == pytest.approx(1.0, abs=1e-4) and y[1] == 0.5


def test_headerless_raw_is_16k_int16_mono(tmp_path):
    pcm = (tone(SAMPLE_RATE, 0.5) * 32767).astype("<i2")
    pcm.tofile(tmp_path / "x.raw")
    y = load_audio(tmp_path / "x.raw")
    np.testing.assert_allclose(y, pcm / 32768.0, atol=1e-7)
    assert audio_info(tmp_path / "x.raw") == audio.AudioInfo(0.5, 16000, 1, "RAW/PCM_16", 8000)


def test_decodes_when_header_has_no_frame_count(tmp_path, monkeypatch):
    """Some MP3 streams carry no frame count; then both functions count by decoding block-wise."""
    path = tmp_path / "long.flac"
    sf.write(path, tone(22050, 4.0), 22050)
    expected = load_audio(path)
    monkeypatch.setattr(audio, "known_frames", lambda f: None)
    assert audio_info(path).num_samples == 4 * 22050
    np.testing.assert_array_equal(load_audio(path), expected)


def _write_nan(path: Path) -> None:
    x = tone(SAMPLE_RATE)
    x[100] = np.nan
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")


def _write_inf(path: Path) -> None:
    x = tone(SAMPLE_RATE)
    x[100] = np.inf
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")


BAD_FILES = {
    "missing.wav": (None, "no such audio file"),
    "garbage.wav": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "cannot read audio"),
    "truncated.wav": (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "cannot read audio"),
    "zero_bytes.flac": (lambda p: p.write_bytes(b""), "cannot read audio"),
    "no_frames.wav": (lambda p: sf.write(p, np.zeros(0, np.float32), SAMPLE_RATE), "empty audio"),
    "no_frames.raw": (lambda p: p.write_bytes(b""), "empty audio"),
    "nan.wav": (_write_nan, "NaN or infinite"),
    "inf.wav": (_write_inf, "NaN or infinite"),
    "all_zero.wav": (lambda p: sf.write(p, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE), "silent"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_raises_audio_error_naming_it(tmp_path, name):
    write, problem = BAD_FILES[name]
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    message = str(e.value)
    assert str(path) in message and problem in message and "\n" not in message
    if name in ("garbage.wav", "truncated.wav"):
        assert isinstance(e.value.__cause__, sf.SoundFileError)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="not a regular file"):
        audio_info(tmp_path)


def test_add_durations_skip_and_fail(tmp_path):
    sf.write(tmp_path / "good.wav", tone(8000, 1.5), 8000)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    utts = [
        Utterance("good", tmp_path / "good.wav", "a"),
        Utterance("bad", tmp_path / "bad.wav", "b"),
        Utterance("empty", tmp_path / "empty.wav", "c"),
        Utterance("known", tmp_path / "missing.wav", "d", duration_s=2.0),  # has a duration: not opened
    ]
    kept, skipped = add_durations(utts, on_error="skip")
    assert [(u.id, u.duration_s) for u in kept] == [("good", 1.5), ("known", 2.0)]
    assert [uid for uid, _ in skipped] == ["bad", "empty"]
    assert "bad.wav" in skipped[0][1] and "cannot read audio" in skipped[0][1]
    assert "empty audio" in skipped[1][1]

    with pytest.raises(AudioError, match=r"utterance 'bad': .*bad\.wav: cannot read audio"):
        add_durations(utts)
    with pytest.raises(ValueError, match="on_error"):
        add_durations(utts, on_error="ignore")


# ---- real recordings in ../shared/data/fixtures ----------------------------------------------


def _fixture_rows() -> list:
    manifests = sorted(FIXTURES.glob("*/manifest.tsv")) if FIXTURES.is_dir() else []
    if not manifests:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_FIXTURES), id="no-fixtures")]
    rows = []
    for manifest in manifests:
        with manifest.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                row["path"] = manifest.parent / row["path"]
                rows.append(pytest.param(row, id=f"{manifest.parent.name}/{Path(row['path']).name}"))
    return rows


FIXTURE_ROWS = _fixture_rows()


@pytest.mark.slow
@pytest.mark.parametrize("row", FIXTURE_ROWS)
def test_fixture_loads(row):
    y = load_audio(row["path"])
    assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
    expected_s = float(row["duration_s"])
    assert abs(len(y) / SAMPLE_RATE - expected_s) <= max(0.05, 0.05 * expected_s)

    info = audio_info(row["path"])
    assert info.sampling_rate == int(row["sample_rate"])
    assert info.channels == int(row["channels"])
    assert info.format == row["format"]
    assert info.duration_s == pytest.approx(expected_s, abs=0.01)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=NO_FIXTURES)
def test_fixtures_cover_every_format():
    formats = {p.values[0]["format"].split("/")[0] for p in FIXTURE_ROWS}
    assert {"WAV", "FLAC", "MP3", "OGG", "AIFF"} <= formats


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=NO_FIXTURES)
def test_fixture_goforward_raw():
    """pocketsphinx's headerless 16 kHz 16-bit PCM clip ("go forward ten meters"; not in its manifest)."""
    path = FIXTURES / "pocketsphinx" / "test" / "data" / "goforward.raw"
    y = load_audio(path)
    assert len(y) == path.stat().st_size // 2 == 44580
    assert 0.05 < np.abs(y).max() <= 1.0
    assert audio_info(path).format == "RAW/PCM_16"


def test_odd_sample_rate_resamples_without_a_huge_kernel(tmp_path):
    """44101 Hz shares no useful factor with 16 kHz: soxr takes it (torchaudio would build a GB-sized kernel)."""
    sr = 44_101
    t = np.arange(sr) / sr
    path = tmp_path / "odd.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, subtype="FLOAT")
    out = load_audio(path)
    assert out.dtype == np.float32 and abs(len(out) - 16_000) <= 2
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16_000 / len(out) - 440) < 2
