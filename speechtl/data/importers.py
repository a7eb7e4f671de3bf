"""Importers: a corpus on disk → a speechtl JSONL manifest (``prepare_<corpus>``, like lhotse's recipes).

- :func:`prepare_commonvoice`: a Common Voice ``*.tsv`` (``path``, ``sentence``, ``client_id`` as speaker,
  ``accents`` or ``accent``, ``locale``, ``gender``, ``age``) with its ``clips/`` folder beside it; durations from
  ``clip_durations.tsv`` when present;
- :func:`prepare_folder`: a folder of audio plus a transcript file of ``id<TAB>text`` lines, or a transcript
  file beside each audio file (``X.wav`` + ``X.txt``); speakers from the parent folder or a file-name prefix;
- :func:`prepare_kaldi`: a Kaldi data folder (``text``, ``wav.scp``, optional ``utt2spk``, ``spk2gender``,
  ``spk2age``). ``wav.scp`` entries that are shell pipes (``sox ... |``) are refused: speechtl never runs
  commands from data files.

CMU ARCTIC and L2-ARCTIC are in :mod:`speechtl.data.arctic`, Hugging Face ``datasets`` folders in
:mod:`speechtl.data.hf_datasets`, lhotse manifests in :mod:`speechtl.data.lhotse_manifests`; they share the
helpers here. Each importer returns the utterances and, given ``out``, writes the manifest. Durations are read
from the audio headers where the corpus does not list them. A malformed row stops the import with its file and
line. No downloads: these read what is already on disk.
"""

from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from speechtl.audio import find_audio_files
from speechtl.data.manifest import ManifestError, Utterance, add_durations, write_manifest
from speechtl.settings import CHILD_BELOW_YEARS, SPEAKER_FROM

__all__ = ["prepare_commonvoice", "prepare_folder", "prepare_kaldi", "summary", "read_pairs", "unique_keys",
           "finish_import", "resolve_audio_root", "age_group", "CHILD_BELOW_YEARS", "SPEAKER_FROM"]

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
                        check_files: bool = True, on_error: str = "fail") -> list[Utterance]:
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
                              language=(row.get("locale") or language).strip(), duration_s=durations.get(name),
                              gender=(row.get("gender") or "").strip(), age=(row.get("age") or "").strip()))
    return finish_import(utts, tsv, out, check_files, on_error=on_error)


def read_pairs(path: Path, sep: str | None, what: str) -> Iterator[tuple[int, str, str]]:
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


def unique_keys(pairs: Iterable[tuple[int, str, str]], path: Path) -> dict[str, tuple[int, str]]:
    """key -> (line, value); a key listed twice stops with both line numbers."""
    table: dict[str, tuple[int, str]] = {}
    for lineno, key, value in pairs:
        if key in table:
            raise ManifestError(f"{path}:{lineno}: duplicate id {key!r} (first on line {table[key][0]})")
        table[key] = (lineno, value)
    return table


def _folder_key(f: Path, speaker_from: str, separator: str) -> tuple[str, str]:
    """(utterance id, speaker) of an audio file: ``SPEAKER-STEM`` from the parent folder, or a stem prefix."""
    if speaker_from == "parent":
        return f"{f.parent.name}-{f.stem}", f.parent.name
    if speaker_from == "prefix":
        return f.stem, f.stem.split(separator, 1)[0]
    return f.stem, ""


def _sidecar_texts(files: Sequence[Path], suffix: str) -> list[tuple[int, str, Path]]:
    """(line, text, audio) per audio file from ``<stem><suffix>`` beside it (one transcript per file)."""
    out = []
    for f in files:
        side = f.with_name(f.stem + suffix)
        if not side.is_file():
            raise ManifestError(f"{f}: no transcript file {side.name} beside it (--transcript-suffix {suffix})")
        text = " ".join(side.read_text(encoding="utf-8").split())
        if not text:
            raise ManifestError(f"{side}:1: empty transcript")
        out.append((1, text, f))
    return out


def prepare_folder(audio_dir: str | os.PathLike, transcripts: str | os.PathLike | None = None,
                   out: str | os.PathLike | None = None, language: str = "", speaker_from: str = "none",
                   transcript_suffix: str = "", accent: str = "", speaker_separator: str = "_",
                   on_error: str = "fail") -> list[Utterance]:
    """A folder of audio (searched recursively) plus transcripts: ``id<TAB>text`` lines in ``transcripts``, or
    one ``<stem><transcript_suffix>`` file beside each audio file (e.g. ``.txt``, ``.lab``, Mboshi's ``.mb.cleaned``).

    ``speaker_from``: ``"none"`` (an id is a file's stem, unique across the tree), ``"parent"``
    (``SPEAKER/UTT.wav``: speaker = folder, id = ``SPEAKER-UTT``, so utterance names may repeat across
    speakers) or ``"prefix"`` (speaker = the stem up to the first ``speaker_separator``)."""
    audio_dir = Path(audio_dir)
    if speaker_from not in SPEAKER_FROM:
        raise ManifestError(f"speaker_from must be one of {SPEAKER_FROM}, got {speaker_from!r}")
    if not audio_dir.is_dir():
        raise ManifestError(f"audio folder not found: {audio_dir}")
    if (transcripts is None) == (not transcript_suffix):
        raise ManifestError("give either a transcript file (id<TAB>text lines) or a transcript suffix, not both")
    files = find_audio_files([audio_dir])
    if transcript_suffix:
        rows = [(line, _folder_key(f, speaker_from, speaker_separator), text, f)
                for line, text, f in _sidecar_texts(files, transcript_suffix)]
        source = audio_dir
    else:
        source = Path(transcripts)
        rows = _listed_rows(files, source, audio_dir, speaker_from, speaker_separator)
    utts, seen = [], {}
    for line, (uid, speaker), text, f in rows:
        if uid in seen:
            raise ManifestError(f"{f}: utterance id {uid!r} also names {seen[uid]}; ids must be unique "
                                f"(--speaker-from parent makes them SPEAKER-UTTERANCE)")
        seen[uid] = f
        utts.append(Utterance(uid, f, text, speaker=speaker, accent=accent, language=language))
    return finish_import(utts, source, out, check_files=True, on_error=on_error)


def _listed_rows(files: Sequence[Path], transcripts: Path, audio_dir: Path, speaker_from: str,
                 separator: str) -> list[tuple[int, tuple[str, str], str, Path]]:
    """Rows of an ``id<TAB>text`` file matched to audio by id (``SPEAKER-UTT`` or ``SPEAKER/UTT`` with parent)."""
    by_key: dict[str, list[tuple[Path, str]]] = {}
    for f in files:
        uid, speaker = _folder_key(f, speaker_from, separator)
        by_key.setdefault(uid, []).append((f, speaker))
    rows = []
    for uid, (lineno, text) in unique_keys(read_pairs(transcripts, "\t", "transcript file"), transcripts).items():
        key = uid.replace("/", "-") if speaker_from == "parent" else uid
        found = by_key.get(key, [])
        if len(found) != 1:
            what = "no audio file" if not found else f"{len(found)} audio files ({', '.join(str(f) for f, _ in found)})"
            hint = "; with SPEAKER/UTT.wav use --speaker-from parent and ids SPEAKER-UTT" if found else ""
            raise ManifestError(f"{transcripts}:{lineno}: {what} named {uid!r}.* under {audio_dir}{hint}")
        f, speaker = found[0]
        rows.append((lineno, (key, speaker), text, f))
    return rows


def _wav_path(value: str, where: str) -> str:
    if value.endswith("|"):
        raise ManifestError(f"{where}: wav.scp entry is a shell pipe ({value[:60]!r}); speechtl does not run "
                            f"commands from data files. Convert the audio to files first (e.g. with the same "
                            f"command writing a .wav) and list their paths")
    if " " in value.strip():
        raise ManifestError(f"{where}: wav.scp entry {value[:60]!r} is not a single path (extended filenames such "
                            f"as 'ark:' or command lines are not supported)")
    return str(Path(value).expanduser())


def resolve_audio_root(paths: Sequence[str], candidates: Sequence[Path], what: str,
                       audio_root: str | os.PathLike | None = None) -> Path:
    """The folder relative audio ``paths`` resolve against: ``audio_root`` if given, else the first of
    ``candidates`` under which every one of them exists (a one-line note on stderr says which)."""
    if audio_root is not None:
        return Path(audio_root)
    relative = [p for p in paths if not Path(p).is_absolute()]
    seen: list[Path] = []
    for root in candidates:
        if root.resolve() in seen:
            continue
        seen.append(root.resolve())
        if all((root / p).is_file() for p in relative):
            if relative:
                print(f"note: {what}: relative audio paths resolved against {root} (choose another with "
                      f"--audio-root)", file=sys.stderr)
            return root
    raise ManifestError(f"{what}: relative audio paths (e.g. {relative[0]!r}) are not all found under any of "
                        f"{', '.join(str(c) for c in candidates)}; give the folder they are relative to with "
                        f"--audio-root")


def age_group(age: str, child_below: float | None, where: str) -> str:
    """``"child"`` / ``"adult"`` for an age in years (``""`` without an age or a threshold)."""
    if not age or child_below is None:
        return ""
    try:
        years = float(age)
    except ValueError as e:
        raise ManifestError(f"{where}: age must be a number of years, got {age!r}") from e
    return "child" if years < child_below else "adult"


def _speaker_table(path: Path, what: str) -> dict[str, tuple[int, str]]:
    return unique_keys(read_pairs(path, None, what), path) if path.is_file() else {}


def prepare_kaldi(data_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                  audio_root: str | os.PathLike | None = None, language: str = "", accent: str = "",
                  child_below: float | None = CHILD_BELOW_YEARS, on_error: str = "fail") -> list[Utterance]:
    """A Kaldi data folder: ``text`` and ``wav.scp`` (one file per utterance); speakers from ``utt2spk``,
    their gender and age from ``spk2gender`` / ``spk2age`` (``age_group``: child below ``child_below`` years).

    Relative audio paths resolve against ``audio_root``, else the first of the data folder, its parent, its
    grandparent and the current folder under which they all exist. ``segments`` is not supported."""
    data_dir = Path(data_dir)
    if (data_dir / "segments").is_file():
        raise ManifestError(f"{data_dir / 'segments'}: segmented recordings are not supported; cut the "
                            f"utterances into files first (e.g. Kaldi's extract-segments) and list them in wav.scp")
    scp = data_dir / "wav.scp"
    wavs = {uid: (line, _wav_path(value, f"{scp}:{line}"))
            for uid, (line, value) in unique_keys(read_pairs(scp, None, "wav.scp"), scp).items()}
    root = resolve_audio_root([p for _, p in wavs.values()],
                              [data_dir, data_dir.parent, data_dir.parent.parent, Path.cwd()], str(scp), audio_root)
    spk = _speaker_table(data_dir / "utt2spk", "utt2spk")
    gender = _speaker_table(data_dir / "spk2gender", "spk2gender")
    ages = _speaker_table(data_dir / "spk2age", "spk2age")
    utts = []
    for uid, (lineno, text) in unique_keys(read_pairs(data_dir / "text", None, "text"), data_dir / "text").items():
        if uid not in wavs:
            raise ManifestError(f"{data_dir / 'text'}:{lineno}: utterance {uid!r} has no wav.scp entry")
        speaker = spk.get(uid, (0, ""))[1]
        age_line, age = ages.get(speaker, (0, ""))
        utts.append(Utterance(uid, root / wavs[uid][1], text, speaker=speaker, accent=accent, language=language,
                              gender=gender.get(speaker, (0, ""))[1], age=age,
                              age_group=age_group(age, child_below, f"{data_dir / 'spk2age'}:{age_line}")))
    return finish_import(utts, data_dir / "text", out, check_files=True, on_error=on_error)


def finish_import(utts: list[Utterance], source: Path, out, check_files: bool,
                  on_error: str = "fail") -> list[Utterance]:
    """Durations from the audio headers, then the manifest at ``out``.

    A file whose header is unreadable or inconsistent (cut short, empty) fails the import, named
    (``on_error="fail"``), or is left out of the manifest with one ``skipped`` line per file on stderr (``"skip"``).
    """
    if not utts:
        raise ManifestError(f"{source}: no utterances")
    if check_files:
        utts, skipped = add_durations(utts, on_error)  # headers only
        for uid, reason in skipped:
            print(f"skipped {uid!r}: {reason}", file=sys.stderr)
        if skipped:
            print(f"note: {source}: {len(skipped)} file(s) left out (--on-error skip)", file=sys.stderr)
        if not utts:
            raise ManifestError(f"{source}: every file was skipped")
    if out is not None:
        write_manifest(utts, out)
    return utts


def summary(utts: list[Utterance]) -> str:
    """``N utterances, M min, K speaker(s)`` (and the adult/child split where the manifest has one)."""
    minutes = sum(u.duration_s or 0.0 for u in utts) / 60
    speakers = Counter(u.speaker for u in utts if u.speaker)
    line = f"{len(utts)} utterances, {minutes:.1f} min, {len(speakers)} speaker(s)"
    groups = sorted({u.age_group for u in utts if u.age_group})
    for g in groups:
        members = [u for u in utts if u.age_group == g]
        line += (f"; {g}: {len(members)} utterances, {sum(u.duration_s or 0.0 for u in members) / 60:.1f} min, "
                 f"{len({u.speaker for u in members if u.speaker})} speaker(s)")
    return line
