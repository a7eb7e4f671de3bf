"""Language adaptation: what transferring an English model buys over training from scratch, by labelled minutes.

    python recipes/language_adaptation.py                          # offline default: en-us-synth → synthetic Spanish
    python recipes/language_adaptation.py --language de --minutes 5 10 --out runs/language-de
    python recipes/language_adaptation.py --smoke                  # seconds, tiny random model

For each labelled budget (nested speaker-stratified samples of one synthetic pool) three runs of
:func:`speechtl.adapt.run.run_adaptation` with the same steps, dev and test sets:

- ``copy``: the source model with a head for the target alphabet, shared rows copied (``--vocab copy``);
- ``random``: the source encoder with a freshly initialised head (``--vocab random``);
- ``scratch``: the same architecture from random weights (feature encoder trained too, ``--scratch-lr``).

Writes ``results.json``, ``results.csv``, ``wer_cer_vs_minutes.png`` and ``RESULTS.md`` (the table and the
exact command) to ``--out``; every run keeps its own folder there.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from speechtl.adapt.run import AdaptConfig, run_adaptation
from speechtl.adapt.train_config import TrainConfig, train_config_dict
from speechtl.config import ConfigError, override, parse_config
from speechtl.data.manifest import read_manifest, sample_minutes, write_manifest
from speechtl.demo import DEMO_TRAINING, smoke_model
from speechtl.errors import exit_status
from speechtl.fileio import atomic_write_csv, atomic_write_json, atomic_write_text
from speechtl.models import load_model
from speechtl.models.head import scratch_model
from speechtl.runtime import set_threads
from speechtl.synth import prepare_synthetic
from speechtl.compare.figures import NO_PLOT, pyplot, save_png

CONDITIONS = {"copy": "transfer, shared rows copied", "random": "transfer, random new head",
              "scratch": "from scratch"}


def _default_training() -> TrainConfig:
    """The demo's training (speechtl.demo.DEMO_TRAINING) with a short schedule, small batches, one thread."""
    return override(DEMO_TRAINING, max_steps=100, batch_seconds=30.0, eval_every=50, threads=1)


@dataclass(frozen=True)
class LanguageAdaptConfig:
    """Adapt the shipped English model to a synthetic language; compare head transfer with training from scratch."""

    model: str = "speechtl/en-us-synth"  # the source model
    language: str = "es"  # target language: espeak-ng voice and text (de, es, fr, it, sv)
    minutes: list[float] = field(default_factory=lambda: [2.0, 5.0, 10.0])  # labelled target minutes to compare
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))  # copy | random | scratch
    dev_minutes: float = 2.0  # target dev set (checkpoint choice)
    test_minutes: float = 3.0  # target test set
    num_speakers: int = 20  # synthetic voices per set
    scratch_lr: float = 2e-3  # learning rate from scratch (the source model itself was trained at 2e-3)
    data: str = "runs/data"  # synthetic data cache (reused when present)
    out: str = "runs/language"  # results folder (one run folder per condition and budget inside)
    overwrite: bool = False  # redo cells whose run folders hold finished runs (else such a cell is refused)
    smoke: bool = False  # seconds: tiny random model and a few utterances (for tests)
    quiet: bool = False  # no progress bars
    training: TrainConfig = field(default_factory=_default_training)


def _synth(cfg: LanguageAdaptConfig, split: str, minutes: float, offset: int) -> Path:
    return prepare_synthetic(cfg.data, cfg.language, split, minutes, cfg.training.seed, cfg.num_speakers,
                             language=cfg.language, stream=offset, progress=not cfg.quiet)


def _budgets(cfg: LanguageAdaptConfig) -> dict[float, str]:
    """Nested labelled samples (each budget contains the smaller ones) of one synthetic training pool."""
    pool_path = _synth(cfg, "train", max(cfg.minutes), 0)
    pool = read_manifest(pool_path)
    paths = {}
    for m in sorted(cfg.minutes):
        path = pool_path.parent / f"train-{m:g}min.jsonl"
        write_manifest(sample_minutes(pool, m, cfg.training.seed), path)
        paths[m] = str(path)
    return paths


def _scratch_folder(cfg: LanguageAdaptConfig) -> str:
    """The source architecture with random weights (its English head is replaced by --vocab random)."""
    folder = Path(cfg.out) / "scratch-init"
    model, processor = scratch_model(*load_model(cfg.model), seed=cfg.training.seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def _smoke(cfg: LanguageAdaptConfig) -> LanguageAdaptConfig:
    return override(cfg, model=smoke_model(cfg.data), minutes=[0.1, 0.2], dev_minutes=0.1, test_minutes=0.1,
                    num_speakers=3, max_steps=2, eval_every=2, batch_seconds=10.0)


def run(cfg: LanguageAdaptConfig, argv: list[str] | None = None) -> dict:
    """Every condition at every budget; returns results.json's content (``argv``: the recipe's flags, for the command)."""
    if cfg.smoke:
        cfg = _smoke(cfg)
    unknown = sorted(set(cfg.conditions) - set(CONDITIONS))
    if unknown or not cfg.conditions or not cfg.minutes:
        raise ConfigError(f"conditions must be some of {', '.join(CONDITIONS)} (got {cfg.conditions}) "
                          f"and minutes at least one budget (got {cfg.minutes})")
    start = time.perf_counter()
    set_threads(cfg.training.runtime.threads)  # before the first evaluation too: bf16 results differ slightly by thread count
    budgets = _budgets(cfg)
    dev, test = _synth(cfg, "dev", cfg.dev_minutes, 1), _synth(cfg, "test", cfg.test_minutes, 2)
    models = {"copy": cfg.model, "random": cfg.model}
    if "scratch" in cfg.conditions:
        models["scratch"] = _scratch_folder(cfg)
    rows = []
    for minutes, train in budgets.items():
        for cond in cfg.conditions:
            training = override(cfg.training, lr=cfg.scratch_lr, freeze_feature_encoder=False) \
                if cond == "scratch" else cfg.training
            adapt = AdaptConfig(model=models[cond], train=train, dev=str(dev), test=[str(test)],
                                out=str(Path(cfg.out) / f"{cond}-{minutes:g}min"), language=cfg.language,
                                vocab="copy" if cond == "copy" else "random", overwrite=cfg.overwrite,
                                training=training)
            r = run_adaptation(adapt, progress=not cfg.quiet)
            rows.append({"condition": cond, "minutes": minutes, "labelled_minutes": r.labelled_minutes,
                         "wer": r.target["after"]["wer"], "cer": r.target["after"]["cer"],
                         "start_wer": r.target["before"]["wer"], "start_cer": r.target["before"]["cer"],
                         "num_words": r.target["after"]["num_words"], "steps": r.train.steps,
                         "best_step": r.train.best_step, "trainable_params": r.trainable_params,
                         "wall_s": r.wall_s})
    return {"language": cfg.language, "model": cfg.model, "rows": rows, "normalizer": r.normalizer,
            "config": {**dataclasses.asdict(cfg), "training": train_config_dict(cfg.training)}, "wall_s": round(time.perf_counter() - start, 1),
            "command": " ".join(["python", "recipes/language_adaptation.py", *(sys.argv[1:] if argv is None else argv)])}


def format_table(results: dict) -> str:
    """One row per budget; WER / CER (%) on the target test set for each condition."""
    conds = list(dict.fromkeys(r["condition"] for r in results["rows"]))
    head = "| labelled min | " + " | ".join(f"{CONDITIONS[c]} WER / CER" for c in conds) + " |"
    lines = [head, "|---:|" + "---:|" * len(conds)]
    for minutes in dict.fromkeys(r["minutes"] for r in results["rows"]):
        cells = {r["condition"]: r for r in results["rows"] if r["minutes"] == minutes}
        lines.append(f"| {minutes:g} | " + " | ".join(
            f"{100 * cells[c]['wer']:.1f} / {100 * cells[c]['cer']:.1f}" for c in conds) + " |")
    first = next((r for r in results["rows"] if r["condition"] == "copy"), results["rows"][0])
    lines.append(f"\n{results['language']} test set: {first['num_words']} words · {first['steps']} steps per run · "
                 f"start ({CONDITIONS[first['condition']]}, before training): WER {100 * first['start_wer']:.1f} / "
                 f"CER {100 * first['start_cer']:.1f} % · total wall time {results['wall_s']:.0f} s")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:  # the optional plot extra
        print(f"{path.name}: {NO_PLOT}", file=sys.stderr)
        return

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric in zip(axes, ("wer", "cer")):
        for cond in dict.fromkeys(r["condition"] for r in results["rows"]):
            pts = [(r["minutes"], 100 * r[metric]) for r in results["rows"] if r["condition"] == cond]
            ax.plot(*zip(*pts), marker="o", label=CONDITIONS[cond])
        ax.set_xlabel("labelled target minutes")
        ax.set_ylabel(f"{metric.upper()} % (test)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{results['model']} → {results['language']}: transfer vs from scratch", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def write_results(results: dict, out: Path) -> None:
    atomic_write_json(out / "results.json", results)
    atomic_write_csv(out / "results.csv", results["rows"], list(results["rows"][0]))
    plot(results, out / "wer_cer_vs_minutes.png")
    atomic_write_text(out / "RESULTS.md", f"# Language adaptation: {results['model']} → {results['language']}\n\n"
                      f"```\n{results['command']}\n```\n\n{format_table(results)}\n\n"
                      f"![WER/CER against labelled minutes](wer_cer_vs_minutes.png)\n")


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(LanguageAdaptConfig, argv)
    results = run(cfg, argv)
    write_results(results, Path(cfg.out))
    print(format_table(results))
    return results


if __name__ == "__main__":
    sys.exit(exit_status("recipes/language_adaptation.py", lambda: main(sys.argv[1:])))
