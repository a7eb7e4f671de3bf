"""What ``speechtl compare`` is told: :class:`CompareConfig`.

Torch-free on purpose: the command line builds compare's flags from this class without importing torch
(``speechtl.compare`` exports it without importing the run; :func:`~speechtl.compare.run.run_compare` runs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speechtl.settings import NUM_BOOTSTRAP

__all__ = ["CompareConfig"]


@dataclass
class CompareConfig:
    """Compare ASR models on labelled test sets: WER/CER with 95 % intervals and paired tests vs a baseline."""

    models: list[str] = field(default_factory=list)  # [NAME=]MODEL[+ADAPTER]: folder, hub id or speechtl/en-us-synth
    test: list[str] = field(default_factory=list)  # [NAME=]MANIFEST: labelled test manifests (.jsonl/.csv)
    baseline: str = ""  # name or spec of the model the others are tested against; empty: the first model
    out: str = "runs/compare"  # report folder
    by: list[str] = field(default_factory=lambda: ["accent", "speaker", "gender", "language"])  # breakdown fields
    num_bootstrap: int = NUM_BOOTSTRAP  # bootstrap resamples
    seed: int = 0  # bootstrap seed
    cache: str = ""  # hypothesis cache folder; empty: OUT/cache
    top: int = 10  # substitutions/insertions/deletions and changed utterances listed per model
    on_error: str = "fail"  # unreadable audio: fail, or skip it (for every model alike)
    batch_seconds: float = 120.0  # padded audio seconds per batch
    precision: str = "auto"  # auto (bf16 where supported), bf16 or fp32
    device: str = ""  # cpu, cuda, cuda:1 ...; empty: cuda if present, else cpu
    threads: int = 0  # CPU threads for torch (0: torch's default)
    route: bool = True  # a routed run folder is the routed system (--no-route: its adapted model alone)
    quiet: bool = False  # no progress bars
