"""The report's tables, built once from the results and rendered as Markdown or HTML.

A cell carries its text and a style tag: ``best`` (lowest WER in its row), ``better`` / ``worse``
(a significant paired difference against the baseline), ``muted`` (not significant) or ``""``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from speechtl.eval.caveats import deletion_gain, saturated
from speechtl.eval.stats import SIGNIFICANT
from speechtl.writers import markdown_text

__all__ = ["Table", "pct", "p_text", "set_table", "delta_table", "words_table", "model_table", "breakdown_table",
           "errors_table", "changes_table", "headline"]


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[tuple[str, str]]] = field(default_factory=list)  # (text, style)
    note: str = ""

    def markdown(self) -> str:
        def cell(text: str, style: str) -> str:
            text = markdown_text(text)
            return f"**{text}**" if style in ("best", "better", "worse") and text else text

        title = markdown_text(self.title)
        if not self.rows:
            return "\n".join([f"### {title}", ""] + ([self.note] if self.note else []))
        lines = [f"### {title}", "", "| " + " | ".join(markdown_text(h) for h in self.headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|"]
        lines += ["| " + " | ".join(cell(t, s) for t, s in row) + " |" for row in self.rows]
        return "\n".join(lines + ([f"\n{self.note}"] if self.note else []))

    def html(self) -> str:
        text_cols = {k for k, (_, style) in enumerate(self.rows[0]) if style == "text"} if self.rows else set()
        head = "".join(f"<th{' class=text' if k in text_cols else ''}>{html.escape(h)}</th>"
                       for k, h in enumerate(self.headers))
        body = "".join("<tr>" + "".join(f'<td class="{s}">{html.escape(t)}</td>' for t, s in row) + "</tr>"
                       for row in self.rows)
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        if not self.rows:
            return f"<h3>{html.escape(self.title)}</h3>{note}"
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return f"<h3>{html.escape(self.title)}</h3>{table}{note}"


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def p_text(p: float, num_bootstrap: int) -> str:
    floor = 2 / (num_bootstrap + 1)  # the smallest p the paired bootstrap gives
    return f"≤{floor:.3f}" if p <= floor * 1.0000001 else f"{p:.3f}"


def _interval(r: dict, key: str = "wer") -> str:
    return f"{pct(r[key])} ({pct(r[key + '_low'])}–{pct(r[key + '_high'])})"


def _delta(r: dict, num_bootstrap: int) -> tuple[str, str]:
    text = (f"{100 * r['delta_wer']:+.1f} ({100 * r['delta_wer_low']:+.1f}, {100 * r['delta_wer_high']:+.1f}) "
            f"p {p_text(r['p_value'], num_bootstrap)}")
    if r["p_value"] >= SIGNIFICANT:
        return text, "muted"
    return text, "better" if r["delta_wer"] < 0 else "worse"


def _grid(rows: list[dict], key: str) -> tuple[list[str], list[str], dict]:
    groups = list(dict.fromkeys(r[key] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    return groups, models, {(r[key], r["model"]): r for r in rows}


def set_table(results: dict, rows: list[dict], key: str, title: str, metric: str = "wer") -> Table:
    """Rows = groups (test sets or field values), columns = models: rate % [95 % interval]; best in bold."""
    groups, models, at = _grid(rows, key)
    t = Table(title, [key, "utts", "words"] + models)
    for g in groups:
        first = at[(g, models[0])]
        best = min(at[(g, m)][metric] for m in models)
        t.rows.append([(str(g), ""), (f"{first['num_utts']:,}", ""), (f"{first['num_words']:,}", "")] +
                      [(_interval(at[(g, m)], metric), "best" if at[(g, m)][metric] == best and len(models) > 1 else "")
                       for m in models])
    resampled = sorted({r["resampled"] for r in rows})
    t.note = (f"{metric.upper()} % on normalised text, 95 % bootstrap interval ({results['num_bootstrap']} resamples "
              f"of {' / '.join(resampled)}, seed {results['seed']}); lowest in bold.")
    return t


def delta_table(results: dict, rows: list[dict], key: str, title: str) -> Table:
    """Δ WER (points) of each model against the baseline with its 95 % interval and two-sided p-value."""
    groups, models, at = _grid(rows, key)
    others = [m for m in models if m != results["baseline"]]
    t = Table(title, [key, "words"] + [f"{m} − {results['baseline']}" for m in others])
    for g in groups:
        t.rows.append([(str(g), ""), (f"{at[(g, models[0])]['num_words']:,}", "")] +
                      [_delta(at[(g, m)], results["num_bootstrap"]) for m in others])
    t.note = (f"WER points, paired bootstrap over the same resamples; bold: p < {SIGNIFICANT:g} "
              f"(negative = fewer errors than {results['baseline']}).")
    return t


def _correct(r: dict) -> str:
    return pct(r["hits"] / max(r["num_words"], 1))


def words_table(results: dict, rows: list[dict], key: str, title: str) -> Table:
    """What a WER near 100 % hides, per group and model: words correct %, hypothesis/reference words, empty %."""
    groups, models, at = _grid(rows, key)
    t = Table(title, [key, "words"] + models)
    for g in groups:
        t.rows.append([(str(g), ""), (f"{at[(g, models[0])]['num_words']:,}", "")] +
                      [(f"{_correct(r)} · {r['hyp_ratio']:.2f} · {pct(r['empty_share'])}", "")
                       for r in (at[(g, m)] for m in models)])
    t.note = ("Each cell: words correct % (reference words recognised) · hypothesis/reference words (below 1 the "
              "model drops words) · empty outputs %. An empty transcript scores 100 % WER: a WER near it with few "
              "words correct says nothing about recognition.")
    return t


def model_table(results: dict) -> Table:
    """One row per model over every test set: rates normalised and orthographic, RTF, parameters."""
    pooled = [r for r in results["matrix"] if r["set"] == results["matrix"][-1]["set"]]
    t = Table("Models (all test sets pooled)", ["model", "parameters", "WER %", "CER %", "orth. WER %",
                                                  "orth. CER %", "RTF", "decoded now", "words correct %",
                                                  "hyp/ref words", "empty %"])
    params = {m["name"]: m for m in results["models"]}
    for r in pooled:
        m = params[r["model"]]
        t.rows.append([(r["model"] + (" (baseline)" if r["model"] == results["baseline"] else ""), ""),
                       (f"{m['params'] / 1e6:.2f} M" if m["params"] >= 1e5 else f"{m['params']:,}", ""),
                       (_interval(r), ""), (_interval(r, "cer"), ""),
                       (pct(r["orth_wer"]), ""), (pct(r["orth_cer"]), ""), (f"{r['rtf']:.4f}", ""),
                       (f"{len(m['decoded'])} set(s)" if m["decoded"] else "no (cache)", ""),
                       (_correct(r), ""), (f"{r['hyp_ratio']:.2f}", ""), (pct(r["empty_share"]), "")])
    t.note = ("orth. = raw transcripts split on whitespace, case and punctuation kept; RTF = decoding seconds per "
              "audio second, measured when the hypotheses were made (cached ones keep their first RTF).")
    return t


def breakdown_table(results: dict, name: str, rows: list[dict]) -> Table:
    groups, models, at = _grid(rows, name)
    baseline = results["baseline"]
    t = Table(f"WER % by {name}", [name, "utts", "words"] + models)
    for g in groups:
        first = at[(g, models[0])]
        cells = [(str(g), ""), (f"{first['num_utts']:,}", ""), (f"{first['num_words']:,}", "")]
        for m in models:
            r = at[(g, m)]
            if m == baseline:
                cells.append((_interval(r), ""))
                continue
            text, style = _delta(r, results["num_bootstrap"])
            cells.append((f"{_interval(r)}, Δ {text.split(' (')[0]}", style))
        t.rows.append(cells)
    t.note = (f"Δ: WER points against {baseline}; bold: paired bootstrap p < {SIGNIFICANT:g}. "
              f"Intervals resample {rows[0]['resampled']}.")
    return t


def errors_table(model: str, errors: dict) -> Table:
    subs = [f"{r} → {h} ×{n}" for r, h, n in errors["substitutions"]]
    ins = [f"+{w} ×{n}" for w, n in errors["insertions"]]
    dels = [f"−{w} ×{n}" for w, n in errors["deletions"]]
    tot = errors["totals"]
    t = Table(f"{model}: most frequent word errors",
              [f"substitutions ({tot['substitutions']:,})", f"insertions ({tot['insertions']:,})",
               f"deletions ({tot['deletions']:,})"])
    for k in range(max(len(subs), len(ins), len(dels))):
        t.rows.append([(col[k] if k < len(col) else "", "text") for col in (subs, ins, dels)])
    return t


def changes_table(model: str, baseline: str, change: dict, direction: str) -> Table:
    c = change["counts"]
    t = Table(f"{model} vs {baseline}: most {direction} utterances",
              ["set / id", "errors", "reference", baseline, model])
    for e in change[direction]:
        t.rows.append([(f"{e['set']} / {e['id']}", ""), (f"{e['baseline_errors']} → {e['errors']} of {e['words']}",
                                                          "better" if direction == "improved" else "worse"),
                       (e["reference"], "text"), (e["baseline"], "text"), (e["hypothesis"], "text")])
    t.note = (f"{c['improved']} utterances improved ({c['fixed']} fixed: no error left), {c['worsened']} worsened "
              f"({c['broken']} broken: had no error), {c['same']} unchanged in word errors.")
    return t


def headline(results: dict, key: str, rows: list[dict]) -> list[str]:
    """One sentence per group: the best model, its WER and whether it differs from the baseline."""
    groups, models, at = _grid(rows, key)
    baseline, out = results["baseline"], []
    for g in groups:
        best = min(models, key=lambda m: at[(g, m)]["wer"])
        r, b = at[(g, best)], at[(g, baseline)]
        if best == baseline:
            out.append(f"{g}: {baseline} is best ({pct(b['wer'])} % WER, {b['num_words']:,} words).")
            continue
        sig = "significant" if r["p_value"] < SIGNIFICANT else "not significant"
        cautions = [c for c in (deletion_gain(str(g), b, r, short=True), saturated(best, r, short=True)) if c]
        out.append(f"{g}: {best} is best, {pct(r['wer'])} % WER vs {pct(b['wer'])} % for {baseline} "
                   f"(Δ {100 * r['delta_wer']:+.1f} points, 95 % interval {100 * r['delta_wer_low']:+.1f} to "
                   f"{100 * r['delta_wer_high']:+.1f}, p {p_text(r['p_value'], results['num_bootstrap'])}, {sig}; "
                   f"{b['num_words']:,} words)." + (f" Caution: {'; '.join(cautions)}." if cautions else ""))
    return out
