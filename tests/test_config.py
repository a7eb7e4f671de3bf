"""speechtl.config: a typed dataclass on the command line (``--field-name value``, nested fields flattened)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pytest

from speechtl.config import config_to_dict, parse_config


@dataclass
class Optim:
    learning_rate: float = 1e-4  # peak learning rate
    warmup_steps: int = 10


@dataclass
class Recipe:
    name: str = "demo"  # run name
    epochs: int = 3
    dropout: float = 0.1
    freeze_encoder: bool = True
    use_lm: bool = False
    langs: list[str] = field(default_factory=lambda: ["en", "de"])
    max_minutes: float | None = None  # PEP 604 optional
    seed: Optional[int] = None  # typing.Optional
    share_vocab: bool | None = None  # a switch whose unset default the function decides
    tolerance: float = 0.05  # allowed rise, 5 % relative
    optim: Optim = field(default_factory=Optim)


def test_defaults():
    assert parse_config(Recipe, []) == Recipe()


def test_overrides_are_typed():
    cfg = parse_config(Recipe, ["--name", "scots", "--epochs", "5", "--dropout", "0.25"])
    assert (cfg.name, cfg.epochs, cfg.dropout) == ("scots", 5, 0.25)
    assert isinstance(cfg.epochs, int) and isinstance(cfg.dropout, float)


def test_bool_flags():
    assert parse_config(Recipe, ["--no-freeze-encoder"]).freeze_encoder is False
    assert parse_config(Recipe, ["--freeze-encoder"]).freeze_encoder is True
    assert parse_config(Recipe, ["--use-lm"]).use_lm is True
    assert parse_config(Recipe, []).use_lm is False
    assert [parse_config(Recipe, a).share_vocab for a in ([], ["--share-vocab"], ["--no-share-vocab"])] == \
        [None, True, False]


def test_lists():
    assert parse_config(Recipe, ["--langs", "fr", "es", "it"]).langs == ["fr", "es", "it"]
    assert parse_config(Recipe, ["--langs"]).langs == []
    assert parse_config(Recipe, []).langs == ["en", "de"]


def test_optional_fields_take_the_inner_type():
    cfg = parse_config(Recipe, ["--max-minutes", "2.5", "--seed", "7"])
    assert cfg.max_minutes == 2.5 and cfg.seed == 7
    assert isinstance(cfg.seed, int)
    assert parse_config(Recipe, []).max_minutes is None


def test_nested_fields_are_flattened():
    cfg = parse_config(Recipe, ["--learning-rate", "3e-4", "--warmup-steps", "0", "--epochs", "1"])
    assert cfg.optim == Optim(learning_rate=3e-4, warmup_steps=0)
    assert cfg.epochs == 1


def test_defaults_object_replaces_the_class_defaults():
    base = Recipe(name="pre", optim=Optim(warmup_steps=99))
    cfg = parse_config(Recipe, ["--epochs", "2"], defaults=base)
    assert cfg == Recipe(name="pre", epochs=2, optim=Optim(warmup_steps=99))


@pytest.mark.parametrize("argv", [["--epochs", "three"], ["--no-such-flag", "3"], ["--seed", "x"]])
def test_bad_values_and_unknown_flags_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse_config(Recipe, argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_help_uses_the_field_comments(capsys):
    with pytest.raises(SystemExit) as info:
        parse_config(Recipe, ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--learning-rate" in out and "peak learning rate" in out
    assert "--no-freeze-encoder" in out and "--max-minutes" in out and "run name" in out
    assert "5 % relative" in out  # a % in a comment is text, not an argparse format


def test_config_to_dict_nests():
    d = config_to_dict(Recipe())
    assert d["optim"] == {"learning_rate": 1e-4, "warmup_steps": 10}
    assert d["langs"] == ["en", "de"]


def test_train_config_groups_keep_the_flat_flags_and_derive_by_diff():
    import dataclasses

    from speechtl.adapt.train import use_device
    from speechtl.adapt.train_config import TrainConfig, train_config, train_config_dict
    from speechtl.config import ConfigError, override

    cfg = train_config(lr=1e-3, strategy="lora", max_forgetting=0.1, seed=3)
    assert (cfg.optimiser.lr, cfg.method.strategy, cfg.selection.max_forgetting, cfg.seed) == (1e-3, "lora", 0.1, 3)
    assert TrainConfig().optimiser.lr == 1e-4 and override(cfg, lr=2e-3).optimiser.lr == 2e-3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optimiser.lr = 1.0
    with pytest.raises(ConfigError, match="no setting nope"):
        train_config(nope=1)
    flags = list(train_config_dict(TrainConfig()))
    assert {"lr", "max_steps", "strategy", "lora_r", "guard", "max_forgetting", "interpolate", "speed_perturb",
            "l2sp", "distill", "precision", "seed", "threads", "cpu", "device"} <= set(flags)
    assert len(flags) == len(set(flags))  # one flag per leaf, no clash between groups
    assert use_device(train_config(cpu=True).runtime) and use_device(train_config(device="cpu").runtime)
    with pytest.raises(ConfigError, match="--device must be"):
        use_device(train_config(device="tpu").runtime)
