"""Transcribe audio files: paths and folders in, one transcript per readable file out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from speechtl.audio import AudioError
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import Utterance
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
    adapter: str | None = None,
) -> tuple[list[FileTranscript], list[dict]]:
    """Greedy transcripts of audio files. Returns (transcripts, skipped files as {"path", "reason"}).
    ``adapter``: an adapter folder applied to ``model`` (see :func:`speechtl.models.load_model`)."""
    files = find_audio_files(paths)
    if not files:
        raise AudioError(f"no audio files found in {[str(p) for p in paths]} (suffixes: {', '.join(AUDIO_SUFFIXES)})")
    kept, arrays, bad = load_utterance_audio([Utterance(str(f), f) for f in files], on_error, progress,
                                             "loading audio")
    net, processor = load_model(model, adapter=adapter)
    dev = pick_device(device)
    net.to(dev)
    out = transcribe_arrays(net, processor, arrays, batch_seconds, resolve_precision(precision, dev), progress,
                            desc="transcribing")
    transcripts = [FileTranscript(u.id, normalize(t), round(u.duration_s, 3)) for u, t in zip(kept, out.texts)]
    return transcripts, [{"path": s["audio_path"], "reason": s["reason"]} for s in bad]
