"""Outputs are checked before any work: writable, room on the disk, no finished run overwritten unasked, no write
through a link out of the output folder; a routed folder never makes speechtl download the base it names."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtl.cli import main
from conftest import tone_audio
from speechtl.fileio import INCOMPLETE, OUTPUT_MARGIN_BYTES, OutputPathError, output_path, preflight_output, \
    refuse_finished_run

FAST = ["--max-steps", "2", "--eval-every", "2", "--batch-seconds", "4", "--quiet", "--mismatch-utts", "0"]
Usage = namedtuple("Usage", "total used free")


def _free(monkeypatch, free_bytes: int) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * free_bytes + 1, 0, free_bytes))


def _one_error_line(capsys, *needles: str) -> str:
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines()
                    if not line.startswith(("adapt: ", "demo: ")))  # the quiet runs' phase lines
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_preflight_refuses_the_wrong_kind_and_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputPathError, match="is a file, not a folder: give --out a folder"):
        preflight_output(tmp_path / "file")
    with pytest.raises(OutputPathError, match="is a folder: give --out a file path"):
        preflight_output(tmp_path / "folder", kind="file")
    with pytest.raises(OutputPathError, match=r"file is a file"):
        preflight_output(tmp_path / "file" / "sub" / "run")
    assert preflight_output(tmp_path / "new" / "run") == tmp_path / "new" / "run"  # made later, by the writer
    assert not (tmp_path / "new").exists()
    assert preflight_output(tmp_path / "file", kind="file") == tmp_path / "file"  # a file output may be replaced


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_preflight_refuses_a_read_only_parent(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match=f"no permission to write in {locked}: choose another --output-dir"):
            preflight_output(locked / "out", flag="--output-dir")
        with pytest.raises(OutputPathError, match="no permission"):
            preflight_output(locked, kind="folder")  # an existing folder that cannot take new files
    finally:
        locked.chmod(0o755)


def test_preflight_names_the_space_needed_and_available(tmp_path, monkeypatch):
    _free(monkeypatch, 3 * 2**20)
    with pytest.raises(OutputPathError, match=r"needs about 64\.0 MiB free on its disk, only 3\.0 MiB available"):
        preflight_output(tmp_path / "run")
    _free(monkeypatch, OUTPUT_MARGIN_BYTES)
    preflight_output(tmp_path / "run")


def test_every_verb_checks_its_output_before_any_work(tone_data, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import speechtl.eval as ev
    import speechtl.transcribe as tr

    def no_work(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(ev, "load_model", no_work)
    monkeypatch.setattr(tr, "load_model", no_work)
    (tmp_path / "file").write_text("x")
    cases = [
        (["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--out", str(tmp_path / "file")], "is a file"),
        (["transcribe", str(tiny_model_dir), str(tone_data["test"].parent), "--output-dir", str(tmp_path / "file")],
         "give --output-dir a folder"),
        (["lm", "build", str(tone_data["test"]), "--out", str(tmp_path)], "give --out a file path"),
        (["prepare", "folder", str(tmp_path), "--out", str(tmp_path)], "give --out a file path"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        _one_error_line(capsys, f"speechtl {argv[0]}: error:", needle)
    _free(monkeypatch, 2**20)
    for verb in (["evaluate", str(tiny_model_dir), str(tone_data["test"])],
                 ["compare", "--models", str(tiny_model_dir), "--test", str(tone_data["test"])]):
        assert main([*verb, "--out", str(tmp_path / verb[0])]) == 2
        _one_error_line(capsys, "needs about", "1.0 MiB available")
        assert not (tmp_path / verb[0]).exists()  # refused before the lock made the folder


def test_adapt_needs_room_for_the_model_best_and_checkpoint(tone_data, tiny_model_dir, tmp_path, monkeypatch,
                                                            capsys):
    import speechtl.adapt.run as run

    weights = (tiny_model_dir / "model.safetensors").stat().st_size
    monkeypatch.setattr(run, "load_sets", lambda *a, **k: pytest.fail("data read before the space check"))
    _free(monkeypatch, OUTPUT_MARGIN_BYTES + weights)  # enough for any verb, not for a run of this model
    args = ["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--test",
            str(tone_data["test"]), "--out", str(tmp_path / "run"), *FAST]
    assert main(args) == 2
    _one_error_line(capsys, "needs about", "free on its disk")
    assert not (tmp_path / "run").exists()


def test_a_finished_run_is_refused_unless_overwrite_or_resume(tone_data, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with pytest.raises(OutputPathError, match=f"{out} already holds a finished run; pass --overwrite"):
        refuse_finished_run(out)
    refuse_finished_run(out, resume=True)
    (out / INCOMPLETE).write_text("")  # an interrupted save: --resume's to finish, not a finished run
    refuse_finished_run(out)
    (out / INCOMPLETE).unlink()
    args = ["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--test",
            str(tone_data["test"]), "--out", str(out), *FAST]
    assert main(args) == 2
    _one_error_line(capsys, "already holds a finished run; pass --overwrite to replace it or choose another --out")
    assert json.loads((out / "results.json").read_text()) == {}  # untouched
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["train"]["steps"] == 2
    capsys.readouterr()
    assert main(args) == 2  # the run it made is now the finished one
    _one_error_line(capsys, "already holds a finished run")
    (tmp_path / "model").mkdir()
    shutil.copy(tiny_model_dir / "model.safetensors", tmp_path / "model")  # a model folder is not a place to write
    assert main([*args[:-len(FAST) - 2], "--out", str(tmp_path / "model"), *FAST]) == 2


def test_the_demo_refuses_a_finished_run_before_synthesising(tmp_path, monkeypatch, capsys):
    import speechtl.demo as demo

    monkeypatch.setattr(demo, "prepare_synthetic", lambda *a, **k: pytest.fail("synthesised before the check"))
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "model.safetensors").write_bytes(b"")
    assert main(["demo", "--smoke", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "demo")]) == 2
    _one_error_line(capsys, "already holds a finished run; pass --overwrite")


def test_output_path_refuses_links_leading_out_of_the_folder(tmp_path):
    root, outside = tmp_path / "out", tmp_path / "elsewhere"
    (root / "inner").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "sub")
    os.symlink(outside / "x.txt", root / "x.txt")
    os.symlink(root / "inner", root / "alias")  # a link that stays inside is harmless
    for relative in ("sub/a.txt", "x.txt", "../escape.txt"):
        with pytest.raises(OutputPathError, match="leads outside"):
            output_path(root, relative)
    assert output_path(root, "alias/a.txt") == root / "alias" / "a.txt"
    assert output_path(root, "new/deeper/a.txt") == root / "new" / "deeper" / "a.txt"
    os.symlink(root, tmp_path / "link-to-out")  # the output folder itself may be a link the user gave
    assert output_path(tmp_path / "link-to-out", "a.txt") == tmp_path / "link-to-out" / "a.txt"


def test_transcribe_never_writes_through_a_planted_link(tiny_model_dir, tmp_path, capsys):
    audio = tmp_path / "audio" / "sub"
    audio.mkdir(parents=True)
    sf.write(audio / "a.wav", tone_audio("ab c"), 16_000)
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    os.symlink(outside, out / "sub")  # out/sub/a.txt would land in outside/
    assert main(["transcribe", str(tiny_model_dir), str(tmp_path / "audio"), "--output-dir", str(out), "--quiet"]) == 2
    _one_error_line(capsys, "leads outside", "--output-dir")
    assert list(outside.iterdir()) == []
    (out / "sub").unlink()
    assert main(["transcribe", str(tiny_model_dir), str(tmp_path / "audio"), "--output-dir", str(out), "--quiet"]) == 0
    assert (out / "sub" / "a.txt").is_file()


def _routed_folder(tiny_model_dir: Path, folder: Path, base_name: str) -> Path:
    """The tiny model as the adapted model, with a router naming ``base_name`` (whose weights are the same)."""
    from speechtl.models import load_model
    from speechtl.models.router import ROUTER_DIR, fit_router, save_router, weights_digest

    shutil.copytree(tiny_model_dir, folder)
    base, _ = load_model(str(tiny_model_dir))
    rng = np.random.default_rng(0)
    router = fit_router(rng.normal(1, 1, (20, 32)).astype(np.float32), rng.normal(-1, 1, (20, 32)).astype(np.float32))
    save_router(router, folder / ROUTER_DIR, base_name, weights_digest(base), {})
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*a, **k):
        raise AssertionError("speechtl reached for the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_routed_folder_naming_a_hub_base_loads_it_from_the_cache_only(tiny_model_dir, tmp_path, monkeypatch,
                                                                        no_network):
    import huggingface_hub.constants as hub
    from speechtl.models import ModelLoadError, load_model
    from speechtl.models.router import RoutedCTC

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    folder = _routed_folder(tiny_model_dir, tmp_path / "run", "someone/tiny-base")
    with pytest.raises(ModelLoadError, match=r"'someone/tiny-base'.*not .* in the local Hugging Face cache.*"
                                             r"hf download someone/tiny-base.*--no-route"):
        load_model(str(folder))
    assert not isinstance(load_model(str(folder), route=False)[0], RoutedCTC)
    snapshot = cache / "models--someone--tiny-base" / "snapshots" / ("0" * 40)  # what `hf download` would leave
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    assert isinstance(load_model(str(folder))[0], RoutedCTC)
