"""Atomic writes: readers see the old or the new file/folder, never half of one."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from speechtl.errors import SpeechtlError

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_write_bytes", "atomic_write_csv", "spreadsheet_safe",
           "atomic_dir", "UMASK", "FolderBusyError", "OutputPathError", "folder_lock", "LOCK_FILE", "INCOMPLETE"]

UMASK = os.umask(0)  # the process's umask: files we chmod get what open() would give them
os.umask(UMASK)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; results are for everyone who may read the folder
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting so as a formula


def spreadsheet_safe(value):
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(…)``, ``@SUM(…)``), prefixed with ``'`` so it
    shows as text (OWASP's advice); numbers and numeric text ("-0.5") are left alone."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def atomic_write_csv(path: str | os.PathLike, rows: Sequence[dict], fieldnames: Sequence[str] | None = None) -> None:
    """Rows as CSV with a header (``fieldnames``, default: every key in first-seen order), written atomically; text
    cells that a spreadsheet would run as formulas are made plain text (:func:`spreadsheet_safe`)."""
    buf = io.StringIO()
    names = list(fieldnames) if fieldnames is not None else list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in r.items()} for r in rows)
    atomic_write_text(path, buf.getvalue())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` (the old one is removed last)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700; the folder is for everyone who may read its parent
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


LOCK_FILE = ".speechtl.lock"  # in every output folder a verb writes: who holds it (pid, verb)
INCOMPLETE = ".speechtl-incomplete"  # in a run folder while its final save runs: loaders refuse such a folder


class FolderBusyError(SpeechtlError):
    """Another speechtl process is writing the same output folder."""


class OutputPathError(SpeechtlError):
    """An output path that cannot be written as asked (a file where a folder is needed, no permission)."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, verb: str) -> Iterator[Path]:
    """Hold ``folder`` for one writer: a second run into it is refused, naming the holder's pid.

    An advisory ``flock`` on ``folder/.speechtl.lock``: the kernel drops it when the holder exits, however it dies
    (kill -9 included), so a stale lock cannot block the next run and needs no take-over logic. The file stays
    behind, holding the last holder's pid and verb; a folder the lock created is removed again when the run fails
    before writing anything into it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{folder}: is a file, not a folder: give --out a folder path")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise FolderBusyError(f"{folder} is in use by {holder}: wait for it to finish, or give another "
                                  f"--out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} (speechtl {verb})\n".encode(), 0)
        yield folder
        created = False  # finished: the folder is the run's, whatever it holds
    finally:
        if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:  # refused before writing: leave no trace
            (folder / LOCK_FILE).unlink()
            folder.rmdir()
        os.close(fd)  # closing the descriptor releases the lock
