"""The one batched inference loop (decode.iter_batches / forward_arrays) on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtl.data.dataset import length_grouped_batches
from speechtl.decode import forward_arrays, iter_batches
from speechtl.models import random_model
from speechtl.text import build_vocab


@pytest.fixture(scope="module")
def tiny():
    return random_model(build_vocab(["abc"]), size="tiny", seed=0)


def arrays(n: int = 7, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.3 * rng.standard_normal(int(rng.integers(2_000, 20_000)))).astype(np.float32) for _ in range(n)]


def test_batches_are_the_length_groups_and_the_model_mode_comes_back(tiny):
    model, processor = tiny
    audio = arrays()
    model.train()
    seen = []
    for b in iter_batches(model, processor, audio, batch_seconds=2.0):
        assert not model.training  # eval mode while the batches run: no dropout
        assert b.logits.dtype == torch.float32 and b.logits.shape[0] == len(b.indices) == len(b.lengths)
        assert b.hidden_states is None
        seen.append(b.indices)
    assert model.training
    assert seen == length_grouped_batches([len(a) / 16_000 for a in audio], 2.0, seed=None)


def test_batched_rows_equal_one_by_one(tiny):
    model, processor = tiny
    audio = arrays()
    for b in iter_batches(model, processor, audio, batch_seconds=2.0):
        for k, i in enumerate(b.indices):
            alone = forward_arrays(model, processor, [audio[i]])
            n = int(b.lengths[k])
            assert n == int(alone.lengths[0])
            torch.testing.assert_close(b.logits[k, :n], alone.logits[0, :n], atol=1e-4, rtol=1e-4)


def test_hidden_states_come_with_the_same_logits(tiny):
    model, processor = tiny
    audio = arrays(3)
    model.eval()
    plain = forward_arrays(model, processor, audio)
    full = forward_arrays(model, processor, audio, hidden_states=True)
    assert torch.equal(plain.logits, full.logits) and torch.equal(plain.lengths, full.lengths)
    assert len(full.hidden_states) == model.config.num_hidden_layers + 1
    assert full.last_hidden_state.shape == (*full.logits.shape[:2], model.config.hidden_size)
