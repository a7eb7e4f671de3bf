"""Accent routing: the start model keeps serving the source accent, the adapted model serves the target accent.

A single small model adapted to a new accent trades the source for the target (ARCHITECTURE.md; RESULTS.md: every
recipe that buys the target −40 % costs the source +100 % or more on the shipped model). Routing sidesteps the
trade: a linear classifier on the **start model's own** mean-pooled final hidden states (the representation the
domain-mismatch score uses, :mod:`speechtl.eval.mismatch`) decides per utterance whether it looks like the target
data the run was adapted on; those go through the adapted model, all others through the unchanged start model.
What the source "forgets" is then only what the router sends the wrong way — measured, like everything else, on
the source test set.

- :func:`fit_router`: balanced logistic regression (L-BFGS, L2) on standardised pooled states of the labelled
  target audio (class 1) and a sample of source-accent audio (class 0; transcripts not needed).
- :func:`fit_gate`: the out-of-distribution gate. The classifier only learns "target or source", so speech that is
  neither (other TTS engines, real speakers) lands on an arbitrary side — in practice the target's (README,
  "Routing off its training distribution"). The gate is a diagonal Gaussian of the target's pooled states
  (variances shrunk a little toward their mean): an utterance whose mean squared standardised distance to it is
  above a threshold *abstains* (start model) even when classified target. The threshold is calibrated by cross-fitting over the target's speakers: fit on the
  other folds, measure the held-out fold, and take the ``keep`` quantile of the held-out distances (so about
  ``keep`` of new target speech passes); then the Gaussian is refitted on all the target audio.
- :class:`RoutedCTC`: base + adapted + router as one module with a CTC model's ``forward(input_values,
  attention_mask) -> .logits``, so every decoding path (evaluate, transcribe, long-form chunks, compare)
  serves the routed system unchanged. The base runs on every row; the adapted model only on routed rows.
  Long files are routed per chunk.
- A run folder with ``router/`` (``router.safetensors`` + ``speechtl_router.json``: the base model's name,
  SHA-256 of its weights, the router's figures) loads as a :class:`RoutedCTC` through
  :func:`speechtl.models.load_model`; the folder's own model files are the adapted model alone (plain
  transformers loads those). Format ``speechtl-router/2`` carries the gate's buffers; a ``/1`` folder (no gate)
  still loads and routes as before (gate off).

The router pools over each row's valid frames, so :func:`speechtl.decode.forward_logits` always hands a
``RoutedCTC`` the attention mask (``wants_attention_mask``); it passes the mask on to its two models only when
they use one (``pass_mask``: not for group-norm wav2vec2 such as base-960h, the HF convention).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers.modeling_outputs import CausalLMOutput

from speechtl.config import ConfigError
from speechtl.fileio import UMASK, atomic_dir, atomic_write_json
from speechtl.models import ModelLoadError, ctc_forward
from speechtl.models.adapter import digest_tensors
from speechtl.settings import GATE_KEEP

__all__ = ["ROUTER_DIR", "GATE_KEEP", "Router", "Decision", "RoutedCTC", "fit_router", "fit_gate", "masked_mean",
           "weights_digest", "save_router", "read_router_meta", "load_router"]

ROUTER_DIR = "router"  # inside the run folder
META = "speechtl_router.json"
WEIGHTS = "router.safetensors"
FORMAT = "speechtl-router/2"  # /2: the out-of-distribution gate's buffers
FORMATS = ("speechtl-router/1", FORMAT)  # what loads (a /1 router has no gate)
GATE_FOLDS = 5  # cross-fitting folds (over speakers) that calibrate the gate's threshold
GATE_SHRINK = 0.1  # the gate's variances are shrunk this far toward their mean


def masked_mean(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D) hidden states → (B, D) fp32 mean over each row's first ``lengths`` frames."""
    valid = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None].to(hidden.device))
    valid = valid.float()
    return (hidden.float() * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)


class Decision(NamedTuple):
    """A router's verdict on a batch: each (B,)."""

    routed: torch.Tensor  # bool: the adapted (target) model serves it
    abstained: torch.Tensor  # bool: classified target, but too far from the target data (the start model serves it)
    probability: torch.Tensor  # p(target) of the classifier


class Router(torch.nn.Module):
    """p(target | pooled state) = σ(w·(x − μ)/σ + b); an utterance is routed to the adapted model when p > 0.5 and
    it passes the gate: mean_d ((x_d − m_d)/s_d)² ≤ threshold (m, s: the target's pooled states). A threshold of
    +inf (the default, and every ``speechtl-router/1`` folder) is no gate."""

    def __init__(self, dim: int):
        super().__init__()
        for name in ("mean", "std", "weight", "gate_mean"):
            self.register_buffer(name, torch.zeros(dim))
        self.register_buffer("bias", torch.zeros(1))
        self.register_buffer("gate_std", torch.ones(dim))
        self.register_buffer("gate_threshold", torch.full((1,), float("inf")))

    @property
    def gated(self) -> bool:
        return bool(torch.isfinite(self.gate_threshold).all())

    def logit(self, pooled: torch.Tensor) -> torch.Tensor:
        x = (pooled.float() - self.mean) / self.std
        return x @ self.weight + self.bias

    def distance(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B,) mean squared standardised distance to the target's pooled states (the gate's score)."""
        return (((pooled.float() - self.gate_mean) / self.gate_std) ** 2).mean(-1)

    def decide(self, pooled: torch.Tensor) -> Decision:
        logit = self.logit(pooled)
        target = logit > 0
        near = self.distance(pooled) <= self.gate_threshold if self.gated else torch.ones_like(target)
        return Decision(target & near, target & ~near, torch.sigmoid(logit))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B,) bool: True = the adapted (target) model."""
        return self.decide(pooled).routed


def fit_router(target: np.ndarray, source: np.ndarray, l2: float = 1e-2) -> Router:
    """Logistic regression on (N, D) target and (M, D) source pooled states, classes weighted equally."""
    if len(target) < 2 or len(source) < 2:
        raise ConfigError(f"a router needs at least 2 target and 2 source utterances (got {len(target)} and "
                         f"{len(source)})")
    x = torch.tensor(np.concatenate([target, source]), dtype=torch.float64)
    y = torch.cat([torch.ones(len(target)), torch.zeros(len(source))]).double()
    sample_weight = torch.where(y > 0, 0.5 / len(target), 0.5 / len(source))
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, weight=sample_weight,
                                                                   reduction="sum")
        loss = bce + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    router = Router(x.shape[1])
    router.mean.copy_(mean.float())
    router.std.copy_(std.float())
    router.weight.copy_(w.detach().float())
    router.bias.copy_(b.detach().float())
    return router


def _gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-dimension spread, each variance shrunk toward their mean (a dimension that barely varies in a
    few target utterances must not dominate the distance)."""
    var = x.var(0)
    return x.mean(0), np.sqrt((1 - GATE_SHRINK) * var + GATE_SHRINK * var.mean()) + 1e-6


def _distance(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (((x - mean) / std) ** 2).mean(-1)


def _folds(n: int, groups: Sequence[str] | None, folds: int, seed: int) -> np.ndarray:
    """A fold number per row: whole groups (speakers) per fold, groups dealt out in a seeded random order."""
    keys = np.asarray(groups if groups is not None and len(set(groups)) >= folds else range(n)).astype(str)
    unique = np.unique(keys)
    np.random.default_rng(seed).shuffle(unique)
    fold_of = {k: i % folds for i, k in enumerate(unique)}
    return np.array([fold_of[k] for k in keys])


def fit_gate(router: Router, target: np.ndarray, keep: float = GATE_KEEP, groups: Sequence[str] | None = None,
             folds: int = GATE_FOLDS, seed: int = 0) -> dict:
    """Give ``router`` an out-of-distribution gate fitted on the (N, D) target pooled states (see the module doc);
    ``groups`` (e.g. speakers) are kept whole within a fold (utterances when fewer groups than folds).
    ``keep`` = 1 (or fewer than 4 target rows) leaves no gate. Returns the calibration figures for results.json."""
    if not 0 < keep <= 1:
        raise ConfigError(f"the gate keeps a share of the target in (0, 1] (1: no gate), got {keep:g}")
    x = np.asarray(target, dtype=np.float64)
    folds = min(folds, len(x) // 2)  # at least 2 held-out rows per fold
    if keep == 1 or folds < 2:
        router.gate_threshold.fill_(float("inf"))
        return {"keep": keep, "threshold": None, **({} if keep == 1 else {
            "note": f"no gate: {len(x)} target utterances are too few to calibrate one (4 at least)"})}
    fold = _folds(len(x), groups, folds, seed)
    held_out = np.empty(len(x))
    for k in range(folds):  # cross-fitting: every distance is measured by a Gaussian that never saw its row
        held_out[fold == k] = _distance(x[fold == k], *_gaussian(x[fold != k]))
    threshold = float(np.quantile(held_out, keep))
    mean, std = _gaussian(x)  # the gate serves with the Gaussian of all the target
    device = router.gate_mean.device
    router.gate_mean.copy_(torch.from_numpy(mean).float().to(device))
    router.gate_std.copy_(torch.from_numpy(std).float().to(device))
    router.gate_threshold.fill_(threshold)
    return {"keep": keep, "threshold": round(threshold, 6), "folds": folds,
            "held_out_target_kept": round(float((held_out <= threshold).mean()), 4)}


class RoutedCTC(torch.nn.Module):
    """The start model for source-like utterances, the adapted model for target-like ones (see the module doc)."""

    wants_attention_mask = True  # forward_logits passes the mask whatever the feature extractor says

    def __init__(self, base, adapted, router: Router, pass_mask: bool = True):
        super().__init__()
        self.base, self.adapted, self.router = base, adapted, router
        self.pass_mask = pass_mask  # give the mask to the two models (False: group-norm models, padded with zeros)
        self.config = adapted.config  # vocabulary, text language: the adapted model's (the same head layout)
        self._reset()

    def _reset(self) -> None:
        self.counts = [0, 0]  # utterances routed to the adapted model, utterances seen (since the last pop_share)
        self.abstained, self.probability = 0, 0.0  # utterances the gate kept on the start model; Σ p(target)

    def pop_stats(self) -> dict[str, float]:
        """Of the utterances seen since the last call: the share the adapted model served (``routed_share``), the
        share the gate kept on the start model although classified target (``abstained_share``), and the mean
        router probability p(target) (``mean_probability``). Restarts the count."""
        seen = max(self.counts[1], 1)
        stats = {"routed_share": round(self.counts[0] / seen, 4), "abstained_share": round(self.abstained / seen, 4),
                 "mean_probability": round(self.probability / seen, 4)}
        self._reset()
        return stats

    def pop_share(self) -> float:
        """Share of the utterances seen since the last call that went to the adapted model; restarts the count."""
        return self.pop_stats()["routed_share"]

    def _get_feat_extract_output_lengths(self, lengths):
        return self.base._get_feat_extract_output_lengths(lengths)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> CausalLMOutput:
        mask = attention_mask if self.pass_mask else None
        enc, logits = ctc_forward(self.base, input_values, mask)
        hidden = enc.last_hidden_state
        samples = attention_mask.sum(-1) if attention_mask is not None else \
            torch.full((len(input_values),), input_values.shape[1], device=input_values.device)
        decision = self.router.decide(masked_mean(hidden, self.base._get_feat_extract_output_lengths(samples)))
        routed = decision.routed
        self.counts[0] += int(routed.sum())
        self.counts[1] += len(routed)
        self.abstained += int(decision.abstained.sum())
        self.probability += float(decision.probability.sum())
        if routed.any():
            logits = logits.clone()
            logits[routed] = self.adapted(input_values[routed], attention_mask=mask[routed] if mask is not None
                                          else None).logits.to(logits.dtype)
        return CausalLMOutput(logits=logits)


def weights_digest(model) -> str:
    """SHA-256 of the weights of ``model`` (names, dtypes, shapes, bytes) that inference reads: all but the
    SpecAugment mask embedding, which transformers initialises at random when a checkpoint lacks it."""
    return digest_tensors({k: v for k, v in model.state_dict().items() if not k.endswith("masked_spec_embed")})


def save_router(router: Router, folder: str | Path, base_model: str, base_digest: str, info: dict) -> None:
    """Write ``folder`` atomically. A base given as a local folder is stored as an absolute path."""
    if Path(base_model).is_dir():
        base_model = str(Path(base_model).resolve())
    meta = {"format": FORMAT, "base_model": base_model, "base_weights_sha256": base_digest, "weights": WEIGHTS,
            **info}
    with atomic_dir(folder) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in router.state_dict().items()}, tmp / WEIGHTS,
                  metadata={"format": "pt"})
        os.chmod(tmp / WEIGHTS, 0o666 & ~UMASK)
        atomic_write_json(tmp / META, meta)


def read_router_meta(folder: str | Path) -> dict | None:
    """The router description of a run folder's ``router/``, or None when it has none."""
    path = Path(folder) / ROUTER_DIR / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{str(path)!r}: unreadable router description ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict) or meta.get("format") not in FORMATS or not meta.get("base_model"):
        raise ModelLoadError(f"{str(path)!r} is not a {' or '.join(FORMATS)} description naming its base model")
    return meta


def load_router(folder: str | Path, meta: dict, base, base_name: str) -> Router:
    """The router of a run folder, after checking that ``base`` is the model it was trained on."""
    where = Path(folder) / ROUTER_DIR
    if weights_digest(base) != meta.get("base_weights_sha256"):
        raise ModelLoadError(f"{str(where)!r} routes between {meta['base_model']!r} and the adapted model, but "
                             f"{base_name!r} has other weights: the router only works with the base it was "
                             f"trained on")
    try:
        tensors = load_file(where / meta.get("weights", WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"{str(where)!r}: unreadable router weights ({e})") from e
    router = Router(base.config.hidden_size)
    if meta["format"] == FORMATS[0]:  # a /1 router has no gate: the default buffers (gate off) fill in
        tensors = {**{k: v for k, v in router.state_dict().items() if k.startswith("gate_")}, **tensors}
    try:
        router.load_state_dict(tensors)
    except RuntimeError as e:
        raise ModelLoadError(f"{str(where)!r}: the router does not fit {base_name!r} ({e})") from e
    return router
