"""lhotse manifests → speechtl: a ``RecordingSet`` and a ``SupervisionSet`` as JSONL (``.jsonl`` or ``.jsonl.gz``),
read as plain JSON (lhotse itself is not needed).

A recording line looks like ``{"id": "rec1", "sources": [{"type": "file", "channels": [0], "source":
"wav/rec1.wav"}], "sampling_rate": 16000, "num_samples": 32000, "duration": 2.0}``; a supervision line like
``{"id": "sup1", "recording_id": "rec1", "start": 0.0, "duration": 2.0, "channel": 0, "text": "hello",
"speaker": "spk1", "language": "English", "gender": "f", "custom": {"accent": "..."}}``.

One supervision per recording, covering all of it (speechtl reads whole files): a supervision that cuts
a segment out of a longer recording is refused with its line, as are sources other than a file (``url``,
``command``, ``memory``): speechtl never runs commands or downloads from data files.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Iterator

from speechtl.data.importers import finish_import, resolve_audio_root
from speechtl.data.manifest import ManifestError, Utterance, json_lines

__all__ = ["prepare_lhotse", "read_jsonl"]

SEGMENT_TOLERANCE_S = 0.01  # a supervision within this of the recording's start/end covers it whole


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, object) of a ``.jsonl`` or ``.jsonl.gz`` file; a malformed line stops with file:line."""
    if not path.is_file():
        raise ManifestError(f"lhotse manifest not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, row in json_lines(f, path):
            if not row.get("id"):
                raise ManifestError(f"{path}:{lineno}: expected a JSON object with an 'id'")
            yield lineno, row


def _recordings(path: Path) -> dict[str, tuple[int, str, float]]:
    """recording id -> (line, audio path as written, duration in seconds)."""
    recs: dict[str, tuple[int, str, float]] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        sources = row.get("sources")
        if not isinstance(sources, list) or len(sources) != 1:
            raise ManifestError(f"{where}: recording {row['id']!r} needs exactly one source (one file per "
                                f"recording), got {len(sources) if isinstance(sources, list) else sources!r}")
        source = sources[0]
        if not isinstance(source, dict) or source.get("type") != "file" or not source.get("source"):
            kind = source.get("type") if isinstance(source, dict) else source
            raise ManifestError(f"{where}: recording {row['id']!r} has a {kind!r} source; only 'file' sources are "
                                f"read (speechtl does not run commands or download from data files)")
        try:
            duration = float(row["duration"])
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"{where}: recording {row['id']!r} needs a numeric duration") from e
        if row["id"] in recs:
            raise ManifestError(f"{where}: duplicate recording id {row['id']!r} (first on line {recs[row['id']][0]})")
        recs[row["id"]] = (lineno, str(source["source"]), duration)
    return recs


def _check_whole(row: dict, rec_duration: float, where: str) -> None:
    try:
        start, duration = float(row.get("start", 0.0)), float(row.get("duration", rec_duration))
    except (TypeError, ValueError) as e:
        raise ManifestError(f"{where}: start and duration must be seconds") from e
    if start > SEGMENT_TOLERANCE_S or abs(start + duration - rec_duration) > SEGMENT_TOLERANCE_S:
        raise ManifestError(f"{where}: supervision {row['id']!r} covers {start:g}-{start + duration:g} s of a "
                            f"{rec_duration:g}-s recording; segments are not supported: cut them into files first "
                            f"(e.g. lhotse's CutSet.trim_to_supervisions + save_audios)")


def prepare_lhotse(recordings: str | os.PathLike, supervisions: str | os.PathLike,
                   out: str | os.PathLike | None = None, audio_root: str | os.PathLike | None = None,
                   language: str = "", accent: str = "", on_error: str = "fail") -> list[Utterance]:
    """Recording + supervision manifests as utterances (id = supervision id). Relative audio paths resolve
    against ``audio_root``, else the first of the recordings manifest's folder, its parent and the current
    folder under which they all exist."""
    recordings, supervisions = Path(recordings), Path(supervisions)
    recs = _recordings(recordings)
    root = resolve_audio_root([p for _, p, _ in recs.values()],
                              [recordings.parent, recordings.parent.parent, Path.cwd()], str(recordings), audio_root)
    utts, used = [], {}
    for lineno, row in read_jsonl(supervisions):
        where = f"{supervisions}:{lineno}"
        rec_id = row.get("recording_id")
        if rec_id not in recs:
            raise ManifestError(f"{where}: supervision {row['id']!r} names recording {rec_id!r}, which {recordings} "
                                f"does not list")
        _check_whole(row, recs[rec_id][2], where)
        if rec_id in used:
            raise ManifestError(f"{where}: recording {rec_id!r} already has a supervision (line {used[rec_id]}); "
                                f"one supervision per recording")
        used[rec_id] = lineno
        text = str(row.get("text") or "").strip()
        if not text:
            raise ManifestError(f"{where}: supervision {row['id']!r} has no text")
        custom = row.get("custom") if isinstance(row.get("custom"), dict) else {}
        utts.append(Utterance(str(row["id"]), root / recs[rec_id][1], text, speaker=str(row.get("speaker") or ""),
                              accent=str(custom.get("accent") or accent), gender=str(row.get("gender") or ""),
                              language=str(row.get("language") or language), age=str(custom.get("age") or "")))
    return finish_import(utts, supervisions, out, check_files=True, on_error=on_error)
