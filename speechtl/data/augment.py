"""Training-time augmentation: speed perturbation and additive noise (torchaudio), applied per utterance.

Each draw comes from a generator seeded by (seed, epoch, utterance index), not from the global RNG:
data loaders fetch ahead, so global draws would not line up with checkpoints, and a resumed run must
see the same perturbations. SpecAugment (time/feature masking) lives in the model config instead
(``mask_time_prob`` / ``mask_feature_prob``, applied by transformers during training).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torchaudio.functional as AF

from speechtl.audio import SAMPLE_RATE

__all__ = ["make_augment"]


def make_augment(speed_factors: Sequence[float] = (), noise_snr_db: float = 0.0, seed: int = 0
                 ) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None:
    """An ``(audio, (epoch, index)) -> audio`` transform, or None when nothing is enabled.

    speed_factors: e.g. (0.9, 1.0, 1.1), one picked per utterance (tempo and pitch change, like Kaldi's).
    noise_snr_db: > 0 adds white noise at an SNR drawn uniformly from [snr, snr + 10] dB.
    """
    factors = list(speed_factors)
    if not factors and noise_snr_db <= 0:
        return None

    @torch.no_grad()
    def augment(audio: np.ndarray, key: tuple[int, int]) -> np.ndarray:
        g = torch.Generator().manual_seed(hash((seed, *key)) & 0x7FFF_FFFF_FFFF)
        wav = torch.from_numpy(audio)[None]  # (1, S)
        if factors:
            factor = factors[int(torch.randint(len(factors), (), generator=g))]
            if factor != 1.0:
                wav, _ = AF.speed(wav, SAMPLE_RATE, factor)
        if noise_snr_db > 0:
            snr = noise_snr_db + 10 * torch.rand(1, generator=g)
            wav = AF.add_noise(wav, torch.randn(wav.shape, generator=g), snr)
        return wav[0].numpy().astype(np.float32, copy=False)

    return augment
