"""The one base class of every error a user can cause (bad input, bad configuration, a broken run).

The CLI catches :class:`SpeechtlError` and prints one line naming the input (exit 2); anything else is a bug:
one line naming the exception and "run again with --debug for the traceback" (exit 1) — :func:`report_error`;
``--debug`` prints the traceback of either. Each stage keeps its own subclass (``ConfigError``,
``ManifestError``, ``AudioError``, ``ModelLoadError``, ``LmError``, ``VocabularyError``, ``BlankCollapseError``)
so callers can tell them apart.
"""

from __future__ import annotations

import sys
import traceback

__all__ = ["SpeechtlError", "report_error"]


class SpeechtlError(Exception):
    """A user-facing error: the message names the file / line / utterance, what was wrong and what is allowed."""


def report_error(prefix: str, error: Exception, debug: bool = False) -> int:
    """``error`` as one line on stderr after ``prefix`` (``debug``: its traceback first); returns the exit code:
    2 for bad input or settings (a :class:`SpeechtlError`), 1 for anything else — a bug in speechtl."""
    if debug:
        traceback.print_exception(error)
    if isinstance(error, SpeechtlError):
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return 2
    what = " ".join(str(error).split())[:300]
    print(f"{prefix}: internal error: {type(error).__name__}" + (f": {what}" if what else "")
          + ("" if debug else " (a bug in speechtl: run again with --debug for the traceback)"), file=sys.stderr)
    return 1
