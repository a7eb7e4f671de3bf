"""speechtl check flags bracketed or tagged markup in transcripts, never an ordinary word such as "noise"."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechtl.check import check_manifests


def one_utterance_set(tmp_path, text: str):
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(np.arange(16_000) / 16_000 * 2 * np.pi * 220), 16_000)
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"id": "a", "audio_path": "a.wav", "text": text}) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("text, is_markup", [
    ("IF YOU MAKE ANY NOISE WE ARE LOST", False), ("the silence of unknown laughter", False),
    ("ab [noise] ba", True), ("<unk> went home", True), ("{laughter} yes", True), ("yes (cough) no", True),
    ("++NOISE++ right", True),
])
def test_only_bracketed_or_tagged_markup_is_flagged(tmp_path, text, is_markup):
    report = check_manifests([one_utterance_set(tmp_path, text)])
    flagged = [p for p in report.problems if p.check == "odd-text" and "markup" in p.message]
    assert bool(flagged) == is_markup
