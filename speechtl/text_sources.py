"""Real English sentences for synthetic speech, readable offline (public-domain or CC0 text)::

    prompts = arctic_prompts("../shared/data/fixtures/cathy_arctic/cmuarctic.data")  # 1132 Sentence
    verses = kjv_verses()  # ~12,000 King James Bible verses of 4..20 words (Debian package bible-kjv)

A :class:`Sentence` keeps the text as written (what a TTS engine should read: punctuation shapes its
prosody) and its transcript, :func:`speechtl.text.normalize` of it (the label a model learns).
Sentences whose transcript has characters outside :data:`speechtl.text.ENGLISH_CHARS` (digits,
accented letters) are dropped: an engine would say them in words the label does not spell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from speechtl.errors import SpeechtlError
from speechtl.text import ENGLISH_CHARS, normalize

__all__ = ["Sentence", "TextSourceError", "spoken_sentence", "arctic_prompts", "kjv_verses", "KJV_INSTALL"]

_ARCTIC_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')
_KJV_LINE = re.compile(r"^(\d?[A-Za-z]+\d+:\d+) (.+)$")
KJV_INSTALL = "apt-get install bible-kjv"
KJV_RANGE = "Gen1:1-Rev22:21"  # the whole book, in the `bible` program's reference syntax
_SPOKEN = frozenset(ENGLISH_CHARS + " ")


class TextSourceError(SpeechtlError, ValueError):
    """A text source is missing or malformed; the message names the file (and line) or what to install."""


@dataclass(frozen=True)
class Sentence:
    id: str
    text: str  # as written, for the TTS engine
    transcript: str  # speechtl.text.normalize(text)


def spoken_sentence(id: str, text: str) -> Sentence | None:
    """``text`` with its transcript, or None when the transcript is empty or has characters outside
    :data:`speechtl.text.ENGLISH_CHARS` (an engine would say them in words the label does not spell)."""
    transcript = normalize(text)
    if not transcript or not set(transcript) <= _SPOKEN:
        return None
    return Sentence(id, text.strip(), transcript)


def arctic_prompts(path: str | os.PathLike, skipped: list[str] | None = None) -> list[Sentence]:
    """The CMU ARCTIC prompt list (``cmuarctic.data``: ``( arctic_a0001 "Author of the danger trail…" )``
    per line; 1132 prompts from public-domain books). Malformed lines raise, naming file and line.
    ``skipped`` receives the ids of prompts dropped for characters outside the English alphabet."""
    p = Path(path)
    if not p.is_file():
        raise TextSourceError(f"{p}: no such ARCTIC prompt file (cmuarctic.data)")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = _ARCTIC_LINE.match(line)
        if not m:
            raise TextSourceError(f'{p}:{n}: expected ( <id> "<text>" ), got {line[:60]!r}')
        sentence = spoken_sentence(m.group(1), m.group(2))
        if sentence is not None:
            out.append(sentence)
        elif skipped is not None:
            skipped.append(m.group(1))
    if len({s.id for s in out}) != len(out):
        raise TextSourceError(f"{p}: duplicate prompt ids")
    return out


def kjv_verses(min_words: int = 4, max_words: int = 20, skipped: list[str] | None = None) -> list[Sentence]:
    """Verses of the King James Bible (public domain; Debian's bible-kjv-text, read with its ``bible``
    program) of ``min_words``..``max_words`` words, ids like ``kjv-Ge1:3``. Archaic English ("thou hast").
    ``skipped`` receives the ids of verses dropped for characters outside the English alphabet."""
    exe = shutil.which("bible")
    if exe is None:
        raise TextSourceError(f"the King James Bible text needs the `bible` program: {KJV_INSTALL}")
    try:
        done = subprocess.run([exe, "-f", KJV_RANGE], capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise TextSourceError(f"`bible -f {KJV_RANGE}` failed: {e}") from e
    out = []
    for line in done.stdout.splitlines():
        m = _KJV_LINE.match(line.strip())
        if m is None:
            continue
        sentence = spoken_sentence(f"kjv-{m.group(1)}", m.group(2))
        if sentence is None and skipped is not None:
            skipped.append(f"kjv-{m.group(1)}")
        elif sentence is not None and min_words <= len(sentence.transcript.split()) <= max_words:
            out.append(sentence)
    if not out:
        raise TextSourceError(f"`bible -f {KJV_RANGE}` printed no verses")
    return out
