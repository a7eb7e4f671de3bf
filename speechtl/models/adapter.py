"""Adapter artifacts: the small trained part of a ``lora`` or ``adapter`` run, applied to its base model at load.

A run with strategy ``lora`` or ``adapter`` writes ``<run>/adapter/`` next to the full merged model:

- ``speechtl_adapter.json``: the strategy, the base model as the run named it, the base's architecture
  (model type, hidden size, layers, vocabulary size) and SHA-256 digests of the base weights the adapter does not
  replace and of the vocabulary — an adapter is never applied to a model it was not trained on;
- ``lora``: peft's own files, ``adapter_config.json`` + ``adapter_model.safetensors`` (LoRA A/B factors and the
  trained CTC head; ``peft.PeftModel.from_pretrained(base, folder)`` reads them too);
- ``adapter``: ``adapter.safetensors``, the bottleneck adapters and the CTC head under the key names of
  transformers' MMS adapters (``Wav2Vec2ForCTC._get_adapters``).

Weights are stored as trained (fp32), so base + adapter gives the run's merged model bit for bit (on the device
it was merged on). Loading reads safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from speechtl.config import ConfigError
from speechtl.fileio import UMASK, atomic_dir, atomic_write_json
from speechtl.models import ModelLoadError

__all__ = ["ADAPTER_STRATEGIES", "ADAPTER_DIR", "AdapterArtifact", "add_adapters", "base_fingerprint",
           "capture_adapter", "save_adapter", "apply_adapter", "folder_bytes", "weights_bytes", "digest_tensors"]

ADAPTER_STRATEGIES = ("lora", "adapter")
ADAPTER_DIR = "adapter"  # inside the run folder
META = "speechtl_adapter.json"
FORMAT = "speechtl-adapter/1"
_WEIGHTS = {"lora": "adapter_model.safetensors", "adapter": "adapter.safetensors"}
_ARCH = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")


@dataclass
class AdapterArtifact:
    strategy: str
    tensors: dict[str, torch.Tensor]  # on the CPU, as trained
    lora_config: object | None = None  # peft LoraConfig (strategy lora)
    adapter_dim: int | None = None  # bottleneck width (strategy adapter)


def digest_tensors(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def add_adapters(model, dim: int) -> list[torch.nn.Module]:
    """MMS-style bottleneck adapters (transformers' ``adapter_attn_dim``) after every transformer layer of a
    wav2vec2 model, zero-initialised so the model starts unchanged; returns them (the ``adapter`` strategy trains
    them, :func:`apply_adapter` loads saved ones into them)."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2AttnAdapterLayer

    if model.config.model_type != "wav2vec2":
        raise ConfigError(f"the adapter strategy needs a wav2vec2 model (got {model.config.model_type!r}); use lora")
    model.config.adapter_attn_dim = dim  # saved with the model, so from_pretrained rebuilds the adapters
    adapters = []
    for layer in model.base_model.encoder.layers:
        adapter = Wav2Vec2AttnAdapterLayer(model.config).to(next(layer.parameters()).device)
        torch.nn.init.zeros_(adapter.linear_2.weight)  # starts as the identity: no change before training
        torch.nn.init.zeros_(adapter.linear_2.bias)
        layer.adapter_layer = adapter
        adapters.append(adapter)
    return adapters


def _replaceable(name: str) -> bool:
    """Weights an adapter carries (the CTC head) or inference never reads (the SpecAugment mask embedding)."""
    return name.startswith("lm_head.") or name.endswith("masked_spec_embed")


def base_fingerprint(model, processor) -> dict:
    """Architecture, and digests of the weights an adapter leaves alone and of the vocabulary."""
    weights = {k: v for k, v in model.state_dict().items() if not _replaceable(k)}
    vocab = json.dumps(sorted(processor.tokenizer.get_vocab().items()), ensure_ascii=False)
    return {**{k: getattr(model.config, k) for k in _ARCH}, "weights_sha256": digest_tensors(weights),
            "vocab_sha256": hashlib.sha256(vocab.encode()).hexdigest()}


def capture_adapter(trained, strategy: str) -> AdapterArtifact | None:
    """The trained adapter weights of ``trained`` (the module that trained: a peft wrapper for LoRA), before merging."""
    if strategy == "lora":
        from peft import get_peft_model_state_dict

        tensors = get_peft_model_state_dict(trained)
        return AdapterArtifact("lora", {k: v.detach().cpu().clone() for k, v in tensors.items()},
                               lora_config=trained.peft_config["default"])
    if strategy == "adapter":
        tensors = {k: p.detach().cpu().clone() for k, p in trained._get_adapters().items() if p.requires_grad}
        return AdapterArtifact("adapter", tensors, adapter_dim=trained.config.adapter_attn_dim)
    return None


def save_adapter(artifact: AdapterArtifact, folder: str | Path, base_model: str, base: dict) -> int:
    """Write the adapter folder atomically; returns its size in bytes. ``base``: :func:`base_fingerprint`."""
    meta = {"format": FORMAT, "strategy": artifact.strategy, "base_model": base_model, "base": base,
            "weights": _WEIGHTS[artifact.strategy]}
    if artifact.adapter_dim is not None:
        meta["adapter_attn_dim"] = artifact.adapter_dim
    with atomic_dir(folder) as tmp:
        save_file(artifact.tensors, tmp / meta["weights"], metadata={"format": "pt"})
        os.chmod(tmp / meta["weights"], 0o666 & ~UMASK)  # safetensors writes 0600; the JSON files are 0644
        if artifact.lora_config is not None:
            artifact.lora_config.base_model_name_or_path = base_model
            artifact.lora_config.save_pretrained(str(tmp))
        atomic_write_json(tmp / META, meta)
    return folder_bytes(folder)


def folder_bytes(folder: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def weights_bytes(model_folder: str | Path) -> int:
    """Size of a saved model's weights (``model*.safetensors``, shards included)."""
    return sum(f.stat().st_size for f in Path(model_folder).glob("model*.safetensors"))


def _read_meta(folder: Path) -> dict:
    if not folder.is_dir():
        raise ModelLoadError(f"adapter {str(folder)!r} is not a folder; give the adapter/ folder of a lora or "
                             f"adapter run")
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"adapter {str(folder)!r}: cannot read {META} ({type(e).__name__}: {e}); an adapter "
                             f"folder is written by `speechtl adapt --strategy lora|adapter` as <run>/adapter") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("strategy") not in _WEIGHTS \
            or not isinstance(meta.get("base"), dict):
        raise ModelLoadError(f"adapter {str(folder)!r}: {META} is not a {FORMAT} description with a strategy "
                             f"({', '.join(_WEIGHTS)}) and a base model")
    return meta


def _check_base(meta: dict, folder: Path, model, processor, model_name: str) -> None:
    made_for, base = meta["base"], base_fingerprint(model, processor)
    for key in _ARCH:
        if made_for.get(key) != base[key]:
            raise ModelLoadError(
                f"adapter {str(folder)!r} was made for {meta.get('base_model')!r} ({key} {made_for.get(key)!r}); "
                f"{model_name!r} has {key} {base[key]!r}: give the base model the adapter was trained on")
    for key, what in (("weights_sha256", "weights"), ("vocab_sha256", "vocabulary")):
        if made_for.get(key) != base[key]:
            raise ModelLoadError(
                f"adapter {str(folder)!r} was made for {meta.get('base_model')!r}, whose {what} differ from "
                f"{model_name!r}'s (same architecture, other {what}): give the base model the adapter was trained on")


def _load_tensors(folder: Path, meta: dict) -> dict[str, torch.Tensor]:
    path = folder / meta["weights"]
    if not path.is_file():
        raise ModelLoadError(f"adapter {str(folder)!r}: {meta['weights']} is missing (speechtl loads safetensors "
                             f"only)")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"adapter {str(path)!r} is not a readable safetensors file ({e})") from e


def _check_tensors(folder: Path, got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    shapes = [k for k in set(got) & set(expected) if got[k].shape != expected[k].shape]
    if missing or extra or shapes:
        detail = "; ".join(f"{what}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}" for what, keys in
                           (("missing", missing), ("unexpected", extra), ("wrong shape", sorted(shapes))) if keys)
        raise ModelLoadError(f"adapter {str(folder)!r} does not fit the model ({detail})")


def _apply_lora(model, folder: Path, tensors: dict[str, torch.Tensor], merge: bool = True):
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as e:
        raise ModelLoadError(f"adapter {str(folder)!r}: unreadable peft adapter_config.json ({e})") from e
    with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to answer
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        wrapped = get_peft_model(model, config)
    _check_tensors(folder, tensors, get_peft_model_state_dict(wrapped))
    set_peft_model_state_dict(wrapped, tensors)
    return wrapped.merge_and_unload() if merge else wrapped


def _apply_mms(model, folder: Path, tensors: dict[str, torch.Tensor], dim):
    if model.config.model_type != "wav2vec2" or not isinstance(dim, int) or dim < 1:
        raise ModelLoadError(f"adapter {str(folder)!r}: MMS adapters need a wav2vec2 model and a positive "
                             f"adapter_attn_dim (got {model.config.model_type!r}, {dim!r})")
    add_adapters(model, dim)
    expected = model._get_adapters()
    if not any(k.startswith("lm_head.") for k in tensors):  # the head travels only when it was trained
        expected = {k: v for k, v in expected.items() if not k.startswith("lm_head.")}
    _check_tensors(folder, tensors, expected)
    model.load_state_dict(tensors, strict=False)
    return model


def apply_adapter(model, processor, folder: str | Path, model_name: str = "the model", merge: bool = True):
    """``model`` with the adapter in ``folder`` applied (LoRA merged); a plain transformers model, in eval mode.
    ``merge=False`` leaves LoRA unmerged (a peft wrapper: the base weights are read, never written)."""
    folder = Path(folder)
    meta = _read_meta(folder)
    _check_base(meta, folder, model, processor, model_name)
    tensors = _load_tensors(folder, meta)
    if meta["strategy"] == "lora":
        model = _apply_lora(model, folder, tensors, merge)
    else:
        model = _apply_mms(model, folder, tensors, meta.get("adapter_attn_dim"))
    return model.eval()
