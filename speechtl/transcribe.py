"""Transcribe audio files: paths and folders in, one transcript per readable file out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from speechtl.config import ConfigError
from speechtl.audio import AudioError, load_audio
from speechtl.data.dataset import ON_ERROR
from speechtl.decode import transcribe_arrays
from speechtl.models import load_model
from speechtl.runtime import pick_device, resolve_precision
from speechtl.text import normalize

__all__ = ["AUDIO_SUFFIXES", "find_audio_files", "FileTranscript", "transcribe_files"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".sph", ".nist", ".raw", ".pcm")


def find_audio_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for files with an audio suffix (sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            found.append(p)  # a missing file is reported by load_audio, like any unreadable one
    return found


@dataclass(frozen=True)
class FileTranscript:
    path: str
    text: str  # as the model wrote it, normalised (lowercase, single spaces)
    duration_s: float


def transcribe_files(
    model: str,
    paths: Sequence[str | Path],
    on_error: str = "fail",
    batch_seconds: float = 120.0,
    precision: str = "auto",
    device: str | None = None,
    progress: bool = True,
) -> tuple[list[FileTranscript], list[dict]]:
    """Greedy transcripts of audio files. Returns (transcripts, skipped files as {"path", "reason"})."""
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    files = find_audio_files(paths)
    if not files:
        raise AudioError(f"no audio files found in {[str(p) for p in paths]} (suffixes: {', '.join(AUDIO_SUFFIXES)})")
    kept, arrays, skipped = [], [], []
    for f in files:
        try:
            arrays.append(load_audio(f))
            kept.append(f)
        except AudioError as e:
            if on_error == "fail":
                raise
            skipped.append({"path": str(f), "reason": str(e)})
    net, processor = load_model(model)
    dev = pick_device(device)
    net.to(dev)
    out = transcribe_arrays(net, processor, arrays, batch_seconds, resolve_precision(precision, dev), progress,
                            desc="transcribing")
    transcripts = [FileTranscript(str(f), normalize(t), round(len(a) / 16000, 3))
                   for f, t, a in zip(kept, out.texts, arrays)]
    return transcripts, skipped
