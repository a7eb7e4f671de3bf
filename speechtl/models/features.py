"""The CTC forward from the feature encoder's output, for training with a frozen feature encoder computed once.

``Wav2Vec2ForCTC.forward`` is: convolutional feature encoder → frame attention mask from the sample mask →
feature projection (layer norm, linear, dropout) → SpecAugment (``_mask_hidden_states``, training only) →
transformer encoder → dropout → CTC head. :func:`encode_features` is the first step alone and
:func:`ctc_logits_from_features` everything after it, calling the model's own modules in the same order, so
masking, dropout and every trainable part (feature projection included, for strategy ``full``) behave as in
the full forward. Only the convolution is skipped, so only it must be frozen: the frozen lower transformer
layers of ``top_k`` still run every step (their input is masked by SpecAugment and their dropout is live).

The two paths agree only where the convolution's output for an utterance does not depend on the batch:
:func:`feature_cache_blocker` says why a model is not such a case (group-norm feature encoders normalise over
the padded length; other architectures have forwards of their own).

Shapes: B = batch, S = samples, T = frames, C = the last convolution's channels, V = vocabulary.
"""

from __future__ import annotations

import torch
from transformers import Wav2Vec2ForCTC

__all__ = ["feature_cache_blocker", "ctc_model", "encode_features", "ctc_logits_from_features", "frame_mask"]


def ctc_model(model) -> torch.nn.Module:
    """The ``*ForCTC`` model inside a peft wrapper (LoRA layers stay in place inside it), else ``model``."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


def feature_cache_blocker(model) -> str | None:
    """Why this model's feature-encoder output cannot stand in for its audio in training, or None when it can."""
    ctc = ctc_model(model)
    if type(ctc) is not Wav2Vec2ForCTC:
        return f"the cached forward follows Wav2Vec2ForCTC only, not {type(ctc).__name__}"
    if ctc.config.feat_extract_norm != "layer":
        return "a group-norm feature encoder normalises over the padded batch, so its output depends on the batch"
    if ctc.config.add_adapter:
        return "the model's output adapter (add_adapter) changes the frame count"
    if any(p.requires_grad for p in ctc.wav2vec2.feature_extractor.parameters()):
        return "the feature encoder trains (strategy full with --no-freeze-feature-encoder)"
    return None


@torch.no_grad()
def encode_features(model, input_values: torch.Tensor) -> torch.Tensor:
    """The convolutional feature encoder's output (B, T, C) for normalised audio (B, S): ``extract_features``."""
    return ctc_model(model).wav2vec2.feature_extractor(input_values).transpose(1, 2)


def frame_mask(feature_lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, T) bool, True on each row's first ``feature_lengths`` frames: what ``_get_feature_vector_attention_mask``
    makes of a sample mask."""
    return torch.arange(frames, device=feature_lengths.device)[None, :] < feature_lengths[:, None]


def ctc_logits_from_features(model, extract_features: torch.Tensor,
                             feature_lengths: torch.Tensor | None) -> torch.Tensor:
    """CTC logits (B, T, V) from zero-padded ``extract_features`` (B, T, C) and valid frames per row (B,):
    ``Wav2Vec2ForCTC.forward`` after its feature encoder, with the attention mask it would build (none when
    ``feature_lengths`` is None: what the model does without an attention mask)."""
    ctc = ctc_model(model)
    w = ctc.wav2vec2
    mask = None if feature_lengths is None else \
        frame_mask(feature_lengths.to(extract_features.device), extract_features.shape[1])
    hidden, _ = w.feature_projection(extract_features)
    hidden = w._mask_hidden_states(hidden, attention_mask=mask)
    hidden = w.encoder(hidden, attention_mask=mask).last_hidden_state
    return ctc.lm_head(ctc.dropout(hidden))
