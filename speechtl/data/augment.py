"""Training-time augmentation: speed perturbation and additive noise (torchaudio), applied per utterance.

Randomness comes from torch's global RNG in the main process, which training checkpoints save, so
a resumed run draws the same perturbations. SpecAugment (time/feature masking) lives in the model
config instead (``mask_time_prob`` / ``mask_feature_prob``, applied by transformers in training).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torchaudio

from speechtl.audio import SAMPLE_RATE

__all__ = ["make_augment"]


def make_augment(speed_factors: Sequence[float] = (), noise_snr_db: float = 0.0
                 ) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """An ``(audio, index) -> audio`` transform, or None when nothing is enabled.

    speed_factors: e.g. (0.9, 1.0, 1.1), one picked per utterance (tempo and pitch change, like Kaldi's).
    noise_snr_db: > 0 adds white noise at an SNR drawn uniformly from [snr, snr + 10] dB.
    """
    speed = torchaudio.transforms.SpeedPerturbation(SAMPLE_RATE, list(speed_factors)) if speed_factors else None
    if speed is None and noise_snr_db <= 0:
        return None

    @torch.no_grad()
    def augment(audio: np.ndarray, index: int) -> np.ndarray:
        wav = torch.from_numpy(audio)[None]  # (1, S)
        if speed is not None:
            wav, _ = speed(wav)
        if noise_snr_db > 0:
            snr = noise_snr_db + 10 * torch.rand(1)
            wav = torchaudio.functional.add_noise(wav, torch.randn_like(wav), snr)
        return wav[0].numpy().astype(np.float32, copy=False)

    return augment
