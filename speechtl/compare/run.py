"""``speechtl compare``: models × test sets → error rates with bootstrap intervals, paired tests against a
baseline, breakdowns by manifest field, error analysis, and a report folder.

Scoring pools the utterances that every model transcribed (with ``--on-error skip`` an unreadable file
is left out for all models alike), so each comparison is paired.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechtl.compare.analysis import UttScores, error_counts, score_utterances, utterance_changes
from speechtl.compare.config import CompareConfig
from speechtl.compare.hyps import (
    Decoding, ModelSpec, TestSet, AudioCache, model_hypotheses, parse_model_spec, split_name,
)
from speechtl.config import ConfigError, config_to_dict
from speechtl.data.manifest import FIELDS, ManifestError, Utterance, read_manifest, unique_names
from speechtl.eval.caveats import deletion_gain, few_speakers, saturated
from speechtl.eval.scoring import word_figures
from speechtl.eval.stats import bootstrap_ci, cluster_ids, paired_bootstrap
from speechtl.fileio import output_path
from speechtl.runtime import pick_device, resolve_precision, set_threads
from speechtl.text import normalize

__all__ = ["CompareConfig", "run_compare", "BREAKDOWN_FIELDS", "ALL"]

BREAKDOWN_FIELDS = tuple(f for f in FIELDS if f not in ("id", "audio_path", "text", "duration_s")) + ("set",)
ALL = "all"  # the pooled row over every test set


def _test_sets(specs: list[str]) -> list[TestSet]:
    named = [split_name(s) for s in specs]
    defaults = unique_names([p for _, p in named])
    sets = []
    for (name, path), default in zip(named, defaults):
        utts = read_manifest(path)
        empty = [u.id for u in utts if not normalize(u.text)]
        if empty:
            raise ManifestError(f"{path}: utterance {empty[0]!r} has no words after normalisation; scoring needs "
                                f"words (run `speechtl check {path}`)")
        sets.append(TestSet(name or default, Path(path), tuple(utts)))
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ConfigError(f"test set names repeat: {names}")
    return sets


def _check_config(cfg: CompareConfig) -> tuple[list[ModelSpec], ModelSpec]:
    if not cfg.models or not cfg.test:
        raise ConfigError("give --models (one or more) and --test (one or more labelled manifests)")
    unknown = sorted(set(cfg.by) - set(BREAKDOWN_FIELDS))
    if unknown:
        raise ConfigError(f"--by {unknown}: not a manifest field; allowed: {list(BREAKDOWN_FIELDS)}")
    if cfg.num_bootstrap < 100:
        raise ConfigError(f"--num-bootstrap {cfg.num_bootstrap}: use at least 100 resamples")
    specs = [parse_model_spec(s) for s in cfg.models]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names repeat: {names}; name them with NAME=MODEL")
    base = cfg.baseline or cfg.models[0]
    chosen = [s for s in specs if base in (s.name, s.spec)]
    if not chosen:
        raise ConfigError(f"--baseline {base!r} is none of the models: {names}")
    return specs, chosen[0]


@dataclass
class _Pool:
    """The scored utterances of every test set in one list, with each model's per-utterance counts."""

    sets: list[str]  # test set of each utterance
    utts: list[Utterance]
    hyps: dict[str, list[str]]  # model name → raw hypothesis per utterance
    scores: dict[str, UttScores]

    def values(self, name: str) -> np.ndarray:
        return np.array(self.sets if name == "set" else [getattr(u, name) for u in self.utts], dtype=object)


def _pool(test_sets: list[TestSet], hyps: dict[str, dict[str, dict]]) -> _Pool:
    sets, utts = [], []
    for ts in test_sets:
        for u in ts.utts:
            if all(u.id in h[ts.name]["hyps"] for h in hyps.values()):
                sets.append(ts.name)
                utts.append(u)
    per_model = {m: [h[s]["hyps"][u.id] for s, u in zip(sets, utts)] for m, h in hyps.items()}
    refs = [u.text for u in utts]
    return _Pool(sets, utts, per_model, {m: score_utterances(refs, hs) for m, hs in per_model.items()})


def _rates(cfg: CompareConfig, pool: _Pool, model: str, mask: np.ndarray, clusters: np.ndarray | None) -> dict:
    s = pool.scores[model]
    kw = dict(clusters=clusters, num=cfg.num_bootstrap, seed=cfg.seed)
    wer = bootstrap_ci(s.word_errors[mask], s.words[mask], **kw)
    cer = bootstrap_ci(s.char_errors[mask], s.chars[mask], **kw)
    return {"wer": wer.value, "wer_low": wer.low, "wer_high": wer.high, "cer": cer.value, "cer_low": cer.low,
            "cer_high": cer.high, "orth_wer": s.rate("orth_words", mask), "orth_cer": s.rate("orth_chars", mask)}


def _paired(cfg: CompareConfig, pool: _Pool, model: str, baseline: str, mask, clusters) -> dict:
    """Δ = model − baseline (negative: the model makes fewer errors)."""
    m, b = pool.scores[model], pool.scores[baseline]
    kw = dict(clusters=clusters, num=cfg.num_bootstrap, seed=cfg.seed)
    w = paired_bootstrap(b.word_errors[mask], m.word_errors[mask], m.words[mask], **kw)
    c = paired_bootstrap(b.char_errors[mask], m.char_errors[mask], m.chars[mask], **kw)
    return {"delta_wer": w.delta, "delta_wer_low": w.low, "delta_wer_high": w.high, "p_value": w.p_value,
            "delta_cer": c.delta, "delta_cer_low": c.low, "delta_cer_high": c.high, "p_value_cer": c.p_value}


def _group_rows(cfg, pool: _Pool, models: list[str], baseline: str, mask: np.ndarray, by_speaker: bool) -> list[dict]:
    """One row per model for the utterances in ``mask``: rates with intervals and the paired test."""
    speakers = [pool.utts[i].speaker for i in np.flatnonzero(mask)]
    use_speakers = by_speaker and any(speakers)
    clusters = cluster_ids(speakers) if use_speakers else None
    base = {"num_utts": int(mask.sum()), "num_words": int(pool.scores[baseline].words[mask].sum()),
            "num_chars": int(pool.scores[baseline].chars[mask].sum()),
            "num_speakers": len(set(speakers)) if any(speakers) else None,
            "resampled": "speakers" if use_speakers else "utterances"}
    rows = []
    for m in models:
        row = {"model": m, **base, **_rates(cfg, pool, m, mask, clusters)}
        if m != baseline:
            row.update(_paired(cfg, pool, m, baseline, mask, clusters))
        sc = pool.scores[m]  # what a WER near 100 % hides: words right, words written, empty outputs
        row.update(word_figures(sc.hits[mask], sc.hyp_words[mask], sc.words[mask].sum()))
        rows.append(row)
    return rows


def score_warnings(matrix: list[dict], breakdowns: dict[str, list[dict]], baseline: str) -> list[str]:
    """:mod:`speechtl.eval.caveats` on the report: per test set, a model's gain over the baseline made of deleted
    words and a WER near what an empty transcript scores; per group (sets and breakdowns), intervals resampled
    from few speakers."""
    warnings = []
    for name, rows in [("set", matrix)] + list(breakdowns.items()):
        for row in (r for r in rows if r["model"] == baseline and r["resampled"] == "speakers"):
            warnings.append(few_speakers(f"{name} {row[name]} (intervals)", row["num_speakers"]))
    base = {r["set"]: r for r in matrix if r["model"] == baseline}
    for row in matrix:
        label = f"set {row['set']}, {row['model']}"
        if row["model"] != baseline:
            warnings.append(deletion_gain(f"{label} vs {baseline}", base[row["set"]], row))
        warnings.append(saturated(label, row))
    return [w for w in warnings if w]


def _matrix(cfg, pool: _Pool, models, baseline, set_names, entries) -> list[dict]:
    rows, sets = [], np.array(pool.sets, dtype=object)
    for name in set_names + ([ALL] if len(set_names) > 1 else []):
        mask = np.ones(len(sets), bool) if name == ALL else sets == name
        for row in _group_rows(cfg, pool, models, baseline, mask, by_speaker=True):
            used = set_names if name == ALL else [name]
            compute = sum(entries[row["model"]][s]["compute_s"] for s in used)
            audio = sum(entries[row["model"]][s]["audio_s"] for s in used)
            rows.append({"set": name, **row, "audio_s": audio, "rtf": compute / max(audio, 1e-9)})
    return rows


def _breakdowns(cfg, pool: _Pool, models, baseline) -> tuple[dict[str, list[dict]], dict[str, str]]:
    out, skipped = {}, {}
    for name in cfg.by:
        values = pool.values(name)
        distinct = list(dict.fromkeys(v for v in values if v))  # in the order of the test sets
        if name == "speaker":
            distinct.sort()
        if len(distinct) < 2:
            skipped[name] = f"one value ({distinct[0]})" if distinct else "not in the manifests"
            continue
        out[name] = [{name: v, **row} for v in distinct
                     for row in _group_rows(cfg, pool, models, baseline, values == v, by_speaker=name != "speaker")]
    return out, skipped


def _examples(pool: _Pool, idx: np.ndarray, model: str, baseline: str, top: int) -> list[dict]:
    b, m = pool.scores[baseline], pool.scores[model]
    return [{"set": pool.sets[i], "id": pool.utts[i].id, "reference": normalize(pool.utts[i].text),
             "baseline": normalize(pool.hyps[baseline][i]), "hypothesis": normalize(pool.hyps[model][i]),
             "baseline_errors": int(b.word_errors[i]), "errors": int(m.word_errors[i]), "words": int(m.words[i])}
            for i in idx[:top]]


def _analysis(cfg, pool: _Pool, models, baseline) -> tuple[dict, dict]:
    refs = [u.text for u in pool.utts]
    errors = {m: dataclasses.asdict(error_counts(refs, pool.hyps[m], cfg.top)) for m in models}
    changes = {}
    for m in models:
        if m == baseline:
            continue
        ch = utterance_changes(pool.scores[baseline].word_errors, pool.scores[m].word_errors)
        counts = {k: int(len(v)) for k, v in ch.items()}
        counts["same"] = len(pool.utts) - counts["improved"] - counts["worsened"]
        changes[m] = {"counts": counts, "improved": _examples(pool, ch["improved"], m, baseline, cfg.top),
                      "worsened": _examples(pool, ch["worsened"], m, baseline, cfg.top)}
    return errors, changes


def _decode_all(cfg: CompareConfig, specs: list[ModelSpec], test_sets: list[TestSet]) -> dict[str, dict]:
    set_threads(cfg.threads)
    device = pick_device(cfg.device or None)
    decoding = Decoding(cfg.batch_seconds, resolve_precision(cfg.precision, device), str(device), cfg.route)
    cache = Path(cfg.cache) if cfg.cache else output_path(cfg.out, "cache")  # never a link out of --out
    audio = AudioCache(cfg.on_error, progress=not cfg.quiet)
    entries = {}
    for spec in specs:
        entries[spec.name] = model_hypotheses(spec, test_sets, cache, decoding, audio, progress=not cfg.quiet)
        decoded = [s for s, e in entries[spec.name].items() if not e["cached"]]
        if not cfg.quiet:
            done = "decoded " + ", ".join(decoded) if decoded else "all from the cache"
            print(f"{spec.name}: {done}", file=sys.stderr)
    return entries


def _routing(entries: dict[str, dict]) -> dict:
    """A routed or combined model's shares per test set (who served what): {"routing": {set: shares}}, or {}."""
    shares = {name: e["routing"] for name, e in entries.items() if "routing" in e}
    return {"routing": shares} if shares else {}


def command_line(cfg: CompareConfig) -> str:
    """The ``speechtl compare`` command that reproduces ``cfg`` (fields that differ from the defaults)."""
    parts, default = ["speechtl compare"], CompareConfig()
    for f in dataclasses.fields(CompareConfig):
        value = getattr(cfg, f.name)
        if value == getattr(default, f.name) or f.name == "quiet":
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            line = " ".join([flag] + [shlex.quote(str(v)) for v in value])
            parts.append(line if len(line) < 90 else (" \\\n" + " " * (len(flag) + 5)).join(
                [f"{flag} {shlex.quote(str(value[0]))}"] + [shlex.quote(str(v)) for v in value[1:]]))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " \\\n    ".join(parts)


def run_compare(cfg: CompareConfig) -> dict:
    """Decode (or reuse cached hypotheses), score, test, and write the report folder; returns the results."""
    from speechtl.compare.report import write_report

    start = time.perf_counter()
    specs, baseline = _check_config(cfg)
    test_sets = _test_sets(cfg.test)
    entries = _decode_all(cfg, specs, test_sets)
    pool = _pool(test_sets, entries)
    if not pool.utts:
        raise ConfigError("no utterance was transcribed by every model; nothing to compare")
    models, set_names = [s.name for s in specs], [t.name for t in test_sets]
    breakdowns, not_broken_down = _breakdowns(cfg, pool, models, baseline.name)
    errors, changes = _analysis(cfg, pool, models, baseline.name)
    first = {m: next(iter(e.values())) for m, e in entries.items()}
    results = {
        "command": command_line(cfg), "config": config_to_dict(cfg), "baseline": baseline.name,
        "models": [{"name": s.name, "spec": s.spec, "base": s.base, "adapter": s.adapter,
                    "params": first[s.name]["params"], "decoded": [k for k, e in entries[s.name].items()
                                                                  if not e["cached"]],
                    **_routing(entries[s.name])} for s in specs],
        "sets": [{"name": t.name, "manifest": str(t.manifest), "num_utts": len(t.utts),
                  "scored_utts": pool.sets.count(t.name),
                  "skipped": entries[baseline.name][t.name]["skipped"]} for t in test_sets],
        "matrix": _matrix(cfg, pool, models, baseline.name, set_names, entries),
        "breakdowns": breakdowns, "not_broken_down": not_broken_down, "errors": errors, "changes": changes,
        "num_bootstrap": cfg.num_bootstrap, "seed": cfg.seed,
        # each test set is one accent (and vice versa): the accent breakdown repeats the per-set rows
        "accent_is_set": len(set(zip(pool.sets, pool.values("accent")))) == len(set(pool.sets)) ==
        len(set(pool.values("accent"))),
    }
    results["warnings"] = score_warnings(results["matrix"], breakdowns, baseline.name)
    for w in results["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    results["wall_s"] = round(time.perf_counter() - start, 1)
    write_report(results, Path(cfg.out), pool)
    return results
