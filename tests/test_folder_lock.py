"""One writer per output folder or file (speechtl.fileio.folder_lock, file_lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from speechtl.fileio import LOCK_FILE, FolderBusyError, OutputPathError, folder_lock

HOLD = """
import sys, time
from speechtl import fileio
with getattr(fileio, sys.argv[2])(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path, lock="folder_lock"):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), lock], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_frees_the_folder(tmp_path):
    proc = _holder(tmp_path / "run")
    try:
        with pytest.raises(FolderBusyError, match=f"in use by pid {proc.pid} \\(speechtl test\\)"):
            with folder_lock(tmp_path / "run", "adapt"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with folder_lock(tmp_path / "run", "adapt"):  # kill -9 left the file but not the lock
        assert (tmp_path / "run" / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} (speechtl adapt)")


def test_the_same_process_can_lock_again_after_release_and_a_file_is_refused(tmp_path):
    for _ in range(2):
        with folder_lock(tmp_path / "run", "evaluate"):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        with folder_lock(tmp_path / "file", "adapt"):
            pass


def test_a_second_adapt_into_the_same_folder_is_refused_in_one_line(tmp_path, capsys):
    from speechtl.cli import main

    proc = _holder(tmp_path / "run")  # as if another `speechtl adapt --out run` were training
    try:
        rc = main(["adapt", "--train", str(tmp_path / "missing.jsonl"), "--test", str(tmp_path / "missing.jsonl"),
                   "--out", str(tmp_path / "run"), "--quiet"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("speechtl adapt: error:") and f"in use by pid {proc.pid}" in err[0]


def test_csv_cells_that_a_spreadsheet_would_run_are_written_as_text(tmp_path):
    import csv

    from speechtl.fileio import atomic_write_csv

    rows = [{"id": "=HYPERLINK(\"http://x\")", "text": "@SUM(A1)", "wer": -0.5, "delta": "-0.5", "note": "+1 call"},
            {"id": "u2", "text": "plain", "wer": 0.25, "delta": "+0.3", "note": "-"}]
    atomic_write_csv(tmp_path / "t.csv", rows)
    got = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert got[0] == {"id": "'=HYPERLINK(\"http://x\")", "text": "'@SUM(A1)", "wer": "-0.5", "delta": "-0.5",
                      "note": "'+1 call"}
    assert got[1] == {"id": "u2", "text": "plain", "wer": "0.25", "delta": "+0.3", "note": "'-"}


FOLDER_WRITERS = {  # every verb that writes a folder, with inputs that do not exist: the lock comes before any work
    "adapt --unlabelled": ["adapt", "--unlabelled", "none", "--test", "none.jsonl", "--out", "run"],
    "demo": ["demo", "--data", "data", "--out", "run"],
    "pretrain": ["pretrain", "none", "none", "--out", "run"],
    "evaluate": ["evaluate", "none", "none.jsonl", "--out", "run"],
    "compare": ["compare", "--models", "none", "--test", "none.jsonl", "--out", "run"],
    "transcribe": ["transcribe", "none", "none.wav", "--output-dir", "run"],
}


@pytest.mark.parametrize("verb", FOLDER_WRITERS)
def test_every_folder_writer_is_refused_while_another_run_holds_its_folder(verb, tmp_path, capsys, monkeypatch):
    from speechtl.cli import main

    monkeypatch.chdir(tmp_path)
    argv = FOLDER_WRITERS[verb]
    proc = _holder(tmp_path / "run")
    try:
        rc = main([*argv, "--quiet"] if argv[0] != "demo" else argv)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"speechtl {argv[0]}: error: run is in use by pid {proc.pid}"), err
    assert os.listdir(tmp_path / "run") == [LOCK_FILE]  # nothing written beside the holder's lock


FILE_WRITERS = {  # a verb that writes one file (or, hf-disk, also a folder of audio), and the output held
    "lm build": (["lm", "build", "corpus.txt", "--out", "lm.arpa"], "lm.arpa", "file_lock"),
    "prepare": (["prepare", "folder", "audio", "ids.tsv", "--out", "m.jsonl"], "m.jsonl", "file_lock"),
    "prepare hf-disk": (["prepare", "hf-disk", "ds", "--audio-out", "wavs", "--out", "m.jsonl"], "wavs", "folder_lock"),
}


@pytest.mark.parametrize("verb", FILE_WRITERS)
def test_a_second_writer_of_the_same_output_file_is_refused_naming_the_holder(verb, tmp_path, capsys, monkeypatch):
    from speechtl.cli import main

    argv, held, lock = FILE_WRITERS[verb]
    monkeypatch.chdir(tmp_path)
    proc = _holder(tmp_path / held, lock)  # as if another `speechtl VERB --out FILE` were writing it
    try:
        rc = main(argv)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"speechtl {argv[0]}: error: {held} is in use by pid {proc.pid}"), err


def test_a_file_lock_left_by_a_killed_writer_does_not_block_and_is_removed_after(tmp_path, capsys):
    from speechtl.cli import main

    out, lock = tmp_path / "lms" / "lm.arpa", tmp_path / "lms" / ".lm.arpa.speechtl.lock"
    proc = _holder(out, "file_lock")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock.read_text().startswith(f"pid {proc.pid}")  # kill -9: the file stays, the lock does not
    (tmp_path / "corpus.txt").write_text("a b\nb a\n", encoding="utf-8")
    assert main(["lm", "build", str(tmp_path / "corpus.txt"), "--order", "2", "--out", str(out)]) == 0
    assert out.is_file() and not lock.exists()
    assert main(["lm", "build", str(tmp_path / "none.txt"), "--out", str(tmp_path / "new" / "x.arpa")]) == 2
    assert not (tmp_path / "new").exists()  # a folder made for the lock goes again when nothing was written
