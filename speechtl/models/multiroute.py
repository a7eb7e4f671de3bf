"""Several accents behind one router: one base model, K accent-adapted members, each with its own router.

:class:`MultiRoutedCTC` generalises :class:`speechtl.models.router.RoutedCTC` from one adapted model to K. The base
runs on every row; its mean-pooled final hidden states are computed once and scored by each member's router (each
fitted on that member's target audio against the source, with its out-of-distribution gate). An utterance goes to
one of the members that route it (classified target *and* within their gate), the one nearest its own target data
(:func:`choose`); when none routes it, the base serves it. Why not the highest p(target): each classifier learned
only "my accent vs the source", so p(target) measures how unlike the source an utterance is, not whose accent it
is — on two tone "accents" either side of the source, the member whose accent lay further from the source won
most of the other's utterances (p ≈ 1 for both), while the gate distances told the accents apart. Like ``RoutedCTC`` it has a CTC model's
``forward(input_values, attention_mask) -> .logits``, so evaluate, transcribe (short files and long-form chunks,
routed per chunk) and compare serve it unchanged, and :meth:`MultiRoutedCTC.pop_stats` gives the share each member
served.

:func:`load_multiroute` loads a folder written by ``speechtl combine`` (:mod:`speechtl.models.combine`): every
member's files are checked against their combine-time digests, the base is loaded once, each router is checked
against it, and each member is built: a ``lora``/``adapter`` member as a copy of the base module that **shares**
the base's weight tensors, with only its adapter (and its CTC head) in new memory (LoRA left unmerged, so the
shared weights are never written); a ``full`` member as its whole adapted model.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from transformers.modeling_outputs import CausalLMOutput

from speechtl.models import TEXT_LANGUAGE_KEY, ctc_forward, load_base, load_model, uses_attention_mask
from speechtl.models.adapter import ADAPTER_DIR, apply_adapter
from speechtl.models.combine import read_multiroute, verify_member
from speechtl.models.router import Router, load_router, masked_mean, read_router_meta

__all__ = ["MultiRoutedCTC", "Choice", "shared_copy", "load_multiroute"]

BASE = -1  # Choice.member of a row the base serves


class Choice(NamedTuple):
    """The routers' verdict on a batch."""

    member: torch.Tensor  # (B,) long: the index of the member that serves the row, BASE (-1) for the base
    abstained: torch.Tensor  # (B,) bool: some member classified it target, but every such member's gate kept it out
    probability: torch.Tensor  # (K, B) p(target) of each member's classifier


def choose(routers: Sequence[Router], pooled: torch.Tensor) -> Choice:
    """Each router decides on the same (B, D) pooled states; among the members that route a row, the nearest to its
    own target wins: the smallest gate distance relative to that gate's threshold. When some router has no gate
    (a ``speechtl-router/1`` folder, too few target utterances), the highest p(target) wins instead (compared as
    logits, which do not saturate at 1.0 in fp32)."""
    decisions = [r.decide(pooled) for r in routers]
    routed = torch.stack([d.routed for d in decisions])  # (K, B)
    classified = routed | torch.stack([d.abstained for d in decisions])
    if all(r.gated for r in routers):
        score = -torch.stack([r.distance(pooled) / r.gate_threshold.clamp(min=1e-12) for r in routers])
    else:
        score = torch.stack([r.logit(pooled) for r in routers])
    best = torch.where(routed, score, torch.full_like(score, -torch.inf)).argmax(0)
    member = torch.where(routed.any(0), best, torch.full_like(best, BASE))
    return Choice(member, classified.any(0) & ~routed.any(0), torch.stack([d.probability for d in decisions]))


class MultiRoutedCTC(torch.nn.Module):
    """The base for source-like and far-off utterances, the best-routing member for the others (see the module
    doc). ``names``: one per member (the accents), in the order of ``members`` and ``routers``."""

    wants_attention_mask = True  # forward_logits passes the mask whatever the feature extractor says

    def __init__(self, base, members: Sequence[torch.nn.Module], routers: Sequence[Router], names: Sequence[str],
                 pass_mask: bool = True, config=None):
        super().__init__()
        if not len(members) == len(routers) == len(names) > 0:
            raise ValueError("give one router and one name per member, and at least one member")
        self.base = base
        self.members, self.routers = torch.nn.ModuleList(members), torch.nn.ModuleList(routers)
        self.names = list(names)
        self.pass_mask = pass_mask  # give the mask to the models (False: group-norm models, padded with zeros)
        self.config = config if config is not None else base.config  # vocabulary, text language
        self.last_choice: Choice | None = None  # the latest batch's verdict, row by row
        self._reset()

    def _reset(self) -> None:
        self.seen, self.abstained = 0, 0
        self.served = [0] * len(self.names)  # utterances each member served (since the last pop_stats)
        self.probability = [0.0] * len(self.names)  # Σ p(target) per member's classifier

    def pop_stats(self) -> dict:
        """Of the utterances seen since the last call: the share the members served together (``routed_share``),
        the share classified target by some member but kept on the base by the gates (``abstained_share``), and
        per member the share it served (``member_shares``) and its mean p(target) (``member_probability``).
        Restarts the count."""
        seen = max(self.seen, 1)
        stats = {"routed_share": round(sum(self.served) / seen, 4), "abstained_share": round(self.abstained / seen, 4),
                 "member_shares": {n: round(s / seen, 4) for n, s in zip(self.names, self.served)},
                 "member_probability": {n: round(p / seen, 4) for n, p in zip(self.names, self.probability)}}
        self._reset()
        return stats

    def pop_share(self) -> float:
        """Share of the utterances seen since the last call that a member served; restarts the count."""
        return self.pop_stats()["routed_share"]

    def _get_feat_extract_output_lengths(self, lengths):
        return self.base._get_feat_extract_output_lengths(lengths)

    def _record(self, choice: Choice) -> None:
        self.last_choice = choice
        self.seen += len(choice.member)
        self.abstained += int(choice.abstained.sum())
        for k in range(len(self.names)):
            self.served[k] += int((choice.member == k).sum())
            self.probability[k] += float(choice.probability[k].sum())

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> CausalLMOutput:
        mask = attention_mask if self.pass_mask else None
        enc, logits = ctc_forward(self.base, input_values, mask)
        samples = attention_mask.sum(-1) if attention_mask is not None else \
            torch.full((len(input_values),), input_values.shape[1], device=input_values.device)
        pooled = masked_mean(enc.last_hidden_state, self.base._get_feat_extract_output_lengths(samples))
        choice = choose(self.routers, pooled)  # the one pooled state serves all K routers
        self._record(choice)
        if (choice.member != BASE).any():
            logits = logits.clone()
            for k, member in enumerate(self.members):
                rows = choice.member == k
                if rows.any():
                    logits[rows] = member(input_values[rows], attention_mask=mask[rows] if mask is not None
                                          else None).logits.to(logits.dtype)
        return CausalLMOutput(logits=logits)


def shared_copy(base: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``base`` whose weights and buffers *are* the base's tensors (no new memory, moved together by
    ``.to``), except the CTC head (``lm_head``), which an adapter may replace: a member's own head must not write
    into the base's."""
    memo = {id(t): t for t in itertools.chain(base.parameters(), base.buffers())}
    clone = copy.deepcopy(base, memo)
    clone.lm_head = copy.deepcopy(base.lm_head)
    return clone


def _member_model(member: dict, base, processor, base_name: str, attn_implementation: str):
    """A ``lora``/``adapter`` member: its adapter over a :func:`shared_copy` of the base; a ``full`` member: its
    adapted model (the run folder's own weights)."""
    if member["kind"] == "full":
        return load_model(member["path"], attn_implementation, route=False)[0].eval()
    return apply_adapter(shared_copy(base), processor, Path(member["path"]) / ADAPTER_DIR, base_name,
                         merge=False).eval()


def load_multiroute(folder: str | Path, attn_implementation: str = "sdpa"):
    """The :class:`MultiRoutedCTC` of a folder written by ``speechtl combine``, and the base's processor. Refuses a
    member whose files changed since, and a router not fitted on the base."""
    meta = read_multiroute(folder)
    for member in meta["members"]:
        verify_member(member, folder)
    name = meta["base_model"]
    base, processor = load_base(name, str(folder), attn_implementation)
    base.eval().requires_grad_(False)
    routers, members = [], []
    for member in meta["members"]:
        run = member["path"]
        routers.append(load_router(run, read_router_meta(run), base, name))
        members.append(_member_model(member, base, processor, name, attn_implementation))
    config = copy.deepcopy(base.config)
    setattr(config, TEXT_LANGUAGE_KEY, meta.get("text_language"))
    names = [m["name"] for m in meta["members"]]
    return MultiRoutedCTC(base, members, routers, names, uses_attention_mask(processor), config).eval(), processor
