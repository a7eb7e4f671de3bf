"""One writer per output folder (speechtl.fileio.folder_lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from speechtl.fileio import LOCK_FILE, FolderBusyError, OutputPathError, folder_lock

HOLD = """
import sys, time
from speechtl.fileio import folder_lock
with folder_lock(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
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
