"""The one base class of every error a user can cause (bad input, bad configuration, a broken run).

The CLI, the recipes and the scripts run through :func:`exit_status`: it catches :class:`SpeechtlError` and prints
one line naming the input (exit 2); anything else is a bug and keeps its traceback. Each stage keeps its own
subclass (``ConfigError``, ``ManifestError``, ``AudioError``, ``ModelLoadError``, ``LmError``, ``VocabularyError``,
``BlankCollapseError``, ``NonFiniteTrainingError``) so callers can tell them apart.
"""

from __future__ import annotations

import sys
from typing import Callable

__all__ = ["SpeechtlError", "exit_status"]


class SpeechtlError(Exception):
    """A user-facing error: the message names the file / line / utterance, what was wrong and what is allowed."""


def exit_status(command: str, run: Callable[[], object]) -> int:
    """Run a command's ``run()``; a :class:`SpeechtlError` becomes one line on stderr, ``{command}: error: …``,
    and exit status 2. Otherwise the status is what ``run()`` returned when that is an int, else 0::

        if __name__ == "__main__":
            sys.exit(exit_status("recipes/accent_adaptation.py", lambda: main(sys.argv[1:])))
    """
    try:
        status = run()
    except SpeechtlError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) and not isinstance(status, bool) else 0
