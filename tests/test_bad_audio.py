"""Audio that must be refused before decoding, generated here: damaged headers (1 Hz, 2 GHz, 0 or 40 channels,
more frames than the file holds), garbage samples (1e30, NaN) and clips shorter than the model's receptive field.

Each goes through the library (``load_audio``, ``audio_info``, ``stream_audio``, ``load_utterance_audio``) and the
verbs that read it (evaluate, transcribe, check, adapt): one line naming the file, never a traceback, and the good
files beside it still transcribed and scored."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtl import audio
from speechtl.audio import AudioError, audio_info, load_audio
from speechtl.check import WAV2VEC2_CONV, frames_for
from speechtl.cli import main
from speechtl.data.dataset import MIN_SAMPLES, load_utterance_audio
from speechtl.data.manifest import Utterance, read_manifest, write_manifest
from speechtl.decode.chunking import model_receptive_field, plan_chunks, receptive_field, stream_audio


def _tone(num_samples: int) -> np.ndarray:
    return (0.5 * np.sin(np.arange(num_samples) * 2 * np.pi * 440 / 16_000)).astype(np.float32)


def _pcm16(path: Path, num_samples: int = 8_000, **patches: int) -> Path:
    """A 16 kHz PCM_16 WAV with header fields overwritten (soundfile writes the canonical 44-byte header)."""
    sf.write(path, _tone(num_samples), 16_000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt " and data[36:40] == b"data"
    offsets = {"channels": ("<H", 22), "rate": ("<I", 24), "byte_rate": ("<I", 28), "data_size": ("<I", 40)}
    for field, value in patches.items():
        fmt, at = offsets[field]
        struct.pack_into(fmt, data, at, value)
    path.write_bytes(bytes(data))
    return path


def _float_wav(path: Path, value: float) -> Path:
    x = _tone(8_000)
    x[100] = value
    sf.write(path, x, 16_000, subtype="FLOAT")
    return path


def _samples(path: Path, x: np.ndarray, channels: int = 1) -> Path:
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, 16_000, subtype="PCM_16")
    return path


# case -> (writer into a path, words the one-line message must hold)
CASES = {
    "rate-1hz": (lambda p: _pcm16(p, rate=1, byte_rate=2), "1 Hz"),
    "rate-2ghz": (lambda p: _pcm16(p, rate=2_000_000_000, byte_rate=4_000_000_000), "2000000000 Hz"),
    "zero-channels": (lambda p: _pcm16(p, channels=0), "channel"),
    "forty-channels": (lambda p: _samples(p, _tone(1_600), channels=40), "40 channels"),
    "frames-beyond-file": (lambda p: _pcm16(p, data_size=4 * 16_000), "32000 frames"),
    "float-1e30": (lambda p: _float_wav(p, 1e30), "out of range"),
    "nan-samples": (lambda p: _float_wav(p, float("nan")), "NaN"),
    "one-sample": (lambda p: _samples(p, np.array([0.5], np.float32)), "receptive field"),
    "clip-5ms": (lambda p: _samples(p, _tone(80)), "receptive field"),
}
HEADER_CASES = ["rate-1hz", "rate-2ghz", "zero-channels", "forty-channels", "frames-beyond-file"]
SAMPLE_CASES = ["float-1e30", "nan-samples"]
SHORT_CASES = ["one-sample", "clip-5ms"]


def bad_file(case: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return CASES[case][0](folder / f"bad-{case}.wav")


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("adapt: ")]  # adapt's phase lines
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------- the library


@pytest.mark.parametrize("case", HEADER_CASES)
def test_bad_headers_are_refused_before_decoding(case, tmp_path):
    path = bad_file(case, tmp_path)
    for read in (audio_info, load_audio, lambda p: list(stream_audio(p))):
        with pytest.raises(AudioError) as e:
            read(path)
        assert str(path) in str(e.value) and CASES[case][1].lower() in str(e.value).lower()


def test_frames_beyond_the_file_name_both_numbers(tmp_path):
    message = str(pytest.raises(AudioError, audio_info, bad_file("frames-beyond-file", tmp_path)).value)
    assert "32000 frames" in message and "holds 8000" in message and "64000 bytes" in message


@pytest.mark.parametrize("fmt", ["AIFF", "NIST"])
def test_truncated_aiff_and_nist_are_refused(tmp_path, fmt):
    full = tmp_path / f"full.{fmt.lower()}"
    sf.write(full, _tone(16_000), 16_000, format=fmt, subtype="PCM_16")
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(full.read_bytes()[:12_000])
    assert load_audio(full).shape == (16_000,)
    with pytest.raises(AudioError, match="header claims 16000 frames"):
        load_audio(cut)


@pytest.mark.parametrize("case", SAMPLE_CASES)
def test_garbage_samples_are_refused_whole_and_streamed(case, tmp_path):
    path = bad_file(case, tmp_path)
    assert audio_info(path).num_samples == 8_000  # the header is fine
    for read in (load_audio, lambda p: list(stream_audio(p))):
        with pytest.raises(AudioError, match=CASES[case][1]) as e:
            read(path)
        assert str(path) in str(e.value)


def test_loud_but_sane_float_audio_still_loads(tmp_path):
    x = load_audio(_float_wav(tmp_path / "hot.wav", 3.0))
    assert x.shape == (8_000,) and float(np.abs(x).max()) == pytest.approx(3.0)


@pytest.mark.parametrize("rate, ok", [(999, False), (1_000, True), (384_000, True), (384_001, False)])
def test_sample_rate_bounds(tmp_path, rate, ok):
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, _tone(rate // 10 + 1_000), rate, subtype="PCM_16")
    if ok:
        assert audio_info(path).sampling_rate == rate and load_audio(path).dtype == np.float32
    else:
        with pytest.raises(AudioError, match=f"{rate} Hz"):
            audio_info(path)


def test_streamed_wav_with_unknown_data_size_still_loads(tmp_path):
    path = _pcm16(tmp_path / "stream.wav", data_size=0xFFFFFFFF)
    assert load_audio(path).shape == (8_000,)


@pytest.mark.parametrize("unknown_count", [False, True])
def test_memory_cap_refuses_before_resampling(tmp_path, monkeypatch, unknown_count):
    path = tmp_path / "long48k.wav"
    sf.write(path, np.zeros((48_000 * 3, 2), np.float32) + 0.1, 48_000, subtype="PCM_16")
    monkeypatch.setattr(audio, "MAX_LOAD_BYTES", 2**20)  # ~1.6 s of 48 kHz stereo
    if unknown_count:
        monkeypatch.setattr(audio, "known_frames", lambda f: None)
    with pytest.raises(AudioError, match="split it into shorter files") as e:
        load_audio(path)
    assert str(path) in str(e.value)
    sf.write(path, np.zeros((48_000, 2), np.float32) + 0.1, 48_000, subtype="PCM_16")  # 1 s fits under the cap
    assert load_audio(path).shape == (16_000,)


@pytest.mark.parametrize("case", SHORT_CASES)
def test_short_clips_load_but_not_below_a_receptive_field(case, tmp_path):
    path = bad_file(case, tmp_path)
    assert load_audio(path).size in (1, 80)  # audio in itself; too short only for a model
    with pytest.raises(AudioError, match="receptive field") as e:
        load_audio(path, min_samples=MIN_SAMPLES)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("case", list(CASES))
def test_utterance_loading_fails_naming_it_or_lists_a_skip(case, tmp_path):
    good = _samples(tmp_path / "good.wav", _tone(16_000))
    utts = [Utterance("good", good, "ab"), Utterance("bad", bad_file(case, tmp_path), "ab")]
    with pytest.raises(AudioError) as e:
        load_utterance_audio(utts, "fail")
    assert "'bad'" in str(e.value) and f"bad-{case}.wav" in str(e.value) and "--on-error skip" in str(e.value)
    kept, arrays, skipped = load_utterance_audio(utts, "skip")
    assert [u.id for u in kept] == ["good"] and len(arrays[0]) == 16_000
    assert [s["id"] for s in skipped] == ["bad"] and CASES[case][1].lower() in skipped[0]["reason"].lower()


def test_receptive_field_from_the_conv_config(tiny_model_dir):
    assert receptive_field(*WAV2VEC2_CONV) == MIN_SAMPLES == 400
    from speechtl.models import load_model

    model, _ = load_model(str(tiny_model_dir))
    conv = (model.config.conv_kernel, model.config.conv_stride)
    for kernels, strides in (WAV2VEC2_CONV, conv):
        field = receptive_field(kernels, strides)
        assert frames_for(field, (kernels, strides)) == 1 and frames_for(field - 1, (kernels, strides)) == 0
    import torch

    field = model_receptive_field(model)
    with torch.no_grad():
        assert model(torch.zeros(1, field) + 0.1).logits.shape[1] == 1
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, field - 1) + 0.1)


def test_a_chunk_shorter_than_the_receptive_field_is_a_config_error():
    from speechtl.config import ConfigError

    with pytest.raises(ConfigError, match="receptive field"):  # an encoder with a 100-sample hop: 300 < 400
        plan_chunks(0.02, 0.001, 100, min_samples=400)
    assert plan_chunks(1.0, 0.1, 320, min_samples=400).chunk == 16_000


def test_a_short_file_without_a_frame_count_is_skipped_when_streamed(tiny_model_dir, tmp_path, monkeypatch):
    from speechtl.decode import longform
    from speechtl.models import load_model

    monkeypatch.setattr(longform, "_header_seconds", lambda path: None)  # as for an MP3 stream: streamed
    model, processor = load_model(str(tiny_model_dir))
    files = [bad_file("clip-5ms", tmp_path), _samples(tmp_path / "good.wav", _tone(16_000))]
    out = sorted(longform.file_log_probs(model, processor, files), key=lambda r: r.index)
    assert out[0].log_probs is None and "receptive field" in out[0].error and "bad-clip-5ms.wav" in out[0].error
    assert out[1].error is None and out[1].log_probs.shape[0] > 0


# ---------------------------------------------------------------- the verbs


@pytest.fixture
def tone_test(tone_data):
    return read_manifest(tone_data["test"])


def _manifest_with(case: str, good: list[Utterance], folder: Path) -> Path:
    bad = Utterance("bad", bad_file(case, folder / "wav"), "ab")
    write_manifest(good + [bad], folder / "test.jsonl")
    return folder / "test.jsonl"


@pytest.mark.parametrize("case", list(CASES))
def test_evaluate_skips_or_fails_in_one_line(case, tiny_model_dir, tone_test, tmp_path, capsys):
    manifest = _manifest_with(case, tone_test, tmp_path)
    out = tmp_path / "eval"
    assert main(["evaluate", str(tiny_model_dir), str(manifest), "--quiet", "--on-error", "skip",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert f"bad-{case}.wav" in line and line.startswith("skipped test/bad:")
    row = next(r.split() for r in captured.out.splitlines() if r.startswith("test "))
    assert int(row[1]) == len(tone_test)  # the good utterances scored
    results = json.loads((out / "results.json").read_text())
    assert results["sets"]["test"]["num_utts"] == len(tone_test) and [s["id"] for s in results["skipped"]] == ["bad"]
    assert main(["evaluate", str(tiny_model_dir), str(manifest), "--quiet", "--on-error", "fail"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"bad-{case}.wav" in line and "'bad'" in line and line.startswith("speechtl evaluate: error:")


@pytest.mark.parametrize("case", list(CASES))
def test_transcribe_folder_skips_the_bad_file_and_keeps_going(case, tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "audio"
    bad = bad_file(case, folder)
    good = _samples(folder / "good.wav", _tone(16_000))
    assert main(["transcribe", str(tiny_model_dir), str(folder), "--quiet", "--on-error", "skip",
                 "--output-format", "json"]) == 0
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith(f"skipped {bad}:") and CASES[case][1].lower() in line.lower()
    out = json.loads(captured.out)
    assert [t["path"] for t in out["transcripts"]] == [str(good)] and [s["path"] for s in out["skipped"]] == [str(bad)]
    assert main(["transcribe", str(tiny_model_dir), str(bad), "--quiet", "--on-error", "fail"]) == 2
    assert str(bad) in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("case", list(CASES))
def test_check_reports_the_bad_utterance_as_an_error(case, tone_test, tmp_path, capsys):
    manifest = _manifest_with(case, tone_test, tmp_path)
    assert main(["check", "--test", str(manifest), "--quiet", "--output-format", "json"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = [p for p in json.loads(captured.out)["problems"] if p["severity"] == "error"]
    assert [p["utterance"] for p in errors] == ["bad"]
    assert CASES[case][1].lower() in errors[0]["message"].lower()


@pytest.mark.parametrize("case", list(CASES))
def test_adapt_names_the_bad_training_utterance(case, tiny_model_dir, tone_data, tmp_path, capsys):
    manifest = _manifest_with(case, read_manifest(tone_data["train"]), tmp_path)
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(manifest), "--test", str(tone_data["test"]),
               "--out", str(tmp_path / "run"), "--max-steps", "1", "--quiet"])
    assert rc == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'bad'" in line and f"bad-{case}.wav" in line and "--on-error skip" in line
    assert not (tmp_path / "run" / "model.safetensors").exists()
