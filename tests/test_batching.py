"""speechtl.data.dataset: length-grouped batches under a padded-seconds budget, and the CTC collator."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from speechtl.data.dataset import CtcCollator, length_grouped_batches
from speechtl.models import build_processor
from speechtl.text import build_vocab


def durations(n: int = 300, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    d = [round(rng.uniform(0.5, 15.0), 2) for _ in range(n)]
    d[7], d[123] = 70.0, 100.0  # longer than the 60 s budget
    return d


def padded_s(batch: list[int], d: list[float]) -> float:
    """What a batch costs once padded: its longest item times its size."""
    return max(d[i] for i in batch) * len(batch)


@pytest.mark.parametrize("seed", [0, 1, None])
@pytest.mark.parametrize("pool_factor", [50, 2])
def test_every_index_exactly_once(seed, pool_factor):
    d = durations()
    batches = length_grouped_batches(d, 60.0, seed=seed, pool_factor=pool_factor)
    assert sorted(i for b in batches for i in b) == list(range(len(d)))
    assert all(b for b in batches)


@pytest.mark.parametrize("seed", [0, 1, None])
@pytest.mark.parametrize("pool_factor", [50, 2])
def test_padded_size_stays_under_the_budget(seed, pool_factor):
    d = durations()
    batches = length_grouped_batches(d, 60.0, seed=seed, pool_factor=pool_factor)
    for b in batches:
        assert padded_s(b, d) <= 60.0 or len(b) == 1
    # the two oversized utterances each get a batch of their own
    assert [7] in batches and [123] in batches


def test_grouping_keeps_padding_small():
    d = durations()
    batches = length_grouped_batches(d, 60.0, seed=0)
    assert sum(padded_s(b, d) for b in batches) / sum(d) < 1.15


def test_seeded_order_is_deterministic_and_differs_across_seeds():
    d = durations()
    a = length_grouped_batches(d, 60.0, seed=0)
    assert length_grouped_batches(d, 60.0, seed=0) == a
    assert length_grouped_batches(d, 60.0, seed=1) != a
    assert length_grouped_batches(d, 60.0, seed=None) != a  # shuffled, not longest first


def test_no_seed_is_longest_first():
    d = durations()
    flat = [i for b in length_grouped_batches(d, 60.0, seed=None) for i in b]
    assert [d[i] for i in flat] == sorted(d, reverse=True)


def test_no_seed_literal_case():
    # sorted: #1 (4 s), #3 (3 s), #2 (2 s), #0 (1 s); budget 6 s
    # [1]: adding #3 would pad to 4·2 = 8 > 6 → close; [3, 2] pads to 3·2 = 6 ≤ 6; adding #0 → 3·3 = 9 → close
    assert length_grouped_batches([1.0, 4.0, 2.0, 3.0], 6.0, seed=None) == [[1], [3, 2], [0]]
    assert length_grouped_batches([10.0, 1.0, 1.0], 5.0, seed=None) == [[0], [1, 2]]
    assert length_grouped_batches([], 5.0, seed=0) == []


# --- collator ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collator() -> CtcCollator:
    return CtcCollator(build_processor(build_vocab(["abc"])).feature_extractor)


def items(with_labels: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    lengths = [1600, 800, 1200]  # samples at 16 kHz
    labels = [[5, 6, 7], [7, 4, 5, 6, 5], [6]]
    out = []
    for k, n in enumerate(lengths):
        it = {"id": f"u{k}", "audio": (0.3 * rng.standard_normal(n) + 0.1).astype(np.float32)}
        if with_labels:
            it["labels"] = labels[k]
        out.append(it)
    return out


def test_collator_shapes_masks_and_labels(collator):
    batch = collator(items())
    assert batch["ids"] == ["u0", "u1", "u2"]
    x, mask = batch["input_values"], batch["attention_mask"]
    assert x.shape == (3, 1600) and x.dtype == torch.float32
    assert mask.shape == (3, 1600)
    assert mask.sum(dim=1).tolist() == [1600, 800, 1200]
    assert mask[1, :800].eq(1).all() and mask[1, 800:].eq(0).all()
    assert torch.equal(
        batch["labels"],
        torch.tensor([[5, 6, 7, -100, -100], [7, 4, 5, 6, 5], [6, -100, -100, -100, -100]]),
    )
    assert batch["labels"].dtype == torch.long
    assert batch["label_lengths"].tolist() == [3, 5, 1] and batch["label_lengths"].dtype == torch.long


def test_collator_normalises_each_utterance_over_its_own_samples(collator):
    batch = collator(items())
    x = batch["input_values"]
    for k, n in enumerate([1600, 800, 1200]):
        assert float(x[k, :n].mean()) == pytest.approx(0.0, abs=1e-4)
        assert float(x[k, :n].std(unbiased=False)) == pytest.approx(1.0, abs=1e-2)
        assert x[k, n:].eq(0).all()  # padding stays zero


def test_collator_without_labels(collator):
    batch = collator(items(with_labels=False))
    assert set(batch) == {"ids", "input_values", "attention_mask"}
