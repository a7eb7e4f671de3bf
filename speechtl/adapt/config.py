"""What an adaptation run is told: :class:`AdaptConfig` (data, model, output; its ``training`` a
:class:`~speechtl.adapt.train_config.TrainConfig`) and :class:`SelfTrainingConfig` (``--unlabelled`` rounds).

Torch-free on purpose, like ``train_config.py``: the command line builds its parser from these classes (every leaf
field a flag, its trailing comment the help text) without importing torch. :mod:`speechtl.adapt.run` and
:mod:`speechtl.adapt.self_training` re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speechtl.adapt.train_config import TrainConfig

__all__ = ["AdaptConfig", "SelfTrainingConfig"]


@dataclass(frozen=True)
class AdaptConfig:
    model: str = "speechtl/en-us-synth"  # folder, hub id (e.g. facebook/wav2vec2-base-960h) or shipped model
    train: str = ""  # labelled target-domain training manifest (.jsonl or .csv)
    dev: str = ""  # target dev manifest: picks the best checkpoint, early stopping
    test: list[str] = field(default_factory=list)  # target evaluation manifest(s)
    source_test: str = ""  # source-domain evaluation manifest, to measure forgetting
    source_dev: str = ""  # source-domain dev manifest: checkpoints forgetting more than --max-forgetting are refused
    replay: str = ""  # labelled source-domain manifest mixed into training (fights forgetting)
    replay_ratio: float = 1.0  # replay minutes per labelled target minute (speaker-stratified sample)
    route: str = ""  # source-accent audio (manifest, transcripts not needed): serve source-like utterances with the unchanged start model (speechtl.models.router)
    route_minutes: float = 30.0  # the router's source audio: a speaker-stratified sample of at most this many minutes (0: no router)
    out: str = "runs/adapt"  # run folder
    resume: bool = False  # continue an interrupted run from out/checkpoint
    on_error: str = "fail"  # unreadable audio: fail (stop, naming the file) or skip (leave out, list in results)
    eval_batch_seconds: float = 120.0  # padded audio seconds per evaluation batch
    language: str = ""  # target text language: picks the normaliser (de, es, fr, sv, ...; default: the model's, else en)
    vocab: str = "keep"  # CTC head: keep | copy (shared rows copied) | random (new head) | extend (source rows + new chars)
    mismatch_utts: int = 100  # utterances per side for the domain-mismatch score before adapting (0: off)
    training: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class SelfTrainingConfig:
    unlabelled: str = ""  # untranscribed target audio: a manifest (text empty, or references used only for scoring) or a folder
    rounds: int = 2  # self-training rounds (pseudo-label → fine-tune), after a supervised round 0 when --train is given
    keep_fraction: float = 0.5  # train on at most this share of the unlabelled utterances, the most confident
    min_confidence: float = 0.0  # and only on pseudo-labels at least this confident (0..1)
    confidence: str = "max_prob"  # confidence measure: max_prob | entropy | path (see speechtl.adapt.pseudo_label)
    pseudo_lm: str = ""  # ARPA LM (speechtl lm build) for the pseudo-labels: beam search instead of greedy
