"""Augmentation: speed perturbation changes length by the chosen factor, noise lands at the asked SNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtl.data.augment import make_augment


def test_nothing_enabled_gives_no_transform():
    assert make_augment() is None


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_the_length(factor):
    audio = np.sin(np.arange(16_000) / 10).astype(np.float32)
    out = make_augment([factor])(audio, (0, 0))
    assert out.dtype == np.float32 and abs(len(out) - len(audio) / factor) <= 2


def test_noise_at_the_requested_snr():
    torch.manual_seed(0)
    audio = (0.5 * np.sin(np.arange(32_000) / 7)).astype(np.float32)
    out = make_augment(noise_snr_db=20)(audio, (0, 0))
    noise = out - audio
    snr = 10 * np.log10(np.mean(audio**2) / np.mean(noise**2))
    assert 19.5 <= snr <= 30.5 and len(out) == len(audio)


def test_same_key_same_augmentation_whatever_the_global_rng():
    audio = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    augment = make_augment([0.9, 1.0, 1.1], noise_snr_db=10, seed=1)
    torch.manual_seed(3)
    a = augment(audio, (0, 5))
    torch.manual_seed(4)
    assert np.array_equal(a, augment(audio, (0, 5)))
    assert not np.array_equal(a, augment(audio, (1, 5)))  # another epoch, another draw
