"""The feature cache in a training run: whether it may be used, and the dataset and collator the loop then gets.

With ``feature_cache="auto"`` (the default) the frozen convolutional feature encoder's output is computed once
per training utterance, on its first use, and reused every epoch (:mod:`speechtl.data.feature_cache` keeps it:
``feature_cache_mb`` in memory, then ``.npy`` files in ``<out>/feature_cache/``, removed when training ends);
the loop then feeds the model features instead of audio (:func:`speechtl.models.features.ctc_logits_from_features`),
with SpecAugment, dropout and every trainable part as before. Only the convolution is cached, for every strategy:
the frozen lower layers of ``top_k`` sit after SpecAugment's masking, so their output changes every step.

It is off, with the reason printed, when the result would not be the same: waveform augmentation (speed, noise)
changes the audio every epoch; the feature encoder trains; several processes (the cached forward does not go
through DDP's forward, which arms its gradient synchronisation); a model fed no attention mask or with a
group-norm feature encoder (its output depends on the batch's padding); an architecture other than wav2vec2.
Dev scoring always runs on audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from speechtl.adapt.train_config import RuntimeConfig
from speechtl.config import ConfigError
from speechtl.data.dataset import AudioDataset, CtcCollator
from speechtl.data.feature_cache import FeatureCollator, FeatureDataset, FeatureStore
from speechtl.models.features import encode_features, feature_cache_blocker
from speechtl.runtime import autocast

__all__ = ["FEATURE_CACHE", "FEATURE_CACHE_MODES", "check_feature_cache", "cache_blocker", "training_inputs"]

FEATURE_CACHE = "feature_cache"  # folder inside the run folder: features beyond the memory budget, while training
FEATURE_CACHE_MODES = ("auto", "off")


def check_feature_cache(runtime: RuntimeConfig) -> None:
    """Refuse a feature-cache setting that is not one (before anything is loaded)."""
    if runtime.feature_cache not in FEATURE_CACHE_MODES:
        raise ConfigError(f"--feature-cache must be one of {', '.join(FEATURE_CACHE_MODES)}, "
                          f"got {runtime.feature_cache!r}")
    if not runtime.feature_cache_mb >= 0:
        raise ConfigError(f"--feature-cache-mb must be 0 or more (0: all on disk), got {runtime.feature_cache_mb}")


def cache_blocker(runtime: RuntimeConfig, model, dataset: AudioDataset, pass_mask: bool, num_processes: int
                  ) -> str | None:
    """Why this run trains on audio rather than cached features, or None when it may use the cache."""
    check_feature_cache(runtime)
    if runtime.feature_cache == "off":
        return "--feature-cache off"
    if dataset.transform is not None:
        return "waveform augmentation changes the audio every epoch"
    if num_processes > 1:
        return "several processes (the cached forward would bypass DDP's gradient synchronisation)"
    if not pass_mask:
        return "the model takes no attention mask, so padded frames reach its encoder"
    return feature_cache_blocker(model)


def _encoder(model, feature_extractor, device: torch.device, precision: str) -> Callable[[np.ndarray], torch.Tensor]:
    """audio → the feature encoder's output (T, C) on the CPU, normalised and computed as a batch of one would be."""
    collate = CtcCollator(feature_extractor)

    def encode(audio: np.ndarray) -> torch.Tensor:
        inputs = collate([{"id": "", "audio": audio}])["input_values"].to(device)
        with autocast(device, precision):
            return encode_features(model, inputs)[0].contiguous().cpu()

    return encode


def training_inputs(model, processor, dataset: AudioDataset, runtime: RuntimeConfig, folder: str | Path,
                    device: torch.device, precision: str, pass_mask: bool, num_processes: int = 1,
                    say: Callable[[str], None] | None = None
                    ) -> tuple[torch.utils.data.Dataset, Callable[[list[dict]], dict], FeatureStore | None]:
    """The training dataset and collator: cached features when :func:`cache_blocker` allows, else ``dataset``
    with :class:`~speechtl.data.dataset.CtcCollator`. The store (to :meth:`~FeatureStore.close`) or None."""
    blocker = cache_blocker(runtime, model, dataset, pass_mask, num_processes)
    if blocker is not None:
        if say is not None and runtime.feature_cache != "off":
            say(f"feature cache: off ({blocker})")
        return dataset, CtcCollator(processor.feature_extractor), None
    store = FeatureStore(folder, int(runtime.feature_cache_mb * 2**20))
    if say is not None:
        say(f"feature cache: on (feature-encoder output computed once per utterance; "
            f"{runtime.feature_cache_mb:g} MB in memory, the rest in {folder})")
    features = FeatureDataset(dataset, _encoder(model, processor.feature_extractor, device, precision), store)
    return features, FeatureCollator(), store
