"""The strategy menu: which parameters train, and that what is saved is a plain model with the same outputs."""

from __future__ import annotations

import pytest
import torch

from speechtl.adapt.run import labels_for
from speechtl.adapt.strategies import STRATEGIES, apply_strategy, finish_strategy
from speechtl.adapt.train import TrainData, train, train_config
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest
from speechtl.models import load_model, random_model
from speechtl.text import build_vocab


def _model():
    model, _ = random_model(build_vocab([], "abc"), size="tiny", num_hidden_layers=3)
    return model


def _trainable(module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.requires_grad}


def test_full_trains_everything_but_the_feature_encoder():
    names = _trainable(apply_strategy(_model(), "full"))
    assert "lm_head.weight" in names and "wav2vec2.encoder.layers.0.attention.q_proj.weight" in names
    assert not any("feature_extractor" in n for n in names)
    assert any("feature_extractor" in n for n in _trainable(apply_strategy(_model(), "full",
                                                                          freeze_feature_encoder=False)))


def test_top_k_trains_the_last_layers_and_the_head():
    names = _trainable(apply_strategy(_model(), "top_k", top_k=1))
    assert {n.split(".")[3] for n in names if ".layers." in n} == {"2"}
    assert "lm_head.weight" in names and "wav2vec2.encoder.layer_norm.weight" in names
    assert not any("feature_projection" in n or "pos_conv" in n for n in names)
    with pytest.raises(ValueError, match="top_k must be 1..3"):
        apply_strategy(_model(), "top_k", top_k=4)


def test_head_trains_the_head_alone():
    assert _trainable(apply_strategy(_model(), "head")) == {"lm_head.weight", "lm_head.bias"}


def test_lora_trains_low_rank_factors_and_the_head_then_merges_into_a_plain_model():
    model = _model().eval()
    x = torch.randn(1, 8000)
    wrapped = apply_strategy(model, "lora", lora_r=4)
    names = _trainable(wrapped)
    assert names and all("lora_" in n or "lm_head" in n for n in names)
    for target in ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"):
        assert any(target in n for n in names), target
    with torch.no_grad():  # make the update non-zero, as training would
        for n, p in wrapped.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
        expected = wrapped.eval()(x).logits
        merged = finish_strategy(wrapped)
        assert type(merged).__name__ == "Wav2Vec2ForCTC" and merged is model
        assert not any("lora" in n for n, _ in merged.named_parameters())
        assert torch.allclose(merged(x).logits, expected, atol=1e-4)


def test_adapter_starts_as_identity_and_reloads_from_pretrained(tmp_path):
    model = _model().eval()
    x = torch.randn(1, 8000)
    with torch.no_grad():
        before = model(x).logits
    apply_strategy(model, "adapter", adapter_dim=8)
    names = _trainable(model)
    assert names and all("adapter_layer" in n or "lm_head" in n for n in names)
    with torch.no_grad():
        assert torch.equal(model(x).logits, before)  # zero-initialised up-projection
        for n, p in model.named_parameters():
            if "adapter_layer.linear_2" in n:
                p.normal_(0, 0.1)
        changed = model(x).logits
    assert not torch.allclose(changed, before)
    model.save_pretrained(tmp_path)
    from transformers import Wav2Vec2ForCTC

    reloaded = Wav2Vec2ForCTC.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(x).logits, changed, atol=1e-5)


def test_unknown_strategy():
    with pytest.raises(ValueError, match="choose from full, top_k, head, lora, adapter"):
        apply_strategy(_model(), "everything")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_trains_and_returns_a_plain_model(strategy, tone_data, tiny_model_dir, tmp_path):
    model, processor = load_model(str(tiny_model_dir))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    utts, audio, _ = load_utterance_audio(read_manifest(tone_data["train"]))
    cfg = train_config(lr=1e-2, max_steps=3, eval_every=3, batch_seconds=4, strategy=strategy, top_k=1)
    result = train(model, processor, TrainData(utts, labels_for(utts, processor.tokenizer), audio), tmp_path, cfg,
                   progress=False)
    assert 0 < result.trainable_params < sum(p.numel() for p in model.parameters())
    after = model.state_dict()
    assert not any("lora" in k for k in after)
    assert not torch.equal(after["lm_head.weight"], start["lm_head.weight"])
    frozen = "wav2vec2.feature_extractor.conv_layers.0.conv.weight"
    assert torch.equal(after[frozen], start[frozen])


def test_l2sp_penalty_on_a_literal_case():
    from speechtl.adapt.train import l2sp_penalty

    start = [torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])]
    now = [torch.tensor([2.0, 0.0]), torch.tensor([[3.0]])]
    assert l2sp_penalty(now, start).item() == 1.0 + 4.0 + 9.0
    assert l2sp_penalty(start, start).item() == 0.0


def test_layer_wise_lr_decay_groups_on_a_literal_case():
    from speechtl.adapt.strategies import param_groups

    model = apply_strategy(_model(), "full")  # 3 transformer layers
    groups = param_groups(model, lr=1.0, layer_decay=0.5)
    by_lr = {g["lr"]: {n for n, p in model.named_parameters() if any(p is q for q in g["params"])} for g in groups}
    assert sorted(by_lr) == [0.0625, 0.125, 0.25, 0.5, 1.0]
    assert {"lm_head.weight", "wav2vec2.encoder.layer_norm.weight"} <= by_lr[1.0]
    assert all(".layers.2." in n for n in by_lr[0.5]) and all(".layers.0." in n for n in by_lr[0.125])
    assert "wav2vec2.feature_projection.projection.weight" in by_lr[0.0625]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    assert len(param_groups(model, lr=1.0)) == 1
