"""The Free Spoken Digit Dataset importer (speechtl.data.fsdd) and `speechtl prepare fsdd`: on a fixture folder
written here in FSDD's layout (every error case) and on the real corpus in ../shared/data/fsdd when present."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtl.audio import AudioError
from speechtl.cli import main
from speechtl.data.fsdd import DIGIT_WORDS, prepare_fsdd
from speechtl.data.manifest import ManifestError, read_manifest

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"  # ../shared/data beside the repo
NO_FSDD = f"FSDD not found at {FSDD} (expected ../shared/data beside the repository, see its README)"
SPEAKERS_TSV = "speaker\tgender\taccent\tlanguage\nann\tfemale\tUSA/neutral\tenglish\nbo\tmale\tDEU/German\tenglish\n"


@pytest.fixture
def fsdd(tmp_path) -> Path:
    """recordings/ with 2 speakers × 3 digits × 2 takes (8 kHz, as FSDD) and speakers.tsv beside it."""
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for speaker in ("ann", "bo"):
        for digit in (0, 3, 9):
            for index in (0, 1):
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", (0.1 * rng.standard_normal(2400)).astype(np.float32),
                         8000)
    (tmp_path / "fsdd" / "speakers.tsv").write_text(SPEAKERS_TSV, encoding="utf-8")
    return folder


def test_fsdd_layout_to_utterances(fsdd, tmp_path):
    utts = prepare_fsdd(fsdd, out=tmp_path / "m.jsonl")
    assert len(utts) == 12 and read_manifest(tmp_path / "m.jsonl") == utts
    by_id = {u.id: u for u in utts}
    u = by_id["3_bo_1"]
    assert (u.text, u.speaker, u.accent, u.gender, u.language) == ("three", "bo", "DEU/German", "male", "en")
    assert u.audio_path == fsdd / "3_bo_1.wav" and u.duration_s == pytest.approx(0.3)
    assert {x.text for x in utts} == {"zero", "three", "nine"} and by_id["9_ann_0"].accent == "USA/neutral"


def test_fsdd_without_speakers_tsv_has_no_accent(fsdd):
    (fsdd.parent / "speakers.tsv").unlink()
    utts = prepare_fsdd(fsdd)
    assert len(utts) == 12 and {u.accent for u in utts} == {""} and {u.gender for u in utts} == {""}


def test_fsdd_speaker_selection(fsdd):
    assert {u.speaker for u in prepare_fsdd(fsdd, speakers=["bo"])} == {"bo"}
    assert {u.speaker for u in prepare_fsdd(fsdd, exclude_speakers=["bo"])} == {"ann"}
    for kw, flag in ((dict(speakers=["bo", "zed"]), "--speakers"), (dict(exclude_speakers=["zed"]),
                                                                     "--exclude-speakers")):
        with pytest.raises(ManifestError, match=rf"{flag}: unknown speaker\(s\) zed; the recordings have ann, bo"):
            prepare_fsdd(fsdd, **kw)
    with pytest.raises(ManifestError, match="no utterances"):
        prepare_fsdd(fsdd, speakers=["bo"], exclude_speakers=["bo"])


def test_fsdd_bad_file_name_stops_or_is_skipped(fsdd, capsys):
    sf.write(fsdd / "three_ann_2.wav", np.zeros(2400, np.float32), 8000)
    with pytest.raises(ManifestError, match=r"three_ann_2\.wav: name is not \{digit\}_\{speaker\}_\{index\}\.wav"):
        prepare_fsdd(fsdd)
    capsys.readouterr()
    utts = prepare_fsdd(fsdd, on_error="skip")
    assert len(utts) == 12 and "three_ann_2" not in {u.id for u in utts}
    assert "skipped 'three_ann_2.wav'" in capsys.readouterr().err


def test_fsdd_cut_short_file_is_skipped_by_finish_import(fsdd, capsys):
    (fsdd / "0_ann_0.wav").write_bytes((fsdd / "0_ann_0.wav").read_bytes()[:100])  # header promises more
    with pytest.raises(AudioError, match="0_ann_0.*cut short"):
        prepare_fsdd(fsdd)
    assert "0_ann_0" not in {u.id for u in prepare_fsdd(fsdd, on_error="skip")}


def test_fsdd_malformed_speakers_tsv(fsdd):
    (fsdd.parent / "speakers.tsv").write_text("name\taccent\nann\tUSA\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"speakers\.tsv:1: header lacks the 'speaker' column"):
        prepare_fsdd(fsdd)
    (fsdd.parent / "speakers.tsv").write_text(SPEAKERS_TSV + "ann\tmale\tX\tenglish\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"speakers\.tsv:4: speaker 'ann' listed twice"):
        prepare_fsdd(fsdd)


def test_prepare_fsdd_command(fsdd, tmp_path, capsys):
    out = tmp_path / "train.jsonl"
    assert main(["prepare", "fsdd", str(fsdd), "--exclude-speakers", "bo", "--out", str(out)]) == 0
    assert f"wrote {out}: 6 utterances" in capsys.readouterr().out
    assert {u.speaker for u in read_manifest(out)} == {"ann"}
    assert main(["prepare", "fsdd", str(fsdd), "--speakers", "zed", "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speechtl prepare: error: --speakers: unknown speaker(s) zed") and err.count("\n") == 1
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason=NO_FSDD)
def test_fsdd_on_the_real_corpus(tmp_path):
    """The shipped FSDD: 6 speakers × 10 digits × 50 takes; held-out speakers never in the training manifest."""
    every = prepare_fsdd(FSDD / "recordings")
    speakers = Counter(u.speaker for u in every)
    assert len(every) == 3000 and len(speakers) == 6 and set(speakers.values()) == {500}
    assert Counter(u.text for u in every) == {w: 300 for w in DIGIT_WORDS}
    assert all(u.accent and u.language == "en" and 0.1 < u.duration_s < 3.0 for u in every)
    held_out = ["theo", "george"]
    train = prepare_fsdd(FSDD / "recordings", exclude_speakers=held_out, out=tmp_path / "fsdd_train.jsonl")
    dev = prepare_fsdd(FSDD / "recordings", speakers=held_out)
    assert {u.speaker for u in train} == set(speakers) - set(held_out) and {u.speaker for u in dev} == set(held_out)
    assert len(train) + len(dev) == 3000
    assert [(u.id, u.text, u.speaker) for u in read_manifest(tmp_path / "fsdd_train.jsonl")] == \
        [(u.id, u.text, u.speaker) for u in train]
