"""Learning curves: labelled target minutes × adaptation strategies → CSV, table and PNG plot.

    python recipes/budget_sweep.py --threads 1                        # 5 budgets × 4 presets (~4 CPU-hours)
    python recipes/budget_sweep.py --minutes 1 5 --strategies lora adapter
    python recipes/budget_sweep.py --smoke                            # seconds, tiny random model

Every cell is one offline accent demo (:func:`speechtl.demo.run_accent_demo`: synthetic target accent,
the shipped source model, the forgetting guard, accent routing) with ``--train-minutes`` set to the cell's
budget and the strategy preset's changes applied to the demo's defaults (PRESETS). Cells live in
``<out>/<strategy>-<minutes>min/``; a cell whose ``results.json`` exists is not run again, an interrupted
cell resumes from its checkpoint. ``<out>/sweep.csv`` and ``<out>/learning_curves.png`` (target and source
WER against minutes, one line per strategy, the starting model dashed) are rewritten after every cell.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from speechtl.adapt.report import RunResult
from speechtl.config import ConfigError, override, parse_config
from speechtl.demo import AccentDemoConfig, demo_config_dict, run_accent_demo
from speechtl.errors import exit_status
from speechtl.fileio import atomic_write_csv, atomic_write_json
from speechtl.compare.figures import NO_PLOT, pyplot, save_png

# Every cell: the demo's defaults (speechtl.demo.AccentDemoConfig and its TrainConfig: a full fine-tune at lr 1e-3 for
# 800 steps, the 5 % source forgetting limit, accent routing), then the preset's changes.
_ONE_MODEL = {"route_minutes": 0.0, "replay_ratio": 8.0}  # one adapted model serves both accents; 8:1 source replay
PRESETS: dict[str, dict] = {
    "routed": {},  # the demo default: the start model keeps the source accent, the router picks per utterance
    "full": _ONE_MODEL,
    "lora": {**_ONE_MODEL, "strategy": "lora", "lora_r": 8, "lora_alpha": 16},  # r 8: adapter ≤ 5 % of the model
    "full-noreplay": {"route_minutes": 0.0},  # plain fine-tuning: the naive baseline
    "adapter": {**_ONE_MODEL, "strategy": "adapter", "adapter_dim": 32},  # not in the default grid (see --strategies)
}
DEFAULT_GRID = ["routed", "full", "lora", "full-noreplay"]

COLUMNS = ["strategy", "minutes", "labelled_minutes", "replay_minutes", "target_wer_before", "target_wer_after",
           "target_rel_change", "source_wer_before", "source_wer_after", "source_rel_change", "trainable_params",
           "full_model_bytes", "adapter_bytes", "best_step", "best_alpha", "wall_s", "verdict"]


@dataclass(frozen=True)
class BudgetSweepConfig:
    """Adapt the shipped model to a synthetic accent at several labelled budgets with several strategies."""

    model: str = "speechtl/en-us-synth"  # the source model
    accent: str = "en-gb-scotland"  # target accent
    source_accent: str = "en-us"
    minutes: list[float] = field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 20.0])  # labelled target minutes
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_GRID))  # preset names (PRESETS in the recipe)
    data: str = "runs/data"  # synthetic data cache (shared with the demo)
    out: str = "runs/budget_sweep"  # one folder per cell, sweep.csv, learning_curves.png
    seed: int = 0
    threads: int = 1  # CPU threads for torch per cell (0: torch's default)
    smoke: bool = False  # seconds: tiny random model, budgets 0.05 and 0.15 min, two presets (for tests)
    quiet: bool = False  # no progress bars


def cell_config(cfg: BudgetSweepConfig, strategy: str, minutes: float) -> AccentDemoConfig:
    """The demo config of one cell: the demo's defaults, the budget, the preset's changes."""
    if strategy not in PRESETS:
        raise ConfigError(f"unknown strategy preset {strategy!r}; presets: {', '.join(PRESETS)}")
    demo = override(AccentDemoConfig(), model=cfg.model, accent=cfg.accent, source_accent=cfg.source_accent,
                    train_minutes=minutes, data=cfg.data, out=str(cell_dir(cfg, strategy, minutes)), resume=True,
                    smoke=cfg.smoke, quiet=cfg.quiet, seed=cfg.seed, threads=cfg.threads)
    try:
        return override(demo, **PRESETS[strategy])
    except ConfigError as e:
        raise ConfigError(f"preset {strategy!r}: {e}") from e


def cell_dir(cfg: BudgetSweepConfig, strategy: str, minutes: float) -> Path:
    return Path(cfg.out) / f"{strategy}-{minutes:g}min"


def _rel(before: float, after: float) -> float | None:
    return round((after - before) / before, 4) if before else None


def row(strategy: str, minutes: float, r: RunResult) -> dict:
    t, s, a = r.target, r.source or {}, r.artifacts or {}
    return {
        "strategy": strategy, "minutes": minutes, "labelled_minutes": r.labelled_minutes,
        "replay_minutes": r.replay_minutes, "target_wer_before": t["before"]["wer"],
        "target_wer_after": t["after"]["wer"], "target_rel_change": _rel(t["before"]["wer"], t["after"]["wer"]),
        "source_wer_before": s.get("before", {}).get("wer"), "source_wer_after": s.get("after", {}).get("wer"),
        "source_rel_change": _rel(s["before"]["wer"], s["after"]["wer"]) if s else None,
        "trainable_params": r.trainable_params, "full_model_bytes": a.get("full_model_bytes"),
        "adapter_bytes": a.get("adapter_bytes"), "best_step": r.train.best_step,
        "best_alpha": r.train.best_alpha, "wall_s": r.wall_s, "verdict": r.verdict,
    }


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _change(x) -> str:
    return "–" if x is None else f"{100 * x:+.0f}%"


def format_table(rows: list[dict]) -> str:
    """WER % before → after (relative change) on target and source, per cell."""
    lines = [f"{'strategy':<14} {'min':>5}  {'target WER % (change)':<23} {'source WER % (change)':<23} "
             f"{'trainable':>10} {'wall s':>6}"]
    for r in rows:
        target = f"{_pct(r['target_wer_before'])} → {_pct(r['target_wer_after'])} ({_change(r['target_rel_change'])})"
        source = f"{_pct(r['source_wer_before'])} → {_pct(r['source_wer_after'])} ({_change(r['source_rel_change'])})"
        lines.append(f"{r['strategy']:<14} {r['minutes']:>5g}  {target:<23} {source:<23} "
                     f"{r['trainable_params']:>10,} {r['wall_s']:>6.0f}")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    atomic_write_csv(path, rows, COLUMNS)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Target and source WER (%) against labelled minutes, one line per strategy; the starting model dashed."""
    plt = pyplot()
    if plt is None:  # the optional plot extra
        print(f"{path.name}: {NO_PLOT}", file=sys.stderr)
        return

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    minutes = sorted({r["minutes"] for r in rows})
    for ax, role in zip(axes, ("target", "source")):
        for strategy in dict.fromkeys(r["strategy"] for r in rows):
            pts = sorted((r["minutes"], r[f"{role}_wer_after"]) for r in rows if r["strategy"] == strategy
                         and r[f"{role}_wer_after"] is not None)
            if pts:
                ax.plot([m for m, _ in pts], [100 * w for _, w in pts], marker="o", label=strategy)
        before = [r[f"{role}_wer_before"] for r in rows if r[f"{role}_wer_before"] is not None]
        if before:
            ax.axhline(100 * before[0], color="gray", linestyle="--", label="before adapting")
        if before and role == "source":
            ax.axhline(105 * before[0], color="gray", linestyle=":", label="before + 5 % (relative)")
            ax.legend()
        ax.set_xscale("log")
        ax.set_xticks(minutes, labels=[f"{m:g}" for m in minutes])
        ax.minorticks_off()
        ax.set_xlabel("labelled target minutes")
        ax.set_ylabel(f"{role} WER %")
        ax.set_title(f"{role} accent")
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    save_png(fig, path)


CELL_SETTINGS = "cell_config.json"  # in each cell folder: the settings its results were made with


def _same_settings(demo: AccentDemoConfig) -> None:
    """Write the cell's settings on its first run; a later run with other settings (a changed preset or demo
    default) is an error rather than a table mixing old results with new labels."""
    settings = demo_config_dict(demo)
    del settings["quiet"]
    path = Path(demo.out) / CELL_SETTINGS
    if path.is_file() and _same(json.loads(path.read_text()), json.loads(json.dumps(settings))):
        return
    if path.is_file() or (Path(demo.out) / "results.json").is_file():
        raise ConfigError(f"{demo.out} was run with other (or unrecorded) settings; remove the folder or use "
                          f"another --out")
    atomic_write_json(path, settings)


def _same(saved: dict, now: dict) -> bool:
    """Saved cell settings vs today's; settings added since (e.g. ``device``) count as their defaults."""
    defaults, old = demo_config_dict(AccentDemoConfig())["training"], saved.get("training", {})
    added = {k: defaults[k] for k in now["training"].keys() - old.keys()}
    return {**saved, "training": {**old, **added}} == now


def sweep(cfg: BudgetSweepConfig) -> list[dict]:
    if cfg.smoke:
        cfg = dataclasses.replace(cfg, minutes=[0.05, 0.15], strategies=cfg.strategies[:2])
    cells = [(s, m) for s in cfg.strategies for m in cfg.minutes]
    for s, m in cells:
        cell_config(cfg, s, m)  # every preset checked before the first cell runs
    out = Path(cfg.out)
    atomic_write_json(out / "sweep_config.json", {**dataclasses.asdict(cfg), "presets": PRESETS,
                                                   "command": shlex.join(["python", "recipes/budget_sweep.py",
                                                                          *sys.argv[1:]])})
    rows = []
    for i, (strategy, minutes) in enumerate(cells, 1):
        done = cell_dir(cfg, strategy, minutes) / "results.json"
        _same_settings(cell_config(cfg, strategy, minutes))
        if done.is_file():
            results = RunResult.from_json(json.loads(done.read_text()))
            print(f"[{i}/{len(cells)}] {strategy} {minutes:g} min: done before, not rerun", flush=True)
        else:
            print(f"[{i}/{len(cells)}] {strategy} {minutes:g} min ...", flush=True)
            start = time.perf_counter()
            results = run_accent_demo(cell_config(cfg, strategy, minutes))
            print(f"[{i}/{len(cells)}] {strategy} {minutes:g} min: {time.perf_counter() - start:.0f} s", flush=True)
        rows.append(row(strategy, minutes, results))
        write_csv(rows, out / "sweep.csv")
        plot(rows, out / "learning_curves.png", f"{cfg.model}: {cfg.source_accent} → {cfg.accent}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = parse_config(BudgetSweepConfig, argv)
    rows = sweep(cfg)
    print(format_table(rows))
    print(f"csv: {Path(cfg.out) / 'sweep.csv'} · plot: {Path(cfg.out) / 'learning_curves.png'}")
    return rows


if __name__ == "__main__":
    sys.exit(exit_status("recipes/budget_sweep.py", lambda: main(sys.argv[1:])))
