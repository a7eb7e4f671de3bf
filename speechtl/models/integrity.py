"""What a loaded model must be before anything runs on it: complete, the right shapes, finite, and a head that
matches its vocabulary.

transformers fills a tensor missing from the checkpoint with random values and, asked to, one of another shape
too, saying so only in a log report; a vocabulary with fewer tokens than the head has rows decodes ids it cannot
spell; a NaN weight turns every output NaN. Each is refused here in one line naming the model (and the file,
tensor or numbers), once at load.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError, safe_open
from transformers import AutoModelForCTC, PreTrainedModel

from speechtl.errors import SpeechtlError

__all__ = ["ModelLoadError", "TOLERATED_MISSING", "load_weights", "check_vocab_size", "check_finite"]

# tensors transformers may initialise itself: the SpecAugment mask vector, which checkpoints saved without
# masking lack and which inference never uses
TOLERATED_MISSING = ("masked_spec_embed",)


class ModelLoadError(SpeechtlError, ValueError):
    """A model name/folder could not be loaded; the message says why and what is allowed."""


def load_weights(source: str, name: str, attn_implementation: str, hub: dict | None = None) -> PreTrainedModel:
    """``AutoModelForCTC`` from ``source`` (safetensors only, no remote code); :class:`ModelLoadError` for a damaged
    weights file, tensors missing from it or of another shape than the config gives. ``hub``: extra hub settings
    (``local_files_only``), also given to transformers' own look-up of a peft adapter."""
    hub = hub or {}
    where = "folder" if Path(source).is_dir() else "hub id"
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()  # its load report: refused below in one line instead
    try:
        model, info = AutoModelForCTC.from_pretrained(
            source, use_safetensors=True, trust_remote_code=False, attn_implementation=attn_implementation,
            ignore_mismatched_sizes=True, output_loading_info=True, adapter_kwargs=dict(hub), **hub,
        )
    except SafetensorError as e:
        raise ModelLoadError(f"{_weights_file(source)}: not a readable safetensors file ({e}): the file is damaged "
                             f"or cut short; download or save the model again") from e
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelLoadError(
            f"cannot load the weights of {name!r} ({where}): speechtl loads safetensors only "
            f"({str(e).splitlines()[0][:200]})"
        ) from e
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
    _refuse_gaps(model, info, name)
    return model


def _weights_file(source: str) -> str:
    """The first safetensors file of a folder that does not open (else the folder; a hub id as it is)."""
    folder = Path(source)
    if not folder.is_dir():
        return f"{source} (model.safetensors)"
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(path, framework="pt"):
                pass
        except (SafetensorError, OSError):
            return str(path)
    return str(folder)


def _refuse_gaps(model: PreTrainedModel, info: dict, name: str) -> None:
    missing = sorted(k for k in info["missing_keys"] if not k.endswith(TOLERATED_MISSING))
    if missing:
        raise ModelLoadError(f"{name!r}: the weights lack {len(missing)} tensor(s) the config needs "
                             f"({', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}); transformers would fill "
                             f"them with random values: save the complete model again")
    mismatched = sorted(info["mismatched_keys"])
    if not mismatched:
        return
    key, saved, wanted = mismatched[0]
    vocab_size = getattr(model.config, "vocab_size", None)
    if key.startswith("lm_head.") and saved[0] != wanted[0]:
        raise ModelLoadError(f"{name!r}: config.json says vocab_size {vocab_size} but the saved {key} has "
                             f"{saved[0]} rows: the config and the weights come from different models")
    raise ModelLoadError(f"{name!r}: {len(mismatched)} tensor(s) of another shape than the config gives, e.g. "
                         f"{key} saved {tuple(saved)}, config {tuple(wanted)}: the config and the weights come from "
                         f"different models")


def check_vocab_size(model: PreTrainedModel, tokenizer, name: str) -> None:
    """The CTC head has one row per token of the vocabulary: more rows emit ids no token spells, fewer cannot
    write some tokens."""
    head = getattr(model, "lm_head", None)
    rows = head.out_features if isinstance(head, torch.nn.Linear) else model.config.vocab_size
    if len(tokenizer) != rows:
        raise ModelLoadError(f"{name!r}: the vocabulary (vocab.json and added tokens) has {len(tokenizer)} tokens but "
                             f"the CTC head has {rows} rows; they must be equal (a vocab.json from another model?)")


def check_finite(model: PreTrainedModel, name: str) -> None:
    """Every weight and buffer is finite (a NaN or infinite weight makes every output NaN)."""
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum(dtype=torch.float64))):
                continue  # one pass: a NaN or inf makes the sum non-finite (float64: finite weights cannot overflow)
            if not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise ModelLoadError(f"{name!r}: weight {key} holds {bad} NaN or infinite value(s) of "
                                     f"{tensor.numel()}: a diverged or damaged model; use another checkpoint")
