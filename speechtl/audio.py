"""Audio I/O: any file libsndfile reads → float32 mono 1-D numpy array at 16 kHz.

Reading uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, NIST Sphere, ...);
resampling uses ``torchaudio.functional.resample`` (band-limited sinc interpolation).
Headerless ``.raw`` / ``.pcm`` files are read as 16-bit little-endian mono PCM at 16 kHz.
Every problem with a file raises :class:`AudioError` whose one-line message names the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from speechtl.errors import SpeechtlError

__all__ = ["SAMPLE_RATE", "SILENCE_THRESHOLD", "AUDIO_SUFFIXES", "AudioError", "AudioInfo", "load_audio", "audio_info",
           "open_audio", "error_reason", "known_frames", "find_audio_files", "locate_audio_files"]

SAMPLE_RATE = 16_000  # what wav2vec2-family models expect
SILENCE_THRESHOLD = 1e-6  # a file whose peak |sample| stays below this is rejected as silent
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".sph", ".nist", ".raw", ".pcm")
RAW_SUFFIXES = (".raw", ".pcm")  # headerless: 16-bit little-endian mono PCM at RAW_SAMPLE_RATE
RAW_SAMPLE_RATE = 16_000
MAX_RESAMPLE_PHASES = 1000  # reduced input-rate factor above which resampling goes through soxr
_SF_COUNT_MAX = 2**63 - 1  # libsndfile's "frame count unknown" (e.g. some MP3 streams)
_BLOCK_FRAMES = 1 << 16

PathLike = str | os.PathLike


class AudioError(SpeechtlError, ValueError):
    """An audio file is missing, unreadable or unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sampling_rate: int
    channels: int
    format: str  # "<container>/<encoding>", e.g. "WAV/PCM_16", "MP3/MPEG_LAYER_III", "OGG/OPUS"
    num_samples: int  # frames per channel


def error_reason(e: Exception) -> str:
    """libsndfile's own short message (soundfile's str() repeats the path)."""
    return (getattr(e, "error_string", None) or str(e)).strip().rstrip(".")


def open_audio(path: PathLike) -> sf.SoundFile:
    """``path`` opened for reading (headerless ``.raw``/``.pcm`` as 16-bit PCM); :class:`AudioError` if it
    cannot be."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p}: {'not a regular file' if p.exists() else 'no such audio file'}")
    try:
        if p.suffix.lower() in RAW_SUFFIXES:
            return sf.SoundFile(p, samplerate=RAW_SAMPLE_RATE, channels=1, format="RAW", subtype="PCM_16", endian="LITTLE")
        return sf.SoundFile(p)
    except (sf.SoundFileError, RuntimeError, ValueError) as e:
        raise AudioError(f"{p}: cannot read audio ({error_reason(e)})") from e


def known_frames(f: sf.SoundFile) -> int | None:
    """Frame count from the header, or None when the header has none."""
    return f.frames if 0 < f.frames < _SF_COUNT_MAX else None


def _decode(f: sf.SoundFile) -> np.ndarray:
    """All frames as float32 (frames, channels), ints scaled to [-1, 1]; block-wise without a frame count."""
    if known_frames(f) is not None:
        return f.read(dtype="float32", always_2d=True)
    blocks = []
    while len(block := f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
        blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros((0, f.channels), np.float32)


def load_audio(path: PathLike, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read ``path`` as a float32 mono 1-D array (T,) at ``sampling_rate`` Hz.

    Channels are averaged; rejects empty, non-finite and silent audio with :class:`AudioError`.
    """
    with open_audio(path) as f:
        try:
            data = _decode(f)
        except (sf.SoundFileError, RuntimeError, ValueError) as e:
            raise AudioError(f"{path}: cannot decode audio ({error_reason(e)})") from e
        orig_rate = f.samplerate
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if mono.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if np.abs(mono).max() < SILENCE_THRESHOLD:
        raise AudioError(f"{path}: silent audio (every sample below {SILENCE_THRESHOLD:g})")
    if orig_rate == sampling_rate:
        return mono
    if orig_rate // math.gcd(orig_rate, sampling_rate) > MAX_RESAMPLE_PHASES:
        # e.g. 44101 Hz: torchaudio's polyphase kernel would have tens of thousands of phases (GBs);
        # soxr (librosa's default resampler) handles arbitrary ratios in constant memory
        import librosa

        return librosa.resample(mono, orig_sr=orig_rate, target_sr=sampling_rate, res_type="soxr_hq")
    with torch.inference_mode():
        return AF.resample(torch.from_numpy(mono), orig_rate, sampling_rate).numpy()


def audio_info(path: PathLike) -> AudioInfo:
    """Header facts of ``path`` without decoding (decodes only when the header has no frame count)."""
    with open_audio(path) as f:
        frames = known_frames(f)
        if frames is None:
            frames = len(_decode(f))
        return AudioInfo(
            duration_s=frames / f.samplerate,
            sampling_rate=f.samplerate,
            channels=f.channels,
            format=f"{f.format}/{f.subtype}",
            num_samples=frames,
        )


def locate_audio_files(paths: Sequence[PathLike]) -> list[tuple[Path, Path | None]]:
    """Each file with the folder argument it was found in (None for a file given as such): files as given,
    folders searched recursively for files with an :data:`AUDIO_SUFFIXES` suffix (sorted)."""
    found: list[tuple[Path, Path | None]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [(f, p) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES]
        else:
            found.append((p, None))  # a missing file is reported by the reader, like any unreadable one
    return found


def find_audio_files(paths: Sequence[PathLike]) -> list[Path]:
    """Files as given; folders searched recursively for files with an audio suffix (sorted)."""
    return [f for f, _ in locate_audio_files(paths)]
