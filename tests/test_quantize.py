"""int8 inference (models/quantize.py, transcribe/evaluate --int8): every linear layer swapped, outputs within int8
rounding of fp32 in both precisions, what it cannot run refused with the reason."""

from __future__ import annotations

import json

import pytest
import torch

from speechtl.cli import main
from speechtl.config import ConfigError
from speechtl.decode import forward_arrays
from speechtl.eval import evaluate_manifests
from speechtl.models import random_model
from speechtl.models.quantize import Int8Linear, is_int8, quantize_int8
from speechtl.models.router import RoutedCTC, Router
from speechtl.text import ENGLISH_CHARS, build_vocab
from speechtl.transcribe import TranscribeOptions, transcribe_files

from conftest import noise_audio, rel_error

VOCAB = build_vocab([], ENGLISH_CHARS)


def test_every_linear_layer_becomes_int8_and_the_logits_stay_within_int8_rounding():
    model, processor = random_model(VOCAB, "tiny", seed=3)
    model.eval()
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    arrays = noise_audio([20_000, 9_001], seed=4)
    ref = forward_arrays(model, processor, arrays, "fp32")
    assert not is_int8(model)
    assert quantize_int8(model) is model and is_int8(model)
    assert sum(type(m) is torch.nn.Linear for m in model.modules()) == 0
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == linears > 0
    for precision, fast in (("fp32", False), ("bf16", False), ("bf16", True)):  # evaluate's path, transcribe's path
        out = forward_arrays(model, processor, arrays, precision, fast=fast)
        assert out.logits.dtype == torch.float32 and torch.equal(out.lengths, ref.lengths)
        for row, n in enumerate(ref.lengths.tolist()):
            assert 0 < rel_error(out.logits[row, :n], ref.logits[row, :n]) < 0.1  # int8 rounding: ~0.01; a wrong kernel: ~1


def test_int8_layers_answer_in_the_dtype_autocasts_linear_would():
    layer = torch.nn.Linear(16, 8)
    q = torch.nn.Sequential(layer)
    q.lm_head = torch.nn.Linear(8, 4)  # a module with a head counts as a CTC model
    quantize_int8(q)
    x = torch.randn(3, 16)
    with torch.no_grad():
        assert q[0](x).dtype == torch.float32 and q[0](x.bfloat16()).dtype == torch.bfloat16
        with torch.autocast("cpu", dtype=torch.bfloat16):  # a layer norm's fp32 output in, bf16 out (GELU in bf16)
            assert q[0](x).dtype == torch.bfloat16 == layer(x).dtype
        assert 0 < rel_error(q[0](x), layer(x)) < 0.05


@torch.no_grad()
def test_a_routed_system_gets_both_its_models_int8_and_still_serves_rows_from_the_one_the_router_picks():
    base, _ = random_model(VOCAB, "tiny", seed=0)
    adapted, _ = random_model(VOCAB, "tiny", seed=1)
    router = Router(base.config.hidden_size)
    router.std.fill_(1.0)
    router.bias.fill_(-1.0)  # every row to the start model
    routed = quantize_int8(RoutedCTC(base.eval(), adapted.eval(), router))
    assert is_int8(routed.base) and is_int8(routed.adapted)
    x, mask = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)), torch.ones(2, 8000, dtype=torch.long)
    assert torch.equal(routed(x, mask).logits, routed.base(x, attention_mask=mask).logits)
    assert routed.counts == [0, 2]


def test_what_int8_cannot_run_is_refused_with_the_reason():
    model, _ = random_model(VOCAB, "tiny", seed=0)
    with pytest.raises(ConfigError, match="CPU only"):
        quantize_int8(model.to("meta"))
    from peft import LoraConfig, get_peft_model

    model, _ = random_model(VOCAB, "tiny", seed=0)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(ConfigError, match="unmerged LoRA"):
        quantize_int8(wrapped)
    with pytest.raises(ConfigError, match="no CTC model"):
        quantize_int8(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_transcribe_and_evaluate_run_int8_end_to_end(tiny_model_dir, tone_data, capsys):
    wavs = sorted((tone_data["test"].parent / "wav").glob("*.wav"))
    got, skipped = transcribe_files(str(tiny_model_dir), wavs[:2], precision="bf16", progress=False,
                                    options=TranscribeOptions(int8=True))
    assert len(got) == 2 and not skipped and all(t.duration_s > 0 for t in got)
    with pytest.raises(ConfigError, match="--int8 and --compile"):
        transcribe_files(str(tiny_model_dir), wavs[:1], progress=False, options=TranscribeOptions(int8=True, compile=True))
    r = evaluate_manifests(str(tiny_model_dir), [str(tone_data["test"])], precision="fp32", progress=False, int8=True)
    assert r["int8"] is True and 0 <= r["sets"]["test"]["wer"]
    assert main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--int8", "--quiet", "--precision", "fp32",
                 "--output-format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["int8"] is True
