"""What an adaptation trains: the strategy menu.

- ``full``: every weight but the convolutional feature encoder (unless ``freeze_feature_encoder=False``);
- ``top_k``: the last ``top_k`` transformer layers, the final layer norm and the CTC head;
- ``head``: the CTC head alone;
- ``lora``: low-rank updates (peft) on attention q/k/v/out and feed-forward projections, plus the CTC
  head; merged into the weights at the end, so the result is a plain model;
- ``adapter``: MMS-style bottleneck adapters after every transformer layer (transformers'
  ``adapter_attn_dim``), zero-initialised so training starts from the source model exactly, plus the
  CTC head.

:func:`apply_strategy` returns the module to train (a peft wrapper for LoRA); :func:`finish_strategy`
returns the plain model to save.
"""

from __future__ import annotations

import warnings

import re

from torch import nn

from speechtl.config import ConfigError
from speechtl.models.adapter import add_adapters

__all__ = ["STRATEGIES", "LORA_TARGETS", "apply_strategy", "finish_strategy", "param_groups"]

STRATEGIES = ("full", "top_k", "head", "lora", "adapter")
# attention and feed-forward projections of wav2vec2 / HuBERT / WavLM / data2vec-audio encoder layers
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"]


def _set_trainable(modules, flag: bool) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad = flag


def apply_strategy(model, strategy: str, top_k: int = 2, lora_r: int = 8, lora_alpha: int = 16,
                   adapter_dim: int = 32, freeze_feature_encoder: bool = True) -> nn.Module:
    """Set which parameters train; returns the module to train (``model`` itself, or a peft wrapper)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    head = model.lm_head
    if strategy == "full":
        _set_trainable([model], True)
        if freeze_feature_encoder:
            model.freeze_feature_encoder()
        return model
    _set_trainable([model], False)
    model.freeze_feature_encoder()  # HF's own flag, so the conv stack also runs without building a graph
    if strategy == "head":
        _set_trainable([head], True)
    elif strategy == "top_k":
        layers = model.base_model.encoder.layers
        if not 1 <= top_k <= len(layers):
            raise ConfigError(f"top_k must be 1..{len(layers)} for this model, got {top_k}")
        _set_trainable([*layers[-top_k:], model.base_model.encoder.layer_norm, head], True)
    elif strategy == "adapter":
        _set_trainable([*add_adapters(model, adapter_dim), head], True)
    else:  # lora
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.05, target_modules=LORA_TARGETS,
                            modules_to_save=["lm_head"], bias="none")
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to answer
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    return model


def finish_strategy(trained: nn.Module) -> nn.Module:
    """The plain transformers model to save: LoRA updates merged into the weights, everything else as is."""
    from peft import PeftModel

    return trained.merge_and_unload() if isinstance(trained, PeftModel) else trained


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def param_groups(model: nn.Module, lr: float, layer_decay: float = 1.0) -> list[dict]:
    """Trainable parameters in optimizer groups with layer-wise learning-rate decay.

    The CTC head and the encoder's final layer norm get ``lr``; transformer layer i of N gets
    ``lr · decay^(N − i)``; everything below the transformer (feature projection, positional
    convolution, feature encoder) gets ``lr · decay^(N + 1)``. ``layer_decay=1`` gives one group.
    """
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if layer_decay == 1.0:
        return [{"params": [p for _, p in trainable], "lr": lr}]
    depths = {n: int(m.group(1)) + 1 for n, _ in trainable if (m := _LAYER.search(n))}
    top = max(depths.values(), default=0) + 1
    groups: dict[int, list] = {}
    for n, p in trainable:
        depth = depths.get(n, top if ("lm_head" in n or "encoder.layer_norm" in n) else 0)
        groups.setdefault(depth, []).append(p)
    return [{"params": ps, "lr": lr * layer_decay ** (top - d)} for d, ps in sorted(groups.items())]
