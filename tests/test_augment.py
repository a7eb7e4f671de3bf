"""Augmentation: speed perturbation changes length by the chosen factor, noise lands at the asked SNR; every
preset is seeded per (epoch, utterance), finite and level-sane, and does what its name says (measured)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtl.adapt.train_config import train_config
from speechtl.data.augment import PRESETS, augment_steps, make_augment, parse_presets
from speechtl.data.effects import coloured_noise, room_impulse_response
from speechtl.errors import SpeechtlError


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


# --- presets (--augment) ---------------------------------------------------------------------------------------

SR = 16_000


def _white(seconds: float = 1.0, rms: float = 0.1, seed: int = 0) -> np.ndarray:
    return (rms * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def _voice(seconds: float = 1.0) -> np.ndarray:
    """A speech-like test signal: a 140 Hz harmonic series under a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * SR)) / SR
    harmonics = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    return (0.1 * harmonics * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_is_seeded_finite_level_sane_and_keeps_the_length_rules(preset):
    audio = _white()
    augment = make_augment(presets=preset, seed=7)
    outs = [augment(audio, (0, i)) for i in range(6)]
    assert np.array_equal(outs[0], augment(audio, (0, 0)))  # same key, same draw
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])  # other keys, other draws
    changes_length = any(s.effect == "speed" for s in PRESETS[preset])
    allowed = {len(audio)} | ({round(len(audio) / f) for f in (0.9, 1.1)} if changes_length else set())
    for out in outs:
        assert out.dtype == np.float32 and np.isfinite(out).all() and np.abs(out).max() <= 1.0
        assert min(abs(len(out) - n) for n in allowed) <= 2, (len(out), allowed)
        assert 0.2 * _rms(audio) < _rms(out) < 5 * _rms(audio)  # not silent, not blown up
    assert any(not np.array_equal(o[: len(audio)], audio[: len(o)]) for o in outs)  # it does something


def test_output_is_clipped_only_where_it_exceeds_full_scale():
    loud = (0.99 * _voice() / np.abs(_voice()).max()).astype(np.float32)
    augment = make_augment(presets="gain", seed=1)
    peaks = [np.abs(augment(loud, (0, i))).max() for i in range(8)]
    assert max(peaks) == 1.0 and min(peaks) < 0.99  # louder ones clipped at full scale, quieter ones untouched
    quiet = (0.01 * _voice()).astype(np.float32)
    assert all(np.abs(augment(quiet, (0, i))).max() < 0.1 for i in range(8))  # no normalising


def test_telephone_leaves_almost_no_energy_above_4_khz():
    audio = _white(2.0)
    augment = make_augment(presets="telephone", seed=0)
    for i in range(3):
        power = np.abs(np.fft.rfft(augment(audio, (0, i)))) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / SR)
        assert power[freqs > 4000].sum() < 1e-3 * power.sum()
        assert power[(freqs > 500) & (freqs < 3000)].sum() > 0.5 * power.sum()  # the voice band passes


def test_reverb_rings_on_after_the_sound_stops():
    burst = np.zeros(SR, dtype=np.float32)
    burst[: SR // 4] = _white(0.25)
    augment = make_augment(presets="reverb", seed=0)
    for i in range(4):
        out = augment(burst, (0, i))
        tail = out[SR // 4 + SR // 20: SR // 4 + SR // 5]  # 50–200 ms after the burst ends: silence in the input
        assert _rms(tail) > 0.02 * _rms(out[: SR // 4]), i  # RT60 ≥ 0.2 s: a -60 dB decay takes longer than that
        assert np.corrcoef(out[: SR // 4], burst[: SR // 4])[0, 1] > 0.3  # the direct path is still there


def test_room_impulse_response_has_its_direct_to_reverberant_ratio_and_decays():
    rir = room_impulse_response(torch.Generator().manual_seed(0), rt60_s=0.5, drr_db=6.0)
    assert len(rir) == SR // 2 and rir[0] == 1.0
    assert abs(10 * np.log10(1.0 / float(rir[1:].square().sum())) - 6.0) < 1e-3
    tenth = len(rir) // 10
    assert rir[1:tenth].square().sum() > 1e3 * rir[-tenth:].square().sum()


@pytest.mark.parametrize("make", [_voice, _white])
def test_codec_changes_the_signal_but_keeps_it(make):
    audio = make()
    augment = make_augment(presets="codec", seed=0)
    for i in range(6):
        out = augment(audio, (0, i))
        assert not np.array_equal(out, audio) and len(out) == len(audio)
        assert np.corrcoef(out, audio)[0, 1] > 0.9


def test_pitch_moves_a_tone_within_two_semitones_and_keeps_the_duration():
    t = np.arange(2 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    augment = make_augment(presets="pitch", seed=0)
    ratios = []
    for i in range(6):
        out = augment(tone, (0, i))
        assert len(out) == len(tone)
        spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
        ratios.append(np.fft.rfftfreq(len(out), 1 / SR)[spectrum.argmax()] / 220)
    assert all(2 ** (-2 / 12) - 0.01 < r < 2 ** (2 / 12) + 0.01 for r in ratios), ratios
    assert any(abs(r - 1) > 0.02 for r in ratios), ratios


def test_pink_and_brown_noise_tilt_toward_low_frequencies():
    g = torch.Generator().manual_seed(0)
    freqs = np.fft.rfftfreq(4 * SR, 1 / SR)
    low, high = (freqs > 100) & (freqs < 500), (freqs > 4000) & (freqs < 8000)
    tilt = {}
    for colour in ("white", "pink", "brown"):
        power = np.abs(np.fft.rfft(coloured_noise(torch.Size([1, 4 * SR]), colour, g)[0].numpy())) ** 2
        tilt[colour] = power[low].mean() / power[high].mean()  # per-Hz power, low band over high band
    assert 0.8 < tilt["white"] < 1.25 and tilt["pink"] > 5 and tilt["brown"] > 5 * tilt["pink"], tilt


def test_presets_chain_in_the_effects_order_and_the_older_flags_replace_theirs():
    steps = augment_steps("noise,reverb,speed")
    assert [s.effect for s in steps] == ["speed", "reverb", "noise"]
    steps = {s.effect: s for s in augment_steps("real", speed_factors=[0.8], noise_snr_db=5)}
    assert steps["speed"].p == 1 and steps["speed"].params["factors"] == (0.8,)
    assert steps["noise"].p == 1 and steps["noise"].params["snr_db"] == (5, 15)
    assert steps["reverb"].p < 1  # real's own chances stay
    assert augment_steps("") == [] and make_augment(presets="") is None


def test_preset_names_parse_and_unknown_ones_are_refused_naming_the_presets():
    assert parse_presets(" reverb, noise ,") == ("reverb", "noise")
    with pytest.raises(SpeechtlError, match="unknown preset 'hall'.*speed, pitch, reverb.*real") as e:
        parse_presets("reverb,hall")
    assert "\n" not in str(e.value)
    with pytest.raises(SpeechtlError, match="hall"):
        train_config(augment="hall")  # refused where the config is made, before any work


EDGE_CASES = {  # inputs the effects divide by or resample: no NaN, no error, no empty output
    "silence": np.zeros(SR, np.float32), "shortest": _white(400 / SR), "dc": np.full(SR, 0.5, np.float32),
    "full-scale square": np.sign(np.sin(np.arange(SR) / 5)).astype(np.float32),
    "impulse": np.eye(1, SR, SR // 2, dtype=np.float32)[0], "denormal": np.full(SR, 1e-40, np.float32),
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_stays_finite_on_edge_case_audio(preset):
    augment = make_augment(presets=preset, seed=0)
    for name, audio in EDGE_CASES.items():
        for i in range(6):
            out = augment(audio, (0, i))
            assert len(out) > 0.85 * len(audio) and np.isfinite(out).all() and np.abs(out).max() <= 1.0, name
