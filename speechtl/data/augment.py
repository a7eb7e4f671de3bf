"""Training-time augmentation: acoustic presets (``--augment``), speed perturbation, additive noise, per utterance.

A preset is a named list of :class:`Step` s in :data:`PRESETS`, each an effect of :mod:`speechtl.data.effects`
with the chance that an utterance gets it and the ranges its settings are drawn from:

    pitch      pitch shift of −2 … +2 semitones, duration kept
    speed      Kaldi speed perturbation 0.9 / 1.0 / 1.1 (tempo and pitch; the length changes)
    reverb     a simulated room: RT60 0.2–0.8 s, direct-to-reverberant ratio 0–10 dB
    noise      white, pink or brown noise at 5–20 dB SNR
    telephone  a ~300 Hz–3.4 kHz band, 8 kHz, 8-bit mu-law (G.711), back to 16 kHz
    codec      lossy requantisation: mu-law 6–8 bits or uniform 8–12 bits
    gain       level −10 … +6 dB
    real       a mix: each of the above with its own chance (see the table), milder noise

``--augment reverb,noise`` chains presets; the chain always runs in the order of
:data:`speechtl.data.effects.EFFECTS` (voice, room, noise, channel, level), and an effect named by more than one
preset takes the setting of the last one. ``--speed-perturb`` and ``--noise-snr-db`` (the older settings) replace
the speed / noise setting of the presets. The output is float32, clipped to [-1, 1] where it exceeds it.

Each draw comes from a generator seeded by (seed, epoch, utterance index), not from the global RNG:
data loaders fetch ahead, so global draws would not line up with checkpoints, and a resumed run must
see the same perturbations. SpecAugment (time/feature masking) lives in the model config instead
(``mask_time_prob`` / ``mask_feature_prob``, applied by transformers during training).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from speechtl.data.effects import EFFECTS
from speechtl.data.presets import PRESETS, Step, parse_presets

__all__ = ["Step", "PRESETS", "parse_presets", "augment_steps", "make_augment"]


def augment_steps(presets: str = "", speed_factors: Sequence[float] = (), noise_snr_db: float = 0.0
                  ) -> list[Step]:
    """The chain the settings ask for, in :data:`EFFECTS` order (see the module docstring for the rules)."""
    steps = {step.effect: step for name in parse_presets(presets) for step in PRESETS[name]}
    if speed_factors:
        steps["speed"] = Step("speed", 1.0, {"factors": tuple(speed_factors)})
    if noise_snr_db > 0:
        steps["noise"] = Step("noise", 1.0, {"snr_db": (noise_snr_db, noise_snr_db + 10)})
    return [steps[effect] for effect in EFFECTS if effect in steps]


def make_augment(speed_factors: Sequence[float] = (), noise_snr_db: float = 0.0, seed: int = 0, presets: str = ""
                 ) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None:
    """An ``(audio, (epoch, index)) -> audio`` transform, or None when nothing is enabled.

    speed_factors: e.g. (0.9, 1.0, 1.1), one picked per utterance (tempo and pitch change, like Kaldi's).
    noise_snr_db: > 0 adds white noise at an SNR drawn uniformly from [snr, snr + 10] dB.
    presets: names of :data:`PRESETS`, comma-separated (``"reverb,noise"``, ``"real"``).
    """
    steps = augment_steps(presets, speed_factors, noise_snr_db)
    if not steps:
        return None

    @torch.no_grad()
    def augment(audio: np.ndarray, key: tuple[int, int]) -> np.ndarray:
        g = torch.Generator().manual_seed(hash((seed, *key)) & 0x7FFF_FFFF_FFFF)
        wav = torch.from_numpy(np.asarray(audio, dtype=np.float32))[None]  # (1, S)
        for step in steps:
            if step.p >= 1 or float(torch.rand(1, generator=g)) < step.p:
                wav = EFFECTS[step.effect](wav, g, **step.params)
        return wav[0].clamp(-1.0, 1.0).numpy().astype(np.float32, copy=False)

    return augment
