"""Dataset, length-grouped batching under a total-seconds budget, and the collator.

Shapes (legend): B = batch size, S = audio samples at 16 kHz, L = label length.
A collated batch holds ``input_values`` (B, S) float32, ``attention_mask`` (B, S) long,
``labels`` (B, L) long padded with -100, ``label_lengths`` (B,) long and ``ids`` (list of B str); with
``distill`` given to the dataset also ``distill`` (B,) bool (rows whose outputs the teacher anchors).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from speechtl.config import ConfigError
from speechtl.audio import SAMPLE_RATE, AudioError, load_audio
from speechtl.data.manifest import Utterance

__all__ = ["AudioDataset", "length_grouped_batches", "CtcCollator", "collate_targets", "load_utterance_audio",
           "ON_ERROR", "MIN_SAMPLES", "frames_needed"]


class AudioDataset(torch.utils.data.Dataset):
    """Utterances with their label ids. Audio comes from ``audio`` (already loaded) or is read per item."""

    def __init__(
        self,
        utts: Sequence[Utterance],
        labels: Sequence[Sequence[int]] | None = None,
        audio: Sequence[np.ndarray] | None = None,
        transform: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None,
        distill: Sequence[bool] | None = None,
    ):
        self.utts = list(utts)
        self.distill = list(distill) if distill is not None else None  # per utterance: keep the teacher's outputs
        self.labels = list(labels) if labels is not None else None
        self.audio = list(audio) if audio is not None else None
        self.transform = transform  # (audio, (epoch, index)) -> audio, e.g. augmentation
        self.epoch = 0  # set by the training loop, so augmentation differs per epoch but not per resume

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> dict:
        wav = self.waveform(i)
        if self.transform is not None:
            wav = self.transform(wav, (self.epoch, i))
        return {**self.item_without_audio(i), "audio": wav}

    def waveform(self, i: int) -> np.ndarray:
        """Utterance ``i``'s audio as loaded (no transform)."""
        return self.audio[i] if self.audio is not None else load_audio(self.utts[i].audio_path)

    def item_without_audio(self, i: int) -> dict:
        """What ``self[i]`` holds besides its audio: ``id``, and ``labels`` / ``distill`` where given."""
        item = {"id": self.utts[i].id}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        if self.distill is not None:
            item["distill"] = self.distill[i]
        return item


def length_grouped_batches(
    durations_s: Sequence[float], max_batch_s: float, seed: int | None = 0, pool_factor: int = 50
) -> list[list[int]]:
    """Indices grouped into batches of similar length whose *padded* size stays under ``max_batch_s``.

    With a seed: shuffle, sort within pools of ~``pool_factor`` batches, then shuffle the batches —
    random order with little padding. Without a seed: longest first (for inference). An utterance
    longer than the budget gets a batch of its own.
    """
    order = list(range(len(durations_s)))
    if seed is None:
        order.sort(key=lambda i: -durations_s[i])
        pools = [order]
    else:
        rng = random.Random(seed)
        rng.shuffle(order)
        mean_s = max(sum(durations_s) / max(len(durations_s), 1), 1e-3)
        pool = max(1, int(pool_factor * max_batch_s / mean_s))
        pools = [sorted(order[k : k + pool], key=lambda i: -durations_s[i]) for k in range(0, len(order), pool)]
    batches: list[list[int]] = []
    for p in pools:
        batch: list[int] = []
        for i in p:  # descending length: the first item of a batch is its longest
            longest = durations_s[batch[0]] if batch else durations_s[i]
            if batch and longest * (len(batch) + 1) > max_batch_s:
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
    if seed is not None:
        random.Random(seed + 1).shuffle(batches)
    return batches


def frames_needed(label: Sequence) -> int:
    """CTC's minimum output frames for a label (a string or token ids): one per token, plus a blank between two
    equal neighbours. An utterance with fewer frames cannot be aligned: the CTC loss ignores it."""
    return len(label) + sum(a == b for a, b in zip(label, label[1:]))


class CtcCollator:
    """Pads audio with the model's feature extractor (normalisation, attention mask) and labels with -100."""

    def __init__(self, feature_extractor):
        self.feature_extractor = feature_extractor

    def __call__(self, items: list[dict]) -> dict:
        feats = self.feature_extractor(
            [it["audio"] for it in items],
            sampling_rate=SAMPLE_RATE,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return {"ids": [it["id"] for it in items], "input_values": feats["input_values"],
                "attention_mask": feats["attention_mask"], **collate_targets(items)}


def collate_targets(items: list[dict]) -> dict:
    """``labels`` (B, L) padded with -100 and ``label_lengths`` (B,), and ``distill`` (B,) bool, where items have
    them: the part of a batch that is not model input."""
    batch = {}
    if "labels" in items[0]:
        lengths = torch.tensor([len(it["labels"]) for it in items], dtype=torch.long)
        labels = torch.full((len(items), int(lengths.max())), -100, dtype=torch.long)
        for k, it in enumerate(items):
            labels[k, : len(it["labels"])] = torch.as_tensor(it["labels"], dtype=torch.long)
        batch["labels"] = labels
        batch["label_lengths"] = lengths
    if "distill" in items[0]:
        batch["distill"] = torch.tensor([it["distill"] for it in items], dtype=torch.bool)
    return batch


ON_ERROR = ("fail", "skip")
# wav2vec2's receptive field (25 ms at 16 kHz): shorter audio gives the model no output frame. Callers holding
# the model pass its own (speechtl.decode.chunking.model_receptive_field); this layer cannot see models.
MIN_SAMPLES = 400


def load_utterance_audio(
    utts: Sequence[Utterance], on_error: str = "fail", progress: bool = False, desc: str = "loading audio",
    min_samples: int = MIN_SAMPLES,
) -> tuple[list[Utterance], list[np.ndarray], list[dict]]:
    """Decode every utterance's audio once, up front, so a bad file is found before any training.

    Returns the readable utterances (``duration_s`` filled from the audio), their arrays, and the
    skipped ones as ``{"id", "audio_path", "reason"}``. With ``on_error="fail"`` the first bad file
    raises :class:`~speechtl.audio.AudioError` naming the utterance and the file. Audio shorter than
    ``min_samples`` (the model's receptive field) is such a bad file: the model cannot decode it.
    """
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    kept, arrays, skipped = [], [], []
    for u in tqdm(utts, desc=desc, unit="utt", disable=not progress, leave=False):
        try:
            wav = load_audio(u.audio_path, min_samples=min_samples)
        except AudioError as e:
            if on_error == "fail":
                raise AudioError(f"utterance {u.id!r}: {e} (use --on-error skip to leave such files out)") from e
            skipped.append({"id": u.id, "audio_path": str(u.audio_path), "reason": str(e)})
            continue
        kept.append(dataclasses.replace(u, duration_s=len(wav) / SAMPLE_RATE))
        arrays.append(wav)
    return kept, arrays, skipped
