"""Adapter artifact size against the full model's, per LoRA rank and MMS adapter width (the ≤ 5 % aim).

Run (from the repository root):

    .venv/bin/python benchmarks/adapter_sizes.py                          # shipped model and a base-sized one
    .venv/bin/python benchmarks/adapter_sizes.py --models tiny --lora-ranks 4 --adapter-dims 8   # smoke run

Each row is written exactly as an adaptation run writes it: the strategy is applied to a fresh copy of
the model, :func:`speechtl.models.adapter.capture_adapter` + ``save_adapter`` write the ``adapter/`` folder,
and the full model is the run's merged model (``save_pretrained``; for ``adapter`` it includes the adapters).
Sizes do not depend on training, so nothing is trained. ``tiny``/``small``/``base`` are random models of
those sizes (:data:`speechtl.models.MODEL_SIZES`); anything else is loaded with ``load_model``.
"""

from __future__ import annotations

import copy
import json
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from speechtl.adapt.strategies import apply_strategy, finish_strategy
from speechtl.config import parse_config
from speechtl.models import MODEL_SIZES, load_model, random_model
from speechtl.models.adapter import base_fingerprint, capture_adapter, save_adapter, weights_bytes
from speechtl.text import ENGLISH_CHARS, build_vocab


@dataclass
class SizesConfig:
    models: list[str] = field(default_factory=lambda: ["speechtl/en-us-synth", "base"])  # model names or sizes
    lora_ranks: list[int] = field(default_factory=lambda: [4, 8, 16, 32])  # LoRA ranks (alpha = rank)
    adapter_dims: list[int] = field(default_factory=lambda: [16, 32, 64])  # MMS adapter bottleneck widths
    output_format: str = "table"  # table | json


def _model(name: str):
    if name in MODEL_SIZES:
        return random_model(build_vocab([], ENGLISH_CHARS), size=name)
    return load_model(name)


def _row(base, processor, fingerprint: dict, name: str, strategy: str, **kwargs) -> dict:
    model = copy.deepcopy(base)
    trained = apply_strategy(model, strategy, **kwargs)
    params = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    artifact = capture_adapter(trained, strategy)
    with tempfile.TemporaryDirectory() as tmp:
        adapter = save_adapter(artifact, Path(tmp) / "adapter", name, fingerprint)
        finish_strategy(trained).save_pretrained(Path(tmp) / "full")
        full = weights_bytes(Path(tmp) / "full")
    setting = f"r={kwargs['lora_r']}" if strategy == "lora" else f"dim={kwargs['adapter_dim']}"
    return {"model": name, "model_params": sum(p.numel() for p in base.parameters()), "strategy": strategy,
            "setting": setting, "trainable_params": params, "adapter_bytes": adapter, "full_model_bytes": full,
            "ratio": round(adapter / full, 6)}


def measure(cfg: SizesConfig) -> list[dict]:
    rows = []
    for name in cfg.models:
        base, processor = _model(name)
        fingerprint = base_fingerprint(base, processor)
        for r in cfg.lora_ranks:
            rows.append(_row(base, processor, fingerprint, name, "lora", lora_r=r, lora_alpha=r))
        for dim in cfg.adapter_dims:
            rows.append(_row(base, processor, fingerprint, name, "adapter", adapter_dim=dim))
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'model':<22} {'params':>8} {'strategy':<8} {'setting':<8} {'trainable':>10} {'adapter MB':>10} "
             f"{'full MB':>8} {'ratio':>7}"]
    for r in rows:
        lines.append(f"{r['model']:<22} {r['model_params'] / 1e6:>7.1f}M {r['strategy']:<8} {r['setting']:<8} "
                     f"{r['trainable_params']:>10,} {r['adapter_bytes'] / 1e6:>10.3f} {r['full_model_bytes'] / 1e6:>8.1f} "
                     f"{100 * r['ratio']:>6.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = parse_config(SizesConfig, argv)
    rows = measure(cfg)
    if cfg.output_format == "json":
        print(json.dumps({"command": shlex.join(["benchmarks/adapter_sizes.py", *(argv or [])]), "rows": rows}, indent=2))
    else:
        print(f"$ python {shlex.join(['benchmarks/adapter_sizes.py', *(argv if argv is not None else sys.argv[1:])])}")
        print(format_table(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
