"""Frozen feature-encoder outputs computed once and reused every epoch: in memory under a budget, on disk beyond it.

When the convolutional feature encoder does not train and no waveform augmentation changes the audio, its output
for an utterance is the same in every epoch. :class:`FeatureDataset` computes it on an utterance's first use
(``encode``: a callable the training loop builds from the model) and :class:`FeatureStore` keeps it: in memory
until ``budget_bytes`` are held, then as one ``.npy`` file per utterance in a scratch folder (never pickled;
bf16 is stored as its int16 bit pattern, since numpy has no bf16). :class:`FeatureCollator` pads features into a
batch. The model side (the forward from these features) is :mod:`speechtl.models.features`.

Shapes (legend): B = batch size, T = encoder frames (20 ms for wav2vec2), C = the last convolution's channels,
L = label length. A collated batch holds ``extract_features`` (B, T, C) zero-padded, ``feature_lengths`` (B,) long
and ``ids``, plus ``labels`` / ``label_lengths`` / ``distill`` as :class:`~speechtl.data.dataset.CtcCollator`
gives them.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from speechtl.data.dataset import AudioDataset, collate_targets
from speechtl.fileio import atomic_write_bytes

__all__ = ["FeatureStore", "FeatureDataset", "FeatureCollator"]


class FeatureStore:
    """Tensors by utterance index: in memory while the held bytes stay within ``budget_bytes``, else ``.npy`` files
    in ``folder`` (emptied when the store is made and removed by :meth:`close`)."""

    def __init__(self, folder: str | Path, budget_bytes: int):
        self.folder = Path(folder)
        self.budget_bytes = budget_bytes
        self.memory: dict[int, torch.Tensor] = {}
        self.on_disk: dict[int, torch.dtype] = {}  # index -> the dtype to give back
        self.memory_bytes = 0
        shutil.rmtree(self.folder, ignore_errors=True)  # an earlier run's files: perhaps of another model

    def __len__(self) -> int:
        return len(self.memory) + len(self.on_disk)

    def _path(self, key: int) -> Path:
        return self.folder / f"{key}.npy"

    def put(self, key: int, features: torch.Tensor) -> None:
        size = features.numel() * features.element_size()
        if self.memory_bytes + size <= self.budget_bytes:
            self.memory[key] = features
            self.memory_bytes += size
            return
        bits = features.view(torch.int16) if features.dtype == torch.bfloat16 else features
        buf = io.BytesIO()
        np.save(buf, bits.numpy(), allow_pickle=False)
        atomic_write_bytes(self._path(key), buf.getvalue())
        self.on_disk[key] = features.dtype

    def get(self, key: int) -> torch.Tensor | None:
        if key in self.memory:
            return self.memory[key]
        if key not in self.on_disk:
            return None
        features = torch.from_numpy(np.load(self._path(key), allow_pickle=False))
        return features.view(torch.bfloat16) if self.on_disk[key] == torch.bfloat16 else features

    def close(self) -> None:
        """Forget everything and remove the folder."""
        self.memory.clear()
        self.on_disk.clear()
        self.memory_bytes = 0
        shutil.rmtree(self.folder, ignore_errors=True)


class FeatureDataset(torch.utils.data.Dataset):
    """An :class:`~speechtl.data.dataset.AudioDataset` (without a transform) whose items carry ``features``
    (T, C), ``encode(audio)`` computed on first use and kept in ``store``, instead of ``audio``."""

    def __init__(self, audio: AudioDataset, encode: Callable[[np.ndarray], torch.Tensor], store: FeatureStore):
        if audio.transform is not None:
            raise ValueError("waveform augmentation changes the audio every epoch: its features cannot be cached")
        self.audio, self.encode, self.store = audio, encode, store
        self.epoch = 0  # set by the training loop like AudioDataset's; nothing here depends on it

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, i: int) -> dict:
        features = self.store.get(i)
        if features is None:
            features = self.encode(self.audio.waveform(i))
            self.store.put(i, features)
        return {**self.audio.item_without_audio(i), "features": features}


class FeatureCollator:
    """Pads features (T, C) with zeros to the batch's longest; the padded frames are masked by ``feature_lengths``."""

    def __call__(self, items: list[dict]) -> dict:
        lengths = torch.tensor([len(it["features"]) for it in items], dtype=torch.long)
        return {"ids": [it["id"] for it in items],
                "extract_features": torch.nn.utils.rnn.pad_sequence([it["features"] for it in items],
                                                                    batch_first=True),
                "feature_lengths": lengths, **collate_targets(items)}
