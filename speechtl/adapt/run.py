"""An adaptation run: validate → load → data → score before → fit router → train → score after → save.

The run folder holds the adapted model and processor (``save_pretrained``; loadable by
``transformers.pipeline("automatic-speech-recognition", model=folder)``), ``run_config.json`` (the
:class:`AdaptConfig`, its ``training`` flat by flag name), ``results.json`` (:meth:`RunResult.to_json`: WER/CER as
fractions before and after on every evaluation set), per-utterance hypotheses under ``hyps/`` and a short
``report.md`` (:mod:`speechtl.adapt.report`). Strategies ``lora`` and ``adapter`` also write the small
``adapter/`` folder (:mod:`speechtl.models.adapter`; not when the guard returned the starting model), and
``results.json`` records the artifact sizes and the domain-mismatch score measured before training
(:mod:`speechtl.eval.mismatch`, when source audio is given). While training it also holds ``checkpoint/``
(for ``--resume``), ``best/`` and ``best_target/``; they are removed when the run finishes — except when the
source forgetting limit refused every checkpoint that beat the starting model: then the best of them stays as
``refused_best/`` (``model.safetensors``: the state dict of the module that trained, a peft wrapper's for lora;
``refused.json``: its step and dev figures), to inspect what the limit turned down.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState

from speechtl.adapt.feature_cache import check_feature_cache
from speechtl.adapt.inputs import VocabularyError, eval_set_names, labels_for, load_sets, too_short
from speechtl.adapt.report import RunResult, refused_checkpoint, render_report, score_warnings, verdict
from speechtl.adapt.config import AdaptConfig
from speechtl.adapt.routing import RunRouter, fit_run_router, router_warning
from speechtl.adapt.train import BEST, BEST_TARGET, CHECKPOINT, DevSets, TrainData, TrainResult, skipped_warning, \
    train, use_device
from speechtl.adapt.train_config import train_config_dict
from speechtl.config import ConfigError
from speechtl.data.manifest import Utterance, read_manifest, total_minutes
from speechtl.eval import EvalResult, evaluate, set_text_language, write_hypotheses
from speechtl.eval.bootstrap import wer_difference
from speechtl.eval.mismatch import mismatch_score
from speechtl.fileio import INCOMPLETE, OUTPUT_MARGIN_BYTES, UMASK, atomic_write_json, atomic_write_text, \
    output_path, preflight_output, refuse_finished_run, remove_folders, remove_temporaries
from speechtl.models import load_model, model_text_language
from speechtl.models.adapter import ADAPTER_DIR, ADAPTER_STRATEGIES, base_fingerprint, capture_adapter, folder_bytes, \
    save_adapter, weights_bytes
from speechtl.models.head import adapt_vocabulary
from speechtl.models.combine import read_multiroute
from speechtl.models.router import ROUTER_DIR, RoutedCTC, read_router_meta, save_router, weights_digest
from speechtl.runtime import resolve_precision, set_threads
from speechtl.text import text_rules

__all__ = ["AdaptConfig", "RunResult", "run_adaptation", "labels_for", "save_model", "VocabularyError",
           "REFUSED_BEST"]

REFUSED_BEST = "refused_best"  # the best checkpoint the forgetting limit refused, when the start was returned
# copies of the weights a run folder holds at once: the model, best/, checkpoint/ with AdamW's two moments (an
# estimate for the free-space check: best_target/ and a checkpoint being replaced add more, briefly)
RUN_COPIES = 5


def _say(progress: bool, state: PartialState, message: str) -> None:
    """Without progress bars, one line per phase on stderr, so a quiet run of many minutes is not silent."""
    if not progress and state.is_main_process:
        print(f"adapt: {message}", file=sys.stderr, flush=True)


def _validate(cfg: AdaptConfig) -> None:
    if not cfg.train:
        raise ConfigError("a training manifest is needed (--train)")
    if not cfg.test and not cfg.dev:
        raise ConfigError("give at least one evaluation set (--test or --dev)")
    if cfg.training.regularise.distill and not cfg.replay:
        raise ConfigError("--distill keeps the outputs on source replay audio: give --replay too")
    if cfg.route and cfg.vocab != "keep":
        raise ConfigError("--route serves some utterances with the start model: the adapted model must keep its "
                          f"vocabulary (--vocab keep, got {cfg.vocab!r})")
    check_feature_cache(cfg.training.runtime)
    if cfg.route and cfg.route_minutes <= 0:
        raise ConfigError(f"--route needs source audio for the router: --route-minutes must be positive "
                          f"(got {cfg.route_minutes:g}; 0 means no router, so drop --route)")
    refuse_finished_run(cfg.out, cfg.overwrite, cfg.resume)
    if not 0 < cfg.route_keep <= 1:
        raise ConfigError(f"--route-keep is the share of the target the router's gate lets through, in (0, 1] "
                          f"(1: no gate), got {cfg.route_keep:g}")


@dataclass
class _Run:
    """One run's working set, filled step by step."""

    cfg: AdaptConfig
    state: PartialState
    progress: bool
    model: torch.nn.Module
    processor: object
    language: str | None
    head: dict | None
    fingerprint: dict | None  # the base's fingerprint when an adapter artifact will be written
    utts: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    precision: str = "fp32"
    eval_sets: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def bars(self) -> bool:
        return self.progress and self.state.is_main_process


def _target_language(cfg: AdaptConfig, train_utts: list[Utterance], model_language: str | None) -> str:
    """``--language``, else the training manifest's ``language`` field (the normaliser; saved with the model)."""
    if cfg.language:
        return cfg.language
    found = sorted({u.language for u in train_utts if u.language})
    if len(found) > 1:
        raise ConfigError(f"{cfg.train}: utterances in {len(found)} languages ({', '.join(found)}); a run adapts "
                          f"to one text language: pass --language")
    if found and found[0] != (model_language or "en"):
        print(f"note: text language {found[0]!r} from {cfg.train} (the model's was {model_language or 'en'!r}; "
              f"--language to choose)", file=sys.stderr)
    return found[0] if found else ""


def _load(cfg: AdaptConfig, state: PartialState, progress: bool) -> _Run:
    """The start model (a routed or combined folder is refused), its text language and CTC head for this run."""
    if Path(cfg.model).is_dir() and (combined := read_multiroute(cfg.model)) is not None:
        raise ConfigError(f"{cfg.model!r} is a combined folder (several accents behind one router): adapt its base "
                          f"model {combined['base_model']!r} again")
    model, processor = load_model(cfg.model)
    if state.is_main_process:  # room for the run folder, before any data is read
        weights = sum(t.nbytes for t in model.state_dict().values())
        preflight_output(cfg.out, RUN_COPIES * weights + OUTPUT_MARGIN_BYTES)
    if isinstance(model, RoutedCTC):
        raise ConfigError(f"{cfg.model!r} is a routed run folder (base + adapted model): adapt its base model "
                          f"{read_router_meta(cfg.model)['base_model']!r} again, or the adapted model alone "
                          f"(copy the folder without router/)")
    # an adapter artifact applies to the base's vocabulary: with a new CTC head (--vocab ≠ keep) only the full model
    keeps_adapter = cfg.training.method.strategy in ADAPTER_STRATEGIES and cfg.vocab == "keep"
    fingerprint = base_fingerprint(model, processor) if keeps_adapter else None
    train_utts = read_manifest(cfg.train)
    language = set_text_language(model, _target_language(cfg, train_utts, model_text_language(model)))
    processor, head = adapt_vocabulary(model, processor, [u.text for u in train_utts], cfg.vocab,
                                       language, cfg.training.runtime.seed)
    return _Run(cfg, state, progress, model, processor, language, head, fingerprint)


def _data(run: _Run) -> dict | None:
    """Every set's audio decoded; the model on its device; the mismatch score (None without source audio)."""
    run.utts, run.audio, run.skipped = load_sets(run.cfg, run.processor.tokenizer, run.bars, run.language)
    run.model.to(run.state.device)
    run.precision = resolve_precision(run.cfg.training.runtime.precision, run.state.device)
    run.eval_sets = eval_set_names(run.cfg.test, run.cfg.source_test, run.cfg.dev,
                                   run.cfg.source_dev)
    return _mismatch(run.cfg, run.model, run.processor, run.audio, run.eval_sets, run.precision)


def _score(run: _Run, when: str, net) -> tuple[dict[str, EvalResult], dict[str, dict]]:
    """Every evaluation set scored by ``net`` (hypotheses written); with a routed ``net`` also what the router did
    with each set (:meth:`RoutedCTC.pop_stats`)."""
    scores, shares = {}, {}
    for name in run.eval_sets:
        r = evaluate(net, run.processor, run.utts[name], run.cfg.eval_batch_seconds, run.precision, run.bars,
                     run.audio[name], desc=f"{when}: {name}")
        if run.state.is_main_process:
            write_hypotheses(r, output_path(run.out, f"hyps/{name}.{when}.tsv"))
        if isinstance(net, RoutedCTC):  # a fresh one: it has seen only this run's sets
            shares[name] = net.pop_stats()
        scores[name] = r
    return scores, shares


def _train(run: _Run, router: RunRouter | None) -> tuple[TrainResult, list, list[str]]:
    """Fine-tune on the target minutes (+ replay). Returns the result, the adapter artifact (when kept) and
    the warnings about the training data."""
    cfg, utts, audio = run.cfg, run.utts, run.audio
    train_utts, train_audio = utts["train"] + utts.get("replay", []), audio["train"] + audio.get("replay", [])
    labels = labels_for(train_utts, run.processor.tokenizer, run.language)
    warnings = too_short(run.model, train_utts, train_audio, labels) + \
        router_warning(router.routing if router else None)
    adapters = []  # the trained adapter, captured before LoRA is merged
    data = TrainData(train_utts, labels, train_audio,
                     distill=[False] * len(utts["train"]) + [True] * len(utts.get("replay", [])))
    dev = DevSets(utts.get("dev", ()), audio.get("dev"), utts.get("source_dev", ()), audio.get("source_dev"),
                  router=router)
    result = train(run.model, run.processor, data, run.out, cfg.training, dev, resume=cfg.resume,
                   progress=run.progress,
                   on_finish=(lambda m: adapters.append(capture_adapter(m, cfg.training.method.strategy)))
                   if run.fingerprint is not None else None)
    skipped = skipped_warning(result.skipped_steps, result.steps, result.first_skipped)
    if skipped and run.state.is_main_process:
        print(f"warning: {skipped}", file=sys.stderr)
    return result, adapters, warnings + ([skipped] if skipped else [])


def _change(before: EvalResult, after: EvalResult, utts: list[Utterance]) -> dict:
    """After − before WER on the same utterances (fractions), with a 95 % paired bootstrap interval over speakers
    (utterances when the manifest names none): is the change more than the test set's noise?"""
    speaker = {u.id: u.speaker for u in utts}
    d = wer_difference([r["reference"] for r in before.rows], [r["hypothesis"] for r in before.rows],
                         [r["hypothesis"] for r in after.rows], speakers=[speaker[r["id"]] for r in before.rows])
    return {"wer_delta": round(d.delta, 6), "low": round(d.low, 6), "high": round(d.high, 6), "level": d.level,
            "resampled": "speakers" if any(speaker.values()) else "utterances",
            "speakers": len({s for s in speaker.values() if s})}


def _scores(result: EvalResult) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in result.summary().items()}


def _run_verdict(result: TrainResult, max_forgetting: float, cautions: list[str]) -> str:
    text = verdict(result.history, result.best_step, max_forgetting, result.best_alpha)
    if result.best_step == 0 and refused_checkpoint(result.history) is not None:
        text += f" (the refused checkpoint's weights: {REFUSED_BEST}/)"
    return text + ("; caution: " + "; ".join(cautions) if cautions else "")


def _result(run: _Run, before: dict, after: dict, trained: TrainResult, extras: dict) -> RunResult:
    """The run's figures (everything results.json holds but the artifact sizes)."""
    sets = {name: {"role": role, "manifest": str(path), "before": _scores(before[name]), "after": _scores(after[name]),
                   "change": _change(before[name], after[name], run.utts[name])}
            for name, (role, path) in run.eval_sets.items()}
    first = {role: next(({k: s[k] for k in ("before", "after", "change")} for s in sets.values()
                         if s["role"] == role), None) for role in ("target", "source")}
    warnings, cautions = score_warnings(sets)  # deletions, a saturated WER, intervals from few speakers
    if run.state.is_main_process:
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
    extras = {**extras, "warnings": extras["warnings"] + warnings}
    return RunResult(
        model=run.cfg.model, sets=sets, **first,
        labelled_minutes=round(total_minutes(run.utts["train"]), 3),
        replay_minutes=round(total_minutes(run.utts.get("replay", [])), 3),
        trainable_params=trained.trainable_params, normalizer=asdict(text_rules(run.language)), head=run.head,
        train=trained, skipped=run.skipped,
        verdict=_run_verdict(trained, run.cfg.training.selection.max_forgetting, cautions),
        device=str(run.state.device),
        seed=run.cfg.training.runtime.seed, processes=run.state.num_processes, precision=run.precision, **extras)


def _save(run: _Run, result: RunResult, router: RunRouter | None, adapters: list) -> RunResult:
    """Model, router, adapter, configs, results and report into the run folder (main process only)."""
    out, cfg = run.out, run.cfg
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / INCOMPLETE, f"pid {os.getpid()} was writing this run folder; if it stopped, run the same "
                                        f"speechtl adapt command with --resume to finish it\n")
    remove_temporaries(out)  # what a run killed midway left: a half-written checkpoint, model, results file
    save_model(run.model, run.processor, out)
    artifacts = _write_adapter(out, cfg.model, adapters[0] if adapters else None, run.fingerprint, result.train)
    shutil.rmtree(out / ROUTER_DIR, ignore_errors=True)  # never leave an older run's router behind
    if router is not None:
        save_router(router.router, out / ROUTER_DIR, cfg.model, weights_digest(router.base), router.routing)
        artifacts["router_bytes"] = folder_bytes(out / ROUTER_DIR)
    result = dataclasses.replace(result, artifacts=artifacts)
    atomic_write_json(out / "run_config.json", {**asdict(cfg), "training": train_config_dict(cfg.training)})
    atomic_write_json(out / "results.json", result.to_json())
    atomic_write_text(out / "report.md", render_report(result))
    _keep_refused(out, result.train)
    (out / INCOMPLETE).unlink()  # the folder is whole; then the training state (a kill before this: --resume)
    remove_folders(out, (CHECKPOINT, BEST, BEST_TARGET))
    return result


def _keep_refused(out: Path, trained: TrainResult) -> None:
    """``best_target/`` becomes ``refused_best/`` when the forgetting limit refused it and the start was returned."""
    shutil.rmtree(out / REFUSED_BEST, ignore_errors=True)  # never leave an older run's behind
    refused = refused_checkpoint(trained.history) if trained.best_step == 0 else None
    if refused is None or not (out / BEST_TARGET / "model.safetensors").is_file():
        return
    os.replace(out / BEST_TARGET, out / REFUSED_BEST)
    atomic_write_json(out / REFUSED_BEST / "refused.json", {k: refused[k] for k in (
        "step", "dev_wer", "dev_cer", "source_dev_wer") if k in refused})


def run_adaptation(cfg: AdaptConfig, progress: bool = True, extra: dict | None = None) -> RunResult:
    """Evaluate, adapt and evaluate again; write the run folder and return what ``results.json`` holds.

    ``extra``: more top-level fields for results.json (e.g. how a recipe made its data). Under
    ``accelerate launch`` every process trains its shard; only the main process writes files.
    ``progress=False``: no progress bars, one line per phase on stderr. A finished run already in ``cfg.out`` is
    refused unless ``cfg.overwrite`` or ``cfg.resume``; so is an ``out`` without room for the run.
    """
    start = time.perf_counter()
    _validate(cfg)
    state = PartialState(cpu=use_device(cfg.training.runtime))  # this process's device, also under accelerate launch
    set_threads(cfg.training.runtime.threads)  # before the first evaluation: bf16 results differ by thread count
    _say(progress, state, f"loading {cfg.model} and the data")
    run = _load(cfg, state, progress)
    mismatch = _data(run)
    _say(progress, state, f"scoring the starting model on {len(run.eval_sets)} set(s)")
    before, _ = _score(run, "before", run.model)
    if cfg.route:
        _say(progress, state, "fitting the accent router")
    router = _fit_router(run) if cfg.route else None
    _say(progress, state, f"training {cfg.training.optimiser.max_steps} steps ({cfg.training.method.strategy})")
    trained, adapters, warnings = _train(run, router)
    run.model.to(state.device)
    _say(progress, state, "scoring the adapted model")
    after, shares = _score(run, "after", router.around(run.model) if router is not None else run.model)
    if router is not None:
        router.record(shares)
    result = _result(run, before, after, trained, dict(
        mismatch=mismatch, routing=router.routing if router else None, warnings=warnings,
        wall_s=round(time.perf_counter() - start + trained.earlier_s, 1),  # with the training it resumed
        command=" ".join(sys.argv), extra=extra or {}))
    if state.is_main_process:
        _say(progress, state, f"writing {cfg.out}")
        result = _save(run, result, router, adapters)
    state.wait_for_everyone()
    return result


def _fit_router(run: _Run) -> RunRouter:
    """The router on the start model (target = the labelled training audio, source = the --route audio)."""
    cfg = run.cfg
    return fit_run_router(run.model, run.processor, run.audio["train"], run.audio["route"], source_set=cfg.route,
                          keep=cfg.route_keep, speakers=[u.speaker for u in run.utts["train"]],
                          batch_seconds=cfg.eval_batch_seconds, precision=run.precision,
                          seed=cfg.training.runtime.seed)


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
                             [a for n in target for a in audio[n]], cfg.mismatch_utts, cfg.training.runtime.seed,
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
