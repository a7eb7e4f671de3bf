"""The positional convolution by FFT: F.conv1d's outputs and gradients, used only while training on CPU."""

import copy
import json
import types

import pytest
import torch
import torch.nn.functional as F

from speechtl.models import pos_conv
from speechtl.models.numerics import _forward_fp32_on_cpu_autocast
from speechtl.models.pos_conv import fft_size, grouped_conv1d_fft, use_fft_pos_conv


def _smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def test_fft_size_is_the_smallest_5_smooth_size_at_least_n():
    for n in range(1, 600):
        size = fft_size(n)
        assert size >= n and _smooth(size) and not any(_smooth(m) for m in range(n, size))


def _inputs(c, k, groups, t, seed=0, batch=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, c, t, generator=g), torch.randn(c, c // groups, k, generator=g) / (c // groups * k) ** 0.5,
            torch.randn(c, generator=g))


# the shipped model's layer (one transform; several segments past 193 frames), wav2vec2-base's (kernel 128), odd
# kernels, one group, no padding, inputs shorter than the kernel
@pytest.mark.parametrize("c,k,groups,t", [(256, 64, 16, 150), (256, 64, 16, 1000), (768, 128, 16, 600),
                                          (32, 7, 4, 20), (24, 5, 1, 9), (16, 64, 16, 40)])
@pytest.mark.parametrize("padding", ["half", 0])
def test_it_is_f_conv1d_outputs_and_gradients(c, k, groups, t, padding):
    pad = k // 2 if padding == "half" else 0
    t = max(t, k - 2 * pad)  # at least one output
    x, w, b = (v.double().requires_grad_() for v in _inputs(c, k, groups, t))
    ref = F.conv1d(x, w, b, padding=pad, groups=groups)
    out = grouped_conv1d_fft(x, w, b, groups, pad)
    assert out.shape == ref.shape and out.dtype == torch.float32
    scale = ref.abs().max()
    assert (out - ref).abs().max() < 2e-5 * scale  # fp32 transforms against a float64 reference
    probe = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads_ref = torch.autograd.grad((ref * probe).sum(), (x, w, b))
    grads = torch.autograd.grad((out * probe).sum(), (x, w, b))
    for got, want in zip(grads, grads_ref):
        assert (got - want).abs().max() < 2e-5 * want.abs().max()


def test_no_bias():
    x, w, _ = _inputs(32, 8, 4, 50)
    assert torch.allclose(grouped_conv1d_fft(x, w, None, 4, 4), F.conv1d(x, w, padding=4, groups=4), atol=1e-5)


@pytest.fixture
def layer(tiny_model_dir):
    from speechtl.models import load_model
    model, _ = load_model(str(tiny_model_dir))
    module = model.wav2vec2.encoder.pos_conv_embed
    return model, module


def _direct(module, x):
    return type(module).forward(module, x)


def test_a_model_s_layer_trains_through_the_fft_with_the_same_outputs_and_gradients(layer):
    model, module = layer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_fft_pos_conv(model) is model
    assert module.forward.__func__ is pos_conv._forward
    model.train()
    x = torch.randn(4, 300, model.config.hidden_size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    params = [p for p in module.parameters()]
    ref, out = _direct(module, x), module(x)
    assert not torch.equal(out, ref) and torch.allclose(out, ref, atol=1e-5)  # another computation, same result
    for got, want in zip(torch.autograd.grad(out.square().sum(), [x, *params]),
                         torch.autograd.grad(ref.square().sum(), [x, *params])):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_bf16_autocast_gives_bf16_closer_to_fp32_than_the_bf16_convolution(layer):
    model, module = layer
    use_fft_pos_conv(model).train()
    x = torch.randn(4, 300, model.config.hidden_size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ref = _direct(module, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, direct = module(x), _direct(module, x)
    assert out.dtype == direct.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() <= (direct.float() - ref).abs().max() + 1e-3


def test_eval_mode_and_no_grad_run_the_layer_as_before(layer):
    model, module = layer
    use_fft_pos_conv(model)
    x = torch.randn(2, 120, model.config.hidden_size)
    model.eval()
    assert torch.equal(module(x), _direct(module, x))
    model.train()
    with torch.no_grad():
        assert torch.equal(module(x), _direct(module, x))


def test_the_fp32_guard_stays_the_fallback_and_the_swap_is_idempotent_and_survives_deepcopy(layer):
    model, module = layer
    module.forward = types.MethodType(_forward_fp32_on_cpu_autocast, module)  # as numerics.protect_pos_conv does
    use_fft_pos_conv(model)
    use_fft_pos_conv(model)
    assert module.forward_before_fft is _forward_fp32_on_cpu_autocast
    copied = copy.deepcopy(model).wav2vec2.encoder.pos_conv_embed
    assert copied.forward.__self__ is copied and copied.forward.__func__ is pos_conv._forward
    model.eval()
    x = torch.randn(2, 120, model.config.hidden_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).dtype == torch.float32  # the guard's fp32 path, not the FFT's


def test_a_layer_with_a_batch_norm_first_is_left_alone(layer):
    model, module = layer
    module.batch_norm = torch.nn.BatchNorm1d(model.config.hidden_size)  # HuBERT's conv_pos_batch_norm
    use_fft_pos_conv(model)
    assert "forward" not in module.__dict__


def test_pos_conv_benchmark_smoke(capsys):
    """Both columns time the library's layer and step: the FFT column is the swapped layer."""
    from test_recipes import load_script
    bench = load_script("benchmarks/pos_conv.py")
    bench.main(["--models", "tiny", "--calls", "1", "--steps", "1", "--warmup-steps", "0", "--batch-seconds", "8",
                "--clips", "2", "--output-format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert len(report["calls"]) == 3 and all(r["own_ms"] > 0 and r["fft_ms"] > 0 for r in report["calls"])
    (row,) = report["steps"]
    assert row["own_step_s"] > 0 and row["fft_step_s"] > 0
