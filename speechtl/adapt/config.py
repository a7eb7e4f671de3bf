"""What an adaptation run is told: :class:`AdaptConfig` (data, model, output; its ``training`` a
:class:`~speechtl.adapt.train_config.TrainConfig`) and :class:`SelfTrainingConfig` (``--unlabelled`` rounds).

Torch-free on purpose, like ``train_config.py``: the command line builds its parser from these classes (every leaf
field a flag, its trailing comment the help text) without importing torch. :mod:`speechtl.adapt.run` and
:mod:`speechtl.adapt.self_training` re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speechtl.adapt.train_config import TrainConfig
from speechtl.settings import GATE_KEEP

__all__ = ["AdaptConfig", "SelfTrainingConfig", "PretrainConfig"]


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
    route_keep: float = GATE_KEEP  # the router's gate: share of held-out target speakers it lets through; farther utterances get the start model (1: no gate)
    out: str = "runs/adapt"  # run folder
    resume: bool = False  # continue an interrupted run from out/checkpoint
    overwrite: bool = False  # replace a finished run in out (without it, or --resume, a finished run is refused)
    on_error: str = "fail"  # unreadable audio: fail (stop, naming the file) or skip (leave out, list in results)
    eval_batch_seconds: float = 120.0  # padded audio seconds per evaluation batch
    language: str = ""  # target text language: the normaliser (de, es, fr, sv, ...; default: the train manifest's, the model's, en)
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


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 1000  # optimizer steps
    lr: float = 1e-4  # peak learning rate (AdamW, betas 0.9/0.98 as in wav2vec 2.0)
    warmup: float = 0.1  # share of --steps with linearly rising learning rate (then linear decay to 0)
    batch_seconds: float = 60.0  # padded audio seconds per batch
    mask_prob: float = 0.65  # share of frames that start a masked span (wav2vec 2.0's p)
    mask_length: int = 10  # frames per masked span (audio shorter than this is skipped)
    num_negatives: int = 100  # distractors per masked frame (capped by the masked frames of an utterance, less one)
    diversity_weight: float = 0.1  # weight of the codebook diversity loss
    gumbel_temp_max: float = 2.0  # the Gumbel softmax temperature at step 0
    gumbel_temp_min: float = 0.5  # the Gumbel temperature's floor
    gumbel_temp_decay: float = 0.999995  # the Gumbel temperature's factor per step
    freeze_feature_encoder: bool | None = None  # keep the convolutional feature encoder fixed (default: on when continuing, off with --from-scratch)
    from_scratch: bool = False  # random weights with the model's config (its processor kept), not its trained ones
    max_grad_norm: float = 1.0  # gradient clipping (0: off)
    weight_decay: float = 0.01  # AdamW weight decay
    held_out: float = 0.05  # share of the audio files kept out of training for the validation loss (0: none)
    eval_every: int = 100  # steps between validation losses and checkpoints
    log_every: int = 10  # steps averaged into one line of pretrain_log.jsonl
    on_error: str = "fail"  # unreadable audio: fail naming the file, or skip it and list it
    resume: bool = False  # continue from --out's checkpoint (the same settings and audio)
    seed: int = 0
    threads: int = 0  # CPU threads for torch (0: torch's default)
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where supported) | bf16 | fp32
