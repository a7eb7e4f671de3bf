"""The bf16 guard for grouped positional convolutions (speechtl.models.numerics)."""

from __future__ import annotations

import copy

import torch

from speechtl.models import random_model
from speechtl.models.numerics import protect_pos_conv
from speechtl.text import build_vocab


def _pos_conv_error(model) -> float:
    pos = model.wav2vec2.encoder.pos_conv_embed
    x = torch.randn(2, 200, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = pos(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = pos(x)
    return ((y.float() - ref).norm() / ref.norm()).item()


def test_positional_conv_of_a_small_model_is_right_under_cpu_bf16_autocast():
    # hidden 32 in 4 groups: the shape whose bf16 kernel is wrong on AMX CPUs; guarded, it agrees with fp32
    model, _ = random_model(build_vocab(["abc"]), size="tiny", seed=0)
    assert _pos_conv_error(model) < 0.05


def test_the_guard_follows_a_deep_copy_and_leaves_the_global_rng_alone():
    model, _ = random_model(build_vocab(["abc"]), size="tiny", seed=0)
    state = torch.get_rng_state()
    protect_pos_conv(model)  # idempotent on an already protected model
    assert torch.equal(state, torch.get_rng_state())
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.wav2vec2.encoder.pos_conv_embed.conv.bias.add_(1.0)  # the copy's own weights must be used
    x = torch.randn(1, 50, model.config.hidden_size)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a = model.wav2vec2.encoder.pos_conv_embed(x)
        b = twin.wav2vec2.encoder.pos_conv_embed(x)
    assert not torch.allclose(a.float(), b.float())
