"""Importers: a corpus on disk → a speechtl JSONL manifest (``prepare_<corpus>``, like lhotse's recipes).

- :func:`prepare_commonvoice`: a Common Voice ``*.tsv`` (``path``, ``sentence``, ``client_id`` as speaker,
  ``accents`` or ``accent``, ``locale``) with its ``clips/`` folder beside it; durations from
  ``clip_durations.tsv`` when present;
- :func:`prepare_folder`: a folder of audio plus a transcript file of ``id<TAB>text`` lines (an id is an
  audio file's name without suffix, found anywhere under the folder);
- :func:`prepare_kaldi`: a Kaldi data folder (``text``, ``wav.scp``, optional ``utt2spk``). ``wav.scp``
  entries that are shell pipes (``sox ... |``) are refused: speechtl never runs commands from data files.

Each returns the utterances and, given ``out``, writes the manifest. Durations are read from the audio
headers where the corpus does not list them. A malformed row stops the import with its file and line.
No downloads: these read what is already on disk.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Iterator

from speechtl.audio import find_audio_files
from speechtl.data.manifest import ManifestError, Utterance, add_durations, write_manifest

__all__ = ["prepare_commonvoice", "prepare_folder", "prepare_kaldi", "summary"]

COMMONVOICE_REQUIRED = ("client_id", "path", "sentence")


def _tsv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a tab-separated file with a header; quotes are text (Common Voice sentences have them)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ManifestError(f"{path}: empty file (no header line)")
        missing = [c for c in COMMONVOICE_REQUIRED if c not in header]
        if missing:
            raise ManifestError(f"{path}:1: header lacks column(s) {missing}; a Common Voice TSV has "
                                f"{', '.join(COMMONVOICE_REQUIRED)} (and accents, locale, ...)")
        for values in reader:
            lineno = reader.line_num
            if not values or values == [""]:
                continue
            if len(values) != len(header):
                raise ManifestError(f"{path}:{lineno}: {len(values)} tab-separated field(s), the header has "
                                    f"{len(header)}")
            yield lineno, dict(zip(header, values))


def _durations_ms(path: Path) -> dict[str, float]:
    """Common Voice's ``clip_durations.tsv`` (clip, duration[ms]) as clip name -> seconds; {} when absent."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    try:
        return {r[0]: float(r[1]) / 1000.0 for r in rows if len(r) >= 2}
    except ValueError as e:
        raise ManifestError(f"{path}: durations must be milliseconds ({e})") from e


def prepare_commonvoice(tsv: str | os.PathLike, out: str | os.PathLike | None = None,
                        clips: str | os.PathLike | None = None, language: str = "",
                        check_files: bool = True) -> list[Utterance]:
    """A Common Voice split (``train.tsv``, ``dev.tsv``, ``validated.tsv``...) as utterances.

    ``clips``: the audio folder (default: ``clips/`` beside the TSV); ``language``: used where the TSV
    has no ``locale`` column."""
    tsv = Path(tsv)
    if not tsv.is_file():
        raise ManifestError(f"Common Voice TSV not found: {tsv}")
    clips = Path(clips) if clips else tsv.parent / "clips"
    durations = _durations_ms(tsv.parent / "clip_durations.tsv")
    utts, seen = [], {}
    for lineno, row in _tsv_rows(tsv):
        where = f"{tsv}:{lineno}"
        name, text = row["path"].strip(), row["sentence"].strip()
        if not name or not text:
            raise ManifestError(f"{where}: empty {'path' if not name else 'sentence'}")
        uid = Path(name).stem
        if uid in seen:
            raise ManifestError(f"{where}: clip {name!r} listed twice (first on line {seen[uid]})")
        seen[uid] = lineno
        audio = clips / name
        if check_files and not audio.is_file():
            raise ManifestError(f"{where}: audio file not found: {audio}")
        utts.append(Utterance(uid, audio, text, speaker=row["client_id"].strip(),
                              accent=(row.get("accents") or row.get("accent") or "").strip(),
                              language=(row.get("locale") or language).strip(), duration_s=durations.get(name)))
    return _finish(utts, tsv, out, check_files)


def _read_pairs(path: Path, sep: str | None, what: str) -> Iterator[tuple[int, str, str]]:
    """(line, key, value) of ``key<sep>value`` lines (``sep=None``: the first run of whitespace, as Kaldi)."""
    if not path.is_file():
        raise ManifestError(f"{what} not found: {path}")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split(sep, 1) if sep else line.strip().split(None, 1)
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                form = "id<TAB>text" if sep == "\t" else "<id> <value>"
                raise ManifestError(f"{path}:{lineno}: expected {form!r}, got {line[:80]!r}")
            yield lineno, parts[0].strip(), parts[1].strip()


def _unique(pairs: Iterator[tuple[int, str, str]], path: Path) -> dict[str, tuple[int, str]]:
    table: dict[str, tuple[int, str]] = {}
    for lineno, key, value in pairs:
        if key in table:
            raise ManifestError(f"{path}:{lineno}: duplicate id {key!r} (first on line {table[key][0]})")
        table[key] = (lineno, value)
    return table


def prepare_folder(audio_dir: str | os.PathLike, transcripts: str | os.PathLike,
                   out: str | os.PathLike | None = None, language: str = "") -> list[Utterance]:
    """A folder of audio (searched recursively) plus ``id<TAB>text`` lines; an id names a file by its stem."""
    audio_dir, transcripts = Path(audio_dir), Path(transcripts)
    if not audio_dir.is_dir():
        raise ManifestError(f"audio folder not found: {audio_dir}")
    by_stem: dict[str, list[Path]] = {}
    for f in find_audio_files([audio_dir]):
        by_stem.setdefault(f.stem, []).append(f)
    utts = []
    for uid, (lineno, text) in _unique(_read_pairs(transcripts, "\t", "transcript file"), transcripts).items():
        files = by_stem.get(uid, [])
        if len(files) != 1:
            found = "no audio file" if not files else f"{len(files)} audio files ({', '.join(map(str, files))})"
            raise ManifestError(f"{transcripts}:{lineno}: {found} named {uid!r}.* under {audio_dir}")
        utts.append(Utterance(uid, files[0], text, language=language))
    return _finish(utts, transcripts, out, check_files=True)


def _wav_path(value: str, where: str, root: Path) -> Path:
    if value.endswith("|"):
        raise ManifestError(f"{where}: wav.scp entry is a shell pipe ({value[:60]!r}); speechtl does not run "
                            f"commands from data files. Convert the audio to files first (e.g. with the same "
                            f"command writing a .wav) and list their paths")
    if " " in value.strip():
        raise ManifestError(f"{where}: wav.scp entry {value[:60]!r} is not a single path (extended filenames such "
                            f"as 'ark:' or command lines are not supported)")
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def prepare_kaldi(data_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                  audio_root: str | os.PathLike | None = None, language: str = "") -> list[Utterance]:
    """A Kaldi data folder: ``text`` and ``wav.scp`` (one file per utterance), speakers from ``utt2spk``.

    Relative audio paths resolve against ``audio_root`` (default: the current folder, where Kaldi recipes
    run). ``segments`` (several utterances cut from one recording) is not supported."""
    data_dir = Path(data_dir)
    root = Path(audio_root) if audio_root else Path.cwd()
    if (data_dir / "segments").is_file():
        raise ManifestError(f"{data_dir / 'segments'}: segmented recordings are not supported; cut the "
                            f"utterances into files first (e.g. Kaldi's extract-segments) and list them in wav.scp")
    wavs = _unique(_read_pairs(data_dir / "wav.scp", None, "wav.scp"), data_dir / "wav.scp")
    spk = (_unique(_read_pairs(data_dir / "utt2spk", None, "utt2spk"), data_dir / "utt2spk")
           if (data_dir / "utt2spk").is_file() else {})
    utts = []
    for uid, (lineno, text) in _unique(_read_pairs(data_dir / "text", None, "text"), data_dir / "text").items():
        if uid not in wavs:
            raise ManifestError(f"{data_dir / 'text'}:{lineno}: utterance {uid!r} has no wav.scp entry")
        wav_line, value = wavs[uid]
        audio = _wav_path(value, f"{data_dir / 'wav.scp'}:{wav_line}", root)
        utts.append(Utterance(uid, audio, text, speaker=spk.get(uid, (0, ""))[1], language=language))
    return _finish(utts, data_dir / "text", out, check_files=True)


def _finish(utts: list[Utterance], source: Path, out, check_files: bool) -> list[Utterance]:
    if not utts:
        raise ManifestError(f"{source}: no utterances")
    if check_files:
        utts, _ = add_durations(utts, "fail")  # headers only: an unreadable file fails here, named
    if out is not None:
        write_manifest(utts, out)
    return utts


def summary(utts: list[Utterance]) -> str:
    minutes = sum(u.duration_s or 0.0 for u in utts) / 60
    speakers = Counter(u.speaker for u in utts if u.speaker)
    return f"{len(utts)} utterances, {minutes:.1f} min, {len(speakers)} speaker(s)"
