"""The models of ``speechtl pretrain``: a CTC model's encoder in transformers' ``Wav2Vec2ForPreTraining`` and back.

The pretraining model is the CTC model's ``Wav2Vec2Model`` (encoder weights carried over) plus the pieces of
wav2vec 2.0's objective: the Gumbel quantizer, ``project_q`` and ``project_hid``. They come from
``pretraining_heads.safetensors`` when the start folder has one (a folder ``speechtl pretrain`` wrote), and are
new otherwise. The result is saved as a plain ``Wav2Vec2ForCTC`` folder (what ``speechtl adapt --model`` takes),
the heads beside it so that pretraining can continue from it.

Masks and negatives are transformers' own ``_compute_mask_indices`` / ``_sample_negative_indices`` (numpy's global
RNG, saved in checkpoints), as in its ``run_wav2vec2_pretraining_no_trainer.py`` example. Shapes: B = batch,
S = samples, T = encoder frames, K = negatives.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2ForCTC, Wav2Vec2ForPreTraining
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2GumbelVectorQuantizer, _compute_mask_indices, \
    _sample_negative_indices

from speechtl.config import ConfigError
from speechtl.fileio import UMASK
from speechtl.models.numerics import protect_pos_conv

__all__ = ["PRETRAIN_HEADS", "HEAD_PREFIXES", "pretraining_model", "save_ctc_folder", "min_frames", "frame_counts",
           "mask_and_negatives", "contrastive_loss", "LookupQuantizer", "plot_log"]

PRETRAIN_HEADS = "pretraining_heads.safetensors"  # quantizer, project_q, project_hid of a pretrained folder
HEAD_PREFIXES = ("quantizer.", "project_q.", "project_hid.")


def pretraining_model(ctc, source: str | None, from_scratch: bool, mask_prob: float, mask_length: int,
                      diversity_weight: float) -> Wav2Vec2ForPreTraining:
    """A ``Wav2Vec2ForPreTraining`` with ``ctc``'s configuration; its encoder weights unless ``from_scratch``, and
    the heads from ``source``'s :data:`PRETRAIN_HEADS` when it is a folder that has them."""
    if ctc.config.model_type != "wav2vec2":
        raise ConfigError(f"speechtl pretrain takes wav2vec2 models; this one is a {ctc.config.model_type!r} model")
    config = copy.deepcopy(ctc.config)
    config.mask_time_prob, config.mask_time_length = mask_prob, mask_length  # also makes masked_spec_embed exist
    config.apply_spec_augment, config.mask_feature_prob = True, 0.0
    config.diversity_loss_weight = diversity_weight
    model = Wav2Vec2ForPreTraining._from_config(config, attn_implementation=ctc.config._attn_implementation)
    if not from_scratch:
        missing, unexpected = model.wav2vec2.load_state_dict(ctc.base_model.state_dict(), strict=False)
        if unexpected or set(missing) - {"masked_spec_embed"}:
            raise ConfigError(f"the start model's encoder does not fit wav2vec2's: missing {missing}, "
                              f"unexpected {unexpected}")
        heads = Path(source) / PRETRAIN_HEADS if source and Path(source).is_dir() else None
        if heads is not None and heads.is_file():
            model.load_state_dict(load_file(heads), strict=False)
    model.quantizer.__class__ = LookupQuantizer  # same parameters and outputs, the codebook read by a matmul
    return protect_pos_conv(model)


class LookupQuantizer(Wav2Vec2GumbelVectorQuantizer):
    """transformers' Gumbel-softmax quantizer, its codebook read by one matrix product per group.

    transformers multiplies the (one-hot) codevector probabilities into the whole codebook, (B·T, G·V, 1) ×
    (1, G·V, d), and sums over V: B·T·G·V·d products in fp32 (139 M per 30-s batch of the shipped model, about
    half a CPU step with its backward), materialised as one tensor. Here the same sums are one batched
    (G, B·T, V) × (G, V, d) product, in fp32 as there (autocast off for it). The rest is transformers' forward,
    copied; outputs and gradients equal transformers' in fp32 (tests/test_pretrain.py)."""

    def forward(self, hidden_states, mask_time_indices=None):
        batch_size, sequence_length, _ = hidden_states.shape
        hidden_states = self.weight_proj(hidden_states)
        hidden_states = hidden_states.view(batch_size * sequence_length * self.num_groups, -1)
        if self.training:  # as transformers: a differentiable Gumbel sample; perplexity of the soft distribution
            codevector_probs = torch.nn.functional.gumbel_softmax(hidden_states.float(), tau=self.temperature,
                                                                  hard=True).type_as(hidden_states)
            soft = torch.softmax(hidden_states.view(batch_size * sequence_length, self.num_groups, -1).float(),
                                 dim=-1)
            perplexity = self._compute_perplexity(soft, mask_time_indices)
        else:  # the hard argmax
            codevector_idx = hidden_states.argmax(dim=-1)
            codevector_probs = hidden_states.new_zeros(hidden_states.shape).scatter_(-1, codevector_idx.view(-1, 1),
                                                                                      1.0)
            perplexity = self._compute_perplexity(
                codevector_probs.view(batch_size * sequence_length, self.num_groups, -1), mask_time_indices)
        probs = codevector_probs.view(batch_size * sequence_length, self.num_groups, self.num_vars).transpose(0, 1)
        book = self.codevectors.view(self.num_groups, self.num_vars, -1)
        with torch.autocast(hidden_states.device.type, enabled=False):  # fp32, as transformers' mul-and-sum
            codevectors = torch.bmm(probs.float(), book.float())  # (G, B·T, d)
        return codevectors.transpose(0, 1).reshape(batch_size, sequence_length, -1), perplexity


def save_ctc_folder(model: Wav2Vec2ForPreTraining, start, processor, out: Path, keep_head: bool) -> None:
    """``model``'s encoder as a ``Wav2Vec2ForCTC`` folder with ``start``'s config and processor files (vocabulary
    kept); the CTC head is ``start``'s when ``keep_head``, else new. The heads go to :data:`PRETRAIN_HEADS`.
    Each file is written in a temporary folder inside ``out`` and moved in (a crash never leaves half a file)."""
    ctc = Wav2Vec2ForCTC._from_config(copy.deepcopy(start.config), attn_implementation="eager")
    encoder = {k: v for k, v in model.wav2vec2.state_dict().items()
               if k != "masked_spec_embed" or getattr(ctc.wav2vec2, "masked_spec_embed", None) is not None}
    ctc.wav2vec2.load_state_dict(encoder)
    if keep_head:
        ctc.lm_head.load_state_dict(start.lm_head.state_dict())
    ctc.config._attn_implementation = start.config._attn_implementation
    heads = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIXES)}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".model.") as tmp:
        ctc.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        save_file(heads, Path(tmp) / PRETRAIN_HEADS)
        for f in sorted(Path(tmp).iterdir()):
            if f.is_file():
                os.chmod(f, 0o666 & ~UMASK)
                os.replace(f, out / f.name)


def min_frames(mask_length: int) -> int:
    """Encoder frames an utterance needs: one whole mask span, and two masked frames (a positive and a negative)."""
    return max(mask_length, 2)


def frame_counts(model, num_samples: list[int]) -> list[int]:
    """Encoder frames (T) of audio of each length."""
    lengths = model._get_feat_extract_output_lengths(torch.tensor(num_samples, dtype=torch.long))
    return [int(n) for n in lengths]


def mask_and_negatives(model, attention_mask: torch.Tensor, mask_prob: float, mask_length: int,
                       num_negatives: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masked spans (B, T) bool, negative indices (B, T, K) long and valid frames (B, T) for a padded batch whose
    ``attention_mask`` is (B, S). Every utterance gets at least one span (callers skip audio under
    :func:`min_frames`); K is ``num_negatives`` capped by the fewest masked frames of an utterance, less one."""
    frames = int(model._get_feat_extract_output_lengths(attention_mask.shape[1]))
    valid = model._get_feature_vector_attention_mask(frames, attention_mask)
    mask = _compute_mask_indices((len(valid), frames), mask_prob, mask_length, attention_mask=valid,
                                 min_masks=2 if mask_length == 1 else 1)
    k = int(min(num_negatives, mask.sum(-1).min() - 1))
    negatives = _sample_negative_indices((len(valid), frames), k, mask_time_indices=mask)
    return torch.from_numpy(mask), torch.from_numpy(negatives.astype(np.int64)), valid


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (norms below torch.cosine_similarity's eps, 1e-8, count as 1e-8)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def contrastive_loss(config, out, mask: torch.Tensor, negatives: torch.Tensor) -> dict[str, torch.Tensor]:
    """wav2vec 2.0's loss from a ``Wav2Vec2ForPreTraining`` output run without ``sampled_negative_indices``:
    ``loss`` = contrastive + ``config.diversity_loss_weight`` · diversity, summed over the masked frames, as
    transformers computes it there (same cosine similarities, temperature, masking of negatives equal to the
    positive, cross-entropy and diversity term; equal in fp32, tests/test_pretrain.py). Faster: transformers
    scores all B·T frames against K+1 targets through broadcast cosine similarities, materialising several
    (K+1)·B·T·D tensors, most of a CPU step's time; here only the N masked frames are scored, by one
    (N, D) × (D, B·T) product of unit vectors from which the positive and the K negatives are gathered.
    ``mask`` (B, T) bool, ``negatives`` (B, T, K) flat indices into the B·T frames (:func:`mask_and_negatives`)."""
    predicted, quantized = out.projected_states, out.projected_quantized_states  # (B, T, D) each
    mask = mask.to(predicted.device).bool()
    frames = quantized.reshape(-1, quantized.shape[-1])  # (B·T, D)
    positive = torch.arange(frames.shape[0], device=frames.device).reshape(mask.shape)[mask]  # (N,)
    targets = torch.cat([positive[:, None], negatives.to(frames.device)[mask].long()], dim=1)  # (N, 1 + K)
    similarity = _unit(predicted[mask].float()) @ _unit(frames.float()).T  # (N, B·T)
    logits = similarity.gather(1, targets) / config.contrastive_logits_temperature
    # a negative equal to the positive (a codebook in little use) is no distractor: masked out, as transformers does
    _, code = torch.unique(frames.detach(), dim=0, return_inverse=True)
    same = code[targets[:, 1:]] == code[positive][:, None]
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], dim=1)
    contrastive = torch.nn.functional.cross_entropy(logits, torch.zeros_like(positive), reduction="sum")
    num_codevectors = config.num_codevectors_per_group * config.num_codevector_groups
    diversity = (num_codevectors - out.codevector_perplexity) / num_codevectors * mask.sum()
    return {"loss": contrastive + config.diversity_loss_weight * diversity, "contrastive": contrastive,
            "diversity": diversity}


def plot_log(log: list[dict], path: Path) -> bool:
    """The loss curve (training, and validation where logged) as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")  # headless; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [e for e in log if "loss" in e]
    ax.plot([e["step"] for e in train], [e["loss"] for e in train], label="training loss")
    val = [e for e in log if "val_loss" in e]
    if val:
        ax.plot([e["step"] for e in val], [e["val_loss"] for e in val], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per masked frame")
    ax.legend()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".png", delete=False) as f:
        fig.savefig(f.name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.chmod(f.name, 0o666 & ~UMASK)
    os.replace(f.name, path)
    return True
