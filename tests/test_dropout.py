"""FastDropout: torch's dropout semantics with masks drawn by numpy where torch draws them serially."""

import json
import math

import pytest
import torch

from speechtl.models import dropout as fast
from speechtl.models.dropout import FastDropout, dropout_mask, use_fast_dropout


@pytest.fixture
def serial(monkeypatch):
    """Take the numpy path whatever this CPU is."""
    monkeypatch.setattr(fast, "torch_draws_serially", lambda: True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_the_mask_keeps_1_minus_p_scaled_by_its_inverse(dtype, p):
    torch.manual_seed(0)
    n = 400_000
    mask = dropout_mask((4, 100, 1000), p, dtype)
    assert mask.dtype == dtype and mask.shape == (4, 100, 1000)
    scale = torch.tensor(1 / (1 - p), dtype=dtype)
    kept = mask != 0
    assert torch.equal(mask[kept], scale.expand(int(kept.sum())))  # only 0 and the scale, as torch's
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(int(kept.sum()) - n * (1 - p)) < 6 * sigma  # binomial: ~1e-9 false alarms
    # independent along every axis: each row and column of a 2-D view keeps about 1 - p
    rows = kept.reshape(400, 1000).float().mean(1)
    assert (rows - (1 - p)).abs().max() < 6 * math.sqrt(p * (1 - p) / 1000)


def test_masks_follow_torchs_seed_and_differ_between_calls():
    torch.manual_seed(3)
    a, b = dropout_mask((1000,), 0.1, torch.float32), dropout_mask((1000,), 0.1, torch.float32)
    torch.manual_seed(3)
    assert torch.equal(dropout_mask((1000,), 0.1, torch.float32), a)
    assert not torch.equal(a, b)


def test_odd_sizes_and_one_element():
    torch.manual_seed(0)
    for shape in [(1,), (3,), (5, 7), (2, 3, 5)]:
        assert dropout_mask(shape, 0.3, torch.bfloat16).shape == shape


def test_forward_and_gradient_are_the_mask(serial):
    torch.manual_seed(1)
    drop = FastDropout(0.2).train()
    x = torch.randn(8, 50, 32, requires_grad=True)
    torch.manual_seed(5)
    y = drop(x)
    torch.manual_seed(5)
    mask = dropout_mask(x.shape, 0.2, x.dtype)
    assert torch.equal(y, x * mask)
    y.sum().backward()
    assert torch.equal(x.grad, mask)


def test_bf16_under_autocast_stays_bf16(serial):
    drop = FastDropout(0.1).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = drop(torch.nn.functional.linear(torch.randn(4, 16), torch.randn(16, 16)))
    assert y.dtype == torch.bfloat16


def test_inplace(serial):
    torch.manual_seed(0)
    x = torch.ones(1000)
    y = FastDropout(0.5, inplace=True).train()(x)
    assert y.data_ptr() == x.data_ptr() and 0 < int((x == 0).sum()) < 1000


def test_eval_and_edge_probabilities_are_torchs(serial):
    x = torch.randn(100)
    assert torch.equal(FastDropout(0.3).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros(100))


def test_where_torch_is_vectorised_it_is_torchs_dropout(monkeypatch):
    monkeypatch.setattr(fast, "torch_draws_serially", lambda: False)
    x = torch.randn(10_000)
    torch.manual_seed(2)
    ours = FastDropout(0.1).train()(x)
    torch.manual_seed(2)
    assert torch.equal(ours, torch.nn.functional.dropout(x, 0.1, True))


def test_torch_draws_serially_off_intel_or_without_mkl(monkeypatch):
    for vendor, mkl, serial in [("GenuineIntel", True, False), ("AuthenticAMD", True, True), ("", True, True),
                                ("GenuineIntel", False, True)]:
        fast.torch_draws_serially.cache_clear()
        monkeypatch.setattr(fast, "_cpu_vendor", lambda v=vendor: v)
        monkeypatch.setattr(torch.backends.mkl, "is_available", lambda m=mkl: m)
        assert fast.torch_draws_serially() is serial
    fast.torch_draws_serially.cache_clear()


def test_a_model_s_dropouts_are_swapped_and_its_weights_unchanged(tiny_model_dir):
    from speechtl.models import load_model
    model, _ = load_model(str(tiny_model_dir))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = [m.p for m in model.modules() if type(m) is torch.nn.Dropout]
    assert plain and use_fast_dropout(model) == len(plain)
    assert not [m for m in model.modules() if type(m) is torch.nn.Dropout]
    assert [m.p for m in model.modules() if isinstance(m, FastDropout)] == plain
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_dropout_benchmark_smoke(capsys):
    """Both columns time the library's FastDropout and step; the forced numpy path is undone afterwards."""
    from test_recipes import load_script
    draws_serially = fast.torch_draws_serially
    bench = load_script("benchmarks/dropout.py")
    bench.main(["--models", "tiny", "--calls", "1", "--steps", "1", "--warmup-steps", "0", "--batch-seconds", "8",
                "--clips", "2", "--output-format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert fast.torch_draws_serially is draws_serially
    assert len(report["calls"]) == 8 and all(r["torch_ms"] > 0 and r["numpy_ms"] > 0 for r in report["calls"])
    (row,) = report["steps"]
    assert row["dropouts"] and row["torch_step_s"] > 0 and row["numpy_step_s"] > 0
    assert report["training_uses"] in ("numpy", "torch")
