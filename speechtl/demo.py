"""The offline accent-adaptation demo: synthesise a target accent, adapt the shipped model, score before/after.

Everything is made here, offline: a few labelled minutes of the target accent (default
``en-gb-scotland``), a target dev and test set, a source-accent (``en-us``) test set to measure
forgetting, a source dev set (checkpoints that forget too much are refused) and untranscribed source
audio for the accent router (a source replay set instead or as well with ``--replay-ratio``), all from
:mod:`speechtl.synth`. Then one :func:`~speechtl.adapt.run.run_adaptation` and a table. ``speechtl demo`` and
``recipes/accent_adaptation.py`` both run :func:`run_accent_demo`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

from speechtl.adapt.report import RunResult, format_change, format_routing, word_columns
from speechtl.adapt.run import AdaptConfig, run_adaptation
from speechtl.adapt.train_config import train_config_dict
from speechtl.config import ConfigError, override
from speechtl.fileio import refuse_finished_run
from speechtl.demo_config import DEMO_TRAINING, AccentDemoConfig
from speechtl.models import random_model
from speechtl.synth import prepare_synthetic
from speechtl.text import ENGLISH_CHARS, build_vocab

__all__ = ["AccentDemoConfig", "DEMO_TRAINING", "run_accent_demo", "demo_adapt_config", "format_table", "synth_set",
           "smoke_model", "smoke_config", "demo_config_dict"]

# Seed offsets of the synthetic sets (the test sentence pool never meets the training pool anyway).
_SETS = {  # name: (split, seed offset, accent role)
    "train": ("train", 0, "target"),
    "dev": ("dev", 1, "target"),
    "test": ("test", 2, "target"),
    "source-test": ("test", 3, "source"),
    "replay": ("train", 4, "source"),
    "source-dev": ("dev", 5, "source"),
    "unlabelled": ("train", 6, "target"),  # untranscribed target audio for self-training (recipes/self_training.py)
}


def synth_set(cfg: AccentDemoConfig, name: str, minutes: float, num_speakers: int = 0) -> str:
    """Manifest of one of the demo's synthetic sets (train, dev, test, source-test, replay, source-dev), cached
    under ``cfg.data`` by :func:`speechtl.synth.prepare_synthetic` (the folder names the set, its minutes, its
    number of voices when not 20, and the run seed; each set draws from its own seed stream)."""
    split, offset, role = _SETS[name]
    accent = cfg.accent if role == "target" else cfg.source_accent
    return str(prepare_synthetic(cfg.data, accent, split, minutes, cfg.training.seed, num_speakers or cfg.num_speakers,
                                 language="en", stream=offset, label=name, progress=not cfg.quiet))


def smoke_model(data: str) -> str:
    """A tiny random English model folder under ``data`` (made once), for smoke runs."""
    folder = Path(data) / "tiny-random-en"
    if not (folder / "config.json").is_file():
        model, processor = random_model(build_vocab([], ENGLISH_CHARS), size="tiny")
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return str(folder)


def smoke_config(cfg: AccentDemoConfig) -> AccentDemoConfig:
    """The same path with a tiny random English model and ~10 s per set (less if fewer minutes are asked)."""
    return override(cfg, model=smoke_model(cfg.data), train_minutes=min(cfg.train_minutes, 0.15), dev_minutes=0.15,
                    source_dev_minutes=0.15, test_minutes=0.15, source_test_minutes=0.15, num_speakers=3,
                    replay_speakers=0, route_minutes=min(cfg.route_minutes, 0.15), max_steps=3, eval_every=3,
                    batch_seconds=10.0)


def demo_config_dict(cfg: AccentDemoConfig) -> dict:
    """The config as JSON (``recipe_config.json``): ``training`` flat by flag name, like ``run_config.json``."""
    return {**asdict(cfg), "training": train_config_dict(cfg.training)}


def demo_adapt_config(cfg: AccentDemoConfig) -> AdaptConfig:
    """The demo's :class:`AdaptConfig`: its synthetic sets (synthesised, or reused from ``cfg.data``) and settings."""
    return AdaptConfig(
        model=cfg.model,
        train=synth_set(cfg, "train", cfg.train_minutes),
        dev=synth_set(cfg, "dev", cfg.dev_minutes),
        test=[synth_set(cfg, "test", cfg.test_minutes)],
        source_test=synth_set(cfg, "source-test", cfg.source_test_minutes),
        source_dev=synth_set(cfg, "source-dev", cfg.source_dev_minutes),
        replay=(synth_set(cfg, "replay", cfg.replay_ratio * cfg.train_minutes, cfg.replay_speakers)
                if cfg.replay_ratio > 0 else ""),
        replay_ratio=cfg.replay_ratio,
        route=synth_set(cfg, "replay", cfg.route_minutes, cfg.replay_speakers) if cfg.route_minutes > 0 else "",
        route_minutes=cfg.route_minutes,
        out=cfg.out,
        resume=cfg.resume,
        overwrite=cfg.overwrite,
        training=cfg.training,
    )


def run_accent_demo(cfg: AccentDemoConfig) -> RunResult:
    if cfg.smoke:
        cfg = smoke_config(cfg)
    start = time.perf_counter()
    if cfg.accent == cfg.source_accent:
        raise ConfigError(f"the target accent must differ from the source accent ({cfg.source_accent})")
    refuse_finished_run(cfg.out, cfg.overwrite, cfg.resume)  # before minutes of synthesis
    if cfg.quiet:
        print(f"demo: synthesising (or reusing) the {cfg.accent} and {cfg.source_accent} sets in {cfg.data}",
              file=sys.stderr, flush=True)
    adapt = demo_adapt_config(cfg)
    synth_s = time.perf_counter() - start
    demo = {"accent": cfg.accent, "source_accent": cfg.source_accent, "synthesis_s": round(synth_s, 1)}
    return run_adaptation(adapt, progress=not cfg.quiet, extra={"demo": demo})


_WIDTH = 102  # the WER/CER columns' width (the header's); after them, what a WER near 100 % hides


def _row(label: str, scores: dict) -> str:
    b, a = scores["before"], scores["after"]
    rel = 100 * (a["wer"] - b["wer"]) / b["wer"] if b["wer"] else 0.0
    line = (f"{label:<28} {100 * b['wer']:6.1f} → {100 * a['wer']:5.1f} ({rel:+4.0f}%)   "
            f"{100 * b['cer']:5.1f} → {100 * a['cer']:5.1f}    {format_change(scores['change'])}")
    correct, ratio, empty = word_columns(b, a)
    return f"{line:<{_WIDTH}} {correct:<15} {ratio:<13} {empty}"


def format_table(r: RunResult) -> str:
    """The demo's before/after table: WER, CER and the change interval per accent, then (before → after) the words
    correct, the hypothesis/reference word ratio and the empty outputs; the verdict and the routing line."""
    demo = r.extra["demo"]
    header = f"{'':<28} {'WER % before → after':<24} {'CER % before → after':<22} WER points, 95 % interval"
    return "\n".join([
        f"{header:<{_WIDTH}} {'words correct %':<15} {'hyp/ref words':<13} empty %",
        _row(f"target  {demo['accent']}", r.target),
        _row(f"source  {demo['source_accent']}", r.source),
        f"labelled minutes {r.labelled_minutes:.1f} (+{r.replay_minutes:.1f} source replay) · "
        f"trainable parameters {r.trainable_params / 1e6:.2f} M · steps {r.train.steps} "
        f"(chosen {r.train.best_step}) · wall time {r.wall_s + demo['synthesis_s']:.0f} s · seed {r.seed}",
        f"verdict: {r.verdict}",
        *([format_routing(r.routing, r.sets)] if r.routing else []),
    ])
