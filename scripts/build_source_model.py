"""Build the shipped offline source model: a small Wav2Vec2ForCTC trained from scratch on synthetic en-us.

    .venv/bin/python scripts/build_source_model.py                  # the shipped model: ~2.5 h on one CPU core
    .venv/bin/python scripts/build_source_model.py --resume         # continue after an interruption
    .venv/bin/python scripts/build_source_model.py --smoke          # seconds: the whole path, tiny budget
    .venv/bin/python scripts/build_source_model.py --augment real   # acoustic augmentation (speechtl.data.augment)

It synthesises the training set with speechtl.synth (many en-us voices), trains with the same
loop as every adaptation (speechtl.adapt.train), scores the model on held-out test sentences of
every English accent and a few foreign voices reading English with ``speechtl evaluate``'s library
function, and writes the model folder with a model card (README.md) holding those figures.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speechtl.adapt.run import labels_for
from speechtl.adapt.train import DevSets, TrainConfig, TrainData, train, train_config
from speechtl.adapt.train_config import AugmentConfig, train_config_dict
from speechtl.config import override, parse_config
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest, set_name
from speechtl.eval import evaluate_manifests
from speechtl.fileio import atomic_write_json, atomic_write_text
from speechtl.models import MODEL_SIZES, random_model
from speechtl.runtime import pick_device, resolve_precision
from speechtl.synth import ENGLISH_ACCENTS, prepare_synthetic
from speechtl.text import ENGLISH_CHARS, build_vocab

# Seeds of the synthetic sets: the demo and recipes draw their test sets with other seeds, and the
# test sentence pool is disjoint from the training pool by construction (speechtl.synth.split_of).
TRAIN_SEED = 1000
EVAL_SEED = 1001


@dataclass(frozen=True)
class SourceModelConfig:
    out: str = "speechtl/pretrained/en-us-synth"  # model folder to write (shipped inside the package)
    name: str = "speechtl/en-us-synth"  # the name on the model card (shipped models load as speechtl/<folder>)
    work: str = "runs/source_model"  # synthetic data, checkpoints
    accent: str = "en-us"  # the source accent
    train_hours: float = 10.0  # synthetic training audio
    num_speakers: int = 600  # voice/pitch/rate combinations in the training set
    dev_minutes: float = 4.0
    test_minutes: float = 4.0  # per evaluated accent, for the model card
    card_accents: list[str] = field(default_factory=lambda: [*ENGLISH_ACCENTS, "de", "fr", "es"])
    size: str = "small"  # architecture, see speechtl.models.MODEL_SIZES
    workers: int = 2  # synthesis processes
    resume: bool = False
    smoke: bool = False  # a tiny run through the whole path (seconds)
    training: TrainConfig = field(default_factory=lambda: train_config(  # the differences from the defaults
        lr=2e-3, max_steps=7000, warmup_ratio=0.05, batch_seconds=60.0, eval_every=500, freeze_feature_encoder=False,
        threads=1,
    ))


def _data(cfg: SourceModelConfig, work: Path) -> dict[str, Path]:
    """Synthesise (once) the training, dev and per-accent test sets; returns manifest paths."""
    sets = {"train": dict(split="train", minutes=cfg.train_hours * 60, seed=TRAIN_SEED, accent=cfg.accent,
                          num_speakers=cfg.num_speakers),
            "dev": dict(split="dev", minutes=cfg.dev_minutes, seed=EVAL_SEED, accent=cfg.accent)}
    for accent in cfg.card_accents:
        sets[f"test-{accent}"] = dict(split="test", minutes=cfg.test_minutes, seed=EVAL_SEED, accent=accent,
                                      language="en")
    return {name: prepare_synthetic(work / "data", workers=cfg.workers, **kw) for name, kw in sets.items()}


def dev_trend(history: list[dict]) -> str:
    """One sentence on the last two dev evaluations: was the model still improving when training stopped?"""
    wers = [h["dev_wer"] for h in history if h.get("dev_wer") is not None]
    if len(wers) < 2:
        return "Too few dev evaluations to say whether more training would help."
    last, prev = 100 * wers[-1], 100 * wers[-2]
    if last < prev:
        return (f"Dev WER was still falling when the schedule ended ({prev:.1f} → {last:.1f} % over the last "
                "evaluation interval): more steps (or hours of audio) are the first lever.")
    return f"Dev WER had stopped falling when the schedule ended ({prev:.1f} → {last:.1f} % over the last interval)."


def _augmentation(aug: AugmentConfig) -> str:
    """The card's words for the augmentation settings: ``--augment`` presets, speed factors, noise SNR."""
    parts = [f"presets {aug.augment}"] if aug.augment else []
    parts += [f"speed {' '.join(map(str, aug.speed_perturb))}"] if aug.speed_perturb else []
    parts += [f"white noise from {aug.noise_snr_db:g} dB SNR"] if aug.noise_snr_db > 0 else []
    return ", ".join(parts) or "none"


def model_card(cfg: SourceModelConfig, scores: dict, train_info: dict, command: str, history: list[dict]) -> str:
    arch = MODEL_SIZES[cfg.size]
    rows = "\n".join(
        f"| {name.removeprefix('test-')} | {r['num_utts']} | {r['num_words']} | {100 * r['wer']:.1f} | {100 * r['cer']:.1f} |"
        for name, r in scores["sets"].items()
    )
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: automatic-speech-recognition
tags: [wav2vec2, ctc, synthetic-speech, speechtl]
---
# {cfg.name} — a small offline source model

A {train_info['params'] / 1e6:.1f} M-parameter `Wav2Vec2ForCTC` trained **from scratch** on
{cfg.train_hours:g} h of **synthetic** American-English speech (espeak-ng voices through
`speechtl.synth`, {cfg.num_speakers} voice/pitch/rate combinations). It exists so that speechtl's
demo, tests and benchmarks have a real pretrained source model offline; it is not a useful English
recogniser for real voices.

- architecture ({cfg.size}): {arch}
- feature encoder: layer norm (padding-invariant), frame rate 20 ms; vocabulary: a–z, `'`, `|`
- training: {train_info['steps']} steps, AdamW lr {cfg.training.optimiser.lr:g} (linear warm-up/decay),
  batches of {cfg.training.optimiser.batch_seconds:g} padded seconds, {train_info['precision']} autocast,
  augmentation: {_augmentation(cfg.training.augment)},
  {cfg.training.runtime.threads or 'default'} CPU thread(s), {train_info['wall_min']:.0f} min of training; best dev WER
  {100 * (train_info['best_dev_wer'] or float('nan')):.1f} % at step {train_info['best_step']}
- command: `{command}`

The aim for this model was en-us WER ≤ 15 %; this build reaches {100 * scores['sets']['test-en-us']['wer']:.1f} %
(CER {100 * scores['sets']['test-en-us']['cer']:.1f} %). {dev_trend(history)}

## WER / CER (%) on held-out synthetic test sentences, by accent

Measured by `speechtl evaluate` (greedy CTC, normalised text); test sentences never occur in training.

| accent | utts | words | WER | CER |
|---|---:|---:|---:|---:|
{rows}
"""


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(SourceModelConfig, argv, description=__doc__.split("\n")[0])
    if cfg.smoke:
        cfg = override(cfg, train_hours=0.01, num_speakers=4, dev_minutes=0.1, test_minutes=0.1,
                       card_accents=["en-us", "en-gb-scotland"], size="tiny", max_steps=4, eval_every=2,
                       batch_seconds=8.0)
    work, out = Path(cfg.work), Path(cfg.out)
    paths = _data(cfg, work)
    train_utts, train_audio, _ = load_utterance_audio(read_manifest(paths["train"]), progress=True)
    dev_utts, dev_audio, _ = load_utterance_audio(read_manifest(paths["dev"]))
    vocab = build_vocab([u.text for u in train_utts], ENGLISH_CHARS)
    model, processor = random_model(vocab, size=cfg.size, seed=cfg.training.seed)
    data = TrainData(train_utts, labels_for(train_utts, processor.tokenizer), train_audio)
    result = train(model, processor, data, work / "train", cfg.training, DevSets(dev_utts, dev_audio),
                   resume=cfg.resume)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    scores = evaluate_manifests(str(out.resolve()), [str(paths[f"test-{a}"]) for a in cfg.card_accents])
    by_folder = {set_name(paths[f"test-{a}"]): f"test-{a}" for a in cfg.card_accents}
    scores["sets"] = {by_folder[name]: r for name, r in scores["sets"].items()}  # the card names sets by accent
    info = {"params": sum(p.numel() for p in model.parameters()), "steps": result.steps,
            "best_step": result.best_step, "best_dev_wer": result.best_dev_wer,
            "precision": resolve_precision(cfg.training.runtime.precision, pick_device("cpu")),
            "wall_min": result.wall_s / 60}
    command = "python scripts/build_source_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write_text(out / "README.md", model_card(cfg, scores, info, command.strip(), result.history))
    atomic_write_json(out / "training.json", {"config": {**asdict(cfg), "training": train_config_dict(cfg.training)}, "info": info, "history": result.history,
                                              "scores": scores["sets"]})
    for name, r in scores["sets"].items():
        print(f"{name:24} WER {100 * r['wer']:5.1f}  CER {100 * r['cer']:5.1f}")
    return scores


if __name__ == "__main__":
    main()
