"""Typed manifests: one frozen :class:`Utterance` per line of JSONL (or per row of a CSV with a header).

A manifest line looks like::

    {"id": "spk1-0001", "audio_path": "wav/spk1-0001.wav", "text": "hello world",
     "speaker": "spk1", "accent": "en-gb-scotland", "language": "en", "duration_s": 2.31}

Only ``id``, ``audio_path`` and ``text`` are required. Relative audio paths resolve against the
manifest's folder, so a data folder can be moved as a whole. A ``.csv`` / ``.tsv`` file holds the same fields as
columns under a header. Files are UTF-8 (a BOM is dropped); every field but ``duration_s`` is a string (``id``
and ``age`` may be JSON integers; ``null`` is an absent optional field); a key or column named twice is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

from speechtl.audio import AudioError, audio_info
from speechtl.fileio import atomic_write_text
from speechtl.errors import SpeechtlError
from speechtl.text import read_utf8

__all__ = [
    "Utterance",
    "ManifestError",
    "read_manifest",
    "json_lines",
    "shared_with",
    "write_manifest",
    "speaker_disjoint_split",
    "sample_minutes",
    "total_minutes",
    "set_name",
    "unique_names",
    "add_durations",
]


@dataclass(frozen=True)
class Utterance:
    id: str
    audio_path: Path
    text: str = ""
    speaker: str = ""
    accent: str = ""
    language: str = ""
    duration_s: float | None = None
    gender: str = ""  # optional, free text (e.g. "f", "m"); for breakdowns in `speechtl compare`
    age: str = ""  # optional, free text: years ("37") or a band ("twenties"), as the corpus gives it
    age_group: str = ""  # optional, "child" or "adult" (importers: age below a threshold); for breakdowns


FIELDS = tuple(f.name for f in dataclasses.fields(Utterance))
REQUIRED = ("id", "audio_path")
OPTIONAL_EXTRA = ("gender", "age", "age_group")  # written only when some utterance has it: older manifests stay byte-identical
INTEGER_OK = ("id", "age")  # fields a JSON manifest may give as an integer (read as its decimal string)
DELIMITERS = {".csv": ",", ".tsv": "\t"}  # tables with a header row; any other suffix is JSONL


class ManifestError(SpeechtlError, ValueError):
    """A manifest line is malformed; the message names the file and line."""


def _check_types(row: dict, where: str, require_text: bool) -> None:
    """Every field but ``duration_s`` holds a string (``id`` and ``age`` may be integers); ``null`` stands for an
    absent optional field, but not for a transcript a labelled manifest needs."""
    for key, value in row.items():
        if key == "duration_s" or isinstance(value, str):
            continue
        if value is None and (key not in REQUIRED and not (key == "text" and require_text)):
            continue
        if key in INTEGER_OK and isinstance(value, int) and not isinstance(value, bool):
            continue
        raise ManifestError(f"{where}: field {key!r} must be a string{' or an integer' if key in INTEGER_OK else ''}, "
                            f"got {_json_type(value)} {json.dumps(value, ensure_ascii=False)[:60]}")


def _json_type(value) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _row_to_utterance(row: dict, where: str, base: Path, require_text: bool, check_files: bool) -> Utterance:
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise ManifestError(f"{where}: unknown column(s) {unknown}; allowed: {list(FIELDS)}")
    _check_types(row, where, require_text)
    missing = [k for k in REQUIRED if not str(row.get(k) or "").strip()]
    if missing:
        raise ManifestError(f"{where}: missing required field(s) {missing}")
    text = row.get("text") or ""
    if require_text and not text.strip():
        raise ManifestError(f"{where}: utterance {row['id']!r} has empty text (a labelled manifest needs a transcript)")
    audio = Path(str(row["audio_path"])).expanduser()
    if not audio.is_absolute():
        audio = base / audio
    if check_files and not audio.is_file():
        raise ManifestError(f"{where}: audio file of utterance {row['id']!r} not found: {audio}")
    duration = row.get("duration_s")
    if duration in ("", None):
        duration = None
    else:
        try:
            duration = float(duration)
        except (TypeError, ValueError) as e:
            raise ManifestError(f"{where}: duration_s must be a number of seconds, got {duration!r}") from e
        if not math.isfinite(duration) or duration <= 0:
            raise ManifestError(f"{where}: duration_s must be a positive number of seconds, got {duration!r}")
    return Utterance(
        id=str(row["id"]),
        audio_path=audio,
        text=text,
        speaker=str(row.get("speaker") or ""),
        accent=str(row.get("accent") or ""),
        language=str(row.get("language") or ""),
        duration_s=duration,
        gender=str(row.get("gender") or ""),
        age=str(row.get("age") or ""),
        age_group=str(row.get("age_group") or ""),
    )


def _rows(path: Path) -> Iterable[tuple[int, dict]]:
    """Yield (line number, row dict) from a JSONL, CSV or TSV file (UTF-8, a BOM allowed)."""
    text = read_utf8(path, ManifestError, "the manifest")
    delimiter = DELIMITERS.get(path.suffix.lower())
    if delimiter is None:
        yield from json_lines(io.StringIO(text, newline=None), path)
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = reader.fieldnames or []
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ManifestError(f"{path}:1: column(s) {repeated} appear more than once in the header; each may appear once")
    for row in reader:
        if None in row:
            raise ManifestError(f"{path}:{reader.line_num}: more values than header columns")
        yield reader.line_num, row


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise _DuplicateKeys(repeated)
    return dict(pairs)


class _DuplicateKeys(ValueError):
    pass


def json_lines(f: Iterable[str], path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of an open JSONL file; a malformed line (or one naming a key
    twice) stops with file:line."""
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
        except _DuplicateKeys as e:
            raise ManifestError(f"{path}:{lineno}: key(s) {e.args[0]} appear more than once in one object; "
                                f"each may appear once") from e
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{lineno}: each line must be a JSON object")
        yield lineno, row


def read_manifest(
    path: str | os.PathLike, require_text: bool = True, check_files: bool = True, unique_ids: bool = True
) -> list[Utterance]:
    """Read a ``.jsonl`` (or ``.csv`` / ``.tsv``) manifest; errors name the file and line.

    ``unique_ids=False`` keeps repeated ids (for ``speechtl check``, which reports them all).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    base = path.resolve().parent
    utts, seen = [], {}
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        utt = _row_to_utterance(row, where, base, require_text, check_files)
        if utt.id in seen and unique_ids:
            raise ManifestError(f"{where}: duplicate utterance id {utt.id!r} (first on line {seen[utt.id]})")
        seen.setdefault(utt.id, lineno)
        utts.append(utt)
    if not utts:
        raise ManifestError(f"{path}: manifest is empty")
    return utts


def write_manifest(utts: Sequence[Utterance], path: str | os.PathLike) -> None:
    """Write JSONL (or CSV / TSV by suffix) atomically; audio under the manifest's folder is stored relative to it."""
    path = Path(path)
    base = path.resolve().parent
    fields = [f for f in FIELDS if f not in OPTIONAL_EXTRA or any(getattr(u, f) for u in utts)]

    def row(u: Utterance) -> dict:
        d = {k: v for k, v in dataclasses.asdict(u).items() if k in fields}
        audio = Path(u.audio_path).resolve()
        d["audio_path"] = str(audio.relative_to(base)) if audio.is_relative_to(base) else str(audio)
        return d

    if path.suffix.lower() in DELIMITERS:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, delimiter=DELIMITERS[path.suffix.lower()])
        writer.writeheader()
        for u in utts:
            writer.writerow({k: ("" if v is None else v) for k, v in row(u).items()})
        atomic_write_text(path, buf.getvalue())
    else:
        atomic_write_text(path, "".join(json.dumps(row(u), ensure_ascii=False) + "\n" for u in utts))


def set_name(path: str | os.PathLike) -> str:
    """A short name for the set in a manifest file: its stem, or its folder's name for ``manifest.jsonl``."""
    path = Path(path)
    return path.parent.name if path.stem == "manifest" and path.parent.name else path.stem


def unique_names(paths: Sequence[str | os.PathLike], taken: Iterable[str] = ()) -> list[str]:
    """:func:`set_name` of each path, with ``_2``, ``_3``... added where names repeat or are in ``taken``."""
    names: list[str] = []
    taken = set(taken)
    for p in paths:
        name, k = set_name(p), 1
        while name in names or name in taken:
            k += 1
            name = f"{set_name(p)}_{k}"
        names.append(name)
    return names


def total_minutes(utts: Iterable[Utterance]) -> float:
    return sum(u.duration_s or 0.0 for u in utts) / 60.0


def speaker_disjoint_split(
    utts: Sequence[Utterance], fractions: Sequence[float], seed: int = 0
) -> list[list[Utterance]]:
    """Split into len(fractions) parts with no speaker in two parts; parts get ~fractions of the utterances.

    Utterances without a speaker each count as their own speaker.
    """
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by_speaker[u.speaker or f"<utt:{u.id}>"].append(u)
    speakers = sorted(by_speaker)
    random.Random(seed).shuffle(speakers)
    parts: list[list[Utterance]] = [[] for _ in fractions]
    targets = [f * len(utts) for f in fractions]
    for spk in speakers:
        # give the speaker to the part furthest below its target
        i = max(range(len(parts)), key=lambda k: (targets[k] - len(parts[k])) / max(targets[k], 1e-9))
        parts[i].extend(by_speaker[spk])
    return parts


def sample_minutes(utts: Sequence[Utterance], minutes: float, seed: int = 0) -> list[Utterance]:
    """A seeded, speaker-stratified sample of about ``minutes`` of audio (needs ``duration_s``).

    Speakers are visited round-robin (in a seeded order), taking one random utterance of each in
    turn, so a small budget still covers as many speakers as it can.
    """
    if any(u.duration_s is None for u in utts):
        raise ManifestError("sample_minutes needs duration_s on every utterance (see add_durations)")
    rng = random.Random(seed)
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by_speaker[u.speaker or f"<utt:{u.id}>"].append(u)
    queues = []
    for spk in sorted(by_speaker):
        q = list(by_speaker[spk])
        rng.shuffle(q)
        queues.append(q)
    rng.shuffle(queues)
    budget_s, taken, total = minutes * 60.0, [], 0.0
    while total < budget_s and any(queues):
        for q in queues:
            if q and total < budget_s:
                u = q.pop()
                taken.append(u)
                total += u.duration_s
    return taken


def add_durations(
    utts: Sequence[Utterance], on_error: Literal["fail", "skip"] = "fail"
) -> tuple[list[Utterance], list[tuple[str, str]]]:
    """Fill ``duration_s`` from the audio header where it is missing.

    Returns (utterances kept, [(utterance id, reason)] skipped). With ``on_error="fail"`` the first
    unreadable or empty file raises :class:`AudioError` naming the utterance id and the file.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    kept: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    for utt in utts:
        if utt.duration_s is not None:
            kept.append(utt)
            continue
        try:
            info = audio_info(utt.audio_path)
            if info.num_samples == 0:
                raise AudioError(f"{utt.audio_path}: empty audio (0 samples)")
        except AudioError as e:
            if on_error == "fail":
                raise AudioError(f"utterance {utt.id!r}: {e}") from e
            skipped.append((utt.id, str(e)))
            continue
        kept.append(dataclasses.replace(utt, duration_s=info.duration_s))
    return kept, skipped


def shared_with(train: Sequence[Utterance], other: Sequence[Utterance]) -> list[str]:
    """What an evaluation set shares with a training set — utterance ids and audio files (same resolved path) —
    as short phrases for an error message; empty when they are disjoint."""
    found = []
    ids = sorted({u.id for u in train} & {u.id for u in other})
    if ids:
        found.append(f"{len(ids)} utterance id(s), e.g. {', '.join(map(repr, ids[:3]))}")
    files = sorted({os.path.realpath(u.audio_path) for u in train} & {os.path.realpath(u.audio_path) for u in other})
    if files:
        found.append(f"{len(files)} audio file(s), e.g. {', '.join(files[:2])}")
    return found
