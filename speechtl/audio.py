"""Audio I/O: any file libsndfile reads → float32 mono 1-D numpy array at 16 kHz.

Reading uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, NIST Sphere, ...);
resampling uses ``torchaudio.functional.resample`` (band-limited sinc interpolation).
Headerless ``.raw`` / ``.pcm`` files are read as 16-bit little-endian mono PCM at 16 kHz.
Every problem with a file raises :class:`AudioError` whose one-line message names the file.

Headers are checked before anything is decoded (a damaged header must not cost gigabytes or hours):
a plausible sample rate and channel count, and for uncompressed WAV/AIFF/NIST files a sample count that
the file's bytes can hold (libsndfile silently reads a truncated file's remainder). Decoded samples must
be finite and within :data:`MAX_AMPLITUDE`; one :func:`load_audio` call may use at most
:data:`MAX_LOAD_BYTES` (decoded + resampled arrays).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from speechtl.errors import SpeechtlError

__all__ = ["SAMPLE_RATE", "SILENCE_THRESHOLD", "AUDIO_SUFFIXES", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "MAX_CHANNELS",
           "MAX_AMPLITUDE", "MAX_LOAD_BYTES", "AudioError", "AudioInfo", "load_audio", "audio_info", "open_audio",
           "error_reason", "known_frames", "checked_peak", "check_length", "find_audio_files", "locate_audio_files"]

SAMPLE_RATE = 16_000  # what wav2vec2-family models expect
SILENCE_THRESHOLD = 1e-6  # a file whose peak |sample| stays below this is rejected as silent
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".sph", ".nist", ".raw", ".pcm")
RAW_SUFFIXES = (".raw", ".pcm")  # headerless: 16-bit little-endian mono PCM at RAW_SAMPLE_RATE
RAW_SAMPLE_RATE = 16_000
MAX_RESAMPLE_PHASES = 1000  # reduced input-rate factor above which resampling goes through soxr
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000  # Hz a header may claim; outside: a damaged header
MAX_CHANNELS = 32
MAX_AMPLITUDE = 1e3  # |sample| a float file may reach (sane float audio stays near ±1); above: garbage
MAX_LOAD_BYTES = 4 * 2**30  # decoded + resampled arrays of one load_audio call (about 4.6 h of 16 kHz stereo)
_BYTES_PER_SAMPLE = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                     "ULAW": 1, "ALAW": 1}  # uncompressed subtypes: frames x bytes per frame must fit the file
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
    """``path`` opened for reading (headerless ``.raw``/``.pcm`` as 16-bit PCM) with a plausible header;
    :class:`AudioError` if it cannot be."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p}: {'not a regular file' if p.exists() else 'no such audio file'}")
    try:
        if p.suffix.lower() in RAW_SUFFIXES:
            f = sf.SoundFile(p, samplerate=RAW_SAMPLE_RATE, channels=1, format="RAW", subtype="PCM_16", endian="LITTLE")
        else:
            f = sf.SoundFile(p)
    except (sf.SoundFileError, RuntimeError, ValueError) as e:
        raise AudioError(f"{p}: cannot read audio ({error_reason(e)})") from e
    try:
        _check_header(p, f)
    except Exception:
        f.close()
        raise
    return f


def _check_header(p: Path, f: sf.SoundFile) -> None:
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{p}: header says {f.samplerate} Hz; a plausible sample rate is {MIN_SAMPLE_RATE}–"
                         f"{MAX_SAMPLE_RATE} Hz (damaged or mislabelled header: re-export the file)")
    if not 1 <= f.channels <= MAX_CHANNELS:
        raise AudioError(f"{p}: header says {f.channels} channels; at most {MAX_CHANNELS} are supported "
                         f"(damaged header, or a multitrack file: export the channels you need)")
    if f.subtype not in _BYTES_PER_SAMPLE:
        return
    claimed = _header_frame_count(p, f.format)
    if claimed is not None and claimed > f.frames:  # libsndfile counts only the frames present
        per_frame = f.channels * _BYTES_PER_SAMPLE[f.subtype]
        raise AudioError(f"{p}: header claims {claimed} frames ({claimed * per_frame} bytes of samples) but the "
                         f"{p.stat().st_size}-byte file holds {f.frames}: it is cut short (an interrupted copy or "
                         f"download?); fetch or export it again")


def _header_frame_count(p: Path, container: str) -> int | None:
    """The frame count an uncompressed file's header claims (None: not stated, or a container not parsed here).
    Read by hand: libsndfile clamps it to the file's size and only logs the difference."""
    try:
        with open(p, "rb") as fh:
            if container in ("WAV", "WAVEX"):
                return _riff_frames(fh)
            if container == "AIFF":
                return _aiff_frames(fh)
            if container == "NIST":
                head = fh.read(1024).split(b"end_head")[0]
                counts = [line.split() for line in head.split(b"\n") if line.startswith(b"sample_count -i ")]
                return int(counts[0][2]) if counts else None
    except (OSError, ValueError, IndexError, struct.error):
        pass  # a header libsndfile read but this parser cannot: libsndfile's frame count stands
    return None


def _chunks(fh, endian: str):
    """(id, size, offset of data) of each RIFF/IFF chunk after the 12-byte form header."""
    fh.seek(12)
    while len(head := fh.read(8)) == 8:
        cid, size = head[:4], struct.unpack(endian + "I", head[4:])[0]
        at = fh.tell()
        yield cid, size, at  # the caller may read inside the chunk
        fh.seek(at + size + (size & 1))


def _riff_frames(fh) -> int | None:
    form = fh.read(12)
    if form[:4] not in (b"RIFF", b"RIFX") or form[8:12] != b"WAVE":
        return None  # RF64 / W64 state sizes elsewhere
    endian, block_align = ("<" if form[:4] == b"RIFF" else ">"), 0
    for cid, size, at in _chunks(fh, endian):
        if cid == b"fmt " and size >= 14:
            fh.seek(at + 12)
            block_align = struct.unpack(endian + "H", fh.read(2))[0]
        elif cid == b"data":  # 0 and 0xFFFFFFFF: size unknown (a streamed write)
            return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
    return None


def _aiff_frames(fh) -> int | None:
    form = fh.read(12)
    if form[:4] != b"FORM" or form[8:12] not in (b"AIFF", b"AIFC"):
        return None
    for cid, size, at in _chunks(fh, ">"):
        if cid == b"COMM" and size >= 6:
            fh.seek(at + 2)
            return struct.unpack(">I", fh.read(4))[0]
    return None


def known_frames(f: sf.SoundFile) -> int | None:
    """Frame count from the header, or None when the header has none."""
    return f.frames if 0 < f.frames < _SF_COUNT_MAX else None


def checked_peak(path: PathLike, samples: np.ndarray) -> float:
    """The largest |sample|; :class:`AudioError` for NaN/infinite samples or ones beyond :data:`MAX_AMPLITUDE`."""
    peak = float(np.abs(samples).max(initial=0.0))
    if not math.isfinite(peak):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if peak > MAX_AMPLITUDE:
        raise AudioError(f"{path}: samples out of range (peak |x| = {peak:.3g}; float audio belongs near ±1, "
                         f"at most {MAX_AMPLITUDE:g}): a damaged file or a mislabelled encoding")
    return peak


def check_length(path: PathLike, num_samples: int, min_samples: int) -> None:
    """:class:`AudioError` when audio of ``num_samples`` at 16 kHz is too short for the model: below its
    receptive field (``min_samples``; 400 = 25 ms for wav2vec2) it gives no output frame."""
    if num_samples < min_samples:
        raise AudioError(f"{path}: {1000 * num_samples / SAMPLE_RATE:.1f} ms ({num_samples} samples at {SAMPLE_RATE} "
                         f"Hz) is shorter than the model's receptive field ({min_samples} samples = "
                         f"{1000 * min_samples / SAMPLE_RATE:.1f} ms): too short to transcribe")


def _max_frames(f: sf.SoundFile, sampling_rate: int) -> int:
    """Frames of ``f`` whose decoded + mono + resampled float32 arrays fit :data:`MAX_LOAD_BYTES`."""
    return int(MAX_LOAD_BYTES / (4 * (f.channels + 1 + sampling_rate / f.samplerate)))


def _too_big(path: PathLike, f: sf.SoundFile, frames: int, known: bool = True) -> AudioError:
    hours = frames / f.samplerate / 3600
    return AudioError(f"{path}: {'' if known else 'over '}{hours:.1f} h of {f.channels}-channel audio at "
                      f"{f.samplerate} Hz exceeds the {MAX_LOAD_BYTES / 2**30:g} GiB one file may take in memory "
                      f"decoded and resampled; split it into shorter files (e.g. sox IN OUT trim 0 1800 : newfile "
                      f": restart), or transcribe it (speechtl transcribe streams long files)")


def _decode(f: sf.SoundFile, path: PathLike, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """All frames as float32 (frames, channels), ints scaled to [-1, 1]; block-wise without a frame count.
    :class:`AudioError` (before decoding when the header tells) when the file exceeds :data:`MAX_LOAD_BYTES`."""
    limit = _max_frames(f, sampling_rate)
    frames = known_frames(f)
    if frames is not None:
        if frames > limit:
            raise _too_big(path, f, frames)
        return f.read(dtype="float32", always_2d=True)
    blocks, total = [], 0
    while len(block := f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
        blocks.append(block)
        total += len(block)
        if total > limit:
            raise _too_big(path, f, total, known=False)
    return np.concatenate(blocks) if blocks else np.zeros((0, f.channels), np.float32)


def load_audio(path: PathLike, sampling_rate: int = SAMPLE_RATE, min_samples: int = 0) -> np.ndarray:
    """Read ``path`` as a float32 mono 1-D array (T,) at ``sampling_rate`` Hz.

    Channels are averaged; rejects empty, non-finite, out-of-range, silent and (``min_samples``: the model's
    receptive field at 16 kHz) too short audio with :class:`AudioError`.
    """
    with open_audio(path) as f:
        try:
            data = _decode(f, path, sampling_rate)
        except AudioError:
            raise
        except (sf.SoundFileError, RuntimeError, ValueError) as e:
            raise AudioError(f"{path}: cannot decode audio ({error_reason(e)})") from e
        orig_rate = f.samplerate
    if data.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    checked_peak(path, data)
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if np.abs(mono).max() < SILENCE_THRESHOLD:
        raise AudioError(f"{path}: silent audio (every sample below {SILENCE_THRESHOLD:g})")
    if orig_rate != sampling_rate:
        mono = _resample(mono, orig_rate, sampling_rate)
    check_length(path, round(len(mono) * SAMPLE_RATE / sampling_rate), min_samples)
    return mono


def _resample(mono: np.ndarray, orig_rate: int, sampling_rate: int) -> np.ndarray:
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
            frames = len(_decode(f, path))
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
