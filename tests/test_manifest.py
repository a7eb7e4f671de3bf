"""speechtl.data.manifest: JSONL/CSV round trips, relative paths, errors naming file and line, splits, sampling."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from speechtl.data.manifest import (
    ManifestError,
    Utterance,
    read_manifest,
    sample_minutes,
    speaker_disjoint_split,
    total_minutes,
    write_manifest,
)


def touch_audio(folder: Path, *names: str) -> list[Path]:
    """Empty files stand in for audio: read_manifest only checks that the file exists."""
    paths = []
    for name in names:
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
        paths.append(p.resolve())
    return paths


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def at_line(path: Path, lineno: int) -> str:
    """The ``file:line`` prefix every per-line ManifestError starts with, as a regex."""
    return re.escape(f"{path}:{lineno}:")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    touch_audio(d, "wav/a.wav", "wav/b.wav", "wav/c.wav")
    return d


def sample_utts(data_dir: Path, outside: Path | None = None) -> list[Utterance]:
    wav = data_dir.resolve() / "wav"
    utts = [
        Utterance("spk1-0001", wav / "a.wav", "hello world", "spk1", "en-gb-scotland", "en", 2.31),
        Utterance("spk1-0002", wav / "b.wav", "don't stop", "spk1", "en-gb-scotland", "en", None),
        Utterance("spk2-0001", wav / "c.wav", "grüß gott", "spk2", "", "de", 0.5),
    ]
    if outside is not None:
        utts.append(Utterance("ext-0001", outside, "from elsewhere", "spk3", duration_s=1.0))
    return utts


# --- round trips and paths -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train.jsonl", "train.csv"])
def test_round_trip(data_dir: Path, name: str):
    utts = sample_utts(data_dir)
    write_manifest(utts, data_dir / name)
    assert read_manifest(data_dir / name) == utts


def test_jsonl_stores_audio_under_the_folder_relative_and_outside_absolute(tmp_path: Path, data_dir: Path):
    (outside,) = touch_audio(tmp_path / "elsewhere", "x.wav")
    write_manifest(sample_utts(data_dir, outside), data_dir / "train.jsonl")
    rows = [json.loads(line) for line in (data_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["audio_path"] for r in rows] == ["wav/a.wav", "wav/b.wav", "wav/c.wav", str(outside)]
    assert rows[0] == {
        "id": "spk1-0001", "audio_path": "wav/a.wav", "text": "hello world", "speaker": "spk1",
        "accent": "en-gb-scotland", "language": "en", "duration_s": 2.31,
    }
    assert rows[1]["duration_s"] is None
    assert rows[2]["text"] == "grüß gott"  # written as UTF-8, not \u escapes
    assert "grüß" in (data_dir / "train.jsonl").read_text(encoding="utf-8")


def test_csv_stores_relative_paths_and_empty_duration(data_dir: Path):
    write_manifest(sample_utts(data_dir), data_dir / "train.csv")
    lines = (data_dir / "train.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,audio_path,text,speaker,accent,language,duration_s"
    assert lines[1] == "spk1-0001,wav/a.wav,hello world,spk1,en-gb-scotland,en,2.31"
    assert lines[2] == "spk1-0002,wav/b.wav,don't stop,spk1,en-gb-scotland,en,"


def test_relative_paths_resolve_against_the_manifest_folder_not_the_cwd(tmp_path: Path, data_dir: Path, monkeypatch):
    write_lines(data_dir / "m.jsonl", ['{"id": "a", "audio_path": "wav/a.wav", "text": "hi"}'])
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (utt,) = read_manifest(data_dir / "m.jsonl")
    assert utt.audio_path == (data_dir / "wav" / "a.wav").resolve()
    assert utt.audio_path.is_absolute()


@pytest.mark.parametrize("name", ["train.jsonl", "train.csv"])
def test_manifest_moved_with_its_folder_still_reads(tmp_path: Path, data_dir: Path, name: str):
    write_manifest(sample_utts(data_dir), data_dir / name)
    moved = tmp_path / "moved" / "data"
    moved.parent.mkdir()
    shutil.move(str(data_dir), str(moved))
    utts = read_manifest(moved / name)
    assert [u.audio_path for u in utts] == [
        (moved / "wav" / n).resolve() for n in ("a.wav", "b.wav", "c.wav")
    ]
    assert all(u.audio_path.is_file() for u in utts)


def test_optional_fields_default_and_check_files_false(tmp_path: Path):
    path = write_lines(tmp_path / "m.jsonl", ['{"id": "a", "audio_path": "nowhere.wav", "text": "hi"}'])
    (utt,) = read_manifest(path, check_files=False)
    assert utt == Utterance("a", tmp_path.resolve() / "nowhere.wav", "hi", "", "", "", None)


def test_blank_lines_are_skipped_but_still_counted(data_dir: Path):
    path = write_lines(
        data_dir / "m.jsonl",
        ['{"id": "a", "audio_path": "wav/a.wav", "text": "hi"}', "", "   ", '{"id": "b", "audio_path": "wav/b.wav"}'],
    )
    with pytest.raises(ManifestError, match=at_line(path, 4) + ".*'b'.*empty text"):
        read_manifest(path)


def test_total_minutes(data_dir: Path):
    assert total_minutes(sample_utts(data_dir)) == pytest.approx((2.31 + 0.5) / 60)


# --- errors name the file and the line ---------------------------------------------------------


def test_duplicate_id_names_both_lines(data_dir: Path):
    path = write_lines(
        data_dir / "m.jsonl",
        [
            '{"id": "a", "audio_path": "wav/a.wav", "text": "one"}',
            '{"id": "b", "audio_path": "wav/b.wav", "text": "two"}',
            '{"id": "a", "audio_path": "wav/c.wav", "text": "three"}',
        ],
    )
    with pytest.raises(ManifestError, match=at_line(path, 3) + r" duplicate utterance id 'a' \(first on line 1\)"):
        read_manifest(path)


def test_duplicate_ids_are_kept_when_unique_ids_is_false(data_dir: Path):
    path = write_lines(
        data_dir / "m.jsonl",
        ['{"id": "a", "audio_path": "wav/a.wav", "text": "one"}', '{"id": "a", "audio_path": "wav/b.wav", "text": "two"}'],
    )
    assert [u.text for u in read_manifest(path, unique_ids=False)] == ["one", "two"]


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv"])
def test_gender_is_an_optional_field_that_round_trips(data_dir: Path, name: str):
    utts = [Utterance("a", data_dir.resolve() / "wav/a.wav", "hi", gender="f"),
            Utterance("b", data_dir.resolve() / "wav/b.wav", "ho")]
    write_manifest(utts, data_dir / name)
    assert [u.gender for u in read_manifest(data_dir / name)] == ["f", ""]


def test_missing_audio_file(data_dir: Path):
    path = write_lines(
        data_dir / "m.jsonl",
        ['{"id": "a", "audio_path": "wav/a.wav", "text": "one"}', '{"id": "b", "audio_path": "wav/zz.wav", "text": "two"}'],
    )
    with pytest.raises(ManifestError, match=at_line(path, 2) + ".*'b' not found: .*zz.wav"):
        read_manifest(path)


def test_empty_text_is_an_error_unless_text_is_not_required(data_dir: Path):
    path = write_lines(
        data_dir / "m.jsonl",
        ['{"id": "a", "audio_path": "wav/a.wav", "text": "one"}', '{"id": "b", "audio_path": "wav/b.wav", "text": "  "}'],
    )
    with pytest.raises(ManifestError, match=at_line(path, 2) + ".*'b' has empty text"):
        read_manifest(path)
    utts = read_manifest(path, require_text=False)
    assert [(u.id, u.text) for u in utts] == [("a", "one"), ("b", "  ")]


def test_missing_required_field(data_dir: Path):
    path = write_lines(data_dir / "m.jsonl", ['{"id": "a", "text": "one"}'])
    with pytest.raises(ManifestError, match=at_line(path, 1) + r".*missing required field\(s\) \['audio_path'\]"):
        read_manifest(path)


def test_unknown_column_lists_the_allowed_ones(data_dir: Path):
    path = write_lines(
        data_dir / "m.jsonl",
        ['{"id": "a", "audio_path": "wav/a.wav", "text": "one"}', '{"id": "b", "audio_path": "wav/b.wav", "text": "x", "speakr": "s"}'],
    )
    with pytest.raises(ManifestError, match=at_line(path, 2) + r".*unknown column\(s\) \['speakr'\].*allowed.*'speaker'"):
        read_manifest(path)


@pytest.mark.parametrize("bad", ['{"id": "b", "audio_path": ', "[1, 2]"])
def test_invalid_json_or_not_an_object(data_dir: Path, bad: str):
    path = write_lines(data_dir / "m.jsonl", ['{"id": "a", "audio_path": "wav/a.wav", "text": "one"}', bad])
    with pytest.raises(ManifestError, match=at_line(path, 2)):
        read_manifest(path)


def test_invalid_json_chains_the_decoder_error(data_dir: Path):
    path = write_lines(data_dir / "m.jsonl", ["{not json"])
    with pytest.raises(ManifestError, match=at_line(path, 1) + " not valid JSON") as info:
        read_manifest(path)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize("duration", ["0", "-1.5", '"NaN"', '"abc"'])
def test_duration_must_be_a_positive_number(data_dir: Path, duration: str):
    path = write_lines(
        data_dir / "m.jsonl",
        [
            '{"id": "a", "audio_path": "wav/a.wav", "text": "one", "duration_s": 1.0}',
            f'{{"id": "b", "audio_path": "wav/b.wav", "text": "two", "duration_s": {duration}}}',
        ],
    )
    with pytest.raises(ManifestError, match=at_line(path, 2) + ".*duration_s must be a"):
        read_manifest(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_manifest(tmp_path: Path, content: str):
    path = tmp_path / "m.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=re.escape(f"{path}: manifest is empty")):
        read_manifest(path)


def test_empty_csv_with_only_a_header(tmp_path: Path):
    path = write_lines(tmp_path / "m.csv", ["id,audio_path,text"])
    with pytest.raises(ManifestError, match="manifest is empty"):
        read_manifest(path)


def test_missing_manifest(tmp_path: Path):
    with pytest.raises(ManifestError, match="manifest not found: .*nope.jsonl"):
        read_manifest(tmp_path / "nope.jsonl")


def test_csv_row_with_more_values_than_the_header(data_dir: Path):
    path = write_lines(data_dir / "m.csv", ["id,audio_path,text", "a,wav/a.wav,one", "b,wav/b.wav,two,extra"])
    with pytest.raises(ManifestError, match=at_line(path, 3) + " more values than header columns"):
        read_manifest(path)


def test_csv_errors_name_the_line_too(data_dir: Path):
    path = write_lines(data_dir / "m.csv", ["id,audio_path,text", "a,wav/a.wav,one", "a,wav/b.wav,two"])
    with pytest.raises(ManifestError, match=at_line(path, 3) + r" duplicate utterance id 'a' \(first on line 2\)"):
        read_manifest(path)


# --- speaker-disjoint split -------------------------------------------------------------------


def corpus(num_speakers: int = 40) -> list[Utterance]:
    """Speakers with 1–5 utterances each (uneven on purpose), durations 1–4 s."""
    return [
        Utterance(f"s{s:02d}-{k}", Path(f"/audio/s{s:02d}-{k}.wav"), "text", f"s{s:02d}", duration_s=1.0 + (s + k) % 4)
        for s in range(num_speakers)
        for k in range(1 + (s * 7) % 5)
    ]


def ids(parts: list[list[Utterance]]) -> list[list[str]]:
    return [[u.id for u in p] for p in parts]


def test_split_is_speaker_disjoint_and_keeps_every_utterance_once():
    utts = corpus()
    parts = speaker_disjoint_split(utts, [0.8, 0.1, 0.1], seed=0)
    assert len(parts) == 3
    speakers = [{u.speaker for u in p} for p in parts]
    assert not (speakers[0] & speakers[1]) and not (speakers[0] & speakers[2]) and not (speakers[1] & speakers[2])
    assert Counter(u.id for p in parts for u in p) == Counter(u.id for u in utts)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_proportions_are_roughly_right(seed: int):
    utts = corpus()
    largest_speaker = max(Counter(u.speaker for u in utts).values())  # 5
    fractions = [0.8, 0.1, 0.1]
    parts = speaker_disjoint_split(utts, fractions, seed=seed)
    for part, f in zip(parts, fractions):
        # whole speakers move, so a part can miss its target by up to about two speakers' worth
        assert abs(len(part) - f * len(utts)) <= 2 * largest_speaker
        assert part  # every part gets someone


def test_split_is_deterministic_per_seed_and_differs_across_seeds():
    utts = corpus()
    a = ids(speaker_disjoint_split(utts, [0.8, 0.1, 0.1], seed=0))
    assert ids(speaker_disjoint_split(utts, [0.8, 0.1, 0.1], seed=0)) == a
    assert ids(speaker_disjoint_split(utts, [0.8, 0.1, 0.1], seed=1)) != a


def test_split_utterances_without_speaker_count_as_their_own_speaker():
    utts = [Utterance(f"u{k}", Path(f"/a/{k}.wav"), "t") for k in range(10)]
    parts = speaker_disjoint_split(utts, [0.5, 0.5], seed=0)
    assert [len(p) for p in parts] == [5, 5]


@pytest.mark.parametrize("fractions", [[0.5, 0.4], [1.2, -0.2]])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions must be non-negative and sum to 1"):
        speaker_disjoint_split(corpus(), fractions)


# --- sample_minutes ---------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [0.25, 1.0, 3.0])
def test_sample_minutes_stops_within_one_utterance_of_the_budget(minutes: float):
    taken = sample_minutes(corpus(), minutes, seed=0)
    durations = [u.duration_s for u in taken]
    budget_s = minutes * 60
    # it adds utterances until the budget is reached: just under before the last one, at or over after it
    assert sum(durations[:-1]) < budget_s <= sum(durations)
    assert len({u.id for u in taken}) == len(taken)


def test_sample_minutes_larger_than_the_corpus_takes_everything():
    utts = corpus()
    taken = sample_minutes(utts, 1000.0)
    assert sorted(u.id for u in taken) == sorted(u.id for u in utts)


def test_sample_minutes_is_seeded():
    utts = corpus()
    a = [u.id for u in sample_minutes(utts, 1.0, seed=0)]
    assert [u.id for u in sample_minutes(utts, 1.0, seed=0)] == a
    assert [u.id for u in sample_minutes(utts, 1.0, seed=1)] != a


def test_sample_minutes_covers_many_speakers_for_a_small_budget():
    utts = corpus(num_speakers=40)  # mean 2.5 s per utterance
    taken = sample_minutes(utts, 1.0, seed=0)  # ~24 utterances
    # round robin: one utterance per speaker before any speaker gets a second one
    assert len(taken) < 40
    assert len({u.speaker for u in taken}) == len(taken)


def test_sample_minutes_needs_durations():
    utts = corpus()
    utts.append(Utterance("nodur", Path("/a/x.wav"), "t", "s99"))
    with pytest.raises(ValueError, match="duration_s"):
        sample_minutes(utts, 1.0)
