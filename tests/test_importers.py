"""Importers on small fixtures written here: Common Voice TSV, a folder + id<TAB>text, a Kaldi data folder;
malformed rows are reported by file and line number; `speechtl prepare` writes a manifest that reads back."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechtl.cli import main
from speechtl.data.importers import prepare_commonvoice, prepare_folder, prepare_kaldi
from speechtl.data.manifest import ManifestError, read_manifest

CV_HEADER = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"


def write_audio(path, seconds: float = 0.5, sr: int = 16_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)


def cv_row(client: str, clip: str, sentence: str, accents: str = "", locale: str = "es") -> str:
    return "\t".join([client, clip, "sid", sentence, "", "2", "0", "twenties", "", accents, "", locale, ""])


@pytest.fixture
def commonvoice(tmp_path):
    root = tmp_path / "cv-corpus" / "es"
    for k in range(3):
        write_audio(root / "clips" / f"common_voice_es_{k}.wav", 0.5 + 0.25 * k)
    rows = [cv_row("abc123", "common_voice_es_0.wav", '¿Dónde está "el" niño?', "España: centro-sur"),
            cv_row("abc123", "common_voice_es_1.wav", "El señor come piña."),
            cv_row("def456", "common_voice_es_2.wav", "¡Hola!", "México")]
    (root / "train.tsv").write_text("\n".join([CV_HEADER, *rows]) + "\n", encoding="utf-8")
    (root / "clip_durations.tsv").write_text("clip\tduration[ms]\ncommon_voice_es_0.wav\t500\n", encoding="utf-8")
    return root


def test_commonvoice(commonvoice, tmp_path):
    utts = prepare_commonvoice(commonvoice / "train.tsv", tmp_path / "cv.jsonl")
    assert [u.id for u in utts] == ["common_voice_es_0", "common_voice_es_1", "common_voice_es_2"]
    first = utts[0]
    assert first.text == '¿Dónde está "el" niño?'  # quotes are text, not CSV quoting
    assert (first.speaker, first.accent, first.language) == ("abc123", "España: centro-sur", "es")
    assert first.audio_path == commonvoice / "clips" / "common_voice_es_0.wav"
    assert [u.duration_s for u in utts] == [0.5, 0.75, 1.0]  # listed, then read from the headers
    assert read_manifest(tmp_path / "cv.jsonl") == utts


def test_commonvoice_older_accent_column_and_language_fallback(tmp_path):
    write_audio(tmp_path / "clips" / "a.mp3.wav")
    (tmp_path / "dev.tsv").write_text("client_id\tpath\tsentence\taccent\nspk\ta.mp3.wav\tHej då\tsvenska\n",
                                      encoding="utf-8")
    (utt,) = prepare_commonvoice(tmp_path / "dev.tsv", language="sv")
    assert (utt.id, utt.accent, utt.language, utt.text) == ("a.mp3", "svenska", "sv", "Hej då")


@pytest.mark.parametrize("line, message", [
    ("abc\tcommon_voice_es_0.wav\tonly three fields", r"train\.tsv:3: 3 tab-separated field\(s\), the header has 13"),
    (cv_row("abc", "common_voice_es_1.wav", "   "), r"train\.tsv:3: empty sentence"),
    (cv_row("abc", "missing.wav", "hola"), r"train\.tsv:3: audio file not found: .*missing\.wav"),
    (cv_row("abc", "common_voice_es_0.wav", "otra vez"), r"train\.tsv:3: clip 'common_voice_es_0\.wav' listed twice \(first on line 2\)"),
])
def test_commonvoice_malformed_row_is_reported_by_line(commonvoice, line, message):
    tsv = commonvoice / "train.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text("\n".join([lines[0], lines[1], line, *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        prepare_commonvoice(tsv)


def test_commonvoice_header_without_required_columns(tmp_path):
    (tmp_path / "x.tsv").write_text("path\ttext\na.wav\thi\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"x\.tsv:1: header lacks column\(s\) \['client_id', 'sentence'\]"):
        prepare_commonvoice(tmp_path / "x.tsv")


def test_folder(tmp_path):
    write_audio(tmp_path / "audio" / "spk1" / "utt1.wav")
    write_audio(tmp_path / "audio" / "spk2" / "utt2.flac", 1.0)
    write_audio(tmp_path / "audio" / "untranscribed.wav")
    (tmp_path / "text.tsv").write_text("utt1\tGrüße aus Köln\n\nutt2\tStraße\n", encoding="utf-8")
    utts = prepare_folder(tmp_path / "audio", tmp_path / "text.tsv", tmp_path / "m.jsonl", language="de")
    assert [(u.id, u.text, u.audio_path.name, u.language, u.duration_s) for u in utts] == [
        ("utt1", "Grüße aus Köln", "utt1.wav", "de", 0.5), ("utt2", "Straße", "utt2.flac", "de", 1.0)]
    assert read_manifest(tmp_path / "m.jsonl") == utts


@pytest.mark.parametrize("content, message", [
    ("utt1\tfine\nutt2 no tab here\n", r"text\.tsv:2: expected 'id<TAB>text', got 'utt2 no tab here'"),
    ("utt1\tfine\n\nutt9\tno audio\n", r"text\.tsv:3: no audio file named 'utt9'\.\*"),
    ("utt1\tfine\nutt1\tagain\n", r"text\.tsv:2: duplicate id 'utt1' \(first on line 1\)"),
    ("utt1\t   \n", r"text\.tsv:1: expected"),
])
def test_folder_malformed_row_is_reported_by_line(tmp_path, content, message):
    write_audio(tmp_path / "audio" / "utt1.wav")
    write_audio(tmp_path / "audio" / "utt2.wav")
    (tmp_path / "text.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        prepare_folder(tmp_path / "audio", tmp_path / "text.tsv")


@pytest.fixture
def kaldi(tmp_path):
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    write_audio(tmp_path / "wav" / "a1.wav")
    write_audio(tmp_path / "wav" / "b1.wav", 0.25)
    (data / "text").write_text("spkA-a1 HEJ DÅ\nspkB-b1 gå på åland\n", encoding="utf-8")
    (data / "wav.scp").write_text(f"spkA-a1 wav/a1.wav\nspkB-b1 {tmp_path / 'wav' / 'b1.wav'}\n", encoding="utf-8")
    (data / "utt2spk").write_text("spkA-a1 spkA\nspkB-b1 spkB\n", encoding="utf-8")
    return data


def test_kaldi(kaldi, tmp_path):
    utts = prepare_kaldi(kaldi, tmp_path / "k.jsonl", audio_root=tmp_path, language="sv")
    assert [(u.id, u.text, u.speaker, u.duration_s) for u in utts] == [
        ("spkA-a1", "HEJ DÅ", "spkA", 0.5), ("spkB-b1", "gå på åland", "spkB", 0.25)]
    assert utts[0].audio_path == tmp_path / "wav" / "a1.wav"
    assert read_manifest(tmp_path / "k.jsonl") == utts


def test_kaldi_refuses_a_pipe_by_line(kaldi, tmp_path):
    (kaldi / "wav.scp").write_text("spkA-a1 wav/a1.wav\nspkB-b1 sox wav/b1.flac -t wav - |\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"wav\.scp:2: wav\.scp entry is a shell pipe .*does not run commands"):
        prepare_kaldi(kaldi, audio_root=tmp_path)


@pytest.mark.parametrize("name, content, message", [
    ("text", "spkA-a1 hej\nspkB-b1\n", r"text:2: expected '<id> <value>', got 'spkB-b1'"),
    ("text", "spkA-a1 hej\nspkC-c1 nobody\n", r"text:2: utterance 'spkC-c1' has no wav\.scp entry"),
    ("utt2spk", "spkA-a1 spkA\nspkA-a1 spkB\n", r"utt2spk:2: duplicate id 'spkA-a1' \(first on line 1\)"),
])
def test_kaldi_malformed_row_is_reported_by_line(kaldi, tmp_path, name, content, message):
    (kaldi / name).write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        prepare_kaldi(kaldi, audio_root=tmp_path)


def test_kaldi_segments_are_refused(kaldi, tmp_path):
    (kaldi / "segments").write_text("spkA-a1 rec1 0.0 1.0\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="segmented recordings are not supported"):
        prepare_kaldi(kaldi, audio_root=tmp_path)


def test_prepare_command(commonvoice, kaldi, tmp_path, capsys):
    out = tmp_path / "cv.jsonl"
    assert main(["prepare", "commonvoice", str(commonvoice / "train.tsv"), "--out", str(out)]) == 0
    assert "3 utterances" in capsys.readouterr().out and len(read_manifest(out)) == 3
    assert main(["prepare", "kaldi", str(kaldi), "--audio-root", str(tmp_path), "--out", str(tmp_path / "k.jsonl"),
                 "--language", "sv"]) == 0
    assert "2 utterances, 0.0 min, 2 speaker(s)" in capsys.readouterr().out
    (kaldi / "wav.scp").write_text("spkA-a1 cat a1.wav |\n", encoding="utf-8")
    assert main(["prepare", "kaldi", str(kaldi), "--out", str(tmp_path / "bad.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speechtl prepare: error: ") and "wav.scp:1" in err and err.count("\n") == 1
    assert not (tmp_path / "bad.jsonl").exists()


def speechocean_like(tmp_path):
    """speechocean762's layout: train/{text,wav.scp,utt2spk,spk2age,spk2gender}, wav.scp relative to the corpus."""
    corpus = tmp_path / "speechocean762"
    data = corpus / "train"
    data.mkdir(parents=True)
    for spk, utt in (("0001", "000010011"), ("0001", "000010035"), ("1027", "010270001")):
        write_audio(corpus / "WAVE" / f"SPEAKER{spk}" / f"{utt}.WAV", 0.25)
    (data / "text").write_text("000010011 WE CALL IT BEAR\n000010035 ZERO THREE\n010270001 IF YOU MAKE ANY NOISE\n",
                               encoding="utf-8")
    (data / "wav.scp").write_text("000010011\tWAVE/SPEAKER0001/000010011.WAV\n000010035\tWAVE/SPEAKER0001/000010035.WAV\n"
                                  "010270001\tWAVE/SPEAKER1027/010270001.WAV\n", encoding="utf-8")
    (data / "utt2spk").write_text("000010011 0001\n000010035 0001\n010270001 1027\n", encoding="utf-8")
    (data / "spk2age").write_text("1027\t37\n0001\t7\n", encoding="utf-8")
    (data / "spk2gender").write_text("0001\tm\n1027\tf\n", encoding="utf-8")
    return corpus, data


def test_kaldi_keeps_gender_age_and_child_adult_and_finds_the_corpus_root(tmp_path, monkeypatch, capsys):
    corpus, data = speechocean_like(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the corpus folder: relative paths must still resolve
    utts = prepare_kaldi(data, tmp_path / "so.jsonl", accent="zh-L1 English", language="en")
    assert [(u.speaker, u.gender, u.age, u.age_group, u.accent, u.language) for u in utts] == [
        ("0001", "m", "7", "child", "zh-L1 English", "en"), ("0001", "m", "7", "child", "zh-L1 English", "en"),
        ("1027", "f", "37", "adult", "zh-L1 English", "en")]
    assert utts[0].audio_path == corpus / "WAVE" / "SPEAKER0001" / "000010011.WAV"
    assert f"resolved against {corpus}" in capsys.readouterr().err  # says which root, and how to change it
    assert read_manifest(tmp_path / "so.jsonl") == utts
    adults = prepare_kaldi(data, child_below=6)
    assert {u.age_group for u in adults} == {"adult"}
    assert {u.age_group for u in prepare_kaldi(data, child_below=None)} == {""}
    from speechtl.compare.run import BREAKDOWN_FIELDS
    assert {"age", "age_group", "gender"} <= set(BREAKDOWN_FIELDS)  # `speechtl compare --by age_group`


def test_kaldi_reports_an_unfindable_root_and_a_bad_age(tmp_path):
    corpus, data = speechocean_like(tmp_path)
    (data / "wav.scp").write_text("000010011 elsewhere/x.wav\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"wav\.scp: relative audio paths \(e\.g\. 'elsewhere/x\.wav'\) are not "
                                            r"all found under any of .*--audio-root"):
        prepare_kaldi(data)
    corpus, data = speechocean_like(tmp_path / "again")
    (data / "spk2age").write_text("1027 37\n0001 seven\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"spk2age:2: age must be a number of years, got 'seven'"):
        prepare_kaldi(data)


def test_manifests_without_the_new_fields_stay_as_they_were(tmp_path):
    write_audio(tmp_path / "a.wav")
    line = '{"id": "a", "audio_path": "a.wav", "text": "hi", "speaker": "", "accent": "", "language": "", ' \
           '"duration_s": 0.5}\n'
    (tmp_path / "old.jsonl").write_text(line, encoding="utf-8")
    from speechtl.data.manifest import write_manifest
    write_manifest(read_manifest(tmp_path / "old.jsonl"), tmp_path / "new.jsonl")
    assert (tmp_path / "new.jsonl").read_text(encoding="utf-8") == line  # byte-identical: no age / age_group keys


def test_folder_speaker_from_parent_with_names_repeating_across_speakers(tmp_path):
    for spk in ("spkA", "spkB"):
        write_audio(tmp_path / "audio" / spk / "0001.wav")
    (tmp_path / "text.tsv").write_text("spkA-0001\thello\nspkB/0001\tworld\n", encoding="utf-8")
    utts = prepare_folder(tmp_path / "audio", tmp_path / "text.tsv", speaker_from="parent")
    assert [(u.id, u.speaker, u.text) for u in utts] == [("spkA-0001", "spkA", "hello"), ("spkB-0001", "spkB", "world")]
    (tmp_path / "t2.tsv").write_text("0001\thello\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"t2\.tsv:1: 2 audio files .* named '0001'.*--speaker-from parent"):
        prepare_folder(tmp_path / "audio", tmp_path / "t2.tsv")


def test_folder_with_a_transcript_beside_each_file_and_speaker_prefix(tmp_path):
    """Mboshi's layout: abiayi_2015-..._1.wav next to abiayi_2015-..._1.mb.cleaned, speaker before the first '_'."""
    for stem, text in (("abiayi_2015-09-08_Dico18_1", "kyéma yéé\n"), ("martial_2015-09-10_part_3", "ikóó wɔ\n")):
        write_audio(tmp_path / "train" / f"{stem}.wav")
        (tmp_path / "train" / f"{stem}.mb.cleaned").write_text(text, encoding="utf-8")
        (tmp_path / "train" / f"{stem}.fr.cleaned").write_text("une traduction\n", encoding="utf-8")
    utts = prepare_folder(tmp_path / "train", transcript_suffix=".mb.cleaned", speaker_from="prefix", language="mdw")
    assert [(u.id, u.speaker, u.text, u.language) for u in utts] == [
        ("abiayi_2015-09-08_Dico18_1", "abiayi", "kyéma yéé", "mdw"), ("martial_2015-09-10_part_3", "martial", "ikóó wɔ", "mdw")]
    (tmp_path / "train" / "martial_2015-09-10_part_3.mb.cleaned").write_text("  \n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"martial_2015-09-10_part_3\.mb\.cleaned:1: empty transcript"):
        prepare_folder(tmp_path / "train", transcript_suffix=".mb.cleaned")
    (tmp_path / "train" / "martial_2015-09-10_part_3.mb.cleaned").unlink()
    with pytest.raises(ManifestError, match=r"part_3\.wav: no transcript file martial_2015-09-10_part_3\.mb\.cleaned"):
        prepare_folder(tmp_path / "train", transcript_suffix=".mb.cleaned")


def test_prepare_kaldi_and_folder_commands_with_the_new_flags(tmp_path, capsys):
    corpus, data = speechocean_like(tmp_path)
    out = tmp_path / "so.jsonl"
    assert main(["prepare", "kaldi", str(data), "--accent", "zh-L1 English", "--child-below", "18", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 utterances" in printed and "adult: 1 utterances" in printed and "child: 2 utterances" in printed
    assert {u.accent for u in read_manifest(out)} == {"zh-L1 English"}
    for spk in ("s1", "s2"):
        write_audio(tmp_path / "f" / spk / "u.wav")
        (tmp_path / "f" / spk / "u.txt").write_text("hi", encoding="utf-8")
    assert main(["prepare", "folder", str(tmp_path / "f"), "--transcript-suffix", ".txt", "--speaker-from", "parent",
                 "--out", str(tmp_path / "f.jsonl")]) == 0
    assert "2 utterances, 0.0 min, 2 speaker(s)" in capsys.readouterr().out


def test_prepare_on_error_skip_leaves_a_cut_short_file_out_and_lists_it(tmp_path, capsys):
    """Mboshi's training split holds WAVs cut short (the header claims more frames than the file has): the import
    stops naming the file, or with --on-error skip writes the others and lists the skipped one."""
    for stem in ("abiayi_1", "abiayi_2", "kouarata_1"):
        write_audio(tmp_path / "train" / f"{stem}.wav")
        (tmp_path / "train" / f"{stem}.mb.cleaned").write_text("kyéma yéé\n", encoding="utf-8")
    cut = tmp_path / "train" / "abiayi_2.wav"
    cut.write_bytes(cut.read_bytes()[:-2000])  # the data chunk's header still claims the full length
    out = tmp_path / "m.jsonl"
    args = ["prepare", "folder", str(tmp_path / "train"), "--transcript-suffix", ".mb.cleaned", "--speaker-from",
            "prefix", "--out", str(out)]
    assert main(args) == 2
    assert "abiayi_2" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--on-error", "skip"]) == 0
    err = capsys.readouterr().err
    assert "skipped 'abiayi_2'" in err and "1 file(s) left out" in err
    assert [u.id for u in read_manifest(out)] == ["abiayi_1", "kouarata_1"]
