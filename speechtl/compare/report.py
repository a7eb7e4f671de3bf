"""The report folder of ``speechtl compare``: results.json, one CSV per table, figures/*.png, report.md, and a
self-contained report.html (figures embedded as base64 PNG, no external resources). Without matplotlib (the
``plot`` extra) everything but the figures is written, and the report says how to get them."""

from __future__ import annotations

import base64
import html
import os
import sys
from pathlib import Path

from speechtl.compare.figures import NO_PLOT, before_after, pyplot, wer_bars
from speechtl.compare.tables import (
    Table, breakdown_table, changes_table, delta_table, errors_table, headline, model_table, set_table, words_table,
)
from speechtl.fileio import atomic_write_csv, atomic_write_json, atomic_write_text, output_path

__all__ = ["write_report", "CSS"]


def _write_csv(path: Path, rows: list[dict]) -> None:
    if rows:
        atomic_write_csv(path, rows)


def _utterance_rows(pool) -> list[dict]:
    rows = []
    for i, u in enumerate(pool.utts):
        row = {"set": pool.sets[i], "id": u.id, "speaker": u.speaker, "accent": u.accent, "gender": u.gender,
               "language": u.language, "reference": u.text}
        for m, hyps in pool.hyps.items():
            s = pool.scores[m]
            row.update({f"{m}:hypothesis": hyps[i], f"{m}:word_errors": int(s.word_errors[i]),
                        f"{m}:char_errors": int(s.char_errors[i])})
        row.update(words=int(next(iter(pool.scores.values())).words[i]))
        rows.append(row)
    return rows


def _write_csvs(results: dict, out: Path, pool) -> None:
    _write_csv(out / "matrix.csv", results["matrix"])
    _write_csv(out / "models.csv", [{k: v for k, v in m.items() if k != "decoded"} for m in results["models"]])
    for name, rows in results["breakdowns"].items():
        _write_csv(out / f"breakdown_{name}.csv", rows)
    _write_csv(out / "errors.csv", [
        {"model": m, "kind": kind, "reference": e[0] if kind != "insertion" else "",
         "hypothesis": e[1] if kind == "substitution" else (e[0] if kind == "insertion" else ""), "count": e[-1]}
        for m, errs in results["errors"].items()
        for kind, key in (("substitution", "substitutions"), ("insertion", "insertions"), ("deletion", "deletions"))
        for e in errs[key]])
    _write_csv(out / "changes.csv", [{"model": m, "direction": d, **e} for m, ch in results["changes"].items()
                                     for d in ("improved", "worsened") for e in ch[d]])
    _write_csv(out / "utterances.csv", _utterance_rows(pool))


def _figures(results: dict) -> list[tuple[str, str, bytes]] | None:
    """(file name, caption, PNG) for each figure: by accent when the manifests say it, else by test set;
    None when matplotlib is not installed."""
    if pyplot() is None:
        return None
    models, baseline = [m["name"] for m in results["models"]], results["baseline"]
    if "accent" in results["breakdowns"]:
        key, rows = "accent", results["breakdowns"]["accent"]
    else:
        key, rows = "set", [r for r in results["matrix"] if r["set"] != "all"]
    groups = list(dict.fromkeys(r[key] for r in rows))
    figs = [("wer_by_" + key + ".png", f"WER per {key} and model, with 95 % bootstrap intervals",
             wer_bars(rows, key, groups, models, f"WER per {key} (95 % interval)"))]
    if len(models) > 1:
        figs.append(("before_after.png", f"Change in WER from {baseline} to each model, per {key}",
                     before_after(rows, key, groups, models, baseline, f"{baseline} → each model, per {key}")))
    return figs


def _tables(results: dict) -> dict[str, list[Table]]:
    matrix = results["matrix"]
    sections = {"Error rates per test set": [set_table(results, matrix, "set", "WER % per test set")]}
    if len(results["models"]) > 1:
        sections["Error rates per test set"].append(delta_table(results, matrix, "set", "Δ WER against the baseline"))
    sections["Error rates per test set"] += [set_table(results, matrix, "set", "CER % per test set", "cer"),
                                             words_table(results, matrix, "set", "Words correct, words written and "
                                                                                 "empty outputs per test set"),
                                             model_table(results)]
    sections["Breakdowns"] = [breakdown_table(results, name, rows) for name, rows in results["breakdowns"].items()]
    sections["Error analysis"] = [errors_table(m, e) for m, e in results["errors"].items()]
    sections["Utterances fixed and broken"] = [
        changes_table(m, results["baseline"], ch, d) for m, ch in results["changes"].items()
        for d in ("improved", "worsened")]
    return sections


def _summary(results: dict) -> list[str]:
    rows = [r for r in results["matrix"] if r["set"] != "all"]
    lines = headline(results, "set", rows) if len(results["models"]) > 1 else []
    if "accent" in results["breakdowns"] and len(results["models"]) > 1:
        if not results.get("accent_is_set"):
            lines += headline(results, "accent", results["breakdowns"]["accent"])
    return lines


def _facts(results: dict) -> str:
    sets = ", ".join(f"{s['name']} ({s['scored_utts']} utts)" for s in results["sets"])
    skipped = sum(len(s["skipped"]) for s in results["sets"])
    not_broken = "; ".join(f"{k}: {v}" for k, v in results["not_broken_down"].items())
    return (f"Baseline: {results['baseline']}. Test sets: {sets}." + (f" Skipped (unreadable audio): {skipped}." if
            skipped else "") + (f" No breakdown by {not_broken}." if not_broken else ""))


def _markdown(results: dict, figures, sections) -> str:
    parts = ["# Model comparison", "", _facts(results), ""]
    parts += [f"- {line}" for line in _summary(results)] + [""]
    if results.get("warnings"):
        parts += ["**Warnings**", ""] + [f"- {w}" for w in results["warnings"]] + [""]
    parts += [f"![{caption}](figures/{name})\n" for name, caption, _ in figures or []]
    if figures is None:
        parts += [f"*{NO_PLOT}*", ""]
    for title, tables in sections.items():
        if tables:
            parts += [f"## {title}", ""] + [t.markdown() + "\n" for t in tables]
    if results.get("command"):
        parts += ["## Reproduce", "", "```", results["command"], "```", ""]
    return "\n".join(parts)


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.06)}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #e8e8e8;padding-bottom:4px}
h3{font-size:14px;margin:20px 0 6px;color:#333}
.facts{color:#555;font-size:14px}.summary{background:#f0f5fb;border-left:4px solid #4C72B0;padding:10px 16px;margin:16px 0}
.summary li{margin:4px 0;font-size:14px}figure{margin:16px 0}figure img{max-width:100%}
figcaption{font-size:12px;color:#666}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0 2px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:right;vertical-align:top}
th{background:#fafafa;border-bottom:2px solid #ddd}th:first-child,td:first-child{text-align:left}
td.best{font-weight:700}td.better{color:#1a7f37;font-weight:600}td.worse{color:#c0392b;font-weight:600}
td.muted{color:#888}
td.text,th.text{text-align:left;white-space:normal;min-width:150px}td{white-space:nowrap}
.note{font-size:11.5px;color:#777;margin:2px 0 12px}
details{margin:8px 0}summary{cursor:pointer;color:#4C72B0;font-size:14px}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px}
.figs{display:grid;grid-template-columns:1fr;gap:8px}.side{display:flex;flex-wrap:wrap;gap:0 28px}
"""


def _html(results: dict, figures, sections) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Model comparison</title>"
             f"<style>{CSS}</style></head><body><main>", "<h1>Model comparison</h1>",
             f"<p class='facts'>{esc(_facts(results))}</p>"]
    summary = _summary(results)
    if summary:
        parts.append("<div class='summary'><ul>" + "".join(f"<li>{esc(s)}</li>" for s in summary) + "</ul></div>")
    if results.get("warnings"):
        parts.append("<div class='summary'><b>Warnings</b><ul>" +
                     "".join(f"<li>{esc(w)}</li>" for w in results["warnings"]) + "</ul></div>")
    if figures is None:
        parts.append(f"<p class='note'>{esc(NO_PLOT)}</p>")
    parts.append("<div class='figs'>")
    for name, caption, png in figures or []:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</div>")
    for title, tables in sections.items():
        if not tables:
            continue
        parts.append(f"<h2>{esc(title)}</h2>" + ("<div class='side'>" if title == "Error analysis" else "<div>"))
        for t in tables:
            long = len(t.rows) > 12
            parts.append(f"<details><summary>{esc(t.title)} ({len(t.rows)} rows)</summary>{t.html()}</details>"
                         if long else f"<div>{t.html()}</div>")
        parts.append("</div>")
    if results.get("command"):
        parts.append(f"<h2>Reproduce</h2><pre>{esc(results['command'])}</pre>")
    parts.append("<p class='note'>Every number is also in results.json and the CSV files next to this report."
                 "</p></main></body></html>")
    return "\n".join(parts)


def write_report(results: dict, out: Path, pool) -> None:
    """Write results.json, the CSVs, figures/, report.md and report.html into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    _write_csvs(results, out, pool)
    figures = _figures(results)
    if figures is None:
        print(f"speechtl compare: {NO_PLOT}", file=sys.stderr)
    for name, _, png in figures or []:
        folder = output_path(out, "figures")  # never a link to elsewhere
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(png)
        os.replace(tmp, folder / name)
    sections = _tables(results)
    atomic_write_text(out / "report.md", _markdown(results, figures, sections))
    atomic_write_text(out / "report.html", _html(results, figures, sections))
