"""Report figures (matplotlib, Agg backend, PNG bytes): WER per group per model with 95 % interval bars, and
arrows from the baseline's WER to each model's.

matplotlib is the optional ``plot`` extra: it is imported only when a figure is drawn, so the rest of
``speechtl compare`` works without it (:func:`pyplot` says whether it is there).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from speechtl.eval.stats import SIGNIFICANT

__all__ = ["wer_bars", "before_after", "pyplot", "save_png", "COLORS", "NO_PLOT"]

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
          "#64B5CD"]
BASELINE_COLOR = "#333333"
NO_PLOT = "No figures: matplotlib is not installed (pip install 'speechtl[plot]' draws them)."


def pyplot():
    """matplotlib.pyplot on the headless Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # headless; must precede pyplot
    import matplotlib.pyplot as plt

    return plt


def _pyplot():
    plt = pyplot()
    if plt is None:
        raise ModuleNotFoundError(NO_PLOT, name="matplotlib")
    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_png(fig, path: Path, dpi: int = 120) -> None:
    """Write a figure as PNG atomically (a reader never sees half a file) and close it."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x" if ax.get_ylabel() == "" else "y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def _lookup(rows: Sequence[dict], key: str) -> dict[tuple[str, str], dict]:
    return {(r[key], r["model"]): r for r in rows}


def wer_bars(rows: Sequence[dict], key: str, groups: Sequence[str], models: Sequence[str], title: str) -> bytes:
    """Grouped bars: one group per value of ``key`` (e.g. accent), one bar per model, 95 % interval whiskers;
    the reference word count under each group's label."""
    at = _lookup(rows, key)
    width = 0.8 / len(models)
    fig, ax = _pyplot().subplots(figsize=(min(10.0, max(8.0, 1.5 + 1.2 * len(groups) * max(1, len(models) / 3))), 4.0))
    for k, model in enumerate(models):
        xs = [g + (k - (len(models) - 1) / 2) * width for g in range(len(groups))]
        ys = [100 * at[(g, model)]["wer"] for g in groups]
        lo = [100 * (at[(g, model)]["wer"] - at[(g, model)]["wer_low"]) for g in groups]
        hi = [100 * (at[(g, model)]["wer_high"] - at[(g, model)]["wer"]) for g in groups]
        ax.bar(xs, ys, width * 0.92, color=COLORS[k % len(COLORS)], label=model, zorder=2)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="#222222", elinewidth=1, capsize=3, zorder=3)
        for x, y, top in zip(xs, ys, hi):
            ax.annotate(f"{y:.0f}", (x, y + top), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=7, color="#555555")
    labels = [f"{g}\n{at[(g, models[0])]['num_words']:,} words" for g in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=9)
    ax.set_ylabel("WER % (95 % interval)")
    ax.set_ylim(0, max(105.0, ax.get_ylim()[1]))
    ax.set_title(title, fontsize=11, loc="left")
    ax.legend(frameon=False, fontsize=8, ncol=min(len(models), 4), loc="upper left", bbox_to_anchor=(0, -0.16))
    _style(ax)
    return _png(fig)


def before_after(rows: Sequence[dict], key: str, groups: Sequence[str], models: Sequence[str], baseline: str,
                 title: str) -> bytes:
    """Per group, an arrow from the baseline's WER to each model's; solid when the paired test gives
    p < 0.05, dashed and pale otherwise."""
    at = _lookup(rows, key)
    plt = _pyplot()
    others = [m for m in models if m != baseline]
    fig, ax = plt.subplots(figsize=(10.0, 1.2 + 0.42 * len(groups) * max(1.5, len(others))))
    step = 0.7 / max(1, len(others))
    for g_i, g in enumerate(groups):
        start = 100 * at[(g, baseline)]["wer"]
        for k, model in enumerate(others):
            y = g_i + (k - (len(others) - 1) / 2) * step
            r = at[(g, model)]
            end = 100 * r["wer"]
            significant = r["p_value"] < SIGNIFICANT
            color = COLORS[(models.index(model)) % len(COLORS)]
            ax.annotate("", xy=(end, y), xytext=(start, y), arrowprops=dict(
                arrowstyle="-|>", color=color, lw=2.0 if significant else 1.2,
                linestyle="-" if significant else (0, (3, 2)), alpha=1.0 if significant else 0.55,
                shrinkA=0, shrinkB=0, mutation_scale=14))
            ax.plot([start], [y], "o", color=BASELINE_COLOR, ms=4, zorder=3)
            ax.annotate(f"{end - start:+.1f}", (end, y), xytext=(6 if end >= start else -6, 0),
                        textcoords="offset points", ha="left" if end >= start else "right", va="center",
                        fontsize=8, color=color)
    ax.set_yticks(range(len(groups)), groups, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(f"WER %  (● {baseline} → model; solid: p < {SIGNIFICANT:g}, dashed: not significant)")
    top = max(100 * r["wer"] for r in rows if r[key] in groups)
    ax.set_xlim(0, max(105.0, 1.08 * top))
    ax.set_title(title, fontsize=11, loc="left")
    handles = [plt.Line2D([], [], color=COLORS[models.index(m) % len(COLORS)], lw=2, label=m) for m in others]
    ax.legend(handles=handles, frameon=False, fontsize=8, ncol=min(len(others), 4), loc="upper left",
              bbox_to_anchor=(0, -0.22 if len(groups) < 4 else -0.12))
    _style(ax)
    return _png(fig)
