"""speechtl check: each listed problem is caught by its own test, on audio written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtl.check import check_manifests, frames_for, infer_role
from speechtl.data.dataset import frames_needed
from speechtl.cli import main
from speechtl.models import load_model


def tone(seconds: float, sr: int = 16_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


def make_set(folder: Path, name: str, rows: list[dict]) -> Path:
    """rows: id, text, and either seconds (a tone is written; sr, channels, seed optional) or audio_path."""
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    lines = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("seconds", "sr", "channels", "seed")}
        if "audio_path" not in row:
            row["audio_path"] = f"wav/{name}-{r['id']}.wav"
            sf.write(folder / row["audio_path"], tone(r["seconds"], r.get("sr", 16_000), r.get("channels", 1),
                                                      r.get("seed", len(lines))), r.get("sr", 16_000))
        lines.append(json.dumps(row))
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def clean_rows(n: int = 4, prefix: str = "u", speaker: str = "spk") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": ["ab ba", "cab", "abc ab", "ba cc"][i % 4], "seconds": 1.0,
             "speaker": f"{speaker}{i % 2}", "seed": sum(map(ord, prefix)) + i} for i in range(n)]


def checks(report, severity: str | None = None) -> set[str]:
    return {p.check for p in report.problems if severity in (None, p.severity)}


def test_a_clean_set_has_no_problem(tmp_path: Path):
    report = check_manifests([str(make_set(tmp_path, "test", clean_rows()))])
    assert report.problems == []
    (summary,) = report.manifests
    assert (summary.role, summary.num_utts, summary.num_speakers) == ("test", 4, 2)
    assert summary.minutes == pytest.approx(4 / 60)
    assert summary.sampling_rates == {"16000": 4} and summary.channels == {"1": 4}


def test_unreadable_audio(tmp_path: Path):
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    rows = clean_rows(2) + [{"id": "bad", "text": "ab", "audio_path": "wav/corrupt.wav"},
                            {"id": "gone", "text": "ab", "audio_path": "wav/missing.wav"}]
    report = check_manifests([str(make_set(tmp_path, "test", rows))])
    bad = [(p.utterance, p.severity) for p in report.problems if p.check == "audio-unreadable"]
    assert bad == [("bad", "error"), ("gone", "error")]


def test_silent_audio_is_unreadable(tmp_path: Path):
    (tmp_path / "wav").mkdir()
    sf.write(tmp_path / "wav" / "silent.wav", np.zeros(16_000), 16_000)
    path = make_set(tmp_path, "x", [{"id": "s", "text": "ab", "audio_path": "wav/silent.wav"}])
    report = check_manifests([str(path)])
    assert [p.message for p in report.problems if p.check == "audio-unreadable"][0].endswith(
        "silent audio (every sample below 1e-06)")


def test_low_sample_rate_and_several_channels_are_warnings(tmp_path: Path):
    rows = clean_rows(2) + [{"id": "tel", "text": "ab", "seconds": 1.0, "sr": 8000},
                            {"id": "st", "text": "ab", "seconds": 1.0, "channels": 2}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))])
    assert {(p.check, p.utterance, p.severity) for p in report.problems} == {
        ("sample-rate", "tel", "warning"), ("channels", "st", "warning")}
    assert report.manifests[0].sampling_rates == {"16000": 3, "8000": 1}
    assert report.manifests[0].channels == {"1": 3, "2": 1}


def test_audio_too_short_for_its_transcript(tmp_path: Path):
    # 0.2 s = 9 wav2vec2 frames; "abc abc abc" = 11 labels → CTC cannot align it
    rows = clean_rows(2) + [{"id": "short", "text": "abc abc abc", "seconds": 0.2}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))])
    (p,) = report.problems
    assert (p.check, p.utterance, p.severity) == ("too-short", "short", "error")
    assert "gives 9 frames but its 11-character transcript needs 11" in p.message


def test_repeated_letters_need_a_blank_between_them():
    assert frames_needed("ab|ba") == 5
    assert frames_needed("cc") == 3  # c, blank, c
    assert frames_needed("aaa") == 5
    assert frames_needed([7, 7, 9]) == 4  # token ids, as the training labels are


def test_frames_for_matches_the_model(tiny_model_dir: Path):
    model, _ = load_model(str(tiny_model_dir))
    conv = (tuple(model.config.conv_kernel), tuple(model.config.conv_stride))
    for n in (400, 16_000, 12_345):
        assert frames_for(n, conv) == int(model._get_feat_extract_output_lengths(torch.tensor(n)))
    assert frames_for(16_000) == 49  # wav2vec2's 20 ms frames


def test_duration_outlier(tmp_path: Path):
    rows = clean_rows(12) + [{"id": "slow", "text": "ab", "seconds": 4.0}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))])
    (p,) = report.problems
    assert (p.check, p.utterance, p.severity) == ("duration-outlier", "slow", "warning")


def test_duration_s_that_disagrees_with_the_file(tmp_path: Path):
    rows = clean_rows(2) + [{"id": "d", "text": "ab", "seconds": 1.0, "duration_s": 2.5}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))])
    assert [(p.check, p.utterance) for p in report.problems] == [("duration-mismatch", "d")]


@pytest.mark.parametrize("text", ["", "   ", "?!"])
def test_empty_text_is_an_error(tmp_path: Path, text: str):
    rows = clean_rows(2) + [{"id": "e", "text": text, "seconds": 1.0}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))])
    assert [(p.check, p.utterance, p.severity) for p in report.problems] == [("empty-text", "e", "error")]


@pytest.mark.parametrize("text, reason", [("ab 42 ba", "digits"), ("ab [noise] ba", "markup"),
                                          ("ab\x07ba", "control characters"), ("aaaaab", "repeated")])
def test_odd_text_is_a_warning(tmp_path: Path, text: str, reason: str):
    rows = clean_rows(2) + [{"id": "odd", "text": text, "seconds": 1.0}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))])
    odd = [p for p in report.problems if p.check == "odd-text"]
    assert [(p.utterance, p.severity) for p in odd] == [("odd", "warning")] and reason in odd[0].message


def test_characters_outside_the_model_vocabulary(tmp_path: Path, tiny_model_dir: Path):
    rows = clean_rows(2) + [{"id": "o", "text": "abd cab", "seconds": 1.0}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))], model=str(tiny_model_dir))
    (p,) = report.problems
    assert (p.check, p.utterance, p.severity) == ("oov", "o", "error")
    assert p.message.startswith("'d' ×1 is not in")


def test_duplicate_ids(tmp_path: Path):
    rows = clean_rows(2) + [{"id": "u0", "text": "ab", "seconds": 1.5, "seed": 50}]
    report = check_manifests([str(make_set(tmp_path, "x", rows))])
    assert [(p.check, p.utterance, p.severity) for p in report.problems] == [("duplicate-id", "u0", "error")]


def test_duplicate_audio(tmp_path: Path):
    path = make_set(tmp_path, "x", clean_rows(2))
    with open(path, "a", encoding="utf-8") as f:  # a second line pointing at u0's file
        f.write(json.dumps({"id": "copy", "text": "ab ba", "audio_path": "wav/x-u0.wav"}) + "\n")
    report = check_manifests([str(path)])
    (p,) = report.problems
    assert (p.check, p.utterance, p.severity) == ("duplicate-audio", "copy", "warning")
    assert "'u0'" in p.message


def test_speaker_overlap_between_train_and_test(tmp_path: Path):
    train = make_set(tmp_path, "train", clean_rows(4, "tr", speaker="spk"))
    test = make_set(tmp_path, "test", [dict(r, text="ba ab") for r in clean_rows(2, "te", speaker="spk")])
    report = check_manifests([str(train), str(test)])
    assert {(p.check, p.severity) for p in report.problems} == {("speaker-overlap", "warning")}
    assert "2 speakers in both" in report.problems[0].message


def test_sentence_overlap_between_train_and_dev(tmp_path: Path):
    train = make_set(tmp_path, "train", clean_rows(4, "tr", speaker="a"))
    dev = make_set(tmp_path, "dev", [{"id": "d0", "text": "Cab!", "seconds": 1.0, "speaker": "b", "seed": 77}])
    report = check_manifests([str(train), str(dev)])
    (p,) = report.problems
    assert (p.check, p.utterance, p.severity) == ("sentence-overlap", "d0", "warning")
    assert "'cab'" in p.message


def test_the_same_audio_in_train_and_test_is_an_error(tmp_path: Path):
    train = make_set(tmp_path, "train", clean_rows(2, "tr", speaker="a"))
    test = make_set(tmp_path, "test", [{"id": "t0", "text": "cc ba", "audio_path": "wav/train-tr0.wav",
                                        "speaker": "b"}])
    report = check_manifests([str(train), str(test)])
    assert [(p.check, p.severity) for p in report.problems] == [("audio-overlap", "error")]


def test_no_overlap_check_between_manifests_of_one_role_or_without_a_role(tmp_path: Path):
    a = make_set(tmp_path / "a", "test", clean_rows(2, "x", speaker="s"))
    b = make_set(tmp_path / "b", "test", clean_rows(2, "y", speaker="s"))
    c = make_set(tmp_path / "c", "extra", clean_rows(2, "z", speaker="s"))
    assert check_manifests([str(a), str(b), str(c)]).problems == []


@pytest.mark.parametrize("path, role", [("data/train.jsonl", "train"), ("en-us-dev-4min-seed0/manifest.jsonl", "dev"),
                                        ("x/valid.csv", "dev"), ("corpus/test_clean.jsonl", "test"),
                                        ("en-us-replay-30min/manifest.jsonl", "train"), ("contest/all.jsonl", "")])
def test_roles_from_file_names(path: str, role: str):
    assert infer_role(path) == role


def test_cli_table_json_and_exit_codes(tmp_path: Path, capsys):
    clean = make_set(tmp_path / "c", "test", clean_rows())
    assert main(["check", str(clean), "--quiet"]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out
    bad = make_set(tmp_path / "b", "dev", clean_rows(2) + [{"id": "e", "text": "", "seconds": 1.0},
                                                           {"id": "n", "text": "ab 7", "seconds": 1.0}])
    assert main(["check", str(bad), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "ERROR empty-text (1)" in out and "WARNING odd-text (1)" in out
    assert main(["check", "--train", str(bad), "--quiet", "--output-format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["manifests"][0]["role"] == "train"
    assert (result["num_errors"], result["num_warnings"]) == (1, 1)
    warn_only = make_set(tmp_path / "w", "test", clean_rows(2) + [{"id": "n", "text": "ab 7", "seconds": 1.0}])
    assert main(["check", str(warn_only), "--quiet"]) == 0
    assert main(["check", str(warn_only), "--quiet", "--strict"]) == 1


def test_cli_bad_model_is_a_one_line_error(tmp_path: Path, capsys):
    clean = make_set(tmp_path, "test", clean_rows(2))
    assert main(["check", str(clean), "--model", str(tmp_path / "nomodel"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("speechtl check: error: cannot load model")


def test_the_same_manifest_as_train_and_test_is_an_error(tone_data, capsys):
    from speechtl.cli import main

    rc = main(["check", "--train", str(tone_data["train"]), "--test", str(tone_data["train"])])
    out = capsys.readouterr().out
    assert rc == 1 and "ERROR same-file" in out and "both the train and the test set" in out


def test_adapt_refuses_a_test_set_that_shares_utterances_with_training(tone_data, tiny_model_dir, tmp_path, capsys):
    from speechtl.cli import main
    from speechtl.data.manifest import read_manifest, write_manifest

    train = read_manifest(tone_data["train"])
    test = read_manifest(tone_data["test"])[:2] + train[:1]  # one training utterance slipped into the test set
    write_manifest(test, tmp_path / "test.jsonl")
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--test",
               str(tmp_path / "test.jsonl"), "--out", str(tmp_path / "run"), "--quiet", "--max-steps", "1"])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("adapt: ")]
    assert rc == 2 and len(err) == 1 and "shares 1 utterance id(s)" in err[0] and "1 audio file(s)" in err[0]
    assert not (tmp_path / "run").exists()
