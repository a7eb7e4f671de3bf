"""CMU ARCTIC and L2-ARCTIC: the ARCTIC prompts read by one speaker per folder.

- CMU ARCTIC (festvox.org/cmu_arctic): ``cmu_us_SPK_arctic/wav/arctic_a0001.wav`` and the prompts in
  ``cmu_us_SPK_arctic/etc/txt.done.data``, one line each: ``( arctic_a0001 "Author of the danger trail, ..." )``.
- L2-ARCTIC (psi.engr.tamu.edu/l2-arctic-corpus; 24 speakers, first languages Arabic, Mandarin, Hindi,
  Korean, Spanish, Vietnamese): ``SPEAKER/wav/arctic_a0001.wav`` and ``SPEAKER/transcript/arctic_a0001.txt``
  (one line); the release zips may nest ``SPEAKER/SPEAKER/wav``, which is found too.

Utterance ids are ``SPEAKER-arctic_a0001`` so several speakers go into one manifest.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from speechtl.data.importers import finish_import
from speechtl.data.manifest import ManifestError, Utterance

__all__ = ["prepare_cmu_arctic", "prepare_l2_arctic", "L2_ARCTIC_SPEAKERS", "CMU_ARCTIC_ACCENTS"]

_PROMPT = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')
_CMU_FOLDER = re.compile(r"^cmu_[a-z]+_([a-z0-9]+)_arctic$")

# The seven classic CMU ARCTIC voices (festvox.org/cmu_arctic); other folders take --accent.
CMU_ARCTIC_ACCENTS = {"bdl": "US English", "slt": "US English", "clb": "US English", "rms": "US English",
                      "jmk": "Canadian English", "awb": "Scottish English", "ksp": "Indian English"}

# L2-ARCTIC's speaker table (its README): speaker -> (first language, gender).
L2_ARCTIC_SPEAKERS = {
    "ABA": ("ar", "m"), "SKA": ("ar", "f"), "YBAA": ("ar", "m"), "ZHAA": ("ar", "f"),
    "BWC": ("zh", "m"), "LXC": ("zh", "f"), "NCC": ("zh", "f"), "TXHC": ("zh", "m"),
    "ASI": ("hi", "m"), "RRBI": ("hi", "m"), "SVBI": ("hi", "f"), "TNI": ("hi", "f"),
    "HJK": ("ko", "f"), "HKK": ("ko", "m"), "YDCK": ("ko", "f"), "YKWK": ("ko", "m"),
    "EBVS": ("es", "m"), "ERMS": ("es", "m"), "MBMPS": ("es", "f"), "NJS": ("es", "f"),
    "HQTV": ("vi", "m"), "PNV": ("vi", "f"), "THV": ("vi", "f"), "TLV": ("vi", "m"),
}  # fmt: skip


def read_prompts(path: Path) -> dict[str, tuple[int, str]]:
    """``txt.done.data`` as prompt id -> (line, text); a malformed or repeated line stops with file:line."""
    if not path.is_file():
        raise ManifestError(f"CMU ARCTIC prompt file not found: {path} (expected <voice>/etc/txt.done.data)")
    prompts: dict[str, tuple[int, str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            m = _PROMPT.match(line.strip())
            if not m or not m.group(2).strip():
                raise ManifestError(f'{path}:{lineno}: expected ( ID "text" ), got {line.strip()[:80]!r}')
            if m.group(1) in prompts:
                raise ManifestError(f"{path}:{lineno}: prompt {m.group(1)!r} listed twice "
                                    f"(first on line {prompts[m.group(1)][0]})")
            prompts[m.group(1)] = (lineno, m.group(2).strip())
    return prompts


def prepare_cmu_arctic(voice_dir: str | os.PathLike, out: str | os.PathLike | None = None, speaker: str = "",
                       accent: str = "", language: str = "en", skip_missing: bool = False,
                       on_error: str = "fail") -> list[Utterance]:
    """One CMU ARCTIC voice folder (``wav/`` + ``etc/txt.done.data``) as utterances.

    ``speaker``: default from the folder name (``cmu_us_bdl_arctic`` → ``bdl``); ``accent``: default from
    :data:`CMU_ARCTIC_ACCENTS`. A prompt without its wav stops the import unless ``skip_missing``."""
    voice_dir = Path(voice_dir)
    if not (voice_dir / "wav").is_dir():
        raise ManifestError(f"{voice_dir}: no wav/ folder (a CMU ARCTIC voice has wav/ and etc/txt.done.data)")
    prompts_path = voice_dir / "etc" / "txt.done.data"
    prompts = read_prompts(prompts_path)
    m = _CMU_FOLDER.match(voice_dir.resolve().name)
    speaker = speaker or (m.group(1) if m else voice_dir.resolve().name)
    accent = accent or CMU_ARCTIC_ACCENTS.get(speaker, "")
    utts, missing = [], []
    for pid, (lineno, text) in prompts.items():
        wav = voice_dir / "wav" / f"{pid}.wav"
        if not wav.is_file():
            missing.append((lineno, wav))
            continue
        utts.append(Utterance(f"{speaker}-{pid}", wav, text, speaker=speaker, accent=accent, language=language))
    if missing and not skip_missing:
        lineno, wav = missing[0]
        raise ManifestError(f"{prompts_path}:{lineno}: no audio file {wav} ({len(missing)} prompt(s) without "
                            f"audio; --skip-missing imports the recorded ones)")
    if missing:
        print(f"note: {prompts_path}: skipped {len(missing)} prompt(s) without audio", file=sys.stderr)
    return finish_import(utts, prompts_path, out, check_files=True, on_error=on_error)


def _speaker_dirs(root: Path) -> list[Path]:
    """Folders holding both ``wav/`` and ``transcript/``: ``root`` itself, its children and grandchildren."""
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    candidates += [q for p in candidates[1:] for q in sorted(p.iterdir()) if q.is_dir()]
    return [d for d in candidates if (d / "wav").is_dir() and (d / "transcript").is_dir()]


def _transcript(path: Path) -> str:
    if not path.is_file():
        raise ManifestError(f"{path}: transcript not found (L2-ARCTIC has SPEAKER/transcript/<utt>.txt for each "
                            f"SPEAKER/wav/<utt>.wav)")
    lines = [(i, ln.strip()) for i, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if ln.strip()]
    if not lines:
        raise ManifestError(f"{path}:1: empty transcript")
    if len(lines) > 1:
        raise ManifestError(f"{path}:{lines[1][0]}: one line of text expected, found {len(lines)}")
    return lines[0][1]


def prepare_l2_arctic(root: str | os.PathLike, out: str | os.PathLike | None = None, language: str = "en",
                      accent: str = "", on_error: str = "fail") -> list[Utterance]:
    """L2-ARCTIC speaker folders under ``root`` (or ``root`` itself) as utterances: speaker = folder name,
    accent ``"<L1>-L1 English"`` and gender from :data:`L2_ARCTIC_SPEAKERS` (``accent`` for unknown folders)."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"L2-ARCTIC folder not found: {root}")
    dirs = _speaker_dirs(root)
    if not dirs:
        raise ManifestError(f"{root}: no speaker folder with wav/ and transcript/ (L2-ARCTIC layout SPEAKER/wav, "
                            f"SPEAKER/transcript)")
    utts = []
    for d in dirs:
        speaker = d.name
        l1, gender = L2_ARCTIC_SPEAKERS.get(speaker, ("", ""))
        spk_accent = f"{l1}-L1 English" if l1 else accent
        for wav in sorted((d / "wav").glob("*.wav")):
            text = _transcript(d / "transcript" / f"{wav.stem}.txt")
            utts.append(Utterance(f"{speaker}-{wav.stem}", wav, text, speaker=speaker, accent=spk_accent,
                                  language=language, gender=gender))
    seen: dict[str, Path] = {}
    for u in utts:
        if u.id in seen:
            raise ManifestError(f"{u.audio_path}: speaker folder {u.speaker!r} found twice (also {seen[u.id]})")
        seen[u.id] = u.audio_path
    return finish_import(utts, root, out, check_files=True, on_error=on_error)
