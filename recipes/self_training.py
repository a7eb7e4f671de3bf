"""Self-training on untranscribed target-accent audio, with 0 and with 5 labelled minutes, vs supervised only.

    python recipes/self_training.py --threads 1                   # offline default (the RESULTS.md table)
    python recipes/self_training.py --labelled-minutes 5 --rounds 3 --keep-fraction 0.3
    python recipes/self_training.py --smoke                       # seconds, tiny random model

Offline default: the shipped en-us model; espeak-ng sets from :mod:`speechtl.demo` — 30 unlabelled
minutes of en-gb-scotland (their transcripts are hidden references, used only to score the
pseudo-labels), 5 labelled minutes, a 4-min target dev set (picks checkpoints: labelled audio every
row uses, also the 0-label one), a 6-min target test set, en-us dev/test sets (forgetting) and en-us
replay. For each labelled budget: round 0 trains on the labelled minutes alone (the supervised-only
baseline; with 0 minutes the baseline is the starting model), then ``--rounds`` self-training rounds
(:func:`speechtl.adapt.self_training.run_self_training`). Writes ``results.json``, ``report.md`` (the
table) and ``recipe_config.json`` to ``--out``; each budget's run folder lies under it.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from speechtl.adapt.run import AdaptConfig
from speechtl.adapt.self_training import SelfTrainingConfig, run_self_training
from speechtl.adapt.train_config import TrainConfig, train_config_dict
from speechtl.config import override, parse_config
from speechtl.demo import DEMO_TRAINING, smoke_model, synth_set
from speechtl.errors import exit_status
from speechtl.eval.bootstrap import WerDifference
from speechtl.fileio import atomic_write_json, atomic_write_text


def _default_training() -> TrainConfig:
    """The demo's training (speechtl.demo.DEMO_TRAINING: lr 1e-3, dev guard + WiSE-FT) with LoRA r=16 for 300
    steps (the settings of the RESULTS.md table) and noise for the student (noisy student); SpecAugment time
    masking (p=0.05) is already in the shipped model's config."""
    return override(DEMO_TRAINING, max_steps=300, eval_every=50, strategy="lora", lora_r=16, lora_alpha=16,
                    noise_snr_db=20.0)


@dataclass(frozen=True)
class SelfTrainingRecipeConfig:
    """Self-training on untranscribed target-accent audio (0 and 5 labelled minutes) vs supervised only."""

    model: str = "speechtl/en-us-synth"  # the source model
    accent: str = "en-gb-scotland"  # target accent
    source_accent: str = "en-us"  # the accent the source model was trained on
    labelled_minutes: list[float] = field(default_factory=lambda: [0.0, 5.0])  # labelled budgets compared
    unlabelled_minutes: float = 30.0  # untranscribed target-accent minutes
    dev_minutes: float = 4.0  # target dev set (checkpoint choice) and source dev set (forgetting limit)
    test_minutes: float = 6.0  # target test set
    source_test_minutes: float = 6.0  # source-accent test set (forgetting)
    replay_ratio: float = 3.0  # source replay minutes per training minute (labelled + kept pseudo-labels)
    num_speakers: int = 20  # synthetic voices per set
    rounds: int = 2  # self-training rounds per budget
    keep_fraction: float = 0.5  # share of the unlabelled utterances kept, the most confident
    min_confidence: float = 0.0  # minimum pseudo-label confidence (0..1)
    confidence: str = "max_prob"  # max_prob | entropy | path
    pseudo_lm: str = ""  # ARPA LM for the pseudo-labels (beam search; e.g. runs/lm_decoding/lm.arpa), "" = greedy
    data: str = "runs/data"  # synthetic data cache (shared with speechtl demo)
    out: str = "runs/self_training"  # results folder
    resume: bool = False  # skip finished rounds, continue an interrupted one
    overwrite: bool = False  # redo budgets whose folders hold finished runs (else refused, unless resume)
    smoke: bool = False  # seconds: tiny random model, a few utterances, one round
    quiet: bool = False  # no progress bars
    training: TrainConfig = field(default_factory=_default_training)


def _smoke(cfg: SelfTrainingRecipeConfig) -> SelfTrainingRecipeConfig:
    return override(cfg, model=smoke_model(cfg.data), num_speakers=3, rounds=1, labelled_minutes=[0.0, 0.15],
                    unlabelled_minutes=0.15, dev_minutes=0.15, test_minutes=0.15, source_test_minutes=0.15,
                    keep_fraction=1.0, max_steps=2, eval_every=2, batch_seconds=10.0)


def _budget(cfg: SelfTrainingRecipeConfig, minutes: float, unlabelled: str, sets: dict) -> dict:
    adapt = AdaptConfig(model=cfg.model, train=synth_set(cfg, "train", minutes) if minutes > 0 else "",
                        out=str(Path(cfg.out) / f"labelled-{minutes:g}min"), resume=cfg.resume, overwrite=cfg.overwrite,
                        replay_ratio=cfg.replay_ratio, training=cfg.training, **sets)
    st = SelfTrainingConfig(unlabelled=unlabelled, rounds=cfg.rounds, keep_fraction=cfg.keep_fraction,
                            min_confidence=cfg.min_confidence, confidence=cfg.confidence,
                            pseudo_lm=cfg.pseudo_lm)
    return run_self_training(adapt, st, progress=not cfg.quiet)


def run(cfg: SelfTrainingRecipeConfig) -> dict:
    if cfg.smoke:
        cfg = _smoke(cfg)
    start = time.perf_counter()
    most = max(cfg.labelled_minutes) + cfg.unlabelled_minutes  # the replay pool covers every budget
    sets = dict(dev=synth_set(cfg, "dev", cfg.dev_minutes), test=[synth_set(cfg, "test", cfg.test_minutes)],
                source_test=synth_set(cfg, "source-test", cfg.source_test_minutes),
                source_dev=synth_set(cfg, "source-dev", cfg.dev_minutes),
                replay=synth_set(cfg, "replay", cfg.replay_ratio * most) if cfg.replay_ratio > 0 else "")
    unlabelled = synth_set(cfg, "unlabelled", cfg.unlabelled_minutes)
    budgets = {f"{m:g}": _budget(cfg, m, unlabelled, sets) for m in cfg.labelled_minutes}
    results = {"accent": cfg.accent, "source_accent": cfg.source_accent, "budgets": budgets,
               "wall_s": round(time.perf_counter() - start, 1), "command": " ".join(sys.argv)}
    results["table"] = format_table(results)
    atomic_write_json(Path(cfg.out) / "results.json", results)
    atomic_write_json(Path(cfg.out) / "recipe_config.json", {**dataclasses.asdict(cfg), "training": train_config_dict(cfg.training)})
    atomic_write_text(Path(cfg.out) / "report.md", f"```\n{results['table']}\n```\n\nCommand: `{results['command']}`\n")
    return results


def _row(labelled: str, unlabelled: str, system: str, kept: str, pseudo: dict | None, scores: dict) -> str:
    pct = lambda s, k="wer": "–" if not s else f"{100 * s[k]:.1f}"  # noqa: E731
    return (f"{labelled:>8} {unlabelled:>10}  {system:<26} {kept:>9} {pct(pseudo):>10} {pct(scores['target']):>10} "
            f"{pct(scores['target'], 'cer'):>6} {pct(scores['source']):>10}")


def _verdict(label: str, change: dict) -> str:
    """Plain words from the paired bootstrap of the last round vs the baseline on the test sets."""
    target = WerDifference(**change["target"])
    words = ("improves on" if target.high < 0 else "is worse than" if target.low > 0 else
             "does NOT clearly improve on")
    text = f"{label}: self-training {words} the {change['baseline']} on target WER: {target.describe()}"
    if "source" in change:
        text += f"; source WER {WerDifference(**change['source']).describe()}"
    return text


def format_table(results: dict) -> str:
    """One row per system: the baseline of each labelled budget, then each self-training round."""
    lines = [f"{'labelled':>8} {'unlabelled':>10}  {'system':<26} {'kept':>9} {'pseudo WER':>10} "
             f"{'target WER':>10} {'CER':>6} {'source WER':>10}"]
    verdicts = []
    for minutes, res in results["budgets"].items():
        rounds, unl = res["rounds"], f"{res['unlabelled_minutes']:.3g}"
        base = res["start"] if minutes == "0" else {k: rounds[0][k]["after"] for k in ("target", "source")}
        name = "starting model" if minutes == "0" else "supervised only (round 0)"
        lines.append(_row(minutes, "0", name, "–", None, base))
        for r in (r for r in rounds if r["round"] > 0):
            after = {k: r[k]["after"] for k in ("target", "source")}
            lines.append(_row(minutes, unl, f"self-training round {r['round']}", f"{r['kept']}/{r['unlabelled']}",
                              r["pseudo_label"].get("kept"), after))
        verdicts.append(_verdict(f"{minutes} labelled + {unl} unlabelled min", res["change"]))
    rounds_s = sum(res["rounds_wall_s"] for res in results["budgets"].values())
    return "\n".join(lines + [""] + verdicts + [f"wall time {rounds_s:.0f} s in rounds (this invocation "
                                                 f"{results['wall_s']:.0f} s)"])


def main(argv: list[str] | None = None) -> dict:
    results = run(parse_config(SelfTrainingRecipeConfig, argv))
    print(results["table"])
    return results


if __name__ == "__main__":
    sys.exit(exit_status("recipes/self_training.py", lambda: main(sys.argv[1:])))
