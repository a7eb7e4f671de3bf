"""The one base class of every error a user can cause (bad input, bad configuration, a broken run).

The CLI, the recipes and the scripts run through :func:`exit_status`. A :class:`SpeechtlError` becomes one line
naming the input (exit 2); anything else is a bug in speechtl (exit 1): the CLI prints one line naming the exception
and "run again with --debug for the traceback", the recipes and scripts (no ``--debug`` flag) print its traceback;
Ctrl-C is exit 130. ``--debug`` prints the traceback of either. Each stage keeps its own subclass (``ConfigError``,
``ManifestError``, ``AudioError``, ``ModelLoadError``, ``LmError``, ``VocabularyError``, ``BlankCollapseError``,
``NonFiniteTrainingError``) so callers can tell them apart.
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable

__all__ = ["SpeechtlError", "exit_status"]


class SpeechtlError(Exception):
    """A user-facing error: the message names the file / line / utterance, what was wrong and what is allowed."""


def exit_status(command: str, run: Callable[[], object], debug: bool | None = None) -> int:
    """Run a command's ``run()`` and return its exit status: what ``run()`` returned when that is an int, else 0;
    for an error, :func:`_report`'s status; 130 for Ctrl-C (what an interrupted run left is named by the next
    run: ``--resume``). ``debug=None`` (a script without a ``--debug`` flag) prints a bug's traceback only::

        if __name__ == "__main__":
            sys.exit(exit_status("recipes/accent_adaptation.py", lambda: main(sys.argv[1:])))
    """
    try:
        status = run()
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 — every error ends as one line and an exit status
        return _report(command, e, debug)
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def _report(prefix: str, error: Exception, debug: bool | None = False) -> int:
    """``error`` as one line on stderr after ``prefix``, its traceback first with ``debug`` (``None``: for a bug
    only); returns the exit status: 2 for bad input or settings (a :class:`SpeechtlError`), 1 for anything else —
    a bug in speechtl."""
    user_error = isinstance(error, SpeechtlError)
    if debug or (debug is None and not user_error):
        traceback.print_exception(error)
    if user_error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return 2
    what = " ".join(str(error).split())[:300]
    hint = " (a bug in speechtl: run again with --debug for the traceback)" if debug is False else ""
    print(f"{prefix}: internal error: {type(error).__name__}" + (f": {what}" if what else "") + hint,
          file=sys.stderr)
    return 1
