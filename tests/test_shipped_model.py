"""The shipped offline source model: plain transformers loads it, and it transcribes synthetic en-us speech."""

from __future__ import annotations

import pytest
import torch
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

from speechtl import synth
from speechtl.eval import error_rates
from speechtl.models import SHIPPED_DIR as SHIPPED, load_model

MODELS = ["en-us-synth"]  # every shipped model
CER_BOUND = 0.12  # the model cards report en-us CER on 4 minutes of held-out sentences (1.7 %)


@pytest.mark.parametrize("name", MODELS)
def test_plain_transformers_loads_it_and_transcribes_en_us_under_a_cer_bound(name):
    model_dir = SHIPPED / name
    model = Wav2Vec2ForCTC.from_pretrained(model_dir, use_safetensors=True).eval()
    processor = Wav2Vec2Processor.from_pretrained(model_dir)
    texts = synth.sentences("en", "test", n=8, seed=4242)  # held-out pool, a seed no build uses
    hyps = []
    for k, text in enumerate(texts):
        audio = synth.speak(text, voice=f"en-us+{('m1', 'f2', 'm3', 'f4')[k % 4]}", rate=165 + 5 * k, pitch=45)
        inputs = processor(audio, sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            logits = model(inputs.input_values, attention_mask=inputs.attention_mask).logits
        hyps.append(processor.batch_decode(logits.argmax(-1))[0])
    rates = error_rates(texts, hyps)
    assert rates.cer < CER_BOUND, list(zip(texts, hyps))


@pytest.mark.parametrize("name", MODELS)
def test_shipped_name_resolves_and_the_card_reports_every_accent(name):
    model_dir = SHIPPED / name
    model, processor = load_model(f"speechtl/{name}")
    assert model.config.model_type == "wav2vec2" and processor.tokenizer.pad_token_id == 0
    card = (model_dir / "README.md").read_text()
    for accent in synth.ENGLISH_ACCENTS:
        assert f"| {accent} |" in card, accent
    assert (model_dir / "model.safetensors").stat().st_size < 25_000_000
    assert not list(model_dir.glob("*.bin"))  # safetensors only
