"""The speechtl command: adapt writes the run folder (loadable by transformers.pipeline), evaluate and
transcribe print what they should, and a corrupt audio file gives a one-line error or is skipped."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf

from speechtl.cli import main
from speechtl.data.manifest import read_manifest, write_manifest

FAST = ["--max-steps", "4", "--eval-every", "2", "--batch-seconds", "4", "--lr", "1e-3", "--quiet"]


@pytest.fixture
def corrupt_train(tone_data, tmp_path):
    """The tone training set plus one file that is not audio at all."""
    utts = read_manifest(tone_data["train"])
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    write_manifest(utts + [utts[0].__class__("broken", bad, "ab")], tmp_path / "train.jsonl")
    return tmp_path / "train.jsonl"


def test_adapt_writes_the_run_folder_and_pipeline_loads_it(tone_data, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]),
               "--dev", str(tone_data["dev"]), "--test", str(tone_data["test"]),
               "--source-test", str(tone_data["dev"]), "--out", str(out), *FAST])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| test | target |" in printed and "| dev | source |" in printed
    for name in ["config.json", "model.safetensors", "vocab.json", "processor_config.json", "run_config.json",
                 "results.json", "report.md", "hyps/test.before.tsv", "hyps/test.after.tsv", "hyps/dev.after.tsv"]:
        assert (out / name).is_file(), name
    assert not (out / "checkpoint").exists() and not (out / "best").exists()
    results = json.loads((out / "results.json").read_text())
    for role in ("target", "source"):
        for when in ("before", "after"):
            assert 0.0 <= results[role][when]["cer"] and results[role][when]["wer"] >= 0.0
    assert results["train"]["steps"] == 4 and results["trainable_params"] > 0 and results["skipped"] == []
    assert json.loads((out / "run_config.json").read_text())["training"]["max_steps"] == 4

    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(out))
    audio, sr = sf.read(read_manifest(tone_data["test"])[0].audio_path, dtype="float32")
    assert isinstance(asr({"raw": audio, "sampling_rate": sr})["text"], str)


def test_corrupt_audio_fails_with_one_line_naming_the_file(tone_data, tiny_model_dir, corrupt_train, tmp_path, capsys):
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(corrupt_train),
               "--test", str(tone_data["test"]), "--out", str(tmp_path / "run"), *FAST])
    assert rc == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("adapt: ")]  # phases
    assert len(err) == 1 and "broken.wav" in err[0] and "'broken'" in err[0] and "--on-error skip" in err[0]


def test_corrupt_audio_skipped_and_listed(tone_data, tiny_model_dir, corrupt_train, tmp_path):
    out = tmp_path / "run"
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(corrupt_train),
               "--test", str(tone_data["test"]), "--out", str(out), "--on-error", "skip", *FAST])
    assert rc == 0
    skipped = json.loads((out / "results.json").read_text())["skipped"]
    assert [s["id"] for s in skipped] == ["broken"] and "broken.wav" in skipped[0]["audio_path"]
    assert "broken" in (out / "report.md").read_text()


def test_unknown_characters_are_reported_before_training(tone_data, tiny_model_dir, tmp_path, capsys):
    utts = read_manifest(tone_data["train"])
    write_manifest([utts[0].__class__(u.id, u.audio_path, u.text + " xyz") for u in utts[:2]] + utts[2:],
                   tmp_path / "train.jsonl")
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tmp_path / "train.jsonl"),
               "--test", str(tone_data["test"]), "--out", str(tmp_path / "run"), *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert "'x'" in err and "2 utterance(s)" in err and utts[0].id in err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_evaluate_table_and_json(tone_data, tiny_model_dir, tmp_path, capsys):
    assert main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--quiet", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["set", "utts", "words", "WER"] and "test" in table
    assert main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--quiet", "--output-format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["sets"]["test"]["num_utts"] == 4
    assert (tmp_path / "results.json").is_file() and (tmp_path / "hyps" / "test.tsv").is_file()


def test_transcribe_files_and_folders_skipping_bad_ones(tone_data, tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "audio"
    shutil.copytree(read_manifest(tone_data["test"])[0].audio_path.parent, folder / "nested")
    (folder / "bad.wav").write_bytes(b"garbage")
    assert main(["transcribe", str(tiny_model_dir), str(folder), "--quiet", "--on-error", "skip",
                 "--output-format", "json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert len(out["transcripts"]) == 4 and out["skipped"][0]["path"].endswith("bad.wav")
    assert "bad.wav" in captured.err
    assert main(["transcribe", str(tiny_model_dir), str(folder / "bad.wav"), "--quiet"]) == 2
    assert main(["transcribe", str(tiny_model_dir), str(folder / "nested"), "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(line.count("\t") == 1 for line in lines)


def test_unknown_model_is_a_clear_error(tone_data, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope"), str(tone_data["test"]), "--quiet"]) == 2
    assert "cannot load model" in capsys.readouterr().err


def test_distill_without_replay_is_a_clear_error(tone_data, tiny_model_dir, tmp_path, capsys):
    assert main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]),
                 "--test", str(tone_data["test"]), "--out", str(tmp_path / "run"), "--distill", "1", "--quiet"]) == 2
    assert "--distill" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_help_for_every_subcommand(capsys):
    for cmd in ("adapt", "evaluate", "transcribe"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
    assert "--on-error" in capsys.readouterr().out


@pytest.mark.slow
def test_adapt_runs_on_two_processes_with_torchrun(tone_data, tiny_model_dir, tmp_path):
    """No code change for distributed training: torchrun (gloo on CPU) runs the same command."""
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "speechtl.cli", "adapt",
           "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--dev", str(tone_data["dev"]),
           "--test", str(tone_data["test"]), "--out", str(out), "--cpu", *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["processes"] == 2 and results["train"]["steps"] == 4
    assert results["train"]["history"][0]["lr"] > 0  # the schedule counts optimizer steps, not per-process steps


def test_audio_too_short_for_its_transcript_is_reported(tone_data, tiny_model_dir, tmp_path):
    utts = read_manifest(tone_data["train"])
    long_text = utts[0].__class__(utts[0].id, utts[0].audio_path, " ".join(["abc"] * 40))
    write_manifest([long_text] + utts[1:], tmp_path / "train.jsonl")
    out = tmp_path / "run"
    assert main(["adapt", "--model", str(tiny_model_dir), "--train", str(tmp_path / "train.jsonl"),
                 "--test", str(tone_data["test"]), "--out", str(out), *FAST]) == 0
    warnings = [w for w in json.loads((out / "results.json").read_text())["warnings"] if "training utterance" in w]
    assert len(warnings) == 1 and utts[0].id in warnings[0] and "1 training utterance" in warnings[0]


RUNTIME = ("--threads", "--device", "--precision", "--batch-seconds", "--on-error")


def _flag_help(command: str) -> dict[str, tuple]:
    from speechtl.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    if command == "prepare":
        sub = next(a for a in sub._actions if a.dest == "corpus").choices["folder"]
    return {s: (a.help, a.default) for a in sub._actions for s in a.option_strings}


def test_runtime_flags_are_spelled_and_explained_the_same_in_every_command():
    ev, tr, cmp = _flag_help("evaluate"), _flag_help("transcribe"), _flag_help("compare")
    for flag in RUNTIME:
        assert flag in ev and flag in tr and flag in cmp, flag
    for flag in ("--threads", "--device", "--precision"):
        assert ev[flag][0] == tr[flag][0] == cmp[flag][0], flag
    for command in ("check", "prepare"):
        assert _flag_help(command)["--threads"] == ev["--threads"]
    # every existing default stays
    assert (ev["--batch-seconds"][1], ev["--on-error"][1], ev["--device"][1]) == (120.0, "fail", None)
    assert (tr["--batch-seconds"][1], tr["--on-error"][1], tr["--threads"][1]) == (60.0, "skip", 0)
    assert (cmp["--batch-seconds"][1], cmp["--on-error"][1], cmp["--device"][1]) == (120.0, "fail", "")
    for helps in (ev, tr, cmp):
        assert helps["--no-route"][1] is True  # routed by default; --no-route sets route=False


def test_device_flag_accepts_auto_cpu_cuda_and_cuda_n_only(tone_data, tiny_model_dir, capsys):
    from speechtl.cli import build_parser

    for value in ("auto", "cpu", "cuda", "cuda:1"):
        assert build_parser().parse_args(["evaluate", "m", "x.jsonl", "--device", value]).device == value
    with pytest.raises(SystemExit) as e:
        main(["compare", "--models", "m", "--test", "x.jsonl", "--device", "gpu"])
    assert e.value.code == 2 and "auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_evaluate_threads_and_no_route_reach_the_library(tone_data, tiny_model_dir, monkeypatch, capsys):
    import torch

    import speechtl.eval as eval_module

    calls, real = [], eval_module.load_model
    monkeypatch.setattr(eval_module, "load_model", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    before = torch.get_num_threads()
    try:
        assert main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--quiet", "--threads", "1",
                     "--device", "cpu", "--precision", "fp32", "--no-route", "--output-format", "json"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    results = json.loads(capsys.readouterr().out)
    assert results["precision"] == "fp32" and results["device"] == "cpu"
    assert calls[-1].get("route") is False
    main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--quiet"])
    assert calls[-1].get("route", True) is True


def test_transcribe_and_compare_pass_no_route_on(tone_data, tiny_model_dir, monkeypatch, tmp_path, capsys):
    import speechtl.compare.hyps as hyps_module
    import speechtl.transcribe as transcribe_module

    calls = []
    for module in (transcribe_module, hyps_module):
        real = module.load_model
        monkeypatch.setattr(module, "load_model", lambda *a, _real=real, **kw: calls.append(kw) or _real(*a, **kw))
    audio = read_manifest(tone_data["test"])[0].audio_path
    assert main(["transcribe", str(tiny_model_dir), str(audio), "--quiet", "--no-route", "--threads", "1"]) == 0
    assert calls[-1] == {"route": False}
    args = ["compare", "--models", str(tiny_model_dir), "--test", str(tone_data["test"]), "--quiet",
            "--num-bootstrap", "100", "--output-format", "json", "--out", str(tmp_path / "cmp")]
    assert main(args) == 0 and calls[-1] == {}
    assert main([*args, "--no-route"]) == 0 and calls[-1] == {"route": False}  # a new cache entry, not the routed one
    assert len(list((tmp_path / "cmp" / "cache").glob("*.json"))) == 2
    capsys.readouterr()


def test_user_errors_below_the_cli_give_one_line_and_exit_2(tone_data, tiny_model_dir, tmp_path, capsys):
    audio = read_manifest(tone_data["test"])[0].audio_path
    # a configuration the chunker cannot work with
    assert main(["transcribe", str(tiny_model_dir), str(audio), "--quiet", "--chunk-s", "1", "--stride-s", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speechtl transcribe: error:") and "stride" in err[0]
    # a reference with no words
    utts = read_manifest(tone_data["test"])
    write_manifest([utts[0].__class__(utts[0].id, utts[0].audio_path, "...")] + utts[1:], tmp_path / "t.jsonl")
    assert main(["evaluate", str(tiny_model_dir), str(tmp_path / "t.jsonl"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty after normalisation" in err[0] and "Traceback" not in err[0]


def test_a_router_without_enough_audio_is_a_one_line_error(tone_data, tiny_model_dir, tmp_path, capsys):
    utts = read_manifest(tone_data["dev"])
    write_manifest(utts[:1], tmp_path / "route.jsonl")
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]),
               "--test", str(tone_data["test"]), "--route", str(tmp_path / "route.jsonl"), "--vocab", "keep",
               "--out", str(tmp_path / "run"), *FAST])
    assert rc == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("adapt: ")]  # phases
    assert len(err) == 1 and err[0].startswith("speechtl adapt: error:") and "router needs at least 2" in err[0]


def test_adapt_help_lists_every_augmentation_preset(capsys):
    from speechtl.data.augment import PRESETS

    with pytest.raises(SystemExit):
        main(["adapt", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--augment" in help_text and all(name in help_text for name in PRESETS)


def test_unknown_augmentation_preset_is_one_line_naming_the_presets(tone_data, tmp_path, capsys):
    assert main(["adapt", "--train", str(tone_data["train"]), "--test", str(tone_data["test"]),
                 "--out", str(tmp_path / "run"), "--augment", "reverb,hall", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'hall'" in err[0] and "telephone" in err[0] and not (tmp_path / "run").exists()


def test_adapt_with_augment_real_runs_and_resume_with_other_presets_is_refused(tone_data, tiny_model_dir, tmp_path,
                                                                                monkeypatch, capsys):
    import speechtl.adapt.run as run

    out = tmp_path / "run"
    args = ["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--dev",
            str(tone_data["dev"]), "--out", str(out), *FAST]

    class Killed(BaseException):  # like a kill after training: the checkpoint stays for --resume
        pass

    def die(result):
        raise Killed

    monkeypatch.setattr(run, "render_report", die)
    with pytest.raises(Killed):
        main([*args, "--augment", "real"])
    assert json.loads((out / "run_config.json").read_text())["training"]["augment"] == "real"
    assert json.loads((out / "results.json").read_text())["train"]["steps"] == 4
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*args, "--augment", "real,telephone", "--resume"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("adapt: ")]
    assert len(err) == 1 and "augment 'real' → 'real,telephone'" in err[0], err
    assert main([*args, "--augment", "real", "--resume"]) == 0


@pytest.mark.parametrize("debug_at", ["none", "before-verb", "after-verb"])
def test_a_bug_is_one_line_and_exit_1_and_debug_shows_the_traceback(debug_at, tiny_model_dir, tone_data,
                                                                     monkeypatch, capsys):
    import speechtl.eval

    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero in a bug")

    monkeypatch.setattr(speechtl.eval, "evaluate_manifests", bug)
    argv = ["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--quiet"]
    argv = {"none": argv, "before-verb": ["--debug", *argv], "after-verb": [*argv, "--debug"]}[debug_at]
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("speechtl evaluate: internal error: ZeroDivisionError: division by zero in a bug")
    if debug_at == "none":
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "run again with --debug" in last
    else:
        assert err.startswith("Traceback") and "in bug" in err and "--debug" not in last


@pytest.mark.parametrize("debug", [False, True])
def test_bad_input_is_one_line_and_exit_2_with_its_traceback_on_debug(debug, tiny_model_dir, tmp_path, capsys):
    argv = ["evaluate", str(tiny_model_dir), str(tmp_path / "missing.jsonl"), "--quiet"] + ["--debug"] * debug
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"speechtl evaluate: error: manifest not found: {tmp_path / 'missing.jsonl'}"
    assert ("Traceback" in err) == debug and (len(err.strip().splitlines()) == 1) != debug
