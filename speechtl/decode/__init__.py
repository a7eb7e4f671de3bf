"""CTC decoding: the model's forward pass on a padded batch, the one batched inference loop, greedy decoding.

Every inference path (transcripts, pseudo-labels, the mismatch score's hidden states, long files) pads its
audio with :class:`~speechtl.data.dataset.CtcCollator` and runs the model through :func:`forward_arrays`;
those that start from arrays in memory batch them with :func:`iter_batches` (length-grouped, longest first).

Legend: B = batch, S = samples, T = output frames (20 ms each for wav2vec2), V = vocabulary, D = hidden size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from tqdm.auto import tqdm

from speechtl.audio import SAMPLE_RATE
from speechtl.data.dataset import CtcCollator, length_grouped_batches
from speechtl.models import ctc_forward, uses_attention_mask
from speechtl.models.fast_encoder import fast_encode_features, fast_encode_features_for_training, \
    fast_features_supported
from speechtl.models.features import ctc_logits_from_features
from speechtl.runtime import autocast

__all__ = ["uses_attention_mask", "MODEL_INPUTS", "batch_rows", "forward_logits", "audio_forward", "Batch", "forward_arrays",
           "iter_batches", "greedy_decode", "transcribe_arrays", "Transcripts"]


def _gives_mask(model, pass_mask: bool) -> bool:
    return pass_mask or getattr(model, "wants_attention_mask", False)  # a routed model pools valid frames


MODEL_INPUTS = ("input_values", "attention_mask", "extract_features", "feature_lengths")  # what a batch feeds a model


def batch_rows(batch: dict, rows: torch.Tensor) -> dict:
    """The model inputs of a batch (audio or cached features) for the rows selected by ``rows`` (B,) bool."""
    return {k: batch[k][rows] for k in MODEL_INPUTS if k in batch}


def forward_logits(model, batch: dict, pass_mask: bool, precision: str = "fp32", fast: bool = False,
                   forward: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the encoder + CTC head. Returns logits (B, T, V) in fp32 and valid frame counts (B,).

    A batch of cached feature-encoder outputs (``extract_features``, ``feature_lengths``:
    :class:`speechtl.data.feature_cache.FeatureCollator`) runs the rest of the model from there
    (:func:`speechtl.models.features.ctc_logits_from_features`); a batch of audio runs all of it.
    ``fast``: in bf16 the feature encoder runs as matrix products on (B, T, C) activations where the model allows
    (:mod:`speechtl.models.fast_encoder`; equal up to rounding, ~2x faster on CPU in eval mode; in training mode its
    differentiable variant, ~1.3x per training step with the encoder trained).
    ``forward``: what runs a batch of audio instead of :func:`audio_forward` (a compiled one, built for the same
    model and settings)."""
    device = next(model.parameters()).device
    if "extract_features" in batch:
        lengths = batch["feature_lengths"].to(device)
        with autocast(device, precision):
            logits = ctc_logits_from_features(model, batch["extract_features"].to(device), lengths)
        return logits.float(), lengths
    inputs = batch["input_values"].to(device)
    mask = batch["attention_mask"].to(device)
    base = extract_model_from_parallel(model)  # DDP/compiled wrappers hide the helper below
    lengths = base._get_feat_extract_output_lengths(mask.sum(-1)).to(torch.long)
    run = forward if forward is not None else audio_forward(model, pass_mask, precision, fast)
    return run(inputs, mask, lengths), lengths


def audio_forward(model, pass_mask: bool, precision: str = "fp32",
                  fast: bool = False) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The forward of :func:`forward_logits` on a batch of audio as a plain function of tensors,
    ``(input_values (B, S), attention_mask (B, S), frame lengths (B,)) -> logits (B, T, V) fp32``, with every
    choice (fast feature encoder, mask or not, precision) made once here: what
    :class:`speechtl.decode.compiled.CompiledForward` compiles."""
    device = next(model.parameters()).device
    gives_mask = _gives_mask(model, pass_mask)
    if fast and precision == "bf16" and fast_features_supported(model):
        encode = fast_encode_features_for_training if model.training else fast_encode_features

        def run_fast(inputs: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            with autocast(device, precision):
                features = encode(model, inputs, torch.bfloat16)
                logits = ctc_logits_from_features(model, features, lengths if gives_mask else None)
            return logits.float()
        return run_fast

    def run(inputs: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            return model(inputs, attention_mask=mask if gives_mask else None).logits.float()
    return run


@dataclass
class Batch:
    """One padded batch's outputs; the hidden states only when asked for (``hidden_states=True``)."""

    indices: list[int]  # the rows' positions in the input
    logits: torch.Tensor  # (B, T, V) fp32, on the model's device
    lengths: torch.Tensor  # (B,) valid frames per row
    hidden_states: tuple[torch.Tensor, ...] | None = None  # (B, T, D) each: the transformer's input, then per layer
    last_hidden_state: torch.Tensor | None = None  # (B, T, D): the encoder's output, what the CTC head reads


def forward_arrays(model, processor, arrays: Sequence[np.ndarray], precision: str = "fp32",
                   hidden_states: bool = False, indices: Sequence[int] | None = None, fast: bool = False,
                   forward: Callable | None = None) -> Batch:
    """16 kHz arrays padded into one batch by the model's feature extractor, through the model (no gradients,
    in the mode the model is in). ``hidden_states`` needs a plain ``*ForCTC`` model in eval mode; ``fast``: see
    :func:`forward_logits` (transcription and training use it; evaluation does not, so its figures stay put);
    ``forward``: see :func:`forward_logits`."""
    indices = list(range(len(arrays))) if indices is None else list(indices)
    batch = CtcCollator(processor.feature_extractor)([{"id": str(i), "audio": a} for i, a in zip(indices, arrays)])
    pass_mask = uses_attention_mask(processor)
    with torch.no_grad():
        if not hidden_states:
            return Batch(indices, *forward_logits(model, batch, pass_mask, precision, fast, forward))
        device = next(model.parameters()).device
        mask = batch["attention_mask"].to(device)
        with autocast(device, precision):
            enc, logits = ctc_forward(model, batch["input_values"].to(device),
                                      mask if _gives_mask(model, pass_mask) else None, output_hidden_states=True)
        lengths = model._get_feat_extract_output_lengths(mask.sum(-1)).to(torch.long)
    return Batch(indices, logits.float(), lengths, enc.hidden_states, enc.last_hidden_state)


def iter_batches(model, processor, arrays: Sequence[np.ndarray], batch_seconds: float = 60.0,
                 precision: str = "fp32", hidden_states: bool = False) -> Iterator[Batch]:
    """The model's outputs on 16 kHz arrays in length-grouped batches (longest first) whose padded size stays
    under ``batch_seconds``; the model is in eval mode meanwhile and back in its own mode at the end."""
    was_training = model.training
    model.eval()
    try:
        durations = [len(a) / SAMPLE_RATE for a in arrays]
        for idx in length_grouped_batches(durations, batch_seconds, seed=None):
            yield forward_arrays(model, processor, [arrays[i] for i in idx], precision, hidden_states, idx)
    finally:
        model.train(was_training)


def greedy_decode(logits: torch.Tensor, lengths: torch.Tensor, tokenizer) -> list[str]:
    """Best path: argmax per frame, frames past each length set to blank, then the tokenizer collapses repeats.

    Special tokens the model wrote (``<unk>``, ``<s>``, ``</s>``) are dropped: they are not words. (Not with
    ``skip_special_tokens``: that removes the blank before repeats are collapsed, so "l <pad> l" would become "l".)"""
    ids = logits.argmax(-1)
    frames = torch.arange(ids.shape[1], device=ids.device)[None, :]
    ids = ids.masked_fill(frames >= lengths[:, None].to(ids.device), tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(ids.cpu())
    special = [t for t in tokenizer.all_special_tokens if t != tokenizer.pad_token]
    for token in special:
        texts = [t.replace(token, " ") for t in texts]
    return [" ".join(t.split()) for t in texts]


@dataclass
class Transcripts:
    texts: list[str]
    compute_s: float  # wall time of feature extraction + model + decoding
    audio_s: float

    @property
    def rtf(self) -> float:
        """Real-time factor: compute seconds per second of audio (lower is faster)."""
        return self.compute_s / max(self.audio_s, 1e-9)


@torch.no_grad()
def transcribe_arrays(
    model,
    processor,
    arrays: Sequence[np.ndarray],
    batch_seconds: float = 60.0,
    precision: str = "fp32",
    progress: bool = False,
    desc: str = "decoding",
    decode: Callable[[torch.Tensor, torch.Tensor], list[str]] | None = None,
) -> Transcripts:
    """Transcripts of 16 kHz mono arrays, batched by length under a padded-seconds budget.

    ``decode(logits (B, T, V), lengths (B,))`` turns a batch into texts (default: greedy; see
    :func:`speechtl.decode.lm.LmDecoder.batch_decoder` for beam search with an LM)."""
    durations = [len(a) / SAMPLE_RATE for a in arrays]
    texts: list[str] = [""] * len(arrays)
    start = time.perf_counter()
    # counted in samples (integers: float seconds overrun the total by rounding), shown in seconds
    with tqdm(total=sum(len(a) for a in arrays), desc=desc, disable=not progress, leave=False,
              unit_scale=1 / SAMPLE_RATE,
              bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} audio-s [{elapsed}<{remaining}]") as bar:
        for b in iter_batches(model, processor, arrays, batch_seconds, precision):
            texts_b = decode(b.logits, b.lengths) if decode else greedy_decode(b.logits, b.lengths, processor.tokenizer)
            for i, text in zip(b.indices, texts_b):
                texts[i] = text
            bar.update(sum(len(arrays[i]) for i in b.indices))
    return Transcripts(texts, time.perf_counter() - start, sum(durations))
