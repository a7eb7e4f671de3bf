"""``transcribe --compile``: one batch shape is compiled once, padding to it changes no output, the compiled
transcription equals the eager one in fp32, and a compile that fails falls back to eager with one line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from torch._dynamo.testing import CompileCounter

from speechtl.data.dataset import CtcCollator
from speechtl.decode import audio_forward, forward_logits, uses_attention_mask
from speechtl.decode.compiled import CompiledForward
from speechtl.models import load_model
from speechtl.transcribe import TranscribeOptions, transcribe_files
from conftest import tone_audio


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # compiled closures of earlier tests' models would count against the recompile limit
    yield
    torch._dynamo.reset()


def _batch(processor, seconds: list[float]) -> dict:
    arrays = [tone_audio("abc cab ba" * 3, seed=i)[: int(s * 16_000)] for i, s in enumerate(seconds)]
    return CtcCollator(processor.feature_extractor)([{"id": str(i), "audio": a} for i, a in enumerate(arrays)])


def test_one_shape_compiles_once_and_padding_changes_nothing(tiny_model_dir):
    model, processor = load_model(str(tiny_model_dir))
    model.eval()
    pass_mask = uses_attention_mask(processor)
    assert pass_mask  # our models read a mask: padding is allowed
    counter = CompileCounter()
    compiled = CompiledForward(audio_forward(model, pass_mask, "fp32"), rows=2, samples=16_000, pad=True,
                               backend=counter)
    frames = None
    for seconds in ([1.0, 1.0], [1.0], [1.0, 0.6], [0.45], [1.0, 1.0]):
        batch = _batch(processor, seconds)
        with torch.no_grad():
            eager, lengths = forward_logits(model, batch, pass_mask, "fp32")
            got, got_lengths = forward_logits(model, batch, pass_mask, "fp32", forward=compiled)
        frames = frames or counter.frame_count
        assert got.shape == eager.shape and torch.equal(got_lengths, lengths)
        for row, n in enumerate(lengths):
            torch.testing.assert_close(got[row, :n], eager[row, :n], rtol=1e-4, atol=1e-4)
    assert counter.frame_count == frames >= 1  # compiled at the first call, never again
    with torch.no_grad():  # a larger batch than the compiled shape runs eagerly, also without compiling
        batch = _batch(processor, [1.2, 1.0, 1.0])
        assert forward_logits(model, batch, pass_mask, "fp32", forward=compiled)[0].shape == \
            forward_logits(model, batch, pass_mask, "fp32")[0].shape
    assert counter.frame_count == frames


def _long_file(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate([tone_audio("abc cab ba bca", seed=i) for i in range(3)]), 16_000)
    return path  # ~5 s: with 1-s chunks, full batches of two chunks and a shorter last chunk


@pytest.mark.slow  # compiles the tiny model with inductor: ~30 s with an empty inductor cache, ~5 s warm
def test_compiled_transcription_equals_eager_in_fp32(tiny_model_dir, tmp_path, caplog):
    path = _long_file(tmp_path)
    with caplog.at_level(logging.INFO, logger="speechtl.decode.compiled"):
        eager, compiled = (transcribe_files(str(tiny_model_dir), [path], precision="fp32", progress=False,
                                            options=TranscribeOptions(1.0, 0.2, 2.0, compile=c))[0][0]
                           for c in (False, True))
    assert "torch.compile: first call" in caplog.text  # the compiled forward ran (once: one shape)
    assert caplog.text.count("torch.compile: first call") == 1
    assert eager.text and compiled.text == eager.text
    assert [(w.word, w.start_s, w.end_s) for w in compiled.words] == [(w.word, w.start_s, w.end_s) for w in eager.words]
    np.testing.assert_allclose([w.confidence for w in compiled.words], [w.confidence for w in eager.words],
                               rtol=1e-4, atol=1e-4)


def test_a_failing_compile_falls_back_to_eager_with_one_line(tiny_model_dir, capsys):
    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler here\nsecond line")

    model, processor = load_model(str(tiny_model_dir))
    model.eval()
    compiled = CompiledForward(audio_forward(model, True, "fp32"), rows=1, samples=16_000, pad=True, backend=broken)
    batch = _batch(processor, [1.0])
    with torch.no_grad():
        got = forward_logits(model, batch, True, "fp32", forward=compiled)[0]
        again = forward_logits(model, batch, True, "fp32", forward=compiled)[0]
        eager = forward_logits(model, batch, True, "fp32")[0]
    torch.testing.assert_close(got, eager)
    torch.testing.assert_close(again, eager)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("--compile: torch.compile failed") and "no C++ compiler" in err[0]
    assert compiled.compiled is None


def test_the_flag_reaches_the_options(monkeypatch, tmp_path):
    import speechtl.transcribe as transcribe
    from speechtl.cli import main

    seen = {}

    def fake(model, paths, on_error, precision, device, progress, options):
        seen["compile"] = options.compile
        return [transcribe.FileTranscript("a.wav", "ab", 1.0)], []

    monkeypatch.setattr(transcribe, "transcribe_files", fake)
    for flags, expected in (([], False), (["--compile"], True)):
        assert main(["transcribe", "speechtl/en-us-synth", str(tmp_path), "--quiet", *flags]) == 0
        assert seen.pop("compile") is expected
