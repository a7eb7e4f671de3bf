"""CTC decoding: the model's forward pass on a padded batch, and batched greedy decoding.

Legend: B = batch, S = samples, T = output frames (20 ms each for wav2vec2), V = vocabulary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from tqdm.auto import tqdm

from speechtl.audio import SAMPLE_RATE
from speechtl.data.dataset import CtcCollator, length_grouped_batches
from speechtl.runtime import autocast

__all__ = ["uses_attention_mask", "forward_logits", "greedy_decode", "transcribe_arrays", "Transcripts"]


def uses_attention_mask(processor) -> bool:
    """Group-norm wav2vec2 models (e.g. base-960h) must not get an attention mask (HF convention)."""
    return bool(getattr(processor.feature_extractor, "return_attention_mask", True))


def forward_logits(model, batch: dict, pass_mask: bool, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """Run the encoder + CTC head. Returns logits (B, T, V) in fp32 and valid frame counts (B,)."""
    device = next(model.parameters()).device
    inputs = batch["input_values"].to(device)
    mask = batch["attention_mask"].to(device)
    give_mask = pass_mask or getattr(model, "wants_attention_mask", False)  # a routed model pools valid frames
    with autocast(device, precision):
        out = model(inputs, attention_mask=mask if give_mask else None)
    base = extract_model_from_parallel(model)  # DDP/compiled wrappers hide the helper below
    lengths = base._get_feat_extract_output_lengths(mask.sum(-1)).to(torch.long)
    return out.logits.float(), lengths


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
    was_training = model.training
    model.eval()
    durations = [len(a) / SAMPLE_RATE for a in arrays]
    batches = length_grouped_batches(durations, batch_seconds, seed=None)
    collate = CtcCollator(processor.feature_extractor)
    pass_mask = uses_attention_mask(processor)
    texts: list[str] = [""] * len(arrays)
    start = time.perf_counter()
    with tqdm(total=sum(durations), unit="audio-s", desc=desc, disable=not progress, leave=False) as bar:
        for idx in batches:
            batch = collate([{"id": str(i), "audio": arrays[i]} for i in idx])
            logits, lengths = forward_logits(model, batch, pass_mask, precision)
            texts_b = decode(logits, lengths) if decode else greedy_decode(logits, lengths, processor.tokenizer)
            for i, text in zip(idx, texts_b):
                texts[i] = text
            bar.update(sum(durations[i] for i in idx))
    model.train(was_training)
    return Transcripts(texts, time.perf_counter() - start, sum(durations))
