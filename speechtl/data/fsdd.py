"""The Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0) in its own layout → utterances (:func:`prepare_fsdd`).

FSDD is one folder of ``{digit}_{speaker}_{index}.wav`` files (8 kHz mono; e.g. ``7_jackson_32.wav``), each
one spoken digit. The transcript is the digit's English word ("zero" … "nine"), the speaker the name's middle
field, the id the file's stem. A ``speakers.tsv`` beside the recordings folder (columns ``speaker``,
``gender``, ``accent``, ...; e.g. ``jackson  male  USA/neutral``) gives each speaker's accent and gender.
FSDD's own split is by index (0–4 test, 5–49 train); here speakers are chosen whole (``speakers`` /
``exclude_speakers``), so a held-out speaker is never heard in training.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path
from typing import Sequence

from speechtl.data.importers import finish_import
from speechtl.data.manifest import ManifestError, Utterance

__all__ = ["prepare_fsdd", "DIGIT_WORDS", "FSDD_NAME"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"(?P<digit>[0-9])_(?P<speaker>[^_\s]+)_(?P<index>[0-9]+)\.wav")


def _speaker_table(path: Path) -> dict[str, dict[str, str]]:
    """speaker -> its row of ``speakers.tsv`` ({} when the file is absent)."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if "speaker" not in (reader.fieldnames or []):
            raise ManifestError(f"{path}:1: header lacks the 'speaker' column (speaker, gender, accent, ...)")
        table: dict[str, dict[str, str]] = {}
        for row in reader:
            name = (row.get("speaker") or "").strip()
            if not name:
                raise ManifestError(f"{path}:{reader.line_num}: empty speaker")
            if name in table:
                raise ManifestError(f"{path}:{reader.line_num}: speaker {name!r} listed twice")
            table[name] = {k: (v or "").strip() for k, v in row.items() if k}
    return table


def _parse_names(files: Sequence[Path], on_error: str) -> list[tuple[Path, re.Match]]:
    """Each file with its name's fields; a name off the pattern stops (``"fail"``) or is skipped (``"skip"``)."""
    parsed, skipped = [], []
    for f in files:
        match = FSDD_NAME.fullmatch(f.name)
        if match is None:
            reason = "name is not {digit}_{speaker}_{index}.wav (e.g. 7_jackson_32.wav)"
            if on_error != "skip":
                raise ManifestError(f"{f}: {reason}; move it out or use --on-error skip")
            skipped.append(f.name)
            print(f"skipped {f.name!r}: {reason}", file=sys.stderr)
            continue
        parsed.append((f, match))
    if skipped:
        print(f"note: {len(skipped)} file(s) left out (--on-error skip)", file=sys.stderr)
    return parsed


def _check_names(asked: Sequence[str], found: set[str], flag: str) -> None:
    unknown = sorted(set(asked) - found)
    if unknown:
        raise ManifestError(f"{flag}: unknown speaker(s) {', '.join(unknown)}; the recordings have "
                            f"{', '.join(sorted(found))}")


def prepare_fsdd(recordings_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 speakers: Sequence[str] = (), exclude_speakers: Sequence[str] = (), language: str = "en",
                 on_error: str = "fail") -> list[Utterance]:
    """FSDD's ``recordings/`` folder as utterances: id = file stem, speaker = the name's middle field, text =
    the digit's English word, accent and gender from ``speakers.tsv`` beside the folder when present.

    ``speakers`` keeps only those speakers, ``exclude_speakers`` leaves those out (a name the recordings do
    not have is an error listing the ones they do). A file named off ``{digit}_{speaker}_{index}.wav`` stops
    the import naming it (``on_error="fail"``) or is left out with a ``skipped`` line (``"skip"``), as an
    unreadable audio header is (:func:`~speechtl.data.importers.finish_import`). Hidden files are ignored."""
    folder = Path(recordings_dir)
    if not folder.is_dir():
        raise ManifestError(f"FSDD recordings folder not found: {folder}")
    if on_error not in ("fail", "skip"):
        raise ManifestError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    parsed = _parse_names(files, on_error)
    found = {m["speaker"] for _, m in parsed}
    _check_names(speakers, found, "--speakers")
    _check_names(exclude_speakers, found, "--exclude-speakers")
    table = _speaker_table(folder.parent / "speakers.tsv")
    keep = (set(speakers) or found) - set(exclude_speakers)
    utts = []
    for f, m in parsed:
        if m["speaker"] not in keep:
            continue
        info = table.get(m["speaker"], {})
        utts.append(Utterance(f.stem, f, DIGIT_WORDS[int(m["digit"])], speaker=m["speaker"],
                              accent=info.get("accent", ""), language=language, gender=info.get("gender", "")))
    return finish_import(utts, folder, out, check_files=True, on_error=on_error)
