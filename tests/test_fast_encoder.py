"""The fast feature encoder (models/fast_encoder.py) and the decoding path that uses it: same numbers up to rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtl.decode import forward_arrays
from speechtl.models import load_model, random_model
from speechtl.models.fast_encoder import fast_encode_features, fast_features_supported
from speechtl.models.features import encode_features
from speechtl.text import ENGLISH_CHARS, build_vocab

from conftest import noise_audio, rel_error

VOCAB = build_vocab([], ENGLISH_CHARS)


@pytest.mark.parametrize("norm, bias", [("layer", False), ("group", True)])
def test_fp32_features_equal_the_models_own(norm, bias):
    model, _ = random_model(VOCAB, "tiny", seed=1, feat_extract_norm=norm, conv_bias=bias)
    model.eval()
    assert fast_features_supported(model)
    x = torch.from_numpy(np.stack(noise_audio([16_037, 16_037], seed=2)))
    ref = encode_features(model, x)
    out = fast_encode_features(model, x, torch.float32)
    assert out.shape == ref.shape and out.dtype == torch.float32 and out.is_contiguous()
    assert rel_error(out, ref) < 1e-5


def test_bf16_features_are_as_close_to_fp32_as_bf16_allows():
    model, _ = random_model(VOCAB, "tiny", seed=1)
    model.eval()
    x = torch.from_numpy(np.stack(noise_audio([24_000, 24_000], seed=3)))
    out = fast_encode_features(model, x, torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert rel_error(out, encode_features(model, x)) < 0.05  # bf16 rounding gives ~0.01; a wrong kernel ~1


def test_fast_flag_changes_bf16_only_and_keeps_lengths():
    """fp32 with ``fast`` is bit for bit the model's own forward (the pipeline test relies on it); bf16 with ``fast``
    stays within bf16 rounding of fp32, padded rows included."""
    model, processor = random_model(VOCAB, "tiny", seed=4)
    model.eval()
    arrays = noise_audio([20_000, 12_345, 7_001], seed=5)
    plain = forward_arrays(model, processor, arrays, "fp32")
    assert torch.equal(forward_arrays(model, processor, arrays, "fp32", fast=True).logits, plain.logits)
    fast = forward_arrays(model, processor, arrays, "bf16", fast=True)
    assert torch.equal(fast.lengths, plain.lengths)
    for row, n in enumerate(plain.lengths.tolist()):
        assert rel_error(fast.logits[row, :n], plain.logits[row, :n]) < 0.05


def test_shipped_model_bf16_fast_frames_agree_with_fp32():
    model, processor = load_model("speechtl/en-us-synth")
    model.eval()
    assert fast_features_supported(model)
    arrays = noise_audio([5 * 16_000], seed=6)
    ref = forward_arrays(model, processor, arrays, "fp32").logits
    fast = forward_arrays(model, processor, arrays, "bf16", fast=True).logits
    assert rel_error(fast, ref) < 0.05


def test_unsupported_models_take_the_ordinary_path():
    adapter_model, _ = random_model(VOCAB, "tiny", seed=1, add_adapter=True, num_adapter_layers=1,
                                    output_hidden_size=32)
    assert not fast_features_supported(adapter_model)
    assert not fast_features_supported(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("norm, bias", [("layer", False), ("group", True)])
def test_training_variant_gives_the_models_own_loss_and_gradients_in_fp32(norm, bias):
    """Training mode (dropout, SpecAugment, both seeded alike): the differentiable fast encoder followed by
    ``ctc_logits_from_features`` gives transformers' logits and the same gradient for every weight, encoder included;
    frozen, it builds no graph through the encoder."""
    from speechtl.models.fast_encoder import fast_encode_features_for_training
    from speechtl.models.features import ctc_logits_from_features

    model, processor = random_model(VOCAB, "tiny", seed=6, feat_extract_norm=norm, conv_bias=bias,
                                    mask_time_prob=0.3, mask_time_length=2, hidden_dropout=0.1)
    model.train()
    x = torch.from_numpy(np.stack(noise_audio([16_000, 16_000], seed=7)))

    def run(fast: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        torch.manual_seed(0), np.random.seed(0)
        model.zero_grad()
        logits = ctc_logits_from_features(model, fast_encode_features_for_training(model, x, torch.float32), None) \
            if fast else model(x).logits
        logits.pow(2).mean().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    (ref, ref_grads), (out, grads) = run(False), run(True)
    assert rel_error(out, ref) < 1e-5 and grads.keys() == ref_grads.keys()
    assert any(".feature_extractor." in n for n in grads)  # the encoder trains
    # (attention key biases get a zero gradient in exact arithmetic: only rounding noise, ~1e-14, to compare there)
    assert all(rel_error(grads[n], ref_grads[n]) < 1e-4 for n in grads if ref_grads[n].norm() > 1e-8)
    model.freeze_feature_encoder()
    assert not fast_encode_features_for_training(model, x, torch.float32).requires_grad


def test_bf16_training_steps_take_the_fast_encoder_and_stay_close():
    """``forward_logits(..., fast=True)`` in training mode and bf16 runs the differentiable fast encoder: within bf16
    rounding of fp32, and the encoder's weights get gradients."""
    from speechtl.decode import CtcCollator, forward_logits

    model, processor = random_model(VOCAB, "tiny", seed=8)
    model.train()
    model.config.mask_time_prob = 0.0
    batch = CtcCollator(processor.feature_extractor)([{"id": str(i), "audio": a}
                                                      for i, a in enumerate(noise_audio([20_000, 12_000], seed=9))])
    torch.manual_seed(0)
    ref, lengths = forward_logits(model, batch, False, "fp32")
    torch.manual_seed(0)
    out, fast_lengths = forward_logits(model, batch, False, "bf16", fast=True)
    assert torch.equal(lengths, fast_lengths)
    for row, n in enumerate(lengths.tolist()):
        assert rel_error(out[row, :n].detach(), ref[row, :n].detach()) < 0.05
    out.sum().backward()
    assert model.wav2vec2.feature_extractor.conv_layers[0].conv.weight.grad is not None
