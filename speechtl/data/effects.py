"""Acoustic effects for training-time augmentation: one function per effect, on float32 (1, S) waveforms at 16 kHz.

Every effect has the signature ``effect(wav, g, **params) -> wav``: ``g`` is the torch.Generator it draws all its
randomness from (:mod:`speechtl.data.augment` seeds one per utterance), ``params`` are the ranges it draws from
(``(low, high)``) or the choices it picks among, as the preset table there gives them. All but ``speed`` keep the
length. :data:`EFFECTS` lists them in the order a chain applies them: the voice (pitch, speed), the room (reverb),
the environment (noise), the channel (telephone, codec), the level (gain).

The signal processing is torchaudio's (resampling, biquads, FFT convolution, mu-law, SNR mixing); written here are
only the synthetic room impulse response (exponentially decaying noise behind a direct path: no room simulator is a
dependency) and coloured noise (white noise shaped in the frequency domain). ``pitch`` keeps the duration with a
phase vocoder after a resampling by a small-integer ratio: ``torchaudio.functional.pitch_shift`` resamples by an
arbitrary ratio and takes seconds (up to ~20 s for 5 s of audio) per utterance; this takes ~30 ms for 5 s on one
CPU thread.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Sequence

import torch
import torchaudio.functional as AF

from speechtl.audio import SAMPLE_RATE

__all__ = ["EFFECTS", "pitch", "speed", "reverb", "noise", "telephone", "codec", "gain", "coloured_noise",
           "room_impulse_response"]

TELEPHONE_RATE = 8000  # Hz: narrowband telephony
NOISE_COLOURS = {"white": 0.0, "pink": 0.5, "brown": 1.0}  # amplitude ∝ f^-x: power flat, 1/f, 1/f²
COLOUR_FLOOR_HZ = 20.0  # coloured noise stays flat below this (no power piled up at DC)


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=g))


def _choice(g: torch.Generator, options: Sequence):
    return options[int(torch.randint(len(options), (), generator=g))] if len(options) > 1 else options[0]


def _fit(wav: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Cut or zero-pad the last axis to ``num_samples``."""
    if wav.shape[-1] >= num_samples:
        return wav[..., :num_samples]
    return torch.nn.functional.pad(wav, (0, num_samples - wav.shape[-1]))


def _rms(wav: torch.Tensor) -> torch.Tensor:
    return wav.square().mean().sqrt()


def speed(wav: torch.Tensor, g: torch.Generator, factors: Sequence[float]) -> torch.Tensor:
    """Kaldi-style speed perturbation: one factor of ``factors``; tempo and pitch change, length ÷ factor."""
    factor = _choice(g, factors)
    return wav if factor == 1.0 else AF.speed(wav, SAMPLE_RATE, factor)[0]


def pitch(wav: torch.Tensor, g: torch.Generator, semitones: tuple[float, float]) -> torch.Tensor:
    """Pitch shifted by a number of semitones drawn from ``semitones``, duration and RMS level kept (resampling, then
    a plain phase vocoder, as in torchaudio's pitch_shift: its phase smearing gives a slightly phasy sound)."""
    ratio = Fraction(2 ** (_uniform(g, *semitones) / 12)).limit_denominator(32)  # a small ratio resamples fast
    if ratio == 1:
        return wav
    num_samples, n_fft, hop = wav.shape[-1], 512, 128
    faster = AF.resample(wav, ratio.numerator, ratio.denominator)  # at 16 kHz: pitch and tempo × ratio
    window = torch.hann_window(n_fft)
    spec = torch.stft(faster, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2])[..., None]
    stretched = AF.phase_vocoder(spec, float(1 / ratio), advance)  # tempo back to the original
    shifted = _fit(torch.istft(stretched, n_fft, hop, window=window), num_samples)
    return shifted * (_rms(wav) / _rms(shifted).clamp_min(1e-12))  # the vocoder's phase smearing costs level


def room_impulse_response(g: torch.Generator, rt60_s: float, drr_db: float) -> torch.Tensor:
    """A synthetic room: a unit direct path, then Gaussian noise decaying by 60 dB over ``rt60_s`` seconds, scaled
    so that direct / reverberant energy is ``drr_db`` dB. Shape (L,), L = RT60 in samples."""
    num_taps = max(2, int(rt60_s * SAMPLE_RATE))
    t_s = torch.arange(num_taps) / SAMPLE_RATE
    tail = torch.randn(num_taps, generator=g) * torch.exp(-math.log(1000) * t_s / rt60_s)  # 10^-3 amplitude at RT60
    tail[0] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10)) / tail.square().sum().sqrt().clamp_min(1e-12)
    tail[0] = 1.0
    return tail


def reverb(wav: torch.Tensor, g: torch.Generator, rt60_s: tuple[float, float], drr_db: tuple[float, float]
           ) -> torch.Tensor:
    """The utterance in a simulated room (RT60 and direct-to-reverberant ratio drawn); length and RMS level kept."""
    rir = room_impulse_response(g, _uniform(g, *rt60_s), _uniform(g, *drr_db))
    wet = AF.fftconvolve(wav, rir[None])[..., : wav.shape[-1]]
    return wet * (_rms(wav) / _rms(wet).clamp_min(1e-12))


def coloured_noise(shape: torch.Size, colour: str, g: torch.Generator) -> torch.Tensor:
    """White Gaussian noise, or pink / brown: white noise filtered in the frequency domain (any scale)."""
    white = torch.randn(shape, generator=g)
    if NOISE_COLOURS[colour] == 0.0:
        return white
    freqs_hz = torch.fft.rfftfreq(shape[-1], 1 / SAMPLE_RATE).clamp_min(COLOUR_FLOOR_HZ)
    return torch.fft.irfft(torch.fft.rfft(white) * freqs_hz ** -NOISE_COLOURS[colour], n=shape[-1])


def noise(wav: torch.Tensor, g: torch.Generator, snr_db: tuple[float, float], colours: Sequence[str] = ("white",)
          ) -> torch.Tensor:
    """Additive noise of one of ``colours`` (white, pink, brown) at an SNR drawn from ``snr_db``."""
    snr = torch.tensor([_uniform(g, *snr_db)])
    return AF.add_noise(wav, coloured_noise(wav.shape, _choice(g, colours), g), snr)


def _mu_law(wav: torch.Tensor, bits: int) -> torch.Tensor:
    channels = 2**bits
    return AF.mu_law_decoding(AF.mu_law_encoding(wav.clamp(-1, 1), channels), channels).to(wav.dtype)


def telephone(wav: torch.Tensor, g: torch.Generator, low_hz: tuple[float, float], high_hz: tuple[float, float]
              ) -> torch.Tensor:
    """A narrowband phone line: band-pass (edges drawn), 8 kHz, 8-bit mu-law (G.711), back to 16 kHz."""
    band = AF.lowpass_biquad(AF.highpass_biquad(wav, SAMPLE_RATE, _uniform(g, *low_hz)), SAMPLE_RATE,
                             _uniform(g, *high_hz))
    line = _mu_law(AF.resample(band, SAMPLE_RATE, TELEPHONE_RATE, lowpass_filter_width=16), 8)  # 16: a sharp 4 kHz edge
    return _fit(AF.resample(line, TELEPHONE_RATE, SAMPLE_RATE, lowpass_filter_width=16), wav.shape[-1])


def codec(wav: torch.Tensor, g: torch.Generator, mu_law_bits: tuple[int, int], uniform_bits: tuple[int, int]
          ) -> torch.Tensor:
    """A lossy-codec pass without a codec: mu-law or uniform requantisation, bit depths drawn (inclusive)."""
    mu_law = bool(torch.rand(1, generator=g) < 0.5)
    low, high = mu_law_bits if mu_law else uniform_bits
    bits = int(torch.randint(low, high + 1, (), generator=g))
    if mu_law:
        return _mu_law(wav, bits)
    step = 2.0 ** (1 - bits)  # full scale [-1, 1] in 2^bits levels
    return torch.round(wav / step) * step


def gain(wav: torch.Tensor, g: torch.Generator, gain_db: tuple[float, float]) -> torch.Tensor:
    """The level changed by a gain drawn from ``gain_db`` (clipping, if any, is the chain's last step)."""
    return AF.gain(wav, _uniform(g, *gain_db))


# name -> effect, in the order a chain applies them
EFFECTS: dict[str, Callable[..., torch.Tensor]] = {
    "pitch": pitch, "speed": speed, "reverb": reverb, "noise": noise, "telephone": telephone, "codec": codec,
    "gain": gain,
}
