"""Importers for the layouts accent corpora ship in, each on a small fixture written here in that exact layout:
CMU ARCTIC, L2-ARCTIC, a Hugging Face audio folder and save_to_disk dataset, lhotse manifests; malformed rows
are reported by file and line; `speechtl prepare <layout>` writes a manifest that reads back."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtl.cli import main
from speechtl.data.arctic import prepare_cmu_arctic, prepare_l2_arctic
from speechtl.data.hf_datasets import prepare_hf_audiofolder, prepare_hf_disk
from speechtl.data.lhotse_manifests import prepare_lhotse
from speechtl.data.manifest import ManifestError, read_manifest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fixtures"  # ../shared beside the repo
PROMPTS = ['( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )',
           '( arctic_a0002 "Not at this particular case, Tom, apologized Whittemore." )']


def write_audio(path: Path, seconds: float = 0.5, sr: int = 16_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)


@pytest.fixture
def cmu_voice(tmp_path):
    voice = tmp_path / "cmu_us_awb_arctic"
    for pid in ("arctic_a0001", "arctic_a0002"):
        write_audio(voice / "wav" / f"{pid}.wav")
    (voice / "etc").mkdir()
    (voice / "etc" / "txt.done.data").write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return voice


def test_cmu_arctic(cmu_voice, tmp_path):
    utts = prepare_cmu_arctic(cmu_voice, tmp_path / "awb.jsonl")
    assert [(u.id, u.speaker, u.accent, u.language) for u in utts] == [
        ("awb-arctic_a0001", "awb", "Scottish English", "en"), ("awb-arctic_a0002", "awb", "Scottish English", "en")]
    assert utts[0].text == "Author of the danger trail, Philip Steels, etc."
    assert read_manifest(tmp_path / "awb.jsonl") == utts


@pytest.mark.parametrize("line, message", [
    ("arctic_a0003 no parentheses", r"txt\.done\.data:3: expected \( ID \"text\" \)"),
    ('( arctic_a0003 "" )', r"txt\.done\.data:3: expected"),
    ('( arctic_a0001 "again" )', r"txt\.done\.data:3: prompt 'arctic_a0001' listed twice \(first on line 1\)"),
    ('( arctic_a0003 "Recorded nowhere." )', r"txt\.done\.data:3: no audio file .*arctic_a0003\.wav .*--skip-missing"),
])
def test_cmu_arctic_malformed_line_is_reported_by_line(cmu_voice, line, message):
    with open(cmu_voice / "etc" / "txt.done.data", "a", encoding="utf-8") as f:
        f.write(line + "\n")
    with pytest.raises(ManifestError, match=message):
        prepare_cmu_arctic(cmu_voice)


def test_cmu_arctic_skip_missing(cmu_voice, capsys):
    with open(cmu_voice / "etc" / "txt.done.data", "a", encoding="utf-8") as f:
        f.write('( arctic_a0003 "Recorded nowhere." )\n')
    assert len(prepare_cmu_arctic(cmu_voice, skip_missing=True, speaker="me")) == 2
    assert "skipped 1 prompt(s) without audio" in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED / "cmu_arctic_samples").is_dir(), reason="../shared/data fixtures not present")
def test_cmu_arctic_on_real_recordings(tmp_path):
    """Real CMU ARCTIC clips (speaker aew, 16 kHz) laid out as the voice folders ship, real prompt lines."""
    voice = tmp_path / "cmu_us_aew_arctic"
    for k in (1, 2, 3):
        (voice / "wav").mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED / "cmu_arctic_samples" / "examples" / "input_samples" / f"cmu_arctic_us_aew_a000{k}.wav",
                    voice / "wav" / f"arctic_a000{k}.wav")
    prompts = (SHARED / "cathy_arctic" / "cmuarctic.data").read_text(encoding="utf-8").splitlines()[:3]
    (voice / "etc").mkdir()
    (voice / "etc" / "txt.done.data").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    utts = prepare_cmu_arctic(voice)
    assert [u.id for u in utts] == ["aew-arctic_a0001", "aew-arctic_a0002", "aew-arctic_a0003"]
    assert utts[2].text == "For the twentieth time that evening the two men shook hands."
    assert all(1.0 < u.duration_s < 10.0 for u in utts)


@pytest.fixture
def l2_arctic(tmp_path):
    root = tmp_path / "l2arctic_release_v5.0"
    for spk, nested in (("ABA", False), ("LXC", True)):  # the release zips sometimes nest SPEAKER/SPEAKER
        d = root / spk / spk if nested else root / spk
        for pid, text in (("arctic_a0001", "Author of the danger trail, Philip Steels, etc."),
                          ("arctic_b0002", "Not at this particular case.")):
            write_audio(d / "wav" / f"{pid}.wav")
            (d / "transcript").mkdir(parents=True, exist_ok=True)
            (d / "transcript" / f"{pid}.txt").write_text(text, encoding="utf-8")
        (d / "annotation").mkdir()  # TextGrids of a subset: ignored
    return root


def test_l2_arctic(l2_arctic, tmp_path):
    utts = prepare_l2_arctic(l2_arctic, tmp_path / "l2.jsonl")
    assert [(u.id, u.speaker, u.accent, u.gender) for u in utts] == [
        ("ABA-arctic_a0001", "ABA", "ar-L1 English", "m"), ("ABA-arctic_b0002", "ABA", "ar-L1 English", "m"),
        ("LXC-arctic_a0001", "LXC", "zh-L1 English", "f"), ("LXC-arctic_b0002", "LXC", "zh-L1 English", "f")]
    assert read_manifest(tmp_path / "l2.jsonl") == utts


def test_l2_arctic_malformed_transcripts(l2_arctic):
    (l2_arctic / "ABA" / "transcript" / "arctic_b0002.txt").write_text("first\n\nsecond\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"ABA/transcript/arctic_b0002\.txt:3: one line of text expected"):
        prepare_l2_arctic(l2_arctic)
    (l2_arctic / "ABA" / "transcript" / "arctic_b0002.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"arctic_b0002\.txt:1: empty transcript"):
        prepare_l2_arctic(l2_arctic)
    (l2_arctic / "ABA" / "transcript" / "arctic_b0002.txt").unlink()
    with pytest.raises(ManifestError, match=r"arctic_b0002\.txt: transcript not found"):
        prepare_l2_arctic(l2_arctic)


@pytest.fixture
def audiofolder(tmp_path):
    folder = tmp_path / "my_dataset" / "train"
    write_audio(folder / "data" / "0001.wav")
    write_audio(folder / "data" / "0002.flac", 0.25)
    (folder / "metadata.csv").write_text('file_name,transcription,speaker_id,accent\n'
                                         'data/0001.wav,"Hello, world",spk1,Scottish\n'
                                         'data/0002.flac,Good night,spk2,\n', encoding="utf-8")
    return folder


def test_hf_audiofolder(audiofolder, tmp_path):
    utts = prepare_hf_audiofolder(audiofolder, tmp_path / "hf.jsonl", language="en")
    assert [(u.id, u.text, u.speaker, u.accent, u.duration_s) for u in utts] == [
        ("0001", "Hello, world", "spk1", "Scottish", 0.5), ("0002", "Good night", "spk2", "", 0.25)]
    assert read_manifest(tmp_path / "hf.jsonl") == utts
    (audiofolder / "metadata.csv").unlink()
    (audiofolder / "metadata.jsonl").write_text('{"file_name": "data/0001.wav", "sentence": "hi"}\n', encoding="utf-8")
    (utt,) = prepare_hf_audiofolder(audiofolder)
    assert (utt.id, utt.text) == ("0001", "hi")


@pytest.mark.parametrize("row, message", [
    ("data/0003.wav,lost,spk3,", r"metadata\.csv:4: audio file not found: .*0003\.wav"),
    ("data/0001.wav,,spk1,", r"metadata\.csv:4: empty transcript in column 'transcription'"),
    ("data/0001.wav,again,spk1,", r"metadata\.csv:4: utterance id '0001' .* repeats line 2"),
    ("data/0001.wav,a,b,c,d", r"metadata\.csv:4: the number of fields differs"),
])
def test_hf_audiofolder_malformed_row_is_reported_by_line(audiofolder, row, message):
    with open(audiofolder / "metadata.csv", "a", encoding="utf-8") as f:
        f.write(row + "\n")
    with pytest.raises(ManifestError, match=message):
        prepare_hf_audiofolder(audiofolder)


def test_hf_audiofolder_without_a_transcript_column(audiofolder):
    (audiofolder / "metadata.csv").write_text("file_name,label\ndata/0001.wav,3\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"metadata\.csv:2: no transcript column .*\['file_name', 'label'\].*--text-column"):
        prepare_hf_audiofolder(audiofolder)
    assert prepare_hf_audiofolder(audiofolder, text_column="label")[0].text == "3"


def save_to_disk_layout(folder: Path, rows: list[dict]) -> None:
    """What datasets' save_to_disk writes for one split: state.json, dataset_info.json, an Arrow stream."""
    pa = pytest.importorskip("pyarrow")
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                                   "_split": "train"}), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({"features": {"audio": {"_type": "Audio"}}}),
                                              encoding="utf-8")


def test_hf_disk_without_pyarrow_names_the_missing_package(tmp_path, monkeypatch):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "state.json").write_text('{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}', encoding="utf-8")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as where it is not installed (import raises ImportError)
    monkeypatch.setitem(sys.modules, "pyarrow.ipc", None)
    with pytest.raises(ManifestError, match=r"needs the 'pyarrow' package .*pip install pyarrow"):
        prepare_hf_disk(folder, tmp_path / "audio")
    assert main(["prepare", "hf-disk", str(folder), "--audio-out", str(tmp_path / "a"), "--out",
                 str(tmp_path / "m.jsonl")]) == 2


def test_hf_disk_layout_errors_before_reading(tmp_path):
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "dataset_dict.json").write_text('{"splits": ["train", "test"]}', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"a DatasetDict with splits \['train', 'test'\]; choose one with --split"):
        prepare_hf_disk(tmp_path / "dd", tmp_path / "audio")
    with pytest.raises(ManifestError, match="not a save_to_disk dataset"):
        prepare_hf_disk(tmp_path, tmp_path / "audio")


def test_hf_disk_with_pyarrow(tmp_path):
    import io
    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000, dtype=np.float32), 16_000, format="WAV")
    rows = [{"audio": {"bytes": buf.getvalue(), "path": "clip1.wav"}, "text": "hello there", "speaker_id": "s1"},
            {"audio": {"bytes": buf.getvalue(), "path": None}, "text": "bye", "speaker_id": "s2"}]
    save_to_disk_layout(tmp_path / "ds" / "train", rows)
    (tmp_path / "ds" / "dataset_dict.json").write_text('{"splits": ["train"]}', encoding="utf-8")
    utts = prepare_hf_disk(tmp_path / "ds", tmp_path / "audio", tmp_path / "m.jsonl", split="train")
    assert [(u.id, u.text, u.speaker, u.duration_s, u.audio_path.name) for u in utts] == [
        ("train-000000", "hello there", "s1", 0.5, "train-000000.wav"), ("train-000001", "bye", "s2", 0.5, "train-000001.wav")]
    assert read_manifest(tmp_path / "m.jsonl") == utts


def lhotse_lines(recs: list[tuple[str, str, float]], sups: list[dict]) -> tuple[str, str]:
    r = [json.dumps({"id": rid, "sources": [{"type": "file", "channels": [0], "source": src}], "sampling_rate": 16000,
                     "num_samples": int(dur * 16000), "duration": dur, "channel_ids": [0]}) for rid, src, dur in recs]
    s = [json.dumps({"start": 0.0, "channel": 0, "language": "English", **x}) for x in sups]
    return "\n".join(r) + "\n", "\n".join(s) + "\n"


@pytest.fixture
def lhotse_dir(tmp_path):
    corpus = tmp_path / "corpus"
    write_audio(corpus / "wav" / "rec1.wav", 0.5)
    write_audio(corpus / "wav" / "rec2.wav", 0.25)
    recs, sups = lhotse_lines([("rec1", "wav/rec1.wav", 0.5), ("rec2", "wav/rec2.wav", 0.25)],
                              [{"id": "sup1", "recording_id": "rec1", "duration": 0.5, "text": "hello", "speaker": "a",
                                "gender": "f", "custom": {"accent": "Irish", "age": "30"}},
                               {"id": "sup2", "recording_id": "rec2", "duration": 0.25, "text": "bye", "speaker": "b"}])
    (corpus / "manifests").mkdir()
    with gzip.open(corpus / "manifests" / "recordings.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(recs)
    (corpus / "manifests" / "supervisions.jsonl").write_text(sups, encoding="utf-8")
    return corpus / "manifests"


def test_lhotse(lhotse_dir, tmp_path, capsys):
    utts = prepare_lhotse(lhotse_dir / "recordings.jsonl.gz", lhotse_dir / "supervisions.jsonl", tmp_path / "l.jsonl")
    assert [(u.id, u.text, u.speaker, u.gender, u.accent, u.age, u.language, u.duration_s) for u in utts] == [
        ("sup1", "hello", "a", "f", "Irish", "30", "English", 0.5), ("sup2", "bye", "b", "", "", "", "English", 0.25)]
    assert utts[0].audio_path == lhotse_dir.parent / "wav" / "rec1.wav"  # resolved against the manifests' parent
    assert "resolved against" in capsys.readouterr().err
    assert read_manifest(tmp_path / "l.jsonl") == utts


@pytest.mark.parametrize("sup, message", [
    ({"id": "s", "recording_id": "rec9", "duration": 0.5, "text": "x"}, r"supervisions\.jsonl:3: supervision 's' names recording 'rec9'"),
    ({"id": "s", "recording_id": "rec1", "duration": 0.2, "text": "x"}, r"supervisions\.jsonl:3: .*covers 0-0\.2 s of a 0\.5-s recording; segments are not supported"),
    ({"id": "s", "recording_id": "rec2", "duration": 0.25, "text": " "}, r"supervisions\.jsonl:3: .*already has a supervision \(line 2\)"),
])
def test_lhotse_malformed_supervision_is_reported_by_line(lhotse_dir, sup, message):
    with open(lhotse_dir / "supervisions.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(sup) + "\n")
    with pytest.raises(ManifestError, match=message):
        prepare_lhotse(lhotse_dir / "recordings.jsonl.gz", lhotse_dir / "supervisions.jsonl")


def test_lhotse_refuses_command_and_url_sources_and_bad_json(tmp_path, lhotse_dir):
    rec = {"id": "r", "sources": [{"type": "command", "channels": [0], "source": "sox a.flac -t wav -"}], "duration": 1}
    (tmp_path / "r.jsonl").write_text('{"id": "ok", "sources": [{"type": "file", "source": "a.wav"}], "duration": 1}\n'
                                      + json.dumps(rec) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"r\.jsonl:2: recording 'r' has a 'command' source; only 'file'"):
        prepare_lhotse(tmp_path / "r.jsonl", lhotse_dir / "supervisions.jsonl")
    (tmp_path / "r.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"r\.jsonl:1: not valid JSON"):
        prepare_lhotse(tmp_path / "r.jsonl", lhotse_dir / "supervisions.jsonl")


def test_prepare_commands_for_each_layout(cmu_voice, l2_arctic, audiofolder, lhotse_dir, tmp_path, capsys):
    commands = [["cmu-arctic", str(cmu_voice)], ["l2-arctic", str(l2_arctic), "--accent", "x"],
                ["hf-audiofolder", str(audiofolder)],
                ["lhotse", str(lhotse_dir / "recordings.jsonl.gz"), str(lhotse_dir / "supervisions.jsonl")]]
    for k, cmd in enumerate(commands):
        out = tmp_path / f"m{k}.jsonl"
        assert main(["prepare", *cmd, "--out", str(out)]) == 0, cmd
        assert f"wrote {out}: " in capsys.readouterr().out and read_manifest(out)
    (cmu_voice / "etc" / "txt.done.data").write_text("garbage\n", encoding="utf-8")
    assert main(["prepare", "cmu-arctic", str(cmu_voice), "--out", str(tmp_path / "bad.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speechtl prepare: error: ") and "txt.done.data:1" in err and err.count("\n") == 1
