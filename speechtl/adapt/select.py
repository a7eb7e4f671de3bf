"""Which weights a run returns: the negative-transfer guard, the forgetting limit, WiSE-FT, blank collapse.

At every evaluation :class:`CheckpointSelector` scores the weights in training on the target dev set (and
the source dev set), keeps the best *qualifying* weights in ``best/`` (target dev WER, then CER) and the
best-on-target weights whatever they forgot in ``best_target/``. A checkpoint qualifies when its source dev
WER stays within ``max_forgetting`` (relative) of the starting model's; with ``guard`` the starting model
itself (step 0) is a candidate, so a run that cannot help returns the model it started from. After the loop,
WiSE-FT interpolation between the start and ``best_target/`` adds candidates (:meth:`CheckpointSelector.finish`).
A dev evaluation that is (almost) all blank while the starting model wrote text stops the run with
:class:`BlankCollapseError`. ``history`` (one entry per evaluation) is what the verdict is written from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from speechtl.adapt.checkpoint import state_dict_cpu
from speechtl.adapt.routing import RunRouter
from speechtl.adapt.train_config import GuardConfig
from speechtl.audio import load_audio
from speechtl.data.manifest import Utterance
from speechtl.errors import SpeechtlError
from speechtl.eval import EvalResult, evaluate, model_text_language, score_transcripts
from speechtl.eval.caveats import SATURATED_WER
from speechtl.fileio import atomic_dir

__all__ = ["TrainState", "DevSets", "CheckpointSelector", "BlankCollapseError", "BEST", "BEST_TARGET",
           "BLANK_COLLAPSE_SHARE", "blank_collapse", "selection_criterion", "rank_key"]

BEST = "best"  # folder inside the run folder: weights with the best dev WER so far
BEST_TARGET = "best_target"  # the best-on-target checkpoint whatever it forgot (the end point of interpolation)
BLANK_COLLAPSE_SHARE = 0.95  # share of empty dev transcripts that counts as collapse


@dataclass
class TrainState:
    """The loop's state, saved in every checkpoint (``trainer_state.json``) for an exact resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch's list already consumed (by all processes)
    best_wer: float | None = None
    best_cer: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    source_start_wer: float | None = None  # source dev WER of the starting model
    target_best_wer: float | None = None  # best target dev WER of any checkpoint, forgetting or not
    target_best_step: int | None = None
    target_best_cer: float | None = None  # its dev CER (compared first when the criterion is "cer")
    best_alpha: float | None = None  # interpolation weight of the chosen weights (None: a checkpoint as trained)
    elapsed_s: float = 0.0  # training wall time up to the last checkpoint, summed over resumed runs
    skipped_steps: int = 0  # optimizer steps skipped for a non-finite loss or gradients (speechtl.adapt.nonfinite)
    skipped_in_a_row: int = 0  # of them, the latest run of consecutive ones
    first_skipped: dict | None = None  # the first skipped step: {"step", "ids"} (the utterances of its batches)
    history: list[dict] = field(default_factory=list)


class BlankCollapseError(SpeechtlError, RuntimeError):
    """Greedy outputs became (almost) all blank although the starting model wrote text: training is broken."""


@dataclass
class DevSets:
    """The target dev set (checkpoint choice) and the optional source dev set (forgetting limit), loaded once.

    ``router``: a routed run's; the dev sets then score the routed system (the start model for the utterances
    the router keeps, :meth:`speechtl.adapt.routing.RunRouter.dev_transcripts`), not the weights in training alone."""

    target: Sequence[Utterance] = ()
    target_audio: Sequence[np.ndarray] | None = None
    source: Sequence[Utterance] = ()
    source_audio: Sequence[np.ndarray] | None = None
    router: RunRouter | None = None

    def __post_init__(self):
        self.target, self.source = list(self.target), list(self.source)
        if self.target_audio is None:
            self.target_audio = [load_audio(u.audio_path) for u in self.target]
        if self.source_audio is None:
            self.source_audio = [load_audio(u.audio_path) for u in self.source]

    def evaluate(self, which: str, model, processor, batch_seconds: float, precision: str) -> EvalResult:
        """The ``which`` ("target" or "source") dev set scored with the weights in ``model``."""
        utts, audio = (self.target, self.target_audio) if which == "target" else (self.source, self.source_audio)
        if self.router is None:
            return evaluate(model, processor, utts, batch_seconds, precision, audio=audio)
        out = self.router.dev_transcripts(which, model, processor, audio, batch_seconds, precision)
        return score_transcripts(utts, out, model_text_language(model))


def blank_collapse(history: list[dict], lr: float) -> str:
    """A diagnosis when the latest dev evaluation is (almost) all blank and the (competent) starting model's was not."""
    start = next((h for h in history if h["step"] == 0 and "empty_share" in h), None)
    last = history[-1]
    if start is None or last["step"] == 0 or last.get("empty_share", 0) < BLANK_COLLAPSE_SHARE \
            or start["empty_share"] >= 0.5 or start["dev_wer"] >= 0.9:
        return ""  # a random or blank start (training from scratch) passes through a blank phase: normal
    return (f"blank collapse at step {last['step']}: {100 * last['empty_share']:.0f}% of dev transcripts are empty "
            f"(the starting model: {100 * start['empty_share']:.0f}%). Likely causes: learning rate too high "
            f"(--lr {lr:g}: try 3-10x lower, or a longer --warmup-ratio); too much SpecAugment masking "
            f"(--mask-time-prob, --mask-feature-prob); transcripts that do not match the audio or "
            f"the model's alphabet; audio too short for its transcripts (see results.json warnings). The best "
            f"weights so far are kept in the run folder's best/ and checkpoint/.")


def selection_criterion(history: list[dict]) -> str | None:
    """How dev scores rank checkpoints: the run's ``--select-by`` when it is "wer" or "cer" (each dev entry
    records it as ``select_by``); else ("auto") "cer" (dev CER, then WER) when the scored starting model's dev WER
    is at or above SATURATED_WER, else "wer" (dev WER, then CER); None when nothing was scored on dev."""
    chosen = next((h["select_by"] for h in history if "select_by" in h), None)
    if chosen is not None:
        return chosen
    start = next((h for h in history if h["step"] == 0 and "dev_wer" in h), None)
    if start is None:
        return "wer" if any("dev_wer" in h for h in history) else None
    return "cer" if start["dev_wer"] >= SATURATED_WER else "wer"


def rank_key(entry: dict, criterion: str | None) -> tuple[float, float]:
    """Dev scores in the order they rank checkpoints under ``criterion`` (lower is better)."""
    return (entry["dev_cer"], entry["dev_wer"]) if criterion == "cer" else (entry["dev_wer"], entry["dev_cer"])


class CheckpointSelector:
    """Scores, keeps and finally chooses the weights; every decision lands in ``state`` and its history."""

    def __init__(self, dev: DevSets, cfg: GuardConfig, lr: float, batch_seconds: float, precision: str,
                 out_dir: Path, is_main_process: bool):
        self.dev, self.cfg, self.lr = dev, cfg, lr
        self.batch_seconds, self.precision = batch_seconds, precision
        self.out_dir, self.is_main = Path(out_dir), is_main_process

    def scores_start(self, state: TrainState) -> bool:
        """Whether step 0 is scored: a target dev set and either the guard or a forgetting limit to measure, and
        not scored yet (a run resumed from its step-0 checkpoint has the start's scores in its history)."""
        return state.step == 0 and not state.history and bool(self.dev.target) and \
            (self.cfg.guard or bool(self.dev.source))

    def score(self, raw_model, processor, state: TrainState) -> dict:
        """Target dev WER/CER, source dev WER, and whether the weights stay within the forgetting limit."""
        dev = self.dev
        result = dev.evaluate("target", raw_model, processor, self.batch_seconds, self.precision)
        empty = sum(not r["hypothesis"] for r in result.rows) / max(len(result.rows), 1)
        entry = {"dev_wer": result.wer, "dev_cer": result.cer, "empty_share": round(empty, 4), "qualifies": True}
        if self.cfg.select_by != "auto":
            entry["select_by"] = self.cfg.select_by  # the history says how it was ranked (selection_criterion)
        if dev.source:
            source_wer = dev.evaluate("source", raw_model, processor, self.batch_seconds, self.precision).wer
            entry["source_dev_wer"] = source_wer
            if state.source_start_wer is None and state.step == 0:
                state.source_start_wer = source_wer
            if state.source_start_wer is not None:
                entry["qualifies"] = source_wer <= state.source_start_wer * (1 + self.cfg.max_forgetting) + 1e-12
        return entry

    def judge(self, entry: dict, raw_model, state: TrainState) -> bool:
        """Keep the scored weights where they win; returns True when early stopping triggers."""
        if state.step == 0 and not self.cfg.guard:
            entry["qualifies"] = False  # scored for the forgetting limit only; the start is no candidate
        if self.dev.source and state.step > 0 and self._beats_target_best(entry, state):
            state.target_best_wer, state.target_best_step = entry["dev_wer"], state.step  # for interpolation
            state.target_best_cer = entry["dev_cer"]
            self._save(BEST_TARGET, raw_model)
        if self._keep_if_best(entry, raw_model, state):
            state.bad_evals = 0
        elif state.step > 0:
            state.bad_evals += 1
            return bool(self.cfg.patience) and state.bad_evals >= self.cfg.patience
        return False

    @staticmethod
    def _beats_target_best(entry: dict, state: TrainState) -> bool:
        """Best on target whatever it forgot: lower dev WER; under the "cer" criterion lower (dev CER, WER)."""
        if state.target_best_wer is None:
            return True
        if selection_criterion([*state.history, entry]) != "cer":
            return entry["dev_wer"] < state.target_best_wer
        best_cer = float("inf") if state.target_best_cer is None else state.target_best_cer  # a pre-criterion state
        return (entry["dev_cer"], entry["dev_wer"]) < (best_cer, state.target_best_wer)

    def check_collapse(self, state: TrainState) -> None:
        collapse = blank_collapse(state.history, self.lr)
        if collapse:
            raise BlankCollapseError(collapse)

    def _save(self, folder: str, raw_model) -> None:
        if self.is_main:
            with atomic_dir(self.out_dir / folder) as tmp:
                save_file(state_dict_cpu(raw_model), tmp / "model.safetensors")

    def _keep_if_best(self, entry: dict, raw_model, state: TrainState) -> bool:
        """Save the weights to BEST when they qualify and beat the best so far (:func:`rank_key`: target dev WER,
        then CER; CER first when the start's dev WER is saturated)."""
        criterion = selection_criterion([*state.history, entry])
        best = {"dev_wer": state.best_wer, "dev_cer": state.best_cer}
        if not entry["qualifies"] or (state.best_wer is not None and
                                      rank_key(entry, criterion) >= rank_key(best, criterion)):
            return False
        state.best_wer, state.best_cer, state.best_step = entry["dev_wer"], entry["dev_cer"], entry["step"]
        state.best_alpha = entry.get("alpha")
        self._save(BEST, raw_model)
        return True

    def finish(self, raw_model, processor, state: TrainState, start_weights: dict) -> None:
        """Load the chosen weights into ``raw_model``: WiSE-FT candidates first (with a source dev set), then
        ``best/``; with nothing qualified (guard off) the last step's weights stay."""
        if self.dev.source and self.cfg.interpolate and state.target_best_step is not None:
            last = state_dict_cpu(raw_model)
            self._interpolate(raw_model, processor, state, start_weights)
            if state.best_step is None:  # nothing qualified (guard off): the last step's weights, as without it
                raw_model.load_state_dict(last)
        if state.best_step is not None and (self.out_dir / BEST / "model.safetensors").is_file():
            raw_model.load_state_dict(load_file(self.out_dir / BEST / "model.safetensors"))

    @torch.no_grad()
    def _interpolate(self, raw_model, processor, state: TrainState, start_weights: dict) -> None:
        """WiSE-FT (Wortsman et al. 2022): θ = θ₀ + α(θ_T − θ₀) between the start and the best-on-target
        checkpoint; each α that keeps the source within the forgetting limit competes for BEST."""
        raw_model.load_state_dict(load_file(self.out_dir / BEST_TARGET / "model.safetensors"))
        tuned = {k: v.detach().clone() for k, v in raw_model.named_parameters() if k in start_weights}
        named = dict(raw_model.named_parameters())
        for alpha in sorted(self.cfg.interpolate):
            for k, p0 in start_weights.items():
                named[k].copy_(p0 + alpha * (tuned[k] - p0))
            entry = {"step": state.target_best_step, "alpha": alpha, **self.score(raw_model, processor, state)}
            state.history.append(entry)
            self._keep_if_best(entry, raw_model, state)
