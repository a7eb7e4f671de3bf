"""The ``--augment`` presets: names, effects, chances and ranges (torch-free, so the command line can list and check
them without importing torch; :mod:`speechtl.data.augment` applies them)."""

from __future__ import annotations

from typing import NamedTuple

from speechtl.config import ConfigError

__all__ = ["Step", "PRESETS", "parse_presets"]


class Step(NamedTuple):
    effect: str  # a name in speechtl.data.effects.EFFECTS
    p: float  # the chance that an utterance gets it
    params: dict  # the effect's keyword arguments: (low, high) ranges, or choices


SPEED = Step("speed", 1.0, {"factors": (0.9, 1.0, 1.1)})
PITCH = Step("pitch", 1.0, {"semitones": (-2.0, 2.0)})
REVERB = Step("reverb", 1.0, {"rt60_s": (0.2, 0.8), "drr_db": (0.0, 10.0)})
NOISE = Step("noise", 1.0, {"snr_db": (5.0, 20.0), "colours": ("white", "pink", "brown")})
TELEPHONE = Step("telephone", 1.0, {"low_hz": (250.0, 350.0), "high_hz": (3200.0, 3600.0)})
CODEC = Step("codec", 1.0, {"mu_law_bits": (6, 8), "uniform_bits": (8, 12)})
GAIN = Step("gain", 1.0, {"gain_db": (-10.0, 6.0)})

PRESETS: dict[str, tuple[Step, ...]] = {
    "speed": (SPEED,),
    "pitch": (PITCH,),
    "reverb": (REVERB,),
    "noise": (NOISE,),
    "telephone": (TELEPHONE,),
    "codec": (CODEC,),
    "gain": (GAIN,),
    "real": (  # about one utterance in eight gets none of the first six
        SPEED._replace(p=0.5, params={"factors": (0.9, 1.1)}), PITCH._replace(p=0.2), REVERB._replace(p=0.3),
        NOISE._replace(p=0.4, params={**NOISE.params, "snr_db": (10.0, 30.0)}), TELEPHONE._replace(p=0.1),
        CODEC._replace(p=0.15), GAIN._replace(p=0.5),
    ),
}


def parse_presets(text: str) -> tuple[str, ...]:
    """``"reverb,noise"`` -> ("reverb", "noise"); "" -> (). Unknown names are refused, naming the presets."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        raise ConfigError(f"--augment: unknown preset {', '.join(map(repr, unknown))}; "
                          f"the presets are {', '.join(PRESETS)} (comma-separated)")
    return names
