"""Inputs other than audio that must be refused in one line (or skipped and listed), generated here: manifests with
wrong field types, repeated keys or columns, Latin-1 bytes; damaged or inconsistent model folders; Latin-1 and
malformed LM files, LM orders the decoder cannot read; a damaged --resume checkpoint; references that normalise to
nothing. (Damaged audio: tests/test_bad_audio.py.)

Each case goes through the library function that reads it and through a verb (one line on stderr, exit 2, never
a traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from speechtl.cli import main
from speechtl.config import ConfigError
from speechtl.data.manifest import ManifestError, read_manifest, write_manifest
from speechtl.models import ModelLoadError, load_model


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------- manifests

GOOD = {"id": "u1", "audio_path": "a.wav", "text": "ab"}


def _jsonl(*rows: str) -> bytes:
    return "".join(r + "\n" for r in rows).encode()


# case -> (file name, bytes, words the one-line message must hold)
MANIFEST_CASES = {
    "text-list": ("m.jsonl", _jsonl(json.dumps(GOOD), json.dumps({**GOOD, "id": "u2", "text": ["ab"]})),
                  [":2:", "'text'", "a list"]),
    "text-object": ("m.jsonl", _jsonl(json.dumps({**GOOD, "text": {"en": "ab"}})), [":1:", "'text'", "an object"]),
    "text-number": ("m.jsonl", _jsonl(json.dumps({**GOOD, "text": 12})), [":1:", "'text'", "a number"]),
    "text-null": ("m.jsonl", _jsonl(json.dumps({**GOOD, "text": None})), [":1:", "'text'", "null"]),
    "speaker-number": ("m.jsonl", _jsonl(json.dumps({**GOOD, "speaker": 3.5})), [":1:", "'speaker'", "a number"]),
    "duplicate-key": ("m.jsonl", _jsonl(json.dumps(GOOD), '{"id": "u2", "audio_path": "a.wav", "text": "ab", '
                                        '"text": "ba"}'), [":2:", "'text'", "more than once"]),
    "duplicate-csv-column": ("m.csv", b"id,audio_path,text,text\nu1,a.wav,ab,ba\n", [":1:", "'text'", "more than once"]),
    "duplicate-tsv-column": ("m.tsv", b"id\taudio_path\ttext\tid\nu1\ta.wav\tab\tu2\n", [":1:", "'id'", "more than once"]),
    "latin1-line-3": ("m.jsonl", _jsonl(json.dumps(GOOD), json.dumps({**GOOD, "id": "u2"}))
                      + '{"id": "u3", "audio_path": "a.wav", "text": "café"}\n'.encode("latin-1"),
                      [":3:", "not UTF-8", "0xe9"]),
    "latin1-csv": ("m.csv", "id,audio_path,text\nu1,a.wav,naïve\n".encode("latin-1"), [":2:", "not UTF-8"]),
}


def _manifest(case: str, folder: Path) -> Path:
    name, data, _ = MANIFEST_CASES[case]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_bad_manifests_name_file_line_and_field(case, tmp_path):
    path = _manifest(case, tmp_path)
    message = str(pytest.raises(ManifestError, read_manifest, path, check_files=False).value)
    assert message.startswith(str(path)) and "\n" not in message
    for words in MANIFEST_CASES[case][2]:
        assert words in message, (words, message)


@pytest.mark.parametrize("case", [c for c in MANIFEST_CASES if c != "text-null"])
def test_check_refuses_bad_manifests_in_one_line(case, tmp_path, capsys):
    path = _manifest(case, tmp_path)
    assert main(["check", "--test", str(path), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and MANIFEST_CASES[case][2][0] in line


def test_check_reports_a_null_transcript_as_empty_text(tmp_path, capsys):
    path = _manifest("text-null", tmp_path)  # check reads manifests as unlabelled and reports what is missing
    assert main(["check", "--test", str(path), "--quiet", "--output-format", "json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert "empty-text" in {p["check"] for p in problems if p["severity"] == "error"}


def test_null_optional_fields_and_integer_ids_are_read_as_absent_and_text(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(_jsonl(json.dumps({"id": 7, "audio_path": "a.wav", "text": "ab", "speaker": None, "age": 37})))
    (utt,) = read_manifest(path, check_files=False)
    assert (utt.id, utt.speaker, utt.age) == ("7", "", "37")
    path.write_bytes(_jsonl(json.dumps({**GOOD, "text": None})))
    assert read_manifest(path, require_text=False, check_files=False)[0].text == ""  # unlabelled: no transcript


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_a_bom_is_accepted_and_tables_round_trip(suffix, tone_data, tmp_path):
    utts = read_manifest(tone_data["test"])
    path = tmp_path / f"m{suffix}"
    write_manifest(utts, path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    again = read_manifest(path)
    assert [(u.id, u.text, u.audio_path) for u in again] == [(u.id, u.text, u.audio_path) for u in utts]


# ---------------------------------------------------------------- models


def _edit_weights(folder: Path, edit) -> None:
    weights = load_file(folder / "model.safetensors")
    edit(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _edit_vocab(folder: Path, edit) -> None:
    vocab = json.loads((folder / "vocab.json").read_text())
    edit(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))


def _cut(folder: Path, keep: float) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: int(len(data) * keep)])


def _poison(name: str, value: float):
    def edit(w):
        w[name] = w[name].clone()
        w[name].view(-1)[3] = value
    return edit


LAST_TOKEN = 7  # the tiny model's vocabulary: <pad> <s> </s> <unk> | a b c
MODEL_CASES = {
    "missing-head-bias": (lambda d: _edit_weights(d, lambda w: w.pop("lm_head.bias")), ["lm_head.bias", "lack"]),
    "head-rows-vs-config": (lambda d: _edit_weights(d, lambda w: w.update({
        "lm_head.weight": w["lm_head.weight"][:5].clone(), "lm_head.bias": w["lm_head.bias"][:5].clone()})),
        ["vocab_size 8", "5 rows"]),
    "encoder-shape": (lambda d: _edit_weights(d, lambda w: w.update({
        "wav2vec2.encoder.layer_norm.weight": torch.ones(16)})), ["wav2vec2.encoder.layer_norm.weight", "(16,)"]),
    "vocab-fewer": (lambda d: _edit_vocab(d, lambda v: v.pop("c")), ["7 tokens", "8 rows"]),
    "vocab-more": (lambda d: _edit_vocab(d, lambda v: v.update({"d": LAST_TOKEN + 1})), ["9 tokens", "8 rows"]),
    "nan-weight": (lambda d: _edit_weights(d, _poison("lm_head.weight", float("nan"))), ["lm_head.weight", "NaN"]),
    "inf-weight": (lambda d: _edit_weights(d, _poison("wav2vec2.encoder.layers.0.attention.k_proj.weight",
                                                      float("inf"))), ["layers.0.attention.k_proj.weight", "infinite"]),
    "empty-safetensors": (lambda d: _cut(d, 0.0), ["model.safetensors", "damaged"]),
    "truncated-safetensors": (lambda d: _cut(d, 0.5), ["model.safetensors", "damaged"]),
    "huge-header": (lambda d: (d / "model.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}"),
                    ["model.safetensors", "header too large"]),
}


def _bad_model(case: str, tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / f"model-{case}"
    shutil.copytree(tiny_model_dir, folder)
    MODEL_CASES[case][0](folder)
    return folder


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bad_model_folders_are_refused_naming_what(case, tiny_model_dir, tmp_path):
    load_model(str(tiny_model_dir))  # the intact folder loads
    folder = _bad_model(case, tiny_model_dir, tmp_path)
    message = str(pytest.raises(ModelLoadError, load_model, str(folder)).value)
    assert str(folder) in message and "\n" not in message
    for words in MODEL_CASES[case][1]:
        assert words in message, (words, message)


@pytest.mark.parametrize("case", ["missing-head-bias", "vocab-more", "nan-weight", "truncated-safetensors"])
def test_transcribe_refuses_a_bad_model_in_one_line(case, tiny_model_dir, tone_data, tmp_path, capsys):
    folder = _bad_model(case, tiny_model_dir, tmp_path)
    wav = read_manifest(tone_data["test"])[0].audio_path
    assert main(["transcribe", str(folder), str(wav), "--quiet"]) == 2
    assert MODEL_CASES[case][1][0] in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- language models

ARPA_CASES = {  # case -> (text, words the message must hold)
    "one-unigram": ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\tab\n\n\\end\\\n", ["order-1", "2–6"]),
    "order-7": ("\\data\\\n" + "".join(f"ngram {n}=1\n" for n in range(1, 8)), ["order-7", "2–6"]),
    "no-data-line": ("ngram 1=3\n\n\\1-grams:\n", [":1:", "\\data\\"]),
    "bad-count-line": ("\\data\\\nngram 1=3\nngram 3=1\n", [":3:", "ngram 2=COUNT"]),
    "count-mismatch": ("\\data\\\nngram 1=5\nngram 2=0\n\n\\1-grams:\n-1\tab\n-1\tba\n\n\\2-grams:\n\n\\end\\\n",
                       ["5 unigrams", "holds 2"]),
    "bad-entry": ("\\data\\\nngram 1=2\nngram 2=0\n\n\\1-grams:\n-1\tab\nprob ba\n", [":7:", "log10-prob"]),
}


@pytest.fixture
def tone_tokenizer(tiny_model_dir):
    return load_model(str(tiny_model_dir))[1].tokenizer


@pytest.mark.parametrize("case", list(ARPA_CASES))
def test_malformed_arpa_files_are_refused_before_kenlm(case, tone_tokenizer, tmp_path):
    from speechtl.decode.lm import LmDecoder, LmError

    path = tmp_path / f"{case}.arpa"
    path.write_text(ARPA_CASES[case][0])
    message = str(pytest.raises(LmError, LmDecoder, path, tone_tokenizer).value)
    assert message.startswith(str(path)) and "\n" not in message
    for words in ARPA_CASES[case][1]:
        assert words in message, (words, message)


def test_latin1_lm_text_and_arpa_name_file_and_line(tone_data, tiny_model_dir, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_bytes("ab ba\nabc cab\ncafé ab\n".encode("latin-1"))
    assert main(["lm", "build", str(text), "--out", str(tmp_path / "lm.arpa")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{text}:3:" in line and "not UTF-8" in line and not (tmp_path / "lm.arpa").exists()
    text.write_text("ab ba\nabc cab\ncafe ab\n")
    assert main(["lm", "build", str(text), "--out", str(tmp_path / "lm.arpa")]) == 0
    arpa = tmp_path / "lm.arpa"
    arpa.write_bytes(arpa.read_bytes().replace(b"\tcafe", "\tcafé".encode("latin-1")))
    lineno = arpa.read_bytes().split(b"\n").index(next(x for x in arpa.read_bytes().split(b"\n") if b"caf" in x)) + 1
    capsys.readouterr()
    assert main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--lm", str(arpa), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{arpa}:{lineno}:" in line and "not UTF-8" in line


@pytest.mark.parametrize("order, ok", [(1, False), (2, True), (6, True), (7, False)])
def test_lm_build_order_is_bounded_at_parse_time(order, ok, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("ab ba abc\ncab ab\n")
    argv = ["lm", "build", str(text), "--order", str(order), "--out", str(tmp_path / "lm.arpa")]
    if ok:
        assert main(argv) == 0 and (tmp_path / "lm.arpa").is_file()
        from speechtl.decode.ngram import arpa_vocabulary

        assert sorted(arpa_vocabulary(tmp_path / "lm.arpa")) == ["ab", "abc", "ba", "cab"]
    else:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "2–6" in capsys.readouterr().err and not (tmp_path / "lm.arpa").exists()


def test_lm_build_out_naming_a_folder_is_refused_before_counting(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("ab ba abc\n")
    (tmp_path / "lms").mkdir()
    assert main(["lm", "build", str(text), "--out", str(tmp_path / "lms")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "lms") in line and "folder" in line and not any((tmp_path / "lms").iterdir())


# ---------------------------------------------------------------- --resume checkpoints


class _Boom:
    """A pickle that would run a command when unpickled without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


CHECKPOINT_CASES = {
    "malicious-optimizer": ("optimizer.pt", lambda p, tmp: torch.save({"state": _Boom(tmp / "ran")}, p)),
    "garbage-optimizer": ("optimizer.pt", lambda p, tmp: p.write_bytes(b"\x80\x04garbage" * 10)),
    "empty-optimizer": ("optimizer.pt", lambda p, tmp: p.write_bytes(b"")),
    "cut-model": ("model.safetensors", lambda p, tmp: p.write_bytes(p.read_bytes()[:100])),
    "garbage-state": ("trainer_state.json", lambda p, tmp: p.write_text("{not json")),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_a_damaged_resume_checkpoint_is_named_with_the_way_out(case, tiny_model_dir, tmp_path):
    from speechtl.adapt.checkpoint import check_made_with, load_checkpoint, save_checkpoint

    model, _ = load_model(str(tiny_model_dir))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model.train()
    model(torch.randn(1, 4000)).logits.sum().backward()
    optimizer.step()
    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, model, optimizer, scheduler, {"step": 1}, {"lr": 1e-3})
    assert load_checkpoint(folder, model, optimizer, scheduler) == {"step": 1}  # intact: resumes
    name, damage = CHECKPOINT_CASES[case]
    damage(folder / name, tmp_path)
    with pytest.raises(ConfigError) as e:
        check_made_with(folder, {"lr": 1e-3})
        load_checkpoint(folder, model, optimizer, scheduler)
    message = str(e.value)
    assert str(folder / name) in message and f"remove the folder {folder}" in message and "\n" not in message
    assert not (tmp_path / "ran").exists()  # the malicious pickle never ran


# ---------------------------------------------------------------- references empty after normalisation


def test_evaluate_names_or_skips_a_reference_empty_after_normalisation(tiny_model_dir, tone_data, tmp_path, capsys):
    import dataclasses

    utts = read_manifest(tone_data["test"])
    utts[1] = dataclasses.replace(utts[1], text="... ?")
    manifest = tmp_path / "test.jsonl"
    write_manifest(utts, manifest)
    assert main(["evaluate", str(tiny_model_dir), str(manifest), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(manifest) in line and repr(utts[1].id) in line and "empty after normalisation" in line
    out = tmp_path / "eval"
    assert main(["evaluate", str(tiny_model_dir), str(manifest), "--quiet", "--on-error", "skip",
                 "--out", str(out)]) == 0
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"skipped test/{utts[1].id}:") and "empty after normalisation" in line
    results = json.loads((out / "results.json").read_text())
    assert results["sets"]["test"]["num_utts"] == len(utts) - 1
    assert [s["id"] for s in results["skipped"]] == [utts[1].id]


# ---------------------------------------------------------------- training data in an evaluation set


def _copy_set(utts, folder: Path, id_prefix: str = "", copy_audio: bool = False) -> list:
    """``utts`` as another set in ``folder``: ids renamed (``id_prefix``), audio copied there (``copy_audio``)."""
    import dataclasses

    (folder / "wav").mkdir(parents=True, exist_ok=True)
    out = []
    for u in utts:
        path = u.audio_path
        if copy_audio:
            path = folder / "wav" / Path(u.audio_path).name
            shutil.copy(u.audio_path, path)
        out.append(dataclasses.replace(u, id=id_prefix + u.id, audio_path=path))
    return out


LEAKS = {  # how the training set reaches an evaluation set; the flag it comes in by; what the error names
    "same-file": lambda train, d: (train, "--test", "shares"),
    "copy-named-train": lambda train, d: (_write(_copy_set(read_manifest(train), d), d / "train.jsonl"), "--test",
                                          "shares"),
    "copied-audio-other-ids": lambda train, d: (_write(_copy_set(read_manifest(train), d, "x-", True),
                                                       d / "test.jsonl"), "--test", "same audio"),
    "copied-audio-in-dev": lambda train, d: (_write(_copy_set(read_manifest(train)[:2], d, "x-", True),
                                                    d / "dev.jsonl"), "--dev", "same audio"),
}


def _write(utts, path: Path) -> Path:
    write_manifest(utts, path)
    return path


@pytest.mark.parametrize("case", list(LEAKS))
def test_adapt_refuses_training_data_in_an_evaluation_set(case, tone_data, tiny_model_dir, tmp_path, capsys):
    leak, flag, what = LEAKS[case](tone_data["train"], tmp_path / "leak")
    sets = {"--test": str(tone_data["test"]), flag: str(leak)}  # the leak replaces the test set or adds a dev set
    argv = ["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--out", str(tmp_path / "run"),
            "--quiet", "--max-steps", "1", *(a for item in sets.items() for a in item)]
    assert main(argv) == 2
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if not line.startswith("adapt: "))
    line = one_error_line(err)
    assert line.startswith("speechtl adapt: error:") and str(leak) in line and what in line, line
    assert not (tmp_path / "run").exists()  # refused before any work: nothing written


def test_self_training_refuses_copies_of_test_audio_among_the_unlabelled(tone_data, tiny_model_dir, tmp_path, capsys):
    unlabelled = tmp_path / "unlabelled"
    _copy_set(read_manifest(tone_data["train"])[:3] + read_manifest(tone_data["test"])[:1], unlabelled, "",
              copy_audio=True)  # the last one: a test recording under the unlabelled folder
    assert main(["adapt", "--model", str(tiny_model_dir), "--unlabelled", str(unlabelled / "wav"), "--dev",
                 str(tone_data["dev"]), "--test", str(tone_data["test"]), "--out", str(tmp_path / "run"), "--quiet",
                 "--max-steps", "1"]) == 2
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if not line.startswith("adapt: "))
    line = one_error_line(err)
    assert str(tone_data["test"]) in line and "also in the unlabelled set" in line, line
    assert not (tmp_path / "run").exists()


def test_a_held_out_test_set_named_like_the_training_set_is_scored_not_trained_on(tone_data, tiny_model_dir,
                                                                                  tmp_path, capsys):
    test = _write(read_manifest(tone_data["test"]), tmp_path / "held" / "train.jsonl")  # other utterances
    assert main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--test", str(test),
                 "--out", str(tmp_path / "run"), "--quiet", "--max-steps", "1", "--output-format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    train_s = sum(u.duration_s for u in read_manifest(tone_data["train"]))
    assert result["labelled_minutes"] == pytest.approx(train_s / 60, abs=1e-3)  # trained on --train, not --test
    (name, scored), = result["sets"].items()
    assert name != "train" and scored["manifest"] == str(test)
    assert scored["before"]["num_utts"] == len(read_manifest(test))


# ---------------------------------------------------------------- user text written into reports and tables

PAYLOAD_IDS = ['=HYPERLINK("http://evil","x")', "@SUM(1+1)", "+cmd|calc", "-2+3", "<img src=x onerror=alert(1)>"]


def test_evaluate_writes_formula_ids_as_text_in_its_hypothesis_table(tiny_model_dir, tone_data, tmp_path):
    import csv
    import dataclasses

    utts = [dataclasses.replace(u, id=i) for u, i in zip(read_manifest(tone_data["test"]) * 2, PAYLOAD_IDS)]
    manifest = _write(utts, tmp_path / "evil.jsonl")
    assert main(["evaluate", str(tiny_model_dir), str(manifest), "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    with (tmp_path / "ev" / "hyps" / "evil.tsv").open(encoding="utf-8", newline="") as f:
        ids = [r["id"] for r in csv.DictReader(f, delimiter="\t")]
    assert ids == [("'" + i if i[0] in "=@+-" else i) for i in PAYLOAD_IDS]  # a spreadsheet shows them, runs none


def test_markdown_text_leaves_no_link_image_or_markup():
    from speechtl.writers import markdown_text

    text = markdown_text("[click](http://evil) ![x](http://evil/p.png) <b>b</b> a|b\nnext")
    assert not any(c in text for c in "[]<>\n") and "\\|" in text


def test_compare_tables_escape_user_text_but_print_their_own_intervals_plainly():
    """A set or model name is inert Markdown; the intervals speechtl writes read as they are (no entities)."""
    from speechtl.compare.tables import Table, _delta, _interval

    r = {"wer": 0.5, "wer_low": 0.4, "wer_high": 0.6, "delta_wer": -0.1, "delta_wer_low": -0.15,
         "delta_wer_high": -0.05, "p_value": 0.001}
    table = Table("WER", ["set", "[m](http://evil)"], [[("[x](http://evil)", ""), (_interval(r), "")],
                                                        [("y", ""), (_delta(r, 1000)[0], "better")]])
    md = table.markdown()
    assert "(http://evil)" in md and "](" not in md and "&#91;x&#93;" in md and "&#91;m&#93;" in md
    assert "| 50.0 (40.0–60.0) |" in md and "**-10.0 (-15.0, -5.0) p ≤0.002**" in md
