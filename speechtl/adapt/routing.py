"""The accent router of a routed run (``--route``): fitted on the start model's pooled states before training.

:func:`fit_run_router` is what ``adapt --route`` (and so the demo) and ``recipes/router_holdout.py`` call: a frozen
copy of the start model, the classifier (:func:`speechtl.models.router.fit_router`: target = the labelled training
audio, source = the ``--route`` audio), its out-of-distribution gate calibrated on held-out target speakers
(:func:`speechtl.models.router.fit_gate`), and the ``routing`` figures of results.json. :class:`RunRouter` wraps
a model in training into the routed system and records, per evaluation set, what the router did with it; its
:meth:`RunRouter.dev_transcripts` scores the routed system on the dev sets with the frozen half (the base's
transcripts, the router's decisions) computed once per run, not at every evaluation.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from speechtl.audio import SAMPLE_RATE
from speechtl.decode import Transcripts, greedy_decode, iter_batches, transcribe_arrays, uses_attention_mask
from speechtl.eval.mismatch import sample_stats
from speechtl.models.router import GATE_KEEP, RoutedCTC, Router, fit_gate, fit_router, masked_mean

__all__ = ["RunRouter", "fit_run_router", "pooled_states", "router_warning", "ROUTER_MIN_ACCURACY"]

ROUTER_MIN_ACCURACY = 0.9  # below this on its own training audio, a router cannot tell the accents apart
PER_SET = ("routed_share", "abstained_share", "mean_probability")  # routing's per-evaluation-set figures


@dataclass
class RunRouter:
    base: torch.nn.Module  # a frozen copy of the start model: serves source-like (and far-off) utterances
    router: Router
    routing: dict  # results.json's routing figures (the per-set figures filled by the after-scoring)
    pass_mask: bool

    frozen: dict[str, tuple[list[int], list[str]]] = field(default_factory=dict, repr=False)  # dev_transcripts' cache

    def around(self, adapted: torch.nn.Module) -> RoutedCTC:
        return RoutedCTC(self.base, adapted, self.router, self.pass_mask)

    def dev_transcripts(self, name: str, adapted, processor, audio: Sequence[np.ndarray], batch_seconds: float,
                        precision: str) -> Transcripts:
        """The routed system's transcripts of the dev set ``name`` (the same audio at every call of a run).

        The base and the router never change in a run, so the rows the router sends to the adapted model and the
        base's transcripts of the others are computed at the first call per ``name`` and kept; every call runs
        only the adapted model, on its rows (batched among themselves: its transcripts may differ from
        ``around(adapted)``'s by the rounding that other batch shapes bring, as they would in another batching)."""
        start = time.perf_counter()
        if name not in self.frozen:
            self.frozen[name] = self._frozen_half(processor, audio, batch_seconds, precision)
        routed, texts = self.frozen[name]
        texts = list(texts)
        if routed:
            out = transcribe_arrays(adapted, processor, [audio[i] for i in routed], batch_seconds, precision)
            for i, text in zip(routed, out.texts):
                texts[i] = text
        return Transcripts(texts, time.perf_counter() - start, sum(len(a) for a in audio) / SAMPLE_RATE)

    @torch.no_grad()
    def _frozen_half(self, processor, audio: Sequence[np.ndarray], batch_seconds: float,
                     precision: str) -> tuple[list[int], list[str]]:
        """The rows of ``audio`` the router sends to the adapted model, and the base's transcripts of the others
        ("" for routed rows): what :class:`RoutedCTC` computes from the base, batch by batch."""
        routed, texts = [], [""] * len(audio)
        for b in iter_batches(self.base, processor, audio, batch_seconds, precision, hidden_states=True):
            picks = self.router(masked_mean(b.last_hidden_state, b.lengths)).tolist()
            for i, text, pick in zip(b.indices, greedy_decode(b.logits, b.lengths, processor.tokenizer), picks):
                if pick:
                    routed.append(i)
                else:
                    texts[i] = text
        return sorted(routed), texts

    def record(self, stats: dict[str, dict[str, float]]) -> None:
        """Per evaluation set, the :meth:`RoutedCTC.pop_stats` figures into ``routing``."""
        for name, figures in stats.items():
            for key in PER_SET:
                self.routing[key][name] = figures[key]


def pooled_states(model, processor, audio: Sequence[np.ndarray], batch_seconds: float, precision: str) -> np.ndarray:
    """(N, D) mean-pooled final hidden states of ``model`` (what the router reads)."""
    return sample_stats(model, processor, audio, batch_seconds, precision).pooled["final"]


def fit_run_router(model, processor, target: Sequence[np.ndarray], source: Sequence[np.ndarray], *, source_set: str,
                   keep: float = GATE_KEEP, speakers: Sequence[str] | None = None, batch_seconds: float = 60.0,
                   precision: str = "fp32", seed: int = 0) -> RunRouter:
    """A frozen copy of ``model``, the router fitted on its pooled states of the ``target`` (labelled training) and
    ``source`` (``--route``) audio with a gate keeping ``keep`` of held-out target speakers (1: no gate), and the
    routing figures for results.json."""
    base = copy.deepcopy(model).eval()
    base.requires_grad_(False)
    pooled = {name: pooled_states(base, processor, audio, batch_seconds, precision)
              for name, audio in (("target", target), ("source", source))}
    router = fit_router(pooled["target"], pooled["source"]).to(next(model.parameters()).device)
    gate = fit_gate(router, pooled["target"], keep, speakers, seed=seed)
    with torch.no_grad():
        decided = {name: router.decide(torch.from_numpy(x).to(router.mean.device)) for name, x in pooled.items()}
    classified = {name: float((d.routed | d.abstained).float().mean()) for name, d in decided.items()}
    if router.gated:  # the gate's view of the source audio it never saw (the classifier did)
        gate["source_within"] = round(float((router.distance(torch.from_numpy(pooled["source"]).to(
            router.mean.device)) <= router.gate_threshold).float().mean()), 4)
    routing = {"source_set": source_set, "utterances": {"target": len(target), "source": len(source)},
               "train_accuracy": {"target": round(classified["target"], 4),
                                  "source": round(1 - classified["source"], 4)},
               "gate": gate, **{key: {} for key in PER_SET}}  # per evaluation set (the after-scoring)
    return RunRouter(base, router, routing, uses_attention_mask(processor))


def router_warning(routing: dict | None) -> list[str]:
    """Warnings (printed and returned): a router right on under 90 % of its own training audio; a gate asked for
    but not calibrated (too few target utterances)."""
    if routing is None:
        return []
    acc, msgs = routing["train_accuracy"], []
    if min(acc.values()) < ROUTER_MIN_ACCURACY:
        msgs.append(f"the router tells the accents apart on only {100 * acc['target']:.0f} % of the target and "
                    f"{100 * acc['source']:.0f} % of the source utterances it was fitted on: the two may be too "
                    f"close to route, and misrouted utterances get the other model; compare with a run without "
                    f"--route")
    if routing["gate"].get("note"):
        msgs.append(f"the router has {routing['gate']['note']}: speech unlike both accents may be routed to the "
                    f"adapted model")
    for msg in msgs:
        print(f"warning: {msg}", file=sys.stderr)
    return msgs
