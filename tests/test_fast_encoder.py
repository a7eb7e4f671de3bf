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

VOCAB = build_vocab([], ENGLISH_CHARS)


def _audio(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("norm, bias", [("layer", False), ("group", True)])
def test_fp32_features_equal_the_models_own(norm, bias):
    model, _ = random_model(VOCAB, "tiny", seed=1, feat_extract_norm=norm, conv_bias=bias)
    model.eval()
    assert fast_features_supported(model)
    x = torch.from_numpy(np.stack(_audio([16_037, 16_037], seed=2)))
    ref = encode_features(model, x)
    out = fast_encode_features(model, x, torch.float32)
    assert out.shape == ref.shape and out.dtype == torch.float32 and out.is_contiguous()
    assert _rel(out, ref) < 1e-5


def test_bf16_features_are_as_close_to_fp32_as_bf16_allows():
    model, _ = random_model(VOCAB, "tiny", seed=1)
    model.eval()
    x = torch.from_numpy(np.stack(_audio([24_000, 24_000], seed=3)))
    out = fast_encode_features(model, x, torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert _rel(out, encode_features(model, x)) < 0.05  # bf16 rounding gives ~0.01; a wrong kernel ~1


def test_fast_flag_changes_bf16_only_and_keeps_lengths():
    """fp32 with ``fast`` is bit for bit the model's own forward (the pipeline test relies on it); bf16 with ``fast``
    stays within bf16 rounding of fp32, padded rows included."""
    model, processor = random_model(VOCAB, "tiny", seed=4)
    model.eval()
    arrays = _audio([20_000, 12_345, 7_001], seed=5)
    plain = forward_arrays(model, processor, arrays, "fp32")
    assert torch.equal(forward_arrays(model, processor, arrays, "fp32", fast=True).logits, plain.logits)
    fast = forward_arrays(model, processor, arrays, "bf16", fast=True)
    assert torch.equal(fast.lengths, plain.lengths)
    for row, n in enumerate(plain.lengths.tolist()):
        assert _rel(fast.logits[row, :n], plain.logits[row, :n]) < 0.05


def test_shipped_model_bf16_fast_frames_agree_with_fp32():
    model, processor = load_model("speechtl/en-us-synth")
    model.eval()
    assert fast_features_supported(model)
    arrays = _audio([5 * 16_000], seed=6)
    ref = forward_arrays(model, processor, arrays, "fp32").logits
    fast = forward_arrays(model, processor, arrays, "bf16", fast=True).logits
    assert _rel(fast, ref) < 0.05


def test_unsupported_models_take_the_ordinary_path():
    adapter_model, _ = random_model(VOCAB, "tiny", seed=1, add_adapter=True, num_adapter_layers=1,
                                    output_hidden_size=32)
    assert not fast_features_supported(adapter_model)
    assert not fast_features_supported(torch.nn.Linear(2, 2))
