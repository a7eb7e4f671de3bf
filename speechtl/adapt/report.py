"""An adaptation run's result (:class:`RunResult`, ``results.json``) and how it reads to a person: the verdict
sentence, the change and routing lines, ``report.md``, and the warnings the scores call for (:func:`score_warnings`:
a gain made of deleted words, a WER near what an empty transcript scores, an interval from few speakers)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from speechtl.adapt.select import rank_key, selection_criterion
from speechtl.adapt.train import TrainResult
from speechtl.eval.caveats import SATURATED_WER, caveats, few_speakers
from speechtl.eval.mismatch import format_mismatch
from speechtl.writers import markdown_code, markdown_text

__all__ = ["RunResult", "verdict", "refused_checkpoint", "format_change", "format_routing", "render_report",
           "score_warnings", "word_columns", "format_words"]


@dataclass(frozen=True)
class RunResult:
    """What a run measured and decided; :meth:`to_json` is ``results.json`` (keys in this order)."""

    model: str
    sets: dict[str, dict]  # name -> role, manifest, before, after (error rates), change (paired bootstrap)
    target: dict | None  # the first target set's before/after/change
    source: dict | None  # the first source set's before/after/change
    labelled_minutes: float
    replay_minutes: float
    trainable_params: int
    normalizer: dict
    head: dict | None
    train: TrainResult
    skipped: list[dict]
    verdict: str
    mismatch: dict | None
    routing: dict | None
    warnings: list[str]
    seed: int
    device: str
    processes: int
    precision: str
    wall_s: float  # this invocation, plus the training time of the invocations it resumed
    command: str
    extra: dict = field(default_factory=dict)  # more top-level fields (e.g. how a recipe made its data)
    artifacts: dict | None = None  # sizes of what the run wrote (set by the main process)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["train"] = asdict(self.train)
        extra, artifacts = out.pop("extra"), out.pop("artifacts")
        return {**out, **extra, **({"artifacts": artifacts} if artifacts is not None else {})}

    @classmethod
    def from_json(cls, d: dict) -> RunResult:
        """A run's ``results.json`` read back (fields it does not know go to ``extra``)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        return cls(**{**known, "train": TrainResult(**d["train"])}, extra={k: v for k, v in d.items() if k not in names})


def _ranked_on(history: list[dict]) -> tuple[str, str]:
    """(label, history key) of the dev figure that ranked the checkpoints first."""
    return ("CER", "dev_cer") if selection_criterion(history) == "cer" else ("WER", "dev_wer")


def refused_checkpoint(history: list[dict]) -> dict | None:
    """The best checkpoint on target dev WER (the first of equals: ``best_target/``; CER first under the "cer"
    criterion) when it beat the start but was refused by the forgetting limit (None otherwise)."""
    start = next((h for h in history if h["step"] == 0 and "dev_wer" in h), None)
    if start is None:
        return None
    criterion = selection_criterion(history)
    key = (lambda h: rank_key(h, "cer")) if criterion == "cer" else (lambda h: (h["dev_wer"],))
    beat = [h for h in history if h["step"] > 0 and "alpha" not in h and "dev_wer" in h
            and key(h) < key(start) and not h["qualifies"]]
    return min(beat, key=key, default=None)


def _negative_transfer(history: list[dict], start: dict, limit: str) -> str:
    refused = refused_checkpoint(history)
    label, key = _ranked_on(history)
    if refused is None or "source_dev_wer" not in refused:
        return (f"negative transfer: no checkpoint beat the starting model's target dev {label} "
                f"{100 * start[key]:.1f}%{limit}; the starting model is returned unchanged")
    return (f"forgetting limit: checkpoints beat the starting model's target dev {label} {100 * start[key]:.1f}% "
            f"(best: step {refused['step']}, {100 * refused[key]:.1f}%) but forgot more than allowed, "
            f"source dev WER {100 * start['source_dev_wer']:.1f}% → {100 * refused['source_dev_wer']:.1f}%{limit}; "
            f"the starting model is returned unchanged")


def verdict(history: list[dict], best_step: int | None, max_forgetting: float, best_alpha: float | None = None) -> str:
    """One plain sentence on what the dev sets say the adaptation bought (the negative-transfer guard's decision):
    with the start returned, whether no checkpoint beat it or the forgetting limit refused those that did."""
    start = next((h for h in history if h["step"] == 0), None)
    if best_step is None:
        return ("no dev set: the last step's weights are returned, unchecked" if start is None else
                "no checkpoint qualified and the guard is off: the last step's weights are returned")
    chosen = next(h for h in history if h["step"] == best_step and h.get("alpha") == best_alpha)
    limit = "" if "source_dev_wer" not in chosen else f" (source forgetting limit {100 * max_forgetting:g}%)"
    asked = next((h["select_by"] for h in history if "select_by" in h), None)
    if selection_criterion(history) == "cer":
        why = ("as --select-by cer asks" if asked else
               f"the starting model's dev WER {100 * start['dev_wer']:.1f}% is saturated "
               f"(≥ {100 * SATURATED_WER:g}%, about what an empty transcript scores)")
        return _adapted(history, start, chosen, best_step, best_alpha, limit) + f"; ranked by dev CER, then WER: {why}"
    return _adapted(history, start, chosen, best_step, best_alpha, limit)


def _adapted(history: list[dict], start: dict | None, chosen: dict, best_step: int, best_alpha: float | None,
             limit: str) -> str:
    if best_step == 0:
        return _negative_transfer(history, start, limit)
    text = f"adapted: step {best_step} chosen"
    if best_alpha is not None:
        text += f", interpolated {best_alpha:g} of the way from the start (WiSE-FT)"
    text += ", target dev WER "
    text += f"{100 * start['dev_wer']:.1f}% → " if start else ""
    text += f"{100 * chosen['dev_wer']:.1f}%"
    if start and selection_criterion(history) == "cer":
        text += f", CER {100 * start['dev_cer']:.1f}% → {100 * chosen['dev_cer']:.1f}%"
    if "source_dev_wer" in chosen and start:
        text += f", source dev WER {100 * start['source_dev_wer']:.1f}% → {100 * chosen['source_dev_wer']:.1f}%{limit}"
    return text


def format_change(change: dict) -> str:
    """'+0.9 (−0.6 … +2.4)': the WER change in points and its interval."""
    return f"{100 * change['wer_delta']:+.1f} ({100 * change['low']:+.1f} … {100 * change['high']:+.1f})"


def _before_after(b: dict, a: dict, key: str, fmt: str, scale: float = 1.0) -> str:
    if key not in b or key not in a:  # results written before these figures existed
        return "–"
    return f"{scale * b[key]:{fmt}} → {scale * a[key]:{fmt}}"


def _correct(scores: dict) -> dict:
    return {"correct": scores["hits"] / max(scores["num_words"], 1)} if "hits" in scores else {}


def word_columns(before: dict, after: dict) -> tuple[str, str, str]:
    """Words correct (% of reference words), hypothesis/reference words and empty outputs (%), before → after."""
    return (_before_after(_correct(before), _correct(after), "correct", ".1f", 100),
            _before_after(before, after, "hyp_ratio", ".2f"), _before_after(before, after, "empty_share", ".0f", 100))


def format_words(before: dict, after: dict) -> str:
    """'words correct 41.2 → 55.0 % · hyp/ref words 0.98 → 0.97 · empty 0 → 0 %' (what a WER near 100 % hides)."""
    correct, ratio, empty = word_columns(before, after)
    return f"words correct {correct} % · hyp/ref words {ratio} · empty {empty} %"


def score_warnings(sets: dict) -> tuple[list[str], list[str]]:
    """(warnings, verdict phrases) from every evaluation set's before/after figures and change interval:
    :mod:`speechtl.eval.caveats`' deletion and saturation rules (verdict phrases: target sets only) and
    intervals resampled from fewer than ``MIN_SPEAKERS`` speakers."""
    warnings, phrases = [], []
    for name, s in sets.items():
        if "hits" not in s["before"]:
            continue
        warnings += caveats(f"{name} ({s['role']})", s["before"], s["after"])
        if s["role"] == "target":
            phrases += caveats(name, s["before"], s["after"], short=True)
        if s["change"].get("resampled") == "speakers":
            warnings += [w for w in [few_speakers(f"{name} ({s['role']}) WER change", s["change"].get("speakers"))] if w]
    return warnings, phrases


def format_routing(routing: dict, sets: dict) -> str:
    """One line: how the router split each evaluation set between the adapted and the start model, and what its
    out-of-distribution gate held back."""
    shares = " · ".join(f"{name} ({sets[name]['role']}) {100 * share:.0f} %" for name, share in
                        routing["routed_share"].items())
    acc = routing["train_accuracy"]
    line = (f"Routing: share served by the adapted model (the rest by the unchanged start model): {shares}; "
            f"router fitted on {routing['utterances']['target']} target / {routing['utterances']['source']} source "
            f"utterances, right on {100 * acc['target']:.0f} % / {100 * acc['source']:.0f} % of them")
    gate = routing.get("gate") or {}
    if gate.get("threshold") is None:
        return line + ("; no out-of-distribution gate" if gate else "")
    held = " · ".join(f"{name} {100 * share:.0f} %" for name, share in routing.get("abstained_share", {}).items())
    return (line + f"; the out-of-distribution gate (passes {100 * gate['keep']:.0f} % of held-out target speakers) "
            f"kept on the start model although classified target: {held or '–'}")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _rel(before: float, after: float) -> str:
    return "–" if not before else f"{100 * (after - before) / before:+.0f}%"


def _artifact_line(a: dict) -> str:
    line = f"Artifacts: full model {a['full_model_bytes'] / 1e6:.2f} MB"
    if a.get("router_bytes"):
        line += f" · router {a['router_bytes'] / 1e3:.1f} kB in `router/` (serves with the start model)"
    if a["adapter_bytes"]:
        line += (f" · adapter {a['adapter_bytes'] / 1e6:.3f} MB ({100 * a['adapter_ratio']:.1f} % of the full model) "
                 f"in `{a['adapter_dir']}/`")
    return line + (f" · {a['adapter_note']}" if a.get("adapter_note") else "")


def _set_rows(r: RunResult) -> list[str]:
    rows = []
    for name, s in r.sets.items():
        b, a = s["before"], s["after"]
        rows.append(f"| {markdown_text(name)} | {s['role']} | {_pct(b['wer'])} | {_pct(a['wer'])} | {_rel(b['wer'], a['wer'])} "
                    f"| {format_change(s['change'])} | {_pct(b['cer'])} | {_pct(a['cer'])} | {b['num_words']} | "
                    + " | ".join(word_columns(b, a)) + " |")
    return rows


def render_report(r: RunResult) -> str:
    """A short markdown table: WER/CER (%) before → after per evaluation set, then the verdict and the rest."""
    lines = [
        f"# Adaptation of {markdown_code(r.model)}",
        "",
        "| set | role | WER before | WER after | change | WER points, 95 % interval | CER before | CER after | words "
        "| words correct % | hyp/ref words | empty % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *_set_rows(r),
        "",
        "Words correct: reference words recognised; hyp/ref words: words written per reference word (below 1 the "
        "system drops words; an empty transcript scores 100 % WER); empty: outputs with no word.",
        "",
        f"Verdict: {r.verdict}.",
        "",
        f"Labelled minutes: {r.labelled_minutes:.1f} · trainable parameters: {r.trainable_params:,} · "
        f"steps: {r.train.steps} (best dev step: {r.train.best_step}) · wall time: {r.wall_s:.0f} s · "
        f"seed: {r.seed} · {r.device}/{r.precision}",
    ]
    if r.mismatch:
        lines += ["", f"Domain mismatch before adapting ({r.mismatch['target_set']} vs "
                      f"{r.mismatch['source_set']}): {format_mismatch(r.mismatch)}."]
    if r.routing:
        lines += ["", format_routing(r.routing, r.sets) + "."]
    if r.artifacts:
        lines += ["", _artifact_line(r.artifacts)]
    if r.warnings:
        lines += ["", "Warnings:", *(f"- {markdown_text(w)}" for w in r.warnings)]
    if r.skipped:
        lines += ["", f"Skipped {len(r.skipped)} unreadable file(s):"]
        lines += [f"- {markdown_text(s['set'] + '/' + s['id'])}: {markdown_text(s['reason'])}" for s in r.skipped]
    lines += ["", f"Command: {markdown_code(r.command)}", ""]
    return "\n".join(lines)
