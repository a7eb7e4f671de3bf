"""Transcript file formats: txt, json, srt, vtt and tsv (one word a row), each a function of one transcript.

Times are seconds from the start of the file; srt writes ``HH:MM:SS,mmm``, vtt ``HH:MM:SS.mmm``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Callable

from speechtl.decode.timestamps import Cue, words_to_cues

__all__ = ["OUTPUT_FORMATS", "format_transcript", "srt_time", "vtt_time", "markdown_text", "markdown_code"]

OUTPUT_FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_time(seconds: float) -> str:
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    return _clock(seconds, ".")


def _srt(cues: list[Cue]) -> str:
    blocks = [f"{k}\n{srt_time(c.start_s)} --> {srt_time(c.end_s)}\n{c.text}\n" for k, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def _vtt(cues: list[Cue]) -> str:
    return "WEBVTT\n\n" + "\n".join(f"{vtt_time(c.start_s)} --> {vtt_time(c.end_s)}\n{c.text}\n" for c in cues)


def _tsv(t) -> str:
    rows = ["start_s\tend_s\tword\tconfidence"]
    rows += [f"{w.start_s:.3f}\t{w.end_s:.3f}\t{w.word}\t{w.confidence:.4f}" for w in t.words]
    return "\n".join(rows) + "\n"


def _json(t) -> str:
    return json.dumps(asdict(t), indent=2, ensure_ascii=False) + "\n"


_FORMATTERS: dict[str, Callable] = {
    "txt": lambda t: t.text + "\n",
    "json": _json,
    "srt": lambda t: _srt(words_to_cues(t.words)),
    "vtt": lambda t: _vtt(words_to_cues(t.words)),
    "tsv": _tsv,
}


def format_transcript(t, fmt: str) -> str:
    """``t`` (a :class:`speechtl.transcribe.FileTranscript`) as the text of a ``fmt`` file."""
    if fmt not in _FORMATTERS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    return _FORMATTERS[fmt](t)


def markdown_text(text: str) -> str:
    """User-given text (ids, transcripts, file names, reasons) as inert Markdown: HTML escaped, brackets as
    entities (no ``[link](…)`` or ``![image](…)``), table pipes escaped, one line — a manifest cannot inject
    markup, a link or an image, or break a table in a report."""
    text = " ".join(str(text).split())
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("[", "&#91;")
            .replace("]", "&#93;").replace("|", "\\|"))


def markdown_code(text: str) -> str:
    """Text for a Markdown code span (a command line): one line, no backtick that could close the span."""
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"
