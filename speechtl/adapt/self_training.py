"""Self-training (noisy student) on untranscribed target audio, alone or with a few labelled minutes.

Round 0 (only with labelled minutes): supervised fine-tuning on them — the first teacher, and the
supervised-only baseline. Without labels the starting model is the first teacher. Round r ≥ 1: the
teacher transcribes the unlabelled audio (:mod:`speechtl.adapt.pseudo_label`), the most confident
transcripts are kept, ``round-r/train.jsonl`` (labelled + kept pseudo-labels) is written, and
:func:`~speechtl.adapt.run.run_adaptation` fine-tunes the teacher on it — with the run's
augmentation (speed perturbation, noise, SpecAugment: the *noisy* student), optional source
replay, and the dev-set guard. The returned model is the next round's teacher. With ``--route`` every round is
a routed run and its student starts again from the start model (the router serves source-like speech with the
unchanged start model, and a routed folder cannot be trained on); the teacher is the previous routed folder.

Every round is a run folder ``out/round-r/`` (model, results.json, report.md, hyps/) plus
``pseudo_labels.tsv`` (id, confidence, kept, hypothesis). ``out/`` gets the last round's model,
``results.json`` (a ``rounds`` list) and ``report.md``. With ``resume`` a finished round is not rerun
and an interrupted one continues from its checkpoint.

Hidden references: an unlabelled manifest may carry transcripts (synthetic sets do). They are moved
into :attr:`UnlabelledSet.references` when the set is read, and the utterances keep ``text=""``;
only pseudo-label *scoring* reads the references, so they cannot reach a training manifest.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from accelerate import PartialState

from speechtl.adapt.pseudo_label import (CONFIDENCE_MEASURES, Decoder, PseudoLabel, lm_decoder, pseudo_label,
                                         select_confident)
from speechtl.adapt.report import RunResult
from speechtl.adapt.config import AdaptConfig, SelfTrainingConfig
from speechtl.adapt.run import run_adaptation, save_model
from speechtl.adapt.train import use_device
from speechtl.adapt.train_config import TrainConfig
from speechtl.audio import AUDIO_SUFFIXES, find_audio_files
from speechtl.config import ConfigError, override
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import ManifestError, Utterance, read_manifest, total_minutes, write_manifest
from speechtl.decode import greedy_decode
from speechtl.eval import error_rates
from speechtl.eval.bootstrap import WerDifference, compare_hypothesis_files
from speechtl.fileio import atomic_dir, atomic_write_csv, atomic_write_json, atomic_write_text, refuse_finished_run
from speechtl.models import load_model
from speechtl.models.router import ROUTER_DIR, read_router_meta
from speechtl.runtime import resolve_precision, set_threads
from speechtl.text import normalize

__all__ = ["SelfTrainingConfig", "UnlabelledSet", "read_unlabelled", "run_self_training", "render_rounds",
           "limit_against_original"]


@dataclass(frozen=True)
class UnlabelledSet:
    utts: list[Utterance]  # every text is "": all that training may see
    audio: list[np.ndarray]
    references: dict[str, str]  # id -> hidden reference transcript, for scoring pseudo-labels only
    skipped: list[dict]


def read_unlabelled(path: str, on_error: str = "fail", progress: bool = False) -> UnlabelledSet:
    """A manifest (``text`` may be empty) or a folder searched recursively for audio; audio decoded once."""
    p = Path(path)
    if p.is_dir():
        files = find_audio_files([p])
        if not files:
            raise ConfigError(f"{p}: no audio files in this folder (suffixes: {', '.join(AUDIO_SUFFIXES)})")
        utts = [Utterance(f.relative_to(p).as_posix(), f) for f in files]
    elif p.is_file():
        utts = read_manifest(p, require_text=False)
    else:
        raise ManifestError(f"unlabelled audio not found: {p} (give a manifest or a folder of audio)")
    references = {u.id: u.text for u in utts if normalize(u.text)}
    blind = [dataclasses.replace(u, text="") for u in utts]
    kept, audio, skipped = load_utterance_audio(blind, on_error, progress, "loading unlabelled")
    if not kept:
        raise ConfigError(f"{p}: no readable audio left ({len(skipped)} file(s) skipped)")
    return UnlabelledSet(kept, audio, {u.id: references[u.id] for u in kept if u.id in references}, skipped)


def _check_config(adapt: AdaptConfig, st: SelfTrainingConfig) -> None:
    if not st.unlabelled:
        raise ConfigError("self-training needs untranscribed audio (--unlabelled MANIFEST_OR_FOLDER)")
    if st.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {st.rounds}")
    if st.confidence not in CONFIDENCE_MEASURES:
        raise ConfigError(f"--confidence must be one of {CONFIDENCE_MEASURES}, got {st.confidence!r}")
    if not 0.0 < st.keep_fraction <= 1.0:
        raise ConfigError(f"--keep-fraction must be in (0, 1], got {st.keep_fraction}")
    if not adapt.test and not adapt.dev:
        raise ConfigError("give at least one evaluation set (--test or --dev)")
    lm = Path(st.pseudo_lm)
    if st.pseudo_lm and not (lm.is_file() and lm.read_text(errors="replace")[:200].lstrip().startswith("\\data\\")):
        raise ConfigError(f"--pseudo-lm {lm}: not an ARPA language model (make one with speechtl lm build)")


def _check_disjoint(unl: UnlabelledSet, adapt: AdaptConfig) -> None:
    """Unlabelled audio must not be labelled training, dev or test audio: no shared id, audio file or copy of
    one (the same bytes under another name; compared where the sizes match)."""
    ids = {u.id for u in unl.utts}
    paths = {Path(u.audio_path).resolve() for u in unl.utts}
    by_size: dict[int, list[Path]] = {}
    for p in paths:
        by_size.setdefault(p.stat().st_size, []).append(p)
    for path in [adapt.train, adapt.dev, *adapt.test, adapt.source_dev, adapt.source_test]:
        if not path:
            continue
        for u in read_manifest(path, check_files=False):
            audio = Path(u.audio_path).resolve()
            same = audio in paths or (audio.is_file() and any(
                _file_digest(audio) == _file_digest(p) for p in by_size.get(audio.stat().st_size, [])))
            if u.id in ids or same:
                raise ConfigError(f"{path}: utterance {u.id!r} is also in the unlabelled set "
                                  f"(same id, audio file or a copy of it); keep labelled, dev and test audio out of it")


@functools.lru_cache(maxsize=4096)
def _file_digest(path: Path) -> bytes:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()


def _score_pseudo(unl: UnlabelledSet, labels: list[PseudoLabel], keep: list[int]) -> dict:
    """Pseudo-label WER/CER against the hidden references, over the kept and over all utterances with one."""
    out = {}
    for name, idx in (("kept", keep), ("all", range(len(labels)))):
        scored = [i for i in idx if unl.utts[i].id in unl.references]
        if scored:
            r = error_rates([unl.references[unl.utts[i].id] for i in scored], [labels[i].text for i in scored])
            out[name] = {"wer": round(r.wer, 6), "cer": round(r.cer, 6), "num_utts": len(scored)}
    return out


def _write_labels(folder: Path, unl: UnlabelledSet, labels: list[PseudoLabel], keep: list[int]) -> None:
    kept = set(keep)
    rows = [{"id": u.id, "confidence": f"{p.confidence:.6f}", "kept": int(i in kept), "hypothesis": p.text}
            for i, (u, p) in enumerate(zip(unl.utts, labels))]
    atomic_write_csv(folder / "pseudo_labels.tsv", rows, ["id", "confidence", "kept", "hypothesis"], delimiter="\t")


def _pseudo_round(teacher: str, unl: UnlabelledSet, labelled: list[Utterance], adapt: AdaptConfig,
                  st: SelfTrainingConfig, folder: Path, state: PartialState, decoder: Decoder) -> tuple[str, dict]:
    """The teacher labels the unlabelled audio; write the round's training manifest. Returns (path, info)."""
    start = time.perf_counter()
    model, processor = load_model(teacher)
    model.to(state.device)
    precision = resolve_precision(adapt.training.runtime.precision, state.device)
    labels = pseudo_label(model, processor, unl.audio, st.confidence, adapt.eval_batch_seconds, precision, decoder)
    keep = select_confident(labels, st.min_confidence, st.keep_fraction)
    if not keep:
        raise ConfigError(f"{st.unlabelled}: no pseudo-label passed the filter (confidence ≥ {st.min_confidence}, "
                          f"non-empty): lower --min-confidence")
    pseudo = [dataclasses.replace(unl.utts[i], text=labels[i].text) for i in keep]
    manifest = folder / "train.jsonl"
    if state.is_main_process:
        _write_labels(folder, unl, labels, keep)
        write_manifest(labelled + pseudo, manifest)
    state.wait_for_everyone()
    info = {"teacher": teacher, "kept": len(keep), "unlabelled": len(labels),
            "kept_minutes": round(total_minutes(pseudo), 3),
            "mean_confidence_kept": round(float(np.mean([labels[i].confidence for i in keep])), 6),
            "pseudo_label": _score_pseudo(unl, labels, keep), "pseudo_label_s": round(time.perf_counter() - start, 1)}
    return str(manifest), info


def _finished(folder: Path, settings: dict) -> RunResult | None:
    """The results of a finished round, or None; a round made with other settings is an error, not reused."""
    path = folder / "results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    defaults = {f.name: f.default for f in dataclasses.fields(SelfTrainingConfig)}  # settings added since
    if {**defaults, **results.get("self_training", {}).get("settings", {})} != {**defaults, **settings}:
        raise ConfigError(f"{folder} was made with other self-training settings; use another --out or drop --resume")
    return RunResult.from_json(results)


def _dev_scores(history: list[dict], best_step: int | None, best_alpha: float | None) -> dict:
    """Target dev WER: the round's start, the returned weights, and the best checkpoint whatever it forgot."""
    trained = [h["dev_wer"] for h in history if h["step"] > 0 and "alpha" not in h and "dev_wer" in h]
    chosen = next((h["dev_wer"] for h in history if h["step"] == best_step and h.get("alpha") == best_alpha), None)
    start = next((h["dev_wer"] for h in history if h["step"] == 0 and "dev_wer" in h), None)
    return {"start": start, "chosen": chosen, "best_any": min(trained) if trained else None}


def _source_dev(history: list[dict], step: int | None, alpha: float | None) -> float | None:
    """Source dev WER of the weights at (step, alpha) in a round's history (None without a source dev set)."""
    return next((h.get("source_dev_wer") for h in history if h["step"] == step and h.get("alpha") == alpha), None)


def limit_against_original(training: TrainConfig, original: float | None, teacher: float | None) -> TrainConfig:
    """The round's training settings with its source-forgetting limit measured against the original model.

    The guard compares checkpoints with the round's own start (the teacher); a limit of 5 % per round would let
    forgetting compound over rounds. With source dev WER ``original`` (the first model) and ``teacher``, the
    round may forget (1 + limit) · original / teacher − 1 relative to its teacher (never below 0)."""
    if original is None or not teacher or not training.selection.guard:
        return training
    limit = max(0.0, (1 + training.selection.max_forgetting) * original / teacher - 1)
    return override(training, max_forgetting=round(limit, 6))


def _round_summary(r: int, result: RunResult) -> dict:
    info, t = result.extra["self_training"], result.train
    return {"round": r, **{k: v for k, v in info.items() if k != "settings"},
            "target": result.target, "source": result.source, "verdict": result.verdict,
            "dev_wer": _dev_scores(t.history, t.best_step, t.best_alpha),
            "steps": t.steps, "wall_s": result.wall_s}


def _read_result(folder: Path) -> RunResult:
    return RunResult.from_json(json.loads((folder / "results.json").read_text()))


def _hyps(folder: Path, role: str, when: str) -> Path | None:
    """The per-utterance hypotheses of the round's first evaluation set of ``role`` (target/source)."""
    sets = _read_result(folder).sets
    name = next((n for n, s in sets.items() if s["role"] == role), None)
    return None if name is None else folder / "hyps" / f"{name}.{when}.tsv"


def _change(out: Path, rounds: list[dict]) -> dict:
    """Last round vs the baseline (round 0 = supervised only, else the starting model), paired bootstrap on test."""
    first, last = out / f"round-{rounds[0]['round']}", out / f"round-{rounds[-1]['round']}"
    when = "after" if rounds[0]["round"] == 0 else "before"
    change = {"baseline": "supervised-only model" if when == "after" else "starting model"}
    for role in ("target", "source"):
        a, b = _hyps(first, role, when), _hyps(last, role, "after")
        if a is not None:
            change[role] = dataclasses.asdict(compare_hypothesis_files(a, b))
    return change


def run_self_training(adapt: AdaptConfig, st: SelfTrainingConfig, progress: bool = True,
                      extra: dict | None = None, decoder: Decoder = greedy_decode) -> dict:
    """Round 0 (supervised, when ``adapt.train`` is set), then ``st.rounds`` pseudo-label → fine-tune rounds.

    ``adapt`` is the usual adaptation config (model, dev/test/source sets, replay, training with its
    augmentation); ``adapt.train`` holds the labelled minutes ("" for none). ``decoder`` writes the pseudo-labels:
    greedy by default, a beam search with ``st.pseudo_lm`` when it is set (:func:`~speechtl.adapt.pseudo_label.lm_decoder`),
    or any function with the :data:`~speechtl.adapt.pseudo_label.Decoder` signature. Returns ``results.json``'s content.
    """
    start = time.perf_counter()
    _check_config(adapt, st)
    refuse_finished_run(adapt.out, adapt.overwrite, adapt.resume)  # each round's run_adaptation checks its own
    if st.pseudo_lm:
        decoder = lm_decoder(st.pseudo_lm)
    out = Path(adapt.out)
    state = PartialState(cpu=use_device(adapt.training.runtime))
    set_threads(adapt.training.runtime.threads)
    unl = read_unlabelled(st.unlabelled, adapt.on_error, progress and state.is_main_process)
    _check_disjoint(unl, adapt)
    labelled = read_manifest(adapt.train) if adapt.train else []
    settings = {**dataclasses.asdict(st), "labelled": adapt.train, "start_model": adapt.model}
    settings.pop("rounds")  # a resumed run may add rounds
    teacher, rounds, original_src, teacher_src = adapt.model, [], None, None
    for r in range(0 if labelled else 1, st.rounds + 1):
        folder = out / f"round-{r}"
        results = _finished(folder, settings) if adapt.resume else None
        if results is None:
            if r == 0:
                train, info = adapt.train, {"teacher": None, "kept": 0, "unlabelled": len(unl.utts), "kept_minutes": 0.0}
            else:
                train, info = _pseudo_round(teacher, unl, labelled, adapt, st, folder, state, decoder)
            training = limit_against_original(adapt.training, original_src, teacher_src)
            # routed (--route): the router serves source-like speech with the unchanged start model, so each round's
            # student starts again from it (the teacher, a routed folder, labels; it cannot be trained on)
            student = adapt.model if adapt.route else teacher
            cfg = dataclasses.replace(adapt, model=student, train=train, out=str(folder), training=training)
            info = {**info, "max_forgetting": training.selection.max_forgetting}
            results = run_adaptation(cfg, progress, extra={"self_training": {**info, "settings": settings}})
        rounds.append(_round_summary(r, results))
        teacher, t = str(folder), results.train
        original_src = original_src if original_src is not None else _source_dev(t.history, 0, None)
        teacher_src = _source_dev(t.history, t.best_step, t.best_alpha)
    return _write_summary(adapt, st, unl, labelled, rounds, teacher, state, start, extra)


def _save_final(teacher: str, out: Path) -> None:
    """The last round's model in ``out`` (atomic, like every run folder's); a routed round's router beside it (it
    names the unchanged start model as its base), so ``out`` is a routed folder too."""
    routed = read_router_meta(teacher) is not None
    save_model(*load_model(teacher, **({"route": False} if routed else {})), out)
    if routed:
        with atomic_dir(out / ROUTER_DIR) as tmp:
            for f in (Path(teacher) / ROUTER_DIR).iterdir():
                shutil.copy2(f, tmp / f.name)


def _write_summary(adapt: AdaptConfig, st: SelfTrainingConfig, unl: UnlabelledSet, labelled: list[Utterance],
                   rounds: list[dict], teacher: str, state: PartialState, start: float, extra: dict | None) -> dict:
    """The run's results.json and report.md, and the last round's model in ``adapt.out``."""
    first = _read_result(Path(adapt.out) / f"round-{rounds[0]['round']}")
    results = {
        "model": adapt.model, "final_model": adapt.out, "unlabelled": st.unlabelled,
        "settings": dataclasses.asdict(st),
        "labelled_minutes": round(total_minutes(labelled), 3) if labelled else 0.0,
        "unlabelled_minutes": round(total_minutes(unl.utts), 3), "unlabelled_utts": len(unl.utts),
        "hidden_references": len(unl.references), "skipped": unl.skipped,
        "start": {"target": first.target and first.target["before"], "source": first.source and first.source["before"]},
        "rounds": rounds,
        "change": _change(Path(adapt.out), rounds),
        "wall_s": round(time.perf_counter() - start, 1),  # this invocation (a resumed one skips finished rounds)
        "rounds_wall_s": round(sum(r["wall_s"] + r.get("pseudo_label_s", 0.0) for r in rounds), 1),
        "command": " ".join(sys.argv),
        **(extra or {}),
    }
    if state.is_main_process:
        _save_final(teacher, Path(adapt.out))
        atomic_write_json(Path(adapt.out) / "results.json", results)
        atomic_write_text(Path(adapt.out) / "report.md", render_rounds(results))
    state.wait_for_everyone()
    return results


def _pct(scores: dict | None, key: str = "wer") -> str:
    return "–" if not scores else f"{100 * scores[key]:.1f}"


def _dev(d: dict) -> str:
    f = lambda x: "–" if x is None else f"{100 * x:.1f}"  # noqa: E731
    return f"{f(d['start'])} → {f(d['chosen'])} ({f(d['best_any'])})"


def render_rounds(results: dict) -> str:
    """Markdown: one row per round — kept pseudo-labels, their WER (hidden references), target/source WER after."""
    lines = [f"# Self-training of `{results['model']}`", "",
             f"Unlabelled: {results['unlabelled_minutes']:.1f} min ({results['unlabelled_utts']} utterances, "
             f"{results['hidden_references']} with hidden references used only for scoring) · "
             f"labelled: {results['labelled_minutes']:.1f} min · settings: {results['settings']}", "",
             "| round | kept / unlabelled | kept min | pseudo WER kept | pseudo WER all | target WER | target CER "
             "| source WER | dev WER start → chosen (best, any forgetting) | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
             f"| start | – | – | – | – | {_pct(results['start']['target'])} | {_pct(results['start']['target'], 'cer')} "
             f"| {_pct(results['start']['source'])} | – | – |"]
    for r in results["rounds"]:
        pl = r.get("pseudo_label", {})
        name = f"{r['round']} (supervised)" if r["round"] == 0 else str(r["round"])
        after = {role: r[role]["after"] if r[role] else None for role in ("target", "source")}
        lines.append(f"| {name} | {r['kept']} / {r['unlabelled']} | {r['kept_minutes']:.1f} | {_pct(pl.get('kept'))} "
                     f"| {_pct(pl.get('all'))} | {_pct(after['target'])} | {_pct(after['target'], 'cer')} "
                     f"| {_pct(after['source'])} | {_dev(r['dev_wer'])} | {r['verdict']} |")
    change = results["change"]
    lines += ["", f"Last round vs {change['baseline']}, test WER (paired bootstrap over utterances): "
              + "; ".join(f"{role} {WerDifference(**change[role]).describe()}" for role in ("target", "source")
                          if role in change)]
    lines += ["", f"Wall time: {results['rounds_wall_s']:.0f} s in rounds, {results['wall_s']:.0f} s this invocation · command: `{results['command']}`", ""]
    return "\n".join(lines)
