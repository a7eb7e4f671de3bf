"""Long-form transcription: chunk plans tile the frames, streaming reads any rate, word times and
subtitles parse back strictly (monotonic, inside the file), bad files are skipped, outputs are named."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtl.audio import AudioError, load_audio
from speechtl.cli import main
from speechtl.decode.chunking import ChunkPlan, iter_chunks, plan_chunks, stream_audio
from speechtl.decode.timestamps import Word, greedy_words, words_from_frames, words_to_cues
from speechtl.models import build_processor
from speechtl.text import build_vocab
from speechtl.transcribe import output_names
from speechtl.writers import srt_time, vtt_time

SHIPPED = "speechtl/en-us-synth"


# --- strict subtitle parsers (what a player would accept) -----------------------------------------

SRT_TIME = r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3})"
VTT_TIME = r"(\d{2}):([0-5]\d):([0-5]\d)\.(\d{3})"


def _seconds(m: tuple[str, ...]) -> float:
    h, mi, s, ms = map(int, m)
    return h * 3600 + mi * 60 + s + ms / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """Numbered blocks 1, 2, ... each 'index / HH:MM:SS,mmm --> HH:MM:SS,mmm / text', blank-line separated."""
    assert text.endswith("\n") and "\r" not in text and "\n\n\n" not in text
    cues = []
    for k, block in enumerate(text.strip("\n").split("\n\n"), 1):
        lines = block.split("\n")
        assert len(lines) >= 3, block
        assert lines[0] == str(k), f"cue number {lines[0]!r}, expected {k}"
        m = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", lines[1])
        assert m, lines[1]
        assert all(line.strip() for line in lines[2:]), block
        cues.append((_seconds(m.groups()[:4]), _seconds(m.groups()[4:]), " ".join(lines[2:])))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """'WEBVTT', a blank line, then blocks 'HH:MM:SS.mmm --> HH:MM:SS.mmm / text' separated by blank lines."""
    assert text.startswith("WEBVTT\n\n") and "\r" not in text and "\n\n\n" not in text
    cues = []
    for block in text[len("WEBVTT\n\n"):].strip("\n").split("\n\n"):
        lines = block.split("\n")
        m = re.fullmatch(f"{VTT_TIME} --> {VTT_TIME}", lines[0])
        assert m and len(lines) >= 2 and all(line.strip() for line in lines[1:]), block
        cues.append((_seconds(m.groups()[:4]), _seconds(m.groups()[4:]), " ".join(lines[1:])))
    return cues


def check_times(cues: list[tuple[float, float, str]], duration_s: float) -> None:
    assert cues, "no cues"
    for (s0, e0, _), (s1, _, _) in zip(cues, cues[1:]):
        assert e0 <= s1 + 1e-9, "cues overlap or go back in time"
    for s, e, _ in cues:
        assert 0 <= s <= e <= duration_s + 1e-9


def test_the_strict_parsers_reject_broken_subtitles():
    good = "1\n00:00:00,000 --> 00:00:01,500\nhello\n\n2\n00:00:02,000 --> 00:00:03,000\nworld\n"
    assert parse_srt(good) == [(0.0, 1.5, "hello"), (2.0, 3.0, "world")]
    for bad in (good.replace("2\n00", "3\n00"), good.replace(",500", ".500"), good.replace("hello", ""),
                good.replace("00:00:01,500", "00:00:01,5")):
        with pytest.raises(AssertionError):
            parse_srt(bad)
    with pytest.raises(AssertionError):
        check_times([(2.0, 3.0, "a"), (1.0, 1.5, "b")], 10.0)
    with pytest.raises(AssertionError):
        parse_vtt("WEBVTT\n\n00:00:00,000 --> 00:00:01,000\nhi\n")


# --- chunk plans ---------------------------------------------------------------------------------

def _frames(n_samples: int, hop: int = 320, field: int = 400) -> int:
    """Output frames of a wav2vec2 feature encoder (receptive field 400, hop 320) on n samples."""
    return 0 if n_samples < field else (n_samples - field) // hop + 1


@pytest.mark.parametrize("seconds", [0.5, 10.0, 10.02, 23.7, 61.0])
def test_chunks_keep_every_frame_of_the_file_exactly_once(seconds):
    plan = plan_chunks(chunk_s=10.0, stride_s=2.0, hop=320)
    assert (plan.chunk, plan.left, plan.right, plan.step) == (160_000, 32_000, 32_000, 96_000)
    n = int(seconds * 16_000)
    audio = np.arange(n, dtype=np.float32)
    blocks = (audio[i : i + 7_777] for i in range(0, n, 7_777))  # odd block size: the buffer must not care
    kept = []
    for c in iter_chunks(blocks, plan):
        assert len(c.audio) <= plan.chunk and c.audio[0] == c.start  # the chunk is the file from `start`
        first = c.start // plan.hop
        end = _frames(len(c.audio)) if c.keep_to is None else c.keep_to
        assert end <= _frames(len(c.audio))
        kept += range(first + c.keep_from, first + end)
    assert kept == list(range(_frames(n)))


def test_chunk_plan_rounds_to_frames_and_refuses_no_step():
    assert plan_chunks(1.0, 0.1, 320) == ChunkPlan(16_000, 1_600, 1_600, 320)
    assert plan_chunks(0.99, 0.101, 320).chunk % 320 == 0
    with pytest.raises(ValueError, match="no step"):
        plan_chunks(1.0, 0.5, 320)


# --- streaming audio -----------------------------------------------------------------------------

def test_streaming_resamples_like_loading_and_rejects_bad_audio(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(int(44_100 * 3.3)) / 44_100
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    sf.write(tmp_path / "a.flac", np.stack([wav, wav], axis=1), 44_100)  # stereo, 44.1 kHz
    streamed = np.concatenate(list(stream_audio(tmp_path / "a.flac", block_s=0.37)))
    whole = load_audio(tmp_path / "a.flac")
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.corrcoef(streamed[:n], whole[:n])[0, 1] > 0.99
    sf.write(tmp_path / "silent.wav", np.zeros(16_000, np.float32), 16_000)
    with pytest.raises(AudioError, match="silent"):
        list(stream_audio(tmp_path / "silent.wav"))
    sf.write(tmp_path / "nan.wav", np.full(1600, np.nan, np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        list(stream_audio(tmp_path / "nan.wav"))


# --- word timestamps -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return build_processor(build_vocab(["abc"])).tokenizer  # <pad>=0 <s> </s> <unk> |=4 a=5 b=6 c=7


def test_words_from_token_spans_literal(tokenizer):
    # tokens a b | c a with frame spans; 20 ms frames
    words = words_from_frames([5, 6, 4, 7, 5], [1, 3, 5, 8, 10], [2, 4, 6, 9, 12], [0.9, 0.7, 1.0, 0.5, 0.5],
                              tokenizer, frame_s=0.02, duration_s=10.0)
    assert words == [Word("ab", 0.02, 0.08, 0.8), Word("ca", 0.16, 0.24, 0.5)]


def test_greedy_words_from_log_probs(tokenizer):
    path = [0, 5, 5, 0, 6, 4, 4, 0, 7, 0, 7, 0]  # a a _ b | | _ c _ c _ -> "ab cc"
    log_probs = torch.full((len(path), 8), -10.0)
    log_probs[torch.arange(len(path)), torch.tensor(path)] = -0.1
    words = greedy_words(log_probs, tokenizer, frame_s=0.02, duration_s=0.2)
    assert [w.word for w in words] == ["ab", "cc"]
    assert (words[0].start_s, words[0].end_s) == (0.02, 0.1) and words[1].start_s == 0.16
    assert words[1].end_s == 0.2  # clipped to the file's duration
    assert all(abs(w.confidence - np.exp(-0.1)) < 1e-3 for w in words)


def test_cues_break_at_pauses_and_length():
    words = [Word("one", 0.0, 0.4, 1), Word("two", 0.5, 0.9, 1), Word("three", 2.5, 3.0, 1)]
    assert [c.text for c in words_to_cues(words)] == ["one two", "three"]
    many = [Word("word", 0.5 * k, 0.5 * k + 0.4, 1) for k in range(30)]
    cues = words_to_cues(many, max_s=6.0, max_chars=84)
    assert all(c.end_s - c.start_s <= 6.0 and len(c.text) <= 84 for c in cues) and len(cues) > 2
    assert " ".join(c.text for c in cues) == " ".join(w.word for w in many)
    assert srt_time(3725.0424) == "01:02:05,042" and vtt_time(0.0) == "00:00:00.000"


def test_output_names_keep_folders_and_stay_unique(tmp_path):
    for rel in ("a/x.wav", "a/sub/x.flac", "b/x.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert output_names([tmp_path / "a", tmp_path / "b" / "x.wav"]) == ["sub/x", "x", "x_2"]


# --- end to end with the shipped model on synthetic speech ----------------------------------------

@pytest.fixture(scope="module")
def long_speech(tmp_path_factory):
    """About 50 s of synthetic en-us sentences in one 44.1 kHz FLAC file, with its reference text."""
    from speechtl.synth import synthesize

    folder = tmp_path_factory.mktemp("longform")
    utts = synthesize(folder / "parts", accent="en-us", split="test", num_utterances=14, seed=3, progress=False)
    gap = np.zeros(8_000, np.float32)
    audio = np.concatenate([np.concatenate([load_audio(u.audio_path), gap]) for u in utts])
    import librosa

    path = folder / "talk.flac"
    sf.write(path, librosa.resample(audio, orig_sr=16_000, target_sr=44_100), 44_100)
    return path, " ".join(u.text for u in utts), len(audio) / 16_000


def test_long_file_to_srt_vtt_json_tsv(long_speech, tmp_path):
    from speechtl.eval import error_rates

    path, reference, duration_s = long_speech
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF....WAVEnope")
    common = ["--chunk-s", "12", "--stride-s", "2", "--quiet", "--output-dir", str(tmp_path / "out")]
    for fmt in ("srt", "vtt", "json", "tsv"):
        assert main(["transcribe", SHIPPED, str(path), str(tmp_path / "in"), "--output-format", fmt, *common]) == 0
    assert not list((tmp_path / "out").glob("broken*"))  # the bad file was skipped, the good one written
    srt = parse_srt((tmp_path / "out" / "talk.srt").read_text())
    vtt = parse_vtt((tmp_path / "out" / "talk.vtt").read_text())
    check_times(srt, duration_s)
    check_times(vtt, duration_s)
    assert [c[2] for c in srt] == [c[2] for c in vtt]
    assert len(srt) >= 5  # ~50 s of speech in cues of at most 6 s
    doc = json.loads((tmp_path / "out" / "talk.json").read_text())
    assert abs(doc["duration_s"] - duration_s) < 0.01
    assert doc["text"] == " ".join(c[2] for c in srt) == " ".join(w["word"] for w in doc["words"])
    starts = [w["start_s"] for w in doc["words"]]
    assert starts == sorted(starts) and all(0 <= w["confidence"] <= 1 for w in doc["words"])
    assert all(w["start_s"] <= w["end_s"] <= duration_s for w in doc["words"])
    assert error_rates([reference], [doc["text"]]).wer < 0.5  # the shipped model reads it (chunked, resampled)
    rows = (tmp_path / "out" / "talk.tsv").read_text().splitlines()
    assert rows[0] == "start_s\tend_s\tword\tconfidence" and len(rows) == len(doc["words"]) + 1


def test_chunked_transcript_equals_the_transformers_pipeline(long_speech):
    """Same chunk and stride as transformers' ASR pipeline, fp32: the same frames are kept, the same text."""
    from transformers import pipeline

    from speechtl.text import normalize
    from speechtl.transcribe import TranscribeOptions, transcribe_files

    path, _, _ = long_speech
    ours = transcribe_files(SHIPPED, [path], precision="fp32", progress=False,
                            options=TranscribeOptions(chunk_s=12, stride_s=2))[0][0]
    audio = np.concatenate(list(stream_audio(path)))  # the 16 kHz samples speechtl saw
    asr = pipeline("automatic-speech-recognition", model=str(_shipped_dir()), device="cpu")
    theirs = asr({"raw": audio, "sampling_rate": 16_000}, chunk_length_s=12, stride_length_s=2)["text"]
    assert ours.text == normalize(theirs)


def _shipped_dir():
    from speechtl.models import SHIPPED_DIR

    return SHIPPED_DIR / "en-us-synth"


def test_srt_to_stdout_for_one_file_but_not_for_many(long_speech, tone_data, tiny_model_dir, capsys):
    path, _, duration_s = long_speech
    assert main(["transcribe", SHIPPED, str(path), "--output-format", "srt", "--quiet"]) == 0
    check_times(parse_srt(capsys.readouterr().out), duration_s)
    folder = tone_data["test"].parent
    assert main(["transcribe", str(tiny_model_dir), str(folder), "--output-format", "vtt", "--quiet"]) == 2
    assert "--output-dir" in capsys.readouterr().err


def test_benchmark_helpers_literal():
    """benchmarks/transcribe_rtf.py: chunk counts, seam times, where two transcripts differ."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "transcribe_rtf.py"
    spec = importlib.util.spec_from_file_location("transcribe_rtf", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.num_chunks(25, 30, 5) == 1 and bench.num_chunks(60, 30, 5) == 3 and bench.num_chunks(600, 30, 3) == 25
    assert bench.seams(70, 30, 5) == [25, 45, 65]
    assert bench.differing_times("a b c d", "a x c d", [0.0, 1.0, 2.0, 3.0]) == [1.0]
    assert bench.differing_times("a b", "a b", [0.0, 1.0]) == []
    rows = [{"kind": "compare", "system": "speechtl", "precision": "bf16", "label": "bf16", "model": "base",
             "x_pipeline": 3.1, "peak_share": 0.2},
            {"kind": "compare", "system": "speechtl", "precision": "bf16", "label": "bf16", "model": "shipped",
             "x_pipeline": 2.0, "peak_share": 0.1, "wer": 0.1},
            {"kind": "compare", "system": "speechtl", "precision": "bf16", "label": "bf16+int8", "int8": True,
             "model": "shipped", "x_pipeline": 2.6, "peak_share": 0.1, "wer": 0.125},
            {"kind": "compare", "system": "pipeline", "precision": "fp32", "model": "base", "peak_share": 0.9}]
    lines = bench.goal_lines(rows)
    assert len(lines) == 4 and lines[0].endswith(": met") and all(line.endswith("NOT met") for line in lines[1:3])
    assert lines[3] == "goal: shipped speechtl bf16+int8 2.60x the pipeline (goal >= 2.5x): met (WER 12.5 % vs bf16's " \
                       "10.0 %)"
    rows[1]["wer"] = None  # a comparison longer than the reference speech: no WER, no cost printed
    assert bench.goal_lines(rows)[3].endswith("(goal >= 2.5x): met")
    eager = {"kind": "compare", "system": "speechtl", "precision": "bf16", "model": "base", "minutes": 2, "wall_s": 20.0}
    fast = {**eager, "compile": True, "compile_s": 30.0, "wall_s": 46.0}  # 16 s after compiling: 2 s per audio-min saved
    slow = {**fast, "model": "shipped", "wall_s": 55.0}
    lines = bench.compile_lines([eager, fast, {**eager, "model": "shipped"}, slow])
    assert len(lines) == 2 and lines[0].endswith("pays after 15 audio-min") and "never" in lines[1]
