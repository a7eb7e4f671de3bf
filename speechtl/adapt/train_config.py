"""What a training run is told: :class:`TrainConfig`, six small frozen groups of settings.

Every leaf field is one command-line flag (``speechtl.config`` flattens the groups: ``--lr``, ``--strategy``,
``--max-forgetting`` ...), so the groups only organise the code. A recipe states its differences from these
defaults with :func:`train_config` (or :func:`speechtl.config.override` on a config it already has):

    train_config(lr=1e-3, max_steps=800, batch_seconds=60.0, eval_every=200)

``lr`` has one default, here (1e-4: a full fine-tune of a hub-size model); the demo and the recipes built on
it say 1e-3 (the small shipped model), ``scripts/build_source_model.py`` 2e-3 (from scratch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speechtl.config import ConfigError, flat_dict, override
from speechtl.data.presets import parse_presets

__all__ = ["TrainConfig", "OptimiserConfig", "StrategyConfig", "GuardConfig", "AugmentConfig",
           "RegularisationConfig", "RuntimeConfig", "SELECT_BY", "train_config", "train_config_dict"]


@dataclass(frozen=True)
class OptimiserConfig:
    lr: float = 1e-4  # peak learning rate (AdamW)
    max_steps: int = 300  # optimizer steps
    warmup_ratio: float = 0.1  # share of max_steps with linearly rising learning rate
    batch_seconds: float = 120.0  # padded audio seconds per batch (per process)
    grad_accum: int = 1  # batches per optimizer step
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    layer_lr_decay: float = 1.0  # layer-wise lr decay: layer i of N trains at lr·decay^(N−i) (1: off; e.g. 0.8)


@dataclass(frozen=True)
class StrategyConfig:
    strategy: str = "full"  # what trains: full | top_k | head | lora | adapter (see speechtl.adapt.strategies)
    freeze_feature_encoder: bool = True  # keep the convolutional feature encoder fixed (strategy full)
    top_k: int = 2  # transformer layers trained by strategy top_k
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling numerator (update scale = alpha / r)
    adapter_dim: int = 32  # bottleneck width of strategy adapter


SELECT_BY = ("auto", "wer", "cer")  # GuardConfig.select_by (speechtl.adapt.select.selection_criterion)


@dataclass(frozen=True)
class GuardConfig:
    """Checkpoint choice (:mod:`speechtl.adapt.select`)."""

    eval_every: int = 50  # steps between dev evaluations and checkpoints
    patience: int = 0  # stop after this many evaluations without dev improvement (0: never)
    guard: bool = True  # negative-transfer guard: the starting model competes with every checkpoint on dev
    max_forgetting: float = 0.05  # with a source dev set: allowed relative rise of its WER (inf: no limit)
    interpolate: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])  # WiSE-FT α for θ₀+α(θ_T−θ₀) (source dev only)
    select_by: str = "auto"  # rank checkpoints by dev wer | cer (then the other); auto: cer if the start's WER >= 90 %

    def __post_init__(self):
        if self.select_by not in SELECT_BY:
            raise ConfigError(f"--select-by {self.select_by!r}: choose one of {', '.join(SELECT_BY)}")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (:mod:`speechtl.data.augment`); unknown presets are refused here."""

    augment: str = ""  # acoustic presets, comma-separated: speed, pitch, reverb, noise, telephone, codec, gain, real (a mix)
    speed_perturb: list[float] = field(default_factory=list)  # speed factors, e.g. 0.9 1.0 1.1 (none: off; replaces a preset's)
    noise_snr_db: float = 0.0  # additive white noise at [snr, snr+10] dB (0: off; replaces a preset's noise)
    mask_time_prob: float = -1.0  # SpecAugment time masking in the model config (<0: keep the model's)
    mask_feature_prob: float = -1.0  # SpecAugment feature masking (<0: keep the model's)

    def __post_init__(self):
        parse_presets(self.augment)


@dataclass(frozen=True)
class RegularisationConfig:
    l2sp: float = 0.0  # L2-SP: penalty l2sp·Σ(θ−θ₀)² pulling weights toward the starting model (fights forgetting)
    distill: float = 0.0  # weight of a KL term keeping outputs on source replay audio at the starting model's (0: off)
    dropout: float = -1.0  # all of the model's dropouts: attention, hidden, activation, projection, final (<0: kept)

    def __post_init__(self):
        if self.dropout >= 1:
            raise ConfigError(f"--dropout {self.dropout:g}: give a probability below 1 (or <0 to keep the model's)")


@dataclass(frozen=True)
class RuntimeConfig:
    precision: str = "auto"  # auto (bf16 where supported) | bf16 | fp32
    seed: int = 0
    threads: int = 0  # CPU threads for torch (0: torch's default)
    cpu: bool = False  # train on the CPU even when CUDA is present (the same as --device cpu)
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N (one process)
    feature_cache: str = "auto"  # auto: the frozen feature encoder runs once per utterance, reused every epoch | off
    feature_cache_mb: float = 2048.0  # memory for cached features; beyond it they go to <out>/feature_cache/*.npy


@dataclass(frozen=True)
class TrainConfig:
    optimiser: OptimiserConfig = field(default_factory=OptimiserConfig)
    method: StrategyConfig = field(default_factory=StrategyConfig)
    selection: GuardConfig = field(default_factory=GuardConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    regularise: RegularisationConfig = field(default_factory=RegularisationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def seed(self) -> int:
        """The run's seed (``runtime.seed``); recipes draw their synthetic sets with it too."""
        return self.runtime.seed


def train_config(**changes) -> TrainConfig:
    """The defaults with ``changes`` by flag name (``lr=1e-3, strategy="lora"``): a recipe's diff, literally."""
    return override(TrainConfig(), **changes)


def train_config_dict(cfg: TrainConfig) -> dict:
    """The settings by flag name, one flat dict (``run_config.json``'s ``training``, as before the groups)."""
    return flat_dict(cfg)
