"""Frame log-probabilities for whole audio files, short or hours long, batched.

Short files (up to one chunk) are read whole and batched together, longest first, under a
padded-seconds budget; longer files are streamed in overlapping chunks (:mod:`.chunking`), several
chunks of one file per batch. Either way each file comes out as one (T, V) tensor of log-probabilities,
in the order it was finished, and a file that cannot be read comes out as an error instead.

Legend: T = output frames of a file, V = vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from speechtl.audio import SAMPLE_RATE, AudioError, check_length, known_frames, load_audio, open_audio
from speechtl.data.dataset import length_grouped_batches
from speechtl.decode import audio_forward, forward_arrays, uses_attention_mask
from speechtl.decode.chunking import (Chunk, ChunkPlan, frame_hop, iter_chunks, model_receptive_field, plan_chunks,
                                      stream_audio)
from speechtl.decode.compiled import CompiledForward

__all__ = ["FileLogProbs", "file_log_probs"]


@dataclass
class FileLogProbs:
    index: int  # position in the list of files given
    log_probs: torch.Tensor | None  # (T, V) float32 on CPU; None when the file could not be read
    duration_s: float
    error: str | None = None  # why the file was skipped


class _Runner:
    """The model's forward pass on lists of arrays (the fast feature encoder in bf16); log-softmax in fp32 on CPU.
    ``compiled``: the forward for long files' chunks, compiled for batches of ``rows`` full chunks (None: eager)."""

    def __init__(self, model, processor, precision: str, compiled: CompiledForward | None = None):
        self.model, self.processor, self.precision, self.compiled = model, processor, precision, compiled

    def __call__(self, arrays: Sequence[np.ndarray], chunks: bool = False) -> list[torch.Tensor]:
        forward = self.compiled if chunks else None
        out = forward_arrays(self.model, self.processor, arrays, self.precision, fast=True, forward=forward)
        log_probs = torch.log_softmax(out.logits, dim=-1).cpu()
        return [lp[: int(n)] for lp, n in zip(log_probs, out.lengths)]


def _header_seconds(path: Path) -> float | None:
    """Duration from the file header without decoding; None when the header has no frame count."""
    with open_audio(path) as f:
        frames = known_frames(f)
        return None if frames is None else frames / f.samplerate


def _short_files(run: _Runner, files: Sequence[Path], idx: list[int], seconds: list[float], budget_s: float,
                 bar: tqdm, min_samples: int) -> Iterator[FileLogProbs]:
    for batch in length_grouped_batches([seconds[k] for k in range(len(idx))], budget_s, seed=None):
        arrays, kept = [], []
        for k in batch:
            try:
                arrays.append(load_audio(files[idx[k]], min_samples=min_samples))
                kept.append(k)
            except AudioError as e:
                bar.update(seconds[k])
                yield FileLogProbs(idx[k], None, seconds[k], str(e))
        if not kept:
            continue
        for k, a, lp in zip(kept, arrays, run(arrays)):
            bar.update(seconds[k])
            yield FileLogProbs(idx[k], lp, len(a) / SAMPLE_RATE)


def _chunk_batches(chunks: Iterator[Chunk], size: int, mixed: bool = False) -> Iterator[list[Chunk]]:
    """Groups of up to ``size`` chunks of equal length (the shorter last chunk goes alone, unless ``mixed``: a
    compiled forward pads it to the others' length)."""
    group: list[Chunk] = []
    for c in chunks:
        if group and (len(group) == size or not mixed and len(c.audio) != len(group[0].audio)):
            yield group
            group = []
        group.append(c)
    if group:
        yield group


def _decodable(chunks: Iterator[Chunk], path: Path, min_samples: int) -> Iterator[Chunk]:
    """Chunks, each at least the model's receptive field long (a last chunk always is: it is longer than both
    strides); a file without a frame count in its header can turn out shorter: AudioError, a skip."""
    for c in chunks:
        check_length(path, len(c.audio), min_samples)
        yield c


def _long_file(run: _Runner, path: Path, plan: ChunkPlan, per_batch: int, bar: tqdm,
               min_samples: int) -> tuple[torch.Tensor, float]:
    """Stitched (T, V) log-probs of a streamed file, and its duration in seconds."""
    samples = [0]

    def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            samples[0] += len(block)
            bar.update(len(block) / SAMPLE_RATE)
            yield block

    parts: list[torch.Tensor] = []
    chunks = _decodable(iter_chunks(counted(stream_audio(path)), plan), path, min_samples)
    mixed = run.compiled is not None and run.compiled.pad
    for group in _chunk_batches(chunks, per_batch, mixed):
        for c, lp in zip(group, run([c.audio for c in group], chunks=True)):
            parts.append(lp[c.keep_from : c.keep_to].clone())
    return torch.cat(parts), samples[0] / SAMPLE_RATE


def file_log_probs(
    model,
    processor,
    files: Sequence[str | Path],
    chunk_s: float = 30.0,
    stride_s: float = 3.0,
    batch_seconds: float = 60.0,
    precision: str = "fp32",
    progress: bool = False,
    compile: bool = False,
) -> Iterator[FileLogProbs]:
    """(T, V) log-probabilities of each file: short files batched first (longest first), then long ones streamed.
    ``compile``: long files' chunks through ``torch.compile`` (:mod:`.compiled`; short files stay eager: their
    batch shapes vary)."""
    model.eval()
    min_samples = model_receptive_field(model)  # shorter audio gives no frame: a skip, not a crash
    plan = plan_chunks(chunk_s, stride_s, frame_hop(model), min_samples)
    per_batch = max(1, int(batch_seconds * SAMPLE_RATE // plan.chunk))
    pass_mask = uses_attention_mask(processor)
    compiled = CompiledForward(audio_forward(model, pass_mask, precision, fast=True), per_batch, plan.chunk,
                               pad=pass_mask) if compile else None  # padding is masked only where the model reads a mask
    run = _Runner(model, processor, precision, compiled)
    files = [Path(f) for f in files]
    short, short_s, long, bad = [], [], [], []
    for i, f in enumerate(files):
        try:
            seconds = _header_seconds(f)
        except AudioError as e:
            bad.append(FileLogProbs(i, None, 0.0, str(e)))
            continue
        if seconds is not None and seconds * SAMPLE_RATE <= plan.chunk:
            short.append(i)
            short_s.append(seconds)
        else:
            long.append((i, seconds))
    total = sum(short_s) + sum(s or 0.0 for _, s in long)
    yield from bad
    with tqdm(total=round(total, 2), desc="transcribing", disable=not progress, leave=False,
              bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} audio-s [{elapsed}<{remaining}]") as bar:
        yield from _short_files(run, files, short, short_s, batch_seconds, bar, min_samples)
        for i, _ in long:
            try:
                log_probs, seconds = _long_file(run, files[i], plan, per_batch, bar, min_samples)
            except AudioError as e:
                yield FileLogProbs(i, None, 0.0, str(e))
                continue
            yield FileLogProbs(i, log_probs, seconds)
