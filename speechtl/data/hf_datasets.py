"""Hugging Face ``datasets`` layouts, read without the ``datasets`` package.

- An *audio folder* (``datasets.load_dataset("audiofolder", data_dir=...)``'s input): audio files plus a
  ``metadata.csv`` (or ``metadata.jsonl``) with a ``file_name`` column (paths relative to the metadata file)
  and a transcript column (``transcription``, ``text``, ``sentence``, ... or ``text_column``).
- A ``Dataset.save_to_disk`` folder (``state.json``, ``dataset_info.json``, ``data-*.arrow`` in Arrow's
  streaming format; a ``DatasetDict`` has one such folder per split). Its Arrow files are read with
  ``pyarrow`` (a dependency of ``datasets``, not of speechtl); embedded audio bytes are written to files
  under ``audio_out`` so the manifest can point at them.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterator

from speechtl.data.importers import finish_import
from speechtl.data.manifest import ManifestError, Utterance, json_lines

__all__ = ["prepare_hf_audiofolder", "prepare_hf_disk", "TEXT_COLUMNS", "SPEAKER_COLUMNS"]

TEXT_COLUMNS = ("transcription", "text", "sentence", "transcript", "normalized_text")  # first present wins
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")
ACCENT_COLUMNS = ("accent", "accents")


def _first(columns, wanted: str, defaults: tuple[str, ...], where: str, what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise ManifestError(f"{where}: no column {wanted!r}; columns: {list(columns)}")
        return wanted
    found = next((c for c in defaults if c in columns), "")
    if not found and what == "transcript":
        raise ManifestError(f"{where}: no transcript column (looked for {', '.join(defaults)}); columns: "
                            f"{list(columns)}; name it with --text-column")
    return found


def _metadata_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, row) of ``metadata.csv`` (header + standard CSV quoting) or ``metadata.jsonl``."""
    with open(path, encoding="utf-8", newline="") as f:
        if path.suffix == ".jsonl":
            yield from json_lines(f, path)
            return
        reader = csv.DictReader(f)
        for row in reader:
            if None in row or None in row.values():
                raise ManifestError(f"{path}:{reader.line_num}: the number of fields differs from the header's "
                                    f"{len(reader.fieldnames or [])}")
            yield reader.line_num, row


def _metadata_file(folder: Path) -> Path:
    if folder.is_file():
        return folder
    for name in ("metadata.csv", "metadata.jsonl"):
        if (folder / name).is_file():
            return folder / name
    raise ManifestError(f"{folder}: no metadata.csv or metadata.jsonl (a Hugging Face audio folder lists its "
                        f"files and transcripts there)")


def _utterance(row: dict, cols: dict[str, str], uid: str, audio: Path, language: str, accent: str) -> Utterance:
    def get(key: str) -> str:
        return str(row.get(cols[key]) or "").strip() if cols[key] else ""

    return Utterance(uid, audio, get("text"), speaker=get("speaker"), accent=get("accent") or accent,
                     language=get("language") or language, gender=get("gender"), age=get("age"))


def _columns(columns, text_column: str, speaker_column: str, where: str) -> dict[str, str]:
    return {"text": _first(columns, text_column, TEXT_COLUMNS, where, "transcript"),
            "speaker": _first(columns, speaker_column, SPEAKER_COLUMNS, where, "speaker"),
            "accent": _first(columns, "", ACCENT_COLUMNS, where, "accent"),
            "language": _first(columns, "", ("language", "locale"), where, "language"),
            "gender": _first(columns, "", ("gender",), where, "gender"),
            "age": _first(columns, "", ("age",), where, "age")}


def prepare_hf_audiofolder(folder: str | os.PathLike, out: str | os.PathLike | None = None, text_column: str = "",
                           speaker_column: str = "", language: str = "", accent: str = "",
                           on_error: str = "fail") -> list[Utterance]:
    """An audio folder (or its metadata file) as utterances; ids are the audio files' stems."""
    meta = _metadata_file(Path(folder))
    utts, seen, cols = [], {}, None
    for lineno, row in _metadata_rows(meta):
        where = f"{meta}:{lineno}"
        cols = cols or _columns(list(row), text_column, speaker_column, where)
        name = str(row.get("file_name") or "").strip()
        if not name:
            raise ManifestError(f"{where}: no file_name (an audio folder's metadata names each file in file_name)")
        audio = meta.parent / name
        if not audio.is_file():
            raise ManifestError(f"{where}: audio file not found: {audio}")
        utt = _utterance(row, cols, audio.stem, audio, language, accent)
        if not utt.text:
            raise ManifestError(f"{where}: empty transcript in column {cols['text']!r}")
        if utt.id in seen:
            raise ManifestError(f"{where}: utterance id {utt.id!r} (the file's stem) repeats line {seen[utt.id]}")
        seen[utt.id] = lineno
        utts.append(utt)
    return finish_import(utts, meta, out, check_files=True, on_error=on_error)


def _split_dir(dataset_dir: Path, split: str) -> Path:
    """The folder of one split: ``dataset_dir`` itself, or ``dataset_dir/split`` for a DatasetDict."""
    if (dataset_dir / "dataset_dict.json").is_file():
        splits = json.loads((dataset_dir / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        if split not in splits:
            raise ManifestError(f"{dataset_dir}: a DatasetDict with splits {splits}; choose one with --split")
        return dataset_dir / split
    if not (dataset_dir / "state.json").is_file():
        raise ManifestError(f"{dataset_dir}: not a save_to_disk dataset (no state.json or dataset_dict.json)")
    return dataset_dir


def _arrow_rows(split_dir: Path) -> Iterator[dict]:
    try:
        import pyarrow.ipc
    except ImportError as e:
        raise ManifestError(f"{split_dir}: reading a save_to_disk dataset needs the 'pyarrow' package (installed "
                            f"with 'datasets'; pip install pyarrow), or export it as an audio folder first") from e
    state = json.loads((split_dir / "state.json").read_text(encoding="utf-8"))
    for entry in state.get("_data_files", []):
        with pyarrow.ipc.open_stream(pyarrow.OSFile(str(split_dir / entry["filename"]))) as reader:
            yield from reader.read_all().to_pylist()


def _audio_file(audio, uid: str, audio_out: Path, where: str) -> Path:
    """The audio of one row as a file: embedded bytes written to ``audio_out``, else the stored path."""
    if not isinstance(audio, dict):
        raise ManifestError(f"{where}: audio column holds {type(audio).__name__}, expected {{bytes, path}}")
    if audio.get("bytes"):
        suffix = Path(audio.get("path") or "x.wav").suffix or ".wav"
        target = audio_out / f"{uid}{suffix}"
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(audio["bytes"])
        os.replace(partial, target)  # a half-written file never carries the final name
        return target
    if audio.get("path") and Path(audio["path"]).is_file():
        return Path(audio["path"])
    raise ManifestError(f"{where}: no audio bytes and no readable file {audio.get('path')!r}")


def prepare_hf_disk(dataset_dir: str | os.PathLike, audio_out: str | os.PathLike,
                    out: str | os.PathLike | None = None, split: str = "", text_column: str = "",
                    speaker_column: str = "", audio_column: str = "audio", language: str = "",
                    accent: str = "", on_error: str = "fail") -> list[Utterance]:
    """A ``save_to_disk`` dataset (one split) as utterances; ids are ``<split>-<row>`` (or an ``id`` column)."""
    split_dir = _split_dir(Path(dataset_dir), split)
    audio_out = Path(audio_out)
    audio_out.mkdir(parents=True, exist_ok=True)
    utts, cols, seen = [], None, set()
    for i, row in enumerate(_arrow_rows(split_dir)):
        where = f"{split_dir} row {i}"
        cols = cols or _columns(list(row), text_column, speaker_column, where)
        if audio_column not in row:
            raise ManifestError(f"{where}: no audio column {audio_column!r}; columns: {list(row)}")
        uid = str(row.get("id") or f"{split or split_dir.name}-{i:06d}")
        if uid in seen:
            raise ManifestError(f"{where}: utterance id {uid!r} repeats")
        seen.add(uid)
        utt = _utterance(row, cols, uid, _audio_file(row[audio_column], uid, audio_out, where), language, accent)
        if not utt.text:
            raise ManifestError(f"{where}: empty transcript in column {cols['text']!r}")
        utts.append(utt)
    return finish_import(utts, split_dir, out, check_files=True, on_error=on_error)
