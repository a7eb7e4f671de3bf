"""Long audio in overlapping chunks: stream a file in blocks, cut chunks with strides, stitch kept frames.

A chunk of ``chunk`` samples starts every ``step = chunk - left - right`` samples. Its output frames
that fall in the first ``left`` or the last ``right`` samples are dropped (not for the file's first
and last chunk), so every frame of the file is kept from exactly one chunk, the one where it had the
most context — like the ``chunk_length_s``/``stride_length_s`` of transformers' ASR pipeline.
Chunk starts and strides are whole multiples of the model's frame hop (320 samples for wav2vec2), so
chunk frame ``i`` is file frame ``start / hop + i``: the stitched frames line up exactly.

Reading is block-wise (soundfile) with streaming resampling (soxr) for other sample rates, so an
hour-long file never sits in memory as a whole: memory stays flat and time grows linearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf
import soxr

from speechtl.audio import SAMPLE_RATE, SILENCE_THRESHOLD, AudioError, checked_peak, error_reason, open_audio
from speechtl.config import ConfigError

__all__ = ["ChunkPlan", "Chunk", "plan_chunks", "stream_audio", "iter_chunks", "frame_hop", "receptive_field",
           "model_receptive_field"]

BLOCK_S = 10.0  # seconds read from the file at a time


@dataclass(frozen=True)
class ChunkPlan:
    chunk: int  # samples per chunk (16 kHz)
    left: int  # left stride: samples of context whose frames are dropped (not in the first chunk)
    right: int  # right stride: likewise at the end (not in the last chunk)
    hop: int  # the model's frame hop in samples

    @property
    def step(self) -> int:
        return self.chunk - self.left - self.right


@dataclass(frozen=True)
class Chunk:
    audio: np.ndarray  # (S,) float32 16 kHz
    start: int  # first sample in the file
    keep_from: int  # first output frame of this chunk to keep
    keep_to: int | None  # one past the last frame to keep (None: to the chunk's end — the last chunk)


def frame_hop(model) -> int:
    """Input samples per output frame: the product of the feature encoder's conv strides (320 for wav2vec2)."""
    return int(math.prod(model.config.conv_stride))


def receptive_field(conv_kernel: Sequence[int], conv_stride: Sequence[int]) -> int:
    """Input samples behind one output frame of a conv feature encoder, i.e. the shortest input that gives a
    frame: 400 (25 ms at 16 kHz) for wav2vec2's kernels (10, 3, 3, 3, 3, 2, 2) and strides (5, 2, 2, 2, 2, 2, 2)."""
    field = 1
    for kernel, stride in zip(reversed(conv_kernel), reversed(conv_stride)):
        field = (field - 1) * stride + kernel
    return field


def model_receptive_field(model) -> int:
    """:func:`receptive_field` of ``model``'s feature encoder (from its config): shorter audio cannot be decoded."""
    return receptive_field(model.config.conv_kernel, model.config.conv_stride)


def plan_chunks(chunk_s: float, stride_s: float, hop: int, min_samples: int = 0) -> ChunkPlan:
    """Chunk and stride lengths rounded to whole frame hops; the strides must leave a positive step, and a
    chunk must hold the model's receptive field (``min_samples``)."""
    chunk = max(1, round(chunk_s * SAMPLE_RATE / hop)) * hop
    stride = max(1, round(stride_s * SAMPLE_RATE / hop)) * hop
    if chunk - 2 * stride <= 0:
        raise ConfigError(f"chunk of {chunk_s:g} s with strides of {stride_s:g} s on each side leaves no step; "
                         f"give a stride below a third of the chunk")
    if chunk < min_samples:
        raise ConfigError(f"chunk of {chunk_s:g} s is shorter than the model's receptive field "
                          f"({min_samples / SAMPLE_RATE:g} s): give a longer chunk")
    return ChunkPlan(chunk, stride, stride, hop)


def stream_audio(path: str | Path, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """Blocks of float32 mono 16 kHz audio from ``path`` (any format soundfile reads; soxr resamples).

    Raises :class:`AudioError` naming the file for an implausible header, unreadable, non-finite or
    out-of-range samples, empty or silent audio (the last two once the end is reached).
    """
    with open_audio(path) as f:
        rate = f.samplerate
        resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        frames, peak = max(1, int(block_s * rate)), 0.0
        total = 0
        while True:
            try:
                block = f.read(frames, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError, ValueError) as e:
                raise AudioError(f"{path}: cannot decode audio ({error_reason(e)})") from e
            last = len(block) < frames
            checked_peak(path, block)
            mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
            peak = max(peak, float(np.abs(mono).max(initial=0.0)))
            total += len(mono)
            out = mono if resampler is None else resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
            if len(out):
                yield out
            if last:
                break
    if total == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if peak < SILENCE_THRESHOLD:
        raise AudioError(f"{path}: silent audio (every sample below {SILENCE_THRESHOLD:g})")


def iter_chunks(blocks: Iterator[np.ndarray], plan: ChunkPlan) -> Iterator[Chunk]:
    """Cut a block stream into overlapping chunks; only a buffer of about one chunk is held."""
    buf = np.zeros(0, np.float32)
    start = 0
    for block in blocks:
        buf = np.concatenate([buf, block]) if len(buf) else block
        while len(buf) > plan.chunk:  # more audio follows this chunk: not the last one
            yield Chunk(buf[: plan.chunk].copy(), start, _keep_from(start, plan), (plan.chunk - plan.right) // plan.hop)
            buf, start = buf[plan.step:], start + plan.step
    if len(buf) and (start == 0 or len(buf) > plan.left):
        yield Chunk(buf.copy(), start, _keep_from(start, plan), None)


def _keep_from(start: int, plan: ChunkPlan) -> int:
    return 0 if start == 0 else plan.left // plan.hop
