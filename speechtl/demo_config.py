"""What ``speechtl demo`` is told: :class:`AccentDemoConfig` and the demo's training recipe :data:`DEMO_TRAINING`.

Torch-free on purpose: the command line builds the demo's flags from this class without importing torch;
:mod:`speechtl.demo` runs it (and re-exports both names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speechtl.adapt.train_config import TrainConfig, train_config

__all__ = ["AccentDemoConfig", "DEMO_TRAINING"]


def _default_training() -> TrainConfig:
    """The demo's recipe (ARCHITECTURE.md, "Choosing the checkpoint"), as its difference from the defaults: a
    full fine-tune (feature encoder frozen) at lr 1e-3 for 800 steps on the target minutes; checkpoints every 200
    steps are chosen on the target dev set under a 5 % source forgetting limit (20-min source dev set), with
    WiSE-FT interpolation toward the start when the best target checkpoint forgets more. With the demo's default
    accent routing (``route_minutes``) both limits score the routed system; with ``--route-minutes 0
    --replay-ratio 8`` one model serves both accents (RESULTS.md's one-model row). The recipes built on the demo
    start from :data:`DEMO_TRAINING` too."""
    return train_config(lr=1e-3, max_steps=800, batch_seconds=60.0, eval_every=200)


DEMO_TRAINING = _default_training()


@dataclass(frozen=True)
class AccentDemoConfig:
    """Adapt the shipped synthetic en-us model to another synthetic accent and report WER before/after."""

    model: str = "speechtl/en-us-synth"  # the source model
    accent: str = "en-gb-scotland"  # target accent (an espeak-ng English accent or a foreign voice reading English)
    source_accent: str = "en-us"  # the accent the source model was trained on
    train_minutes: float = 10.0  # labelled target-accent minutes
    dev_minutes: float = 4.0  # target dev set (checkpoint choice)
    source_dev_minutes: float = 20.0  # source dev set (forgetting limit; small sets make a 5 % limit noise)
    test_minutes: float = 6.0  # target test set
    source_test_minutes: float = 6.0  # source-accent test set (forgetting)
    replay_ratio: float = 0.0  # source replay minutes per labelled target minute (0: no replay)
    route_minutes: float = 20.0  # the router's source audio, synthesised (the same meaning as adapt's: 0: no router, one adapted model serves both accents)
    num_speakers: int = 40  # synthetic voices per set (more voices: test WERs depend less on which were drawn)
    replay_speakers: int = 160  # voices in the replay and router source sets (0: num_speakers): the source corpus
    data: str = "runs/data"  # synthetic data cache (reused when present)
    out: str = "runs/demo"  # run folder
    resume: bool = False  # continue an interrupted run from its checkpoint (a finished run is redone)
    overwrite: bool = False  # replace a finished run in out (without it, or --resume, a finished run is refused)
    smoke: bool = False  # seconds: tiny random model and a few utterances (for tests)
    quiet: bool = False  # no progress bars (one line per phase on stderr)
    training: TrainConfig = field(default_factory=_default_training)
