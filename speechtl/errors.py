"""The one base class of every error a user can cause (bad input, bad configuration, a broken run).

The CLI catches :class:`SpeechtlError` and prints one line naming the input (exit 2); anything else is a bug
and keeps its traceback. Each stage keeps its own subclass (``ConfigError``, ``ManifestError``, ``AudioError``,
``ModelLoadError``, ``LmError``, ``VocabularyError``, ``BlankCollapseError``) so callers can tell them apart.
"""

from __future__ import annotations

__all__ = ["SpeechtlError"]


class SpeechtlError(Exception):
    """A user-facing error: the message names the file / line / utterance, what was wrong and what is allowed."""
