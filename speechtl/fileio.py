"""Atomic writes: readers see the old or the new file/folder, never half of one. And the output checks every
writing verb makes first: :func:`preflight_output` (writable, room on the disk), :func:`refuse_finished_run` (no
silent overwrite of a finished run), :func:`output_path` (no writing through a link out of the output folder). One
writer per output (:func:`folder_lock`, :func:`file_lock`); what writes killed midway leave is cleared by the next
finishing writer (:func:`remove_temporaries`)."""

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
from typing import Callable, Iterator, Sequence

from speechtl.errors import SpeechtlError

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_write_bytes", "atomic_write_csv", "spreadsheet_safe",
           "atomic_dir", "UMASK", "FolderBusyError", "OutputPathError", "folder_lock", "file_lock", "LOCK_FILE",
           "INCOMPLETE", "OUTPUT_MARGIN_BYTES", "preflight_output", "refuse_finished_run", "output_path",
           "remove_temporaries", "remove_folders"]

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


def atomic_write_csv(path: str | os.PathLike, rows: Sequence[dict], fieldnames: Sequence[str] | None = None,
                     delimiter: str = ",") -> None:
    """Rows as CSV (or TSV: ``delimiter="\\t"``) with a header (``fieldnames``, default: every key in first-seen
    order), written atomically; text cells that a spreadsheet would run as formulas are made plain text
    (:func:`spreadsheet_safe`)."""
    buf = io.StringIO()
    names = list(fieldnames) if fieldnames is not None else list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=names, delimiter=delimiter, lineterminator="\n")
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


def _temporary(name: str) -> bool:
    """A name this module's writers (and ``save_model``'s ``.model.*`` folder) use for what is not yet, or no longer,
    in place: ``.NAME.*.tmp`` (a file or folder being written), ``.NAME.old`` (a folder being replaced)."""
    return name.startswith(".") and (name.endswith((".tmp", ".old")) or name.startswith(".model."))


def remove_temporaries(folder: str | os.PathLike) -> None:
    """Remove, at any depth of ``folder``, what atomic writes killed midway left behind (:func:`_temporary` names).
    Only for a folder this process holds (:func:`folder_lock`): another writer's files in progress look the same."""
    found = [Path(root) / name for root, dirs, files in os.walk(folder) for name in dirs + files if _temporary(name)]
    for path in sorted(found, key=lambda p: len(p.parts)):  # a folder before what it holds
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def remove_folders(folder: str | os.PathLike, names: Sequence[str]) -> None:
    """Remove the subfolders ``names`` of ``folder``, each renamed to ``.NAME.old`` first: a kill midway never leaves
    part of one under its name (a checkpoint without its weights); :func:`remove_temporaries` clears the rest."""
    for name in names:
        path, old = Path(folder) / name, Path(folder) / f".{name}.old"
        if path.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            shutil.rmtree(old, ignore_errors=True)


LOCK_FILE = ".speechtl.lock"  # in every output folder a verb writes: who holds it (pid, verb)
INCOMPLETE = ".speechtl-incomplete"  # in a run folder while its final save runs: loaders refuse such a folder


class FolderBusyError(SpeechtlError):
    """Another speechtl process is writing the same output folder or file."""


class OutputPathError(SpeechtlError):
    """An output path that cannot be written as asked (a file where a folder is needed, no permission)."""


def _take(fd: int, what: Path, verb: str, flag: str) -> None:
    """``flock`` the open lock file ``fd`` for this process and write who holds it; a held one is refused in one
    line naming the holder's pid."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        raise FolderBusyError(f"{what} is in use by {holder}: wait for it to finish, or give another {flag}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} (speechtl {verb})\n".encode(), 0)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, verb: str, flag: str = "--out") -> Iterator[Path]:
    """Hold ``folder`` for one writer: a second run into it is refused, naming the holder's pid.

    An advisory ``flock`` on ``folder/.speechtl.lock``: the kernel drops it when the holder exits, however it dies
    (kill -9 included), so a stale lock cannot block the next run and needs no take-over logic. The file stays
    behind, holding the last holder's pid and verb; a folder the lock created is removed again when the run fails
    before writing anything into it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{folder}: is a file, not a folder: give {flag} a folder path")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
    try:
        _take(fd, folder, verb, flag)
        yield folder
        created = False  # finished: the folder is the run's, whatever it holds
    finally:
        if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:  # refused before writing: leave no trace
            (folder / LOCK_FILE).unlink()
            folder.rmdir()
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, verb: str, flag: str = "--out") -> Iterator[Path]:
    """Hold the output file ``path`` for one writer, as :func:`folder_lock` holds a folder: the ``flock`` is on a
    sibling ``.NAME.speechtl.lock``, removed when the writer is done (a killed writer's stays, unlocked, and the next
    one takes it). Folders made for it are removed again when nothing else was written into them."""
    path = Path(path)
    lock = path.with_name(f".{path.name}.speechtl.lock")
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
        try:
            _take(fd, path, verb, flag)
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break  # else the holder removed the file as this process took it: take the new one
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield path
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
        for folder in made:  # the deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()


OUTPUT_MARGIN_BYTES = 64 * 2**20  # free space every output needs beyond its own estimate (reports, manifests, logs)


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent (what a mkdir -p would start from)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if num_bytes < 1024:
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GiB"


def preflight_output(path: str | os.PathLike, need_bytes: int = OUTPUT_MARGIN_BYTES, kind: str = "folder",
                     flag: str = "--out") -> Path:
    """Refuse an output before any work is done: ``path`` (a ``kind`` = "folder" or "file") must not be the
    other kind, the folder it goes into must be writable (not read-only, not someone else's), and its disk must
    have ``need_bytes`` free (:data:`OUTPUT_MARGIN_BYTES` beyond what the caller estimated). ``flag`` names the
    option in the messages. Returns ``path``; raises :class:`OutputPathError` in one line."""
    path = Path(path)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: is a file, not a folder: give {flag} a folder path")
    if kind == "file" and path.is_dir():
        raise OutputPathError(f"{path}: is a folder: give {flag} a file path")
    base = _existing_ancestor(path if kind == "folder" else path.parent)
    if not base.is_dir():
        raise OutputPathError(f"{path}: cannot be made, {base} is a file: choose another {flag}")
    if os.statvfs(base).f_flag & os.ST_RDONLY:
        raise OutputPathError(f"{path}: {base} is on a read-only file system: choose another {flag}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: no permission to write in {base}: choose another {flag}")
    free = shutil.disk_usage(base).free
    if free < need_bytes:
        raise OutputPathError(f"{path}: needs about {_size(need_bytes)} free on its disk, only {_size(free)} "
                              f"available: free some space or choose another {flag}")
    return path


FINISHED_RUN_FILES = ("results.json", "model.safetensors")  # what a finished run (or any model folder) holds


def refuse_finished_run(folder: str | os.PathLike, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse to write a run into ``folder`` when it already holds a finished one (results or a model, and no
    :data:`INCOMPLETE` marker), unless ``overwrite`` (replace it) or ``resume`` (continue it) was asked for."""
    folder = Path(folder)
    if overwrite or resume or (folder / INCOMPLETE).exists():
        return
    if any((folder / name).is_file() for name in FINISHED_RUN_FILES):
        raise OutputPathError(f"{folder} already holds a finished run; pass --overwrite to replace it or choose "
                              f"another --out")


def output_path(root: str | os.PathLike, relative: str | os.PathLike, flag: str = "--out") -> Path:
    """``root / relative``, for a file written below an output folder; refused when a symbolic link there (a
    subfolder or the file itself, made by someone else) leads outside ``root``: speechtl never writes through it."""
    root = Path(root)
    path = root / relative
    real_root, real = root.resolve(), path.resolve()  # every link followed, whether the files exist or not
    if real != real_root and real_root not in real.parents:
        raise OutputPathError(f"{path}: a symbolic link leads outside {root} (to {real}); speechtl does not write "
                              f"through links: remove it or choose another {flag}")
    return path


DONE = ".done"  # build_once's completion marker: the parameters a folder was made with, written last


def build_once(folder: str | os.PathLike, marker: dict, make: Callable[[Path], None], own: Callable[[Path], bool],
               error: type[SpeechtlError], needs: str = "manifest.jsonl") -> Path:
    """``folder``, made by ``make(tmp)`` unless its ``.done`` marker already holds ``marker`` (and the file
    ``needs`` is there); returns ``folder``.

    Like lhotse's ``prepare_*``: ``make`` fills a temporary sibling that is moved into place, then the marker is
    written, so a folder without a matching marker is rebuilt, never half-trusted. An exclusive lock beside the
    folder serialises processes making it at once (the second finds it done). A folder holding an entry that
    ``own`` does not accept is not the tool's to replace: ``error`` names it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marked(folder, marker, needs):
            return folder
        foreign = [p.name for p in folder.iterdir() if p.name != DONE and not own(p)] if folder.exists() else []
        if foreign:
            raise error(f"{folder} holds files that this tool did not make ({foreign[0]}); remove them or choose "
                        f"another folder")
        with atomic_dir(folder) as tmp:
            make(tmp)
        atomic_write_json(folder / DONE, marker)
    return folder


def _marked(folder: Path, marker: dict, needs: str) -> bool:
    try:
        return json.loads((folder / DONE).read_text()) == marker and (folder / needs).is_file()
    except (OSError, ValueError):
        return False
