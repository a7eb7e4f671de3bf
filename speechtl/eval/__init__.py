"""Scoring: corpus WER and CER with jiwer on normalised text, per-utterance rows, real-time factor."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import jiwer

from speechtl.audio import load_audio
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import Utterance, read_manifest, unique_names
from speechtl.decode import transcribe_arrays
from speechtl.fileio import atomic_write_json, atomic_write_text
from speechtl.models import load_model
from speechtl.runtime import pick_device, resolve_precision
from speechtl.text import normalize

__all__ = ["ErrorRates", "error_rates", "EvalResult", "evaluate", "write_hypotheses", "evaluate_manifests"]


@dataclass(frozen=True)
class ErrorRates:
    wer: float  # fraction, e.g. 0.123
    cer: float
    num_words: int  # reference words behind the WER
    num_chars: int  # reference characters (spaces included) behind the CER


def error_rates(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRates:
    """Corpus-level WER/CER (total edits / total reference length) after :func:`speechtl.text.normalize`."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    refs = [normalize(r) for r in refs]
    hyps = [normalize(h) for h in hyps]
    empty = [k for k, r in enumerate(refs) if not r]
    if empty:
        raise ValueError(f"reference {empty[0]} is empty after normalisation; WER needs words to count")
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    num_words = sum(len(r.split()) for r in refs)
    num_chars = sum(len(r) for r in refs)
    return ErrorRates(wer=words.wer, cer=chars.cer, num_words=num_words, num_chars=num_chars)


@dataclass
class EvalResult:
    wer: float
    cer: float
    num_utts: int
    num_words: int
    audio_s: float
    rtf: float
    rows: list[dict] = field(default_factory=list, repr=False)  # id, reference, hypothesis (normalised)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("rows")
        return d


def evaluate(
    model,
    processor,
    utts: Sequence[Utterance],
    batch_seconds: float = 60.0,
    precision: str = "fp32",
    progress: bool = False,
    audio: Sequence | None = None,
    desc: str = "evaluating",
) -> EvalResult:
    """Transcribe ``utts`` greedily and score them. ``audio`` may hold the already-loaded arrays."""
    arrays = list(audio) if audio is not None else [load_audio(u.audio_path) for u in utts]
    out = transcribe_arrays(model, processor, arrays, batch_seconds, precision, progress, desc)
    refs = [u.text for u in utts]
    rates = error_rates(refs, out.texts)
    rows = [
        {"id": u.id, "reference": normalize(u.text), "hypothesis": normalize(h)} for u, h in zip(utts, out.texts)
    ]
    return EvalResult(
        wer=rates.wer,
        cer=rates.cer,
        num_utts=len(utts),
        num_words=rates.num_words,
        audio_s=out.audio_s,
        rtf=out.rtf,
        rows=rows,
    )


def write_hypotheses(result: EvalResult, path) -> None:
    """Per-utterance TSV: id, reference, hypothesis (both normalised)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "reference", "hypothesis"], delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    atomic_write_text(path, buf.getvalue())


def evaluate_manifests(
    model: str,
    manifests: Sequence[str],
    out: str | None = None,
    on_error: str = "fail",
    batch_seconds: float = 120.0,
    precision: str = "auto",
    device: str | None = None,
    progress: bool = True,
    adapter: str | None = None,
) -> dict:
    """Score a model on manifests; with ``out``, write ``results.json`` and per-utterance hypotheses there.
    ``adapter``: an adapter folder applied to ``model`` (see :func:`speechtl.models.load_model`)."""
    sets = {name: (str(path), read_manifest(path)) for name, path in zip(unique_names(manifests), manifests)}
    net, processor = load_model(model, adapter=adapter)
    dev = pick_device(device)
    net.to(dev)
    precision = resolve_precision(precision, dev)
    results: dict = {"model": model, "adapter": adapter, "sets": {}, "skipped": [], "precision": precision, "device": str(dev)}
    for name, (path, utts) in sets.items():
        utts, audio, bad = load_utterance_audio(utts, on_error, progress, f"loading {name}")
        results["skipped"] += [dict(s, set=name) for s in bad]
        r = evaluate(net, processor, utts, batch_seconds, precision, progress, audio, desc=f"evaluating {name}")
        results["sets"][name] = {"manifest": path, **r.summary()}
        if out:
            write_hypotheses(r, Path(out) / "hyps" / f"{name}.tsv")
    if out:
        atomic_write_json(Path(out) / "results.json", results)
    return results
