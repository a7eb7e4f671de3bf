"""An adaptation run: evaluate before → adapt → evaluate after → one folder with model and results.

The run folder holds the adapted model and processor (``save_pretrained``; loadable by
``transformers.pipeline("automatic-speech-recognition", model=folder)``), ``run_config.json``,
``results.json`` (WER/CER as fractions before and after on every evaluation set), per-utterance
hypotheses under ``hyps/`` and a short ``report.md``. Strategies ``lora`` and ``adapter`` also write the small
``adapter/`` folder (:mod:`speechtl.models.adapter`; not when the guard returned the starting model), and
``results.json`` records the artifact sizes and the domain-mismatch score measured before training
(:mod:`speechtl.eval.mismatch`, when source audio is given). While training it also holds ``checkpoint/``
(for ``--resume``) and ``best/``; both are removed when the run finishes.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState

from speechtl.config import ConfigError
from speechtl.adapt.train import BEST, BEST_TARGET, CHECKPOINT, TrainConfig, train
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import Utterance, add_durations, read_manifest, sample_minutes, total_minutes, unique_names
from speechtl.decode import uses_attention_mask
from speechtl.eval import EvalResult, evaluate, set_text_language, write_hypotheses
from speechtl.eval.bootstrap import paired_bootstrap
from speechtl.fileio import UMASK, atomic_write_json, atomic_write_text
from speechtl.eval.mismatch import format_mismatch, mismatch_score, sample_stats
from speechtl.models import load_model
from speechtl.models.adapter import ADAPTER_DIR, ADAPTER_STRATEGIES, base_fingerprint, capture_adapter, folder_bytes, \
    save_adapter, weights_bytes
from speechtl.models.head import adapt_vocabulary
from speechtl.models.router import ROUTER_DIR, RoutedCTC, fit_router, read_router_meta, save_router, weights_digest
from speechtl.runtime import resolve_precision, set_threads
from speechtl.text import find_oov, normalize, text_rules, text_to_model_alphabet
from speechtl.errors import SpeechtlError

__all__ = ["AdaptConfig", "run_adaptation", "labels_for", "format_change", "format_routing", "VocabularyError"]


@dataclass
class AdaptConfig:
    model: str = "speechtl/en-us-synth"  # folder, hub id (e.g. facebook/wav2vec2-base-960h) or shipped model
    train: str = ""  # labelled target-domain training manifest (.jsonl or .csv)
    dev: str = ""  # target dev manifest: picks the best checkpoint, early stopping
    test: list[str] = field(default_factory=list)  # target evaluation manifest(s)
    source_test: str = ""  # source-domain evaluation manifest, to measure forgetting
    source_dev: str = ""  # source-domain dev manifest: checkpoints forgetting more than --max-forgetting are refused
    replay: str = ""  # labelled source-domain manifest mixed into training (fights forgetting)
    replay_ratio: float = 1.0  # replay minutes per labelled target minute (speaker-stratified sample)
    route: str = ""  # source-accent audio (manifest, transcripts not needed): serve source-like utterances with the unchanged start model (speechtl.models.router)
    route_minutes: float = 30.0  # at most this many minutes of the --route audio (speaker-stratified sample)
    out: str = "runs/adapt"  # run folder
    resume: bool = False  # continue an interrupted run from out/checkpoint
    on_error: str = "fail"  # unreadable audio: fail (stop, naming the file) or skip (leave out, list in results)
    eval_batch_seconds: float = 120.0  # padded audio seconds per evaluation batch
    language: str = ""  # target text language: picks the normaliser (de, es, fr, sv, ...; default: the model's, else en)
    vocab: str = "keep"  # CTC head: keep | copy (shared rows copied) | random (new head) | extend (source rows + new chars)
    mismatch_utts: int = 100  # utterances per side for the domain-mismatch score before adapting (0: off)
    training: TrainConfig = field(default_factory=TrainConfig)


class VocabularyError(SpeechtlError, ValueError):
    """Transcripts contain characters the model cannot output."""


def labels_for(utts: list[Utterance], tokenizer, language: str | None = None) -> list[list[int]]:
    """Token ids of the normalised transcripts, in the model's letter case."""
    vocab = tokenizer.get_vocab()
    return [tokenizer(text_to_model_alphabet(normalize(u.text, language), vocab)).input_ids for u in utts]


def _check_transcripts(sets: dict[str, list[Utterance]], tokenizer, model_name: str, language: str | None) -> None:
    """Before any work: every transcript has words after normalisation, and the model can spell it."""
    vocab = tokenizer.get_vocab()
    for name, utts in sets.items():
        empty = next((u for u in utts if not normalize(u.text, language)), None)
        if empty is not None:
            raise VocabularyError(f"{name}: utterance {empty.id!r} has no words after normalisation: {empty.text!r}")
        report = find_oov([(u.id, u.text) for u in utts], vocab, language)
        if report:
            raise VocabularyError(
                f"{name}: {report.describe()}. The model {model_name!r} cannot write these; they would be "
                f"trained and scored as <unk>. Fix the transcripts, or give the model a head for the new "
                f"alphabet (--vocab copy or extend, with --language)."
            )


def _set_names(cfg: AdaptConfig) -> dict[str, tuple[str, str]]:
    """Evaluation set name -> (role, manifest path); names come from the manifest paths."""
    entries = [("target", p) for p in cfg.test] + ([("source", cfg.source_test)] if cfg.source_test else [])
    names = unique_names([p for _, p in entries])
    return {name: entry for name, entry in zip(names, entries)}


def _scores(result: EvalResult) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in result.summary().items()}


def _change(before: EvalResult, after: EvalResult, utts: list[Utterance]) -> dict:
    """After − before WER on the same utterances (fractions), with a 95 % paired bootstrap interval over speakers
    (utterances when the manifest names none): is the change more than the test set's noise?"""
    speaker = {u.id: u.speaker for u in utts}
    d = paired_bootstrap([r["reference"] for r in before.rows], [r["hypothesis"] for r in before.rows],
                         [r["hypothesis"] for r in after.rows], speakers=[speaker[r["id"]] for r in before.rows])
    return {"wer_delta": round(d.delta, 6), "low": round(d.low, 6), "high": round(d.high, 6), "level": d.level,
            "resampled": "speakers" if any(speaker.values()) else "utterances"}


def format_change(change: dict) -> str:
    """'+0.9 (−0.6 … +2.4)': the WER change in points and its interval."""
    return f"{100 * change['wer_delta']:+.1f} ({100 * change['low']:+.1f} … {100 * change['high']:+.1f})"


def _too_short(model, utts, audio, labels) -> list[str]:
    """CTC needs at least one output frame per label (more for repeated letters): such utterances teach nothing."""
    frames = model._get_feat_extract_output_lengths(torch.tensor([len(a) for a in audio])).tolist()
    bad = [u.id for u, f, lab in zip(utts, frames, labels)
           if f < len(lab) + sum(a == b for a, b in zip(lab, lab[1:]))]
    if not bad:
        return []
    msg = (f"{len(bad)} training utterance(s) are too short for their transcripts at the model's frame rate "
           f"and will be ignored by the CTC loss (e.g. {', '.join(bad[:5])}); check audio/transcript pairing")
    print(f"warning: {msg}", file=sys.stderr)
    return [msg]


def _load_data(cfg: AdaptConfig, tokenizer, progress: bool, language: str | None):
    """Read every manifest, check transcripts, decode all audio once. Returns (utts, audio, skipped) by set name."""
    named = {"train": cfg.train, **({"dev": cfg.dev} if cfg.dev else {}),
             **({"source_dev": cfg.source_dev} if cfg.source_dev else {}),
             **({"replay": cfg.replay} if cfg.replay else {}),
             **{name: path for name, (_, path) in _set_names(cfg).items()}}
    utts = {name: read_manifest(path) for name, path in named.items()}
    _check_transcripts(utts, tokenizer, cfg.model, language)
    audio, skipped = {}, []
    if cfg.route:  # audio only: the router learns what source speech sounds like, not what it says
        named["route"], utts["route"] = cfg.route, read_manifest(cfg.route, require_text=False)
    # sample large source sets from headers first: they are never decoded whole
    target_minutes = total_minutes(add_durations(utts["train"], "skip")[0]) if cfg.replay else 0.0
    for name, minutes in (("replay", cfg.replay_ratio * target_minutes), ("route", cfg.route_minutes)):
        if name in utts:
            kept, bad = add_durations(utts[name], cfg.on_error)
            skipped += [{"id": i, "audio_path": "", "reason": r, "set": name} for i, r in bad]
            utts[name] = sample_minutes(kept, minutes, cfg.training.seed)
    for name in utts:
        utts[name], audio[name], bad = load_utterance_audio(utts[name], cfg.on_error, progress, f"loading {name}")
        skipped += [dict(s, set=name) for s in bad]
        if not utts[name]:
            raise ConfigError(f"{named[name]}: no readable audio left ({len(bad)} file(s) skipped)")
    for s in skipped:
        print(f"skipped {s['set']}/{s['id']}: {s['reason']}", file=sys.stderr)
    return utts, audio, skipped


def run_adaptation(cfg: AdaptConfig, progress: bool = True, extra: dict | None = None) -> dict:
    """Evaluate, adapt and evaluate again; write the run folder and return ``results.json``'s content.

    ``extra``: more top-level fields for results.json (e.g. how a recipe made its data). Under
    ``accelerate launch`` every process trains its shard; only the main process writes files.
    """
    start = time.perf_counter()
    out = Path(cfg.out)
    if not cfg.train:
        raise ConfigError("a training manifest is needed (--train)")
    if not cfg.test and not cfg.dev:
        raise ConfigError("give at least one evaluation set (--test or --dev)")
    if cfg.training.distill and not cfg.replay:
        raise ConfigError("--distill keeps the outputs on source replay audio: give --replay too")
    if cfg.route and cfg.vocab != "keep":
        raise ConfigError("--route serves some utterances with the start model: the adapted model must keep its "
                          f"vocabulary (--vocab keep, got {cfg.vocab!r})")
    state = PartialState(cpu=cfg.training.cpu)  # this process's device, also under accelerate launch / torchrun
    set_threads(cfg.training.threads)  # before the first evaluation: bf16 results differ slightly by thread count
    model, processor = load_model(cfg.model)
    if isinstance(model, RoutedCTC):
        raise ConfigError(f"{cfg.model!r} is a routed run folder (base + adapted model): adapt its base model "
                          f"{read_router_meta(cfg.model)['base_model']!r} again, or the adapted model alone "
                          f"(copy the folder without router/)")
    # an adapter artifact applies to the base's vocabulary: with a new CTC head (--vocab ≠ keep) only the full model
    keeps_adapter = cfg.training.strategy in ADAPTER_STRATEGIES and cfg.vocab == "keep"
    fingerprint = base_fingerprint(model, processor) if keeps_adapter else None
    language = set_text_language(model, cfg.language)  # saved with the model: scoring uses the same normaliser
    processor, head = adapt_vocabulary(model, processor, [u.text for u in read_manifest(cfg.train)], cfg.vocab,
                                       language, cfg.training.seed)
    utts, audio, skipped = _load_data(cfg, processor.tokenizer, progress and state.is_main_process, language)
    model.to(state.device)
    precision = resolve_precision(cfg.training.precision, state.device)
    eval_sets = _set_names(cfg)
    mismatch = _mismatch(cfg, model, processor, audio, eval_sets, precision)

    def score_all(when: str, net) -> dict[str, EvalResult]:
        scores = {}
        for name in eval_sets:
            r = evaluate(net, processor, utts[name], cfg.eval_batch_seconds, precision,
                         progress and state.is_main_process, audio[name], desc=f"{when}: {name}")
            if state.is_main_process:
                write_hypotheses(r, out / "hyps" / f"{name}.{when}.tsv")
            if isinstance(net, RoutedCTC):  # a fresh one: it has seen only this run's sets
                routing["routed_share"][name] = net.pop_share()
            scores[name] = r
        return scores

    before = score_all("before", model)
    base, router, routing = _fit_router(cfg, model, processor, audio, precision) if cfg.route else (None, None, None)
    pass_mask = uses_attention_mask(processor)
    train_utts, train_audio = utts["train"] + utts.get("replay", []), audio["train"] + audio.get("replay", [])
    labels = labels_for(train_utts, processor.tokenizer, language)
    warnings = _too_short(model, train_utts, train_audio, labels) + _router_warning(routing)
    adapters = []  # the trained adapter, captured before LoRA is merged
    result = train(
        model, processor, train_utts, labels, out, cfg.training,
        train_audio=train_audio, dev_utts=utts.get("dev", ()), dev_audio=audio.get("dev"),
        source_dev_utts=utts.get("source_dev", ()), source_dev_audio=audio.get("source_dev"),
        resume=cfg.resume, progress=progress,
        distill=[False] * len(utts["train"]) + [True] * len(utts.get("replay", [])),
        on_finish=(lambda m: adapters.append(capture_adapter(m, cfg.training.strategy))) if keeps_adapter else None,
        score_with=(lambda m: RoutedCTC(base, m, router, pass_mask)) if router is not None else None,
    )
    model.to(state.device)
    after = score_all("after", RoutedCTC(base, model, router, pass_mask) if router is not None else model)

    sets = {name: {"role": role, "manifest": str(path), "before": _scores(before[name]), "after": _scores(after[name]),
                   "change": _change(before[name], after[name], utts[name])}
            for name, (role, path) in eval_sets.items()}
    first = {role: next(({k: s[k] for k in ("before", "after", "change")} for s in sets.values()
                         if s["role"] == role), None) for role in ("target", "source")}
    results = {
        "model": cfg.model,
        "sets": sets,
        **first,
        "labelled_minutes": round(total_minutes(utts["train"]), 3),
        "replay_minutes": round(total_minutes(utts.get("replay", [])), 3),
        "trainable_params": result.trainable_params,
        "normalizer": asdict(text_rules(language)),
        "head": head,
        "train": asdict(result),
        "skipped": skipped,
        "verdict": verdict(result.history, result.best_step, cfg.training.max_forgetting, result.best_alpha),
        "mismatch": mismatch,
        "routing": routing,
        "warnings": warnings,
        "seed": cfg.training.seed,
        "device": str(state.device),
        "processes": state.num_processes,
        "precision": precision,
        "wall_s": round(time.perf_counter() - start, 1),
        "command": " ".join(sys.argv),
        **(extra or {}),
    }
    if state.is_main_process:
        save_model(model, processor, out)
        results["artifacts"] = _write_adapter(out, cfg.model, adapters[0] if adapters else None, fingerprint, result)
        shutil.rmtree(out / ROUTER_DIR, ignore_errors=True)  # never leave an older run's router behind
        if router is not None:
            save_router(router, out / ROUTER_DIR, cfg.model, weights_digest(base), routing)
            results["artifacts"]["router_bytes"] = folder_bytes(out / ROUTER_DIR)
        atomic_write_json(out / "run_config.json", asdict(cfg))
        atomic_write_json(out / "results.json", results)
        atomic_write_text(out / "report.md", render_report(results))
        for folder in (CHECKPOINT, BEST, BEST_TARGET):
            shutil.rmtree(out / folder, ignore_errors=True)
    state.wait_for_everyone()
    return results


def _fit_router(cfg: AdaptConfig, model, processor, audio: dict, precision: str):
    """A frozen copy of the start model, the router fitted on its pooled states (target = the labelled training
    audio, source = the --route audio) and the routing figures for results.json."""
    base = copy.deepcopy(model).eval()
    base.requires_grad_(False)
    pooled = {name: sample_stats(base, processor, audio[name], cfg.eval_batch_seconds, precision).pooled["final"]
              for name in ("train", "route")}
    router = fit_router(pooled["train"], pooled["route"]).to(next(model.parameters()).device)
    with torch.no_grad():
        hits = {name: router(torch.from_numpy(x).to(router.mean.device)).float().mean().item()
                for name, x in pooled.items()}
    routing = {"source_set": cfg.route, "utterances": {"target": len(audio["train"]), "source": len(audio["route"])},
               "train_accuracy": {"target": round(hits["train"], 4), "source": round(1 - hits["route"], 4)},
               "routed_share": {}}  # per evaluation set: share of utterances the adapted model served
    return base, router, routing


ROUTER_MIN_ACCURACY = 0.9  # below this on its own training audio, a router cannot tell the accents apart


def _router_warning(routing: dict | None) -> list[str]:
    if routing is None or min(routing["train_accuracy"].values()) >= ROUTER_MIN_ACCURACY:
        return []
    acc = routing["train_accuracy"]
    msg = (f"the router tells the accents apart on only {100 * acc['target']:.0f} % of the target and "
           f"{100 * acc['source']:.0f} % of the source utterances it was fitted on: the two may be too close to "
           f"route, and misrouted utterances get the other model; compare with a run without --route")
    print(f"warning: {msg}", file=sys.stderr)
    return [msg]


def _mismatch(cfg: AdaptConfig, model, processor, audio: dict, eval_sets: dict, precision: str) -> dict | None:
    """Domain-mismatch score of all target audio (transcripts unused) against held-out source audio (source dev
    and test sets; the replay set when there is neither)."""
    roles = {name: role for name, (role, _) in eval_sets.items()}
    target = ["train", *(["dev"] if "dev" in audio else []), *(n for n, r in roles.items() if r == "target")]
    source = [n for n in ("source_dev", *(n for n, r in roles.items() if r == "source")) if n in audio] or \
             [n for n in ("replay",) if n in audio]
    if not cfg.mismatch_utts or not source:
        return None
    return {"source_set": "+".join(source), "target_set": "+".join(target),
            **mismatch_score(model, processor, [a for n in source for a in audio[n]],
                             [a for n in target for a in audio[n]], cfg.mismatch_utts, cfg.training.seed,
                             cfg.eval_batch_seconds, precision)}


def save_model(model, processor, out: Path) -> None:
    """``save_pretrained`` into a temporary folder inside ``out``, then each file moved in atomically: a crash
    never leaves a half-written model.safetensors. Files get the run folder's usual mode (safetensors writes 0600)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".model.") as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for f in sorted(Path(tmp).iterdir()):
            if f.is_file():
                os.chmod(f, 0o666 & ~UMASK)
                os.replace(f, out / f.name)


def _write_adapter(out: Path, base_model: str, artifact, base: dict | None, result) -> dict:
    """The adapter folder (lora/adapter runs) and the sizes of what the run wrote."""
    full = weights_bytes(out)
    sizes = {"full_model_bytes": full, "adapter_bytes": None, "adapter_ratio": None, "adapter_dir": None}
    shutil.rmtree(out / ADAPTER_DIR, ignore_errors=True)  # never leave an older run's adapter behind
    if artifact is None:
        return sizes
    if result.best_step == 0 and result.best_alpha is None:
        return {**sizes, "adapter_note": "the guard returned the starting model: no adapter written (use the base)"}
    adapter = save_adapter(artifact, out / ADAPTER_DIR, base_model, base)
    return {**sizes, "adapter_bytes": adapter, "adapter_ratio": round(adapter / full, 6), "adapter_dir": ADAPTER_DIR}


def verdict(history: list[dict], best_step: int | None, max_forgetting: float, best_alpha: float | None = None) -> str:
    """One plain sentence on what the dev sets say the adaptation bought (the negative-transfer guard's decision)."""
    start = next((h for h in history if h["step"] == 0), None)
    if best_step is None:
        return ("no dev set: the last step's weights are returned, unchecked" if start is None else
                "no checkpoint qualified and the guard is off: the last step's weights are returned")
    chosen = next(h for h in history if h["step"] == best_step and h.get("alpha") == best_alpha)
    limit = "" if "source_dev_wer" not in chosen else f" (source forgetting limit {100 * max_forgetting:g}%)"
    if best_step == 0:
        return (f"negative transfer: no checkpoint beat the starting model's target dev WER "
                f"{100 * start['dev_wer']:.1f}%{limit}; the starting model is returned unchanged")
    text = f"adapted: step {best_step} chosen"
    if best_alpha is not None:
        text += f", interpolated {best_alpha:g} of the way from the start (WiSE-FT)"
    text += ", target dev WER "
    text += f"{100 * start['dev_wer']:.1f}% → " if start else ""
    text += f"{100 * chosen['dev_wer']:.1f}%"
    if "source_dev_wer" in chosen and start:
        text += f", source dev WER {100 * start['source_dev_wer']:.1f}% → {100 * chosen['source_dev_wer']:.1f}%{limit}"
    return text


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


def format_routing(routing: dict, sets: dict) -> str:
    """One line: how the router split each evaluation set between the adapted and the start model."""
    shares = " · ".join(f"{name} ({sets[name]['role']}) {100 * share:.0f} %" for name, share in
                        routing["routed_share"].items())
    acc = routing["train_accuracy"]
    return (f"Routing: share served by the adapted model (the rest by the unchanged start model): {shares}; "
            f"router fitted on {routing['utterances']['target']} target / {routing['utterances']['source']} source "
            f"utterances, right on {100 * acc['target']:.0f} % / {100 * acc['source']:.0f} % of them")


def render_report(results: dict) -> str:
    """A short markdown table: WER/CER (%) before → after per evaluation set."""
    lines = [
        f"# Adaptation of `{results['model']}`",
        "",
        "| set | role | WER before | WER after | change | WER points, 95 % interval | CER before | CER after | words |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in results["sets"].items():
        b, a = s["before"], s["after"]
        lines.append(f"| {name} | {s['role']} | {_pct(b['wer'])} | {_pct(a['wer'])} | {_rel(b['wer'], a['wer'])} "
                     f"| {format_change(s['change'])} | {_pct(b['cer'])} | {_pct(a['cer'])} | {b['num_words']} |")
    t = results["train"]
    lines += [
        "",
        f"Verdict: {results['verdict']}.",
        "",
        f"Labelled minutes: {results['labelled_minutes']:.1f} · trainable parameters: {results['trainable_params']:,} · "
        f"steps: {t['steps']} (best dev step: {t['best_step']}) · wall time: {results['wall_s']:.0f} s · "
        f"seed: {results['seed']} · {results['device']}/{results['precision']}",
    ]
    if results.get("mismatch"):
        lines += ["", f"Domain mismatch before adapting ({results['mismatch']['target_set']} vs "
                      f"{results['mismatch']['source_set']}): {format_mismatch(results['mismatch'])}."]
    if results.get("routing"):
        lines += ["", format_routing(results["routing"], results["sets"]) + "."]
    if results.get("artifacts"):
        lines += ["", _artifact_line(results["artifacts"])]
    if results.get("warnings"):
        lines += ["", "Warnings:", *(f"- {w}" for w in results["warnings"])]
    if results["skipped"]:
        lines += ["", f"Skipped {len(results['skipped'])} unreadable file(s):"]
        lines += [f"- {s['set']}/{s['id']}: {s['reason']}" for s in results["skipped"]]
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)
