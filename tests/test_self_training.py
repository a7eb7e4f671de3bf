"""Self-training: confidence of hand-made logits, the kept set, one round end to end on a tiny model, resume."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import pytest
import torch

import speechtl.adapt.self_training as st_module
from speechtl.adapt.pseudo_label import PseudoLabel, lm_decoder, select_confident, utterance_confidence
from speechtl.adapt.run import AdaptConfig
from speechtl.adapt.self_training import SelfTrainingConfig, limit_against_original, read_unlabelled, run_self_training
from speechtl.adapt.train import train_config
from speechtl.cli import main
from speechtl.config import ConfigError
from speechtl.data.manifest import read_manifest

# Frame posteriors over (blank, x, y); logits = log posteriors, so softmax gives them back exactly.
UTTS = {
    "A": [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.1, 0.6]],  # non-blank frames: max .8 and .6
    "B": [[0.05, 0.9, 0.05], [0.9, 0.05, 0.05]],  # one non-blank frame, max .9
    "C": [[0.6, 0.2, 0.2], [0.9, 0.05, 0.05]],  # all blank: nothing written
    "D": [[0.25, 0.5, 0.25]],
}
EXPECTED = {  # by hand: see the module docstring of speechtl.adapt.pseudo_label
    "max_prob": {"A": 0.7, "B": 0.9, "C": 0.0, "D": 0.5},
    "path": {"A": (0.7 * 0.8 * 0.6) ** (1 / 3), "B": 0.9, "C": 0.0, "D": 0.5},  # 0.6952 for A
    "entropy": {"A": 0.3005, "B": 1 - (0.9 * math.log(1 / 0.9) + 0.1 * math.log(20)) / math.log(3),
                "C": 0.0, "D": 1 - (0.5 * math.log(2) + 0.5 * math.log(4)) / math.log(3)},
}


def logits(name: str) -> torch.Tensor:
    return torch.tensor(UTTS[name]).log()


@pytest.mark.parametrize("measure", ["max_prob", "path", "entropy"])
def test_confidence_of_hand_made_logits(measure):
    for name, expected in EXPECTED[measure].items():
        assert utterance_confidence(logits(name), blank=0, measure=measure) == pytest.approx(expected, abs=1e-4), name


def test_filtering_keeps_the_most_confident_non_empty_transcripts():
    names = ["A", "B", "C", "D"]
    labels = [PseudoLabel("" if n == "C" else "x", utterance_confidence(logits(n), 0, "max_prob")) for n in names]
    assert select_confident(labels, keep_fraction=0.5) == [0, 1]  # B (.9), A (.7); 2 of 4
    assert select_confident(labels, min_confidence=0.75, keep_fraction=1.0) == [1]
    assert select_confident(labels, keep_fraction=1.0) == [0, 1, 3]  # C wrote nothing
    assert select_confident([PseudoLabel("x", 0.7), PseudoLabel("y", 0.9), PseudoLabel("z", 0.7)], 0.0, 0.67) == [0, 1]
    with pytest.raises(ConfigError, match="keep_fraction"):
        select_confident(labels, keep_fraction=0.0)


def test_unknown_confidence_measure_is_refused():
    with pytest.raises(ConfigError, match="max_prob"):
        utterance_confidence(logits("A"), 0, "margin")


def test_hidden_references_are_split_off_the_unlabelled_utterances(tone_data, tmp_path):
    unl = read_unlabelled(str(tone_data["train"]))
    assert len(unl.utts) == 12 and all(u.text == "" for u in unl.utts)
    assert unl.references == {u.id: u.text for u in read_manifest(tone_data["train"])}
    folder = read_unlabelled(str(tone_data["train"].parent))  # a folder of audio: ids are relative paths
    assert folder.references == {} and folder.utts[0].id.startswith("wav/") and folder.utts[0].duration_s > 0


def _config(tone_data, tiny_model_dir, out, train="") -> AdaptConfig:
    return AdaptConfig(model=str(tiny_model_dir), train=train, dev=str(tone_data["dev"]),
                       test=[str(tone_data["test"])], source_test=str(tone_data["dev"]), out=str(out),
                       training=train_config(lr=1e-3, max_steps=2, eval_every=2, batch_seconds=4,
                                            speed_perturb=[0.9, 1.1], noise_snr_db=20.0, mask_time_prob=0.05))


def test_one_round_end_to_end_on_a_tiny_model(tone_data, tiny_model_dir, tmp_path):
    out = tmp_path / "st"
    st = SelfTrainingConfig(unlabelled=str(tone_data["train"]), rounds=1, keep_fraction=0.5)
    results = run_self_training(_config(tone_data, tiny_model_dir, out), st, progress=False)
    (r1,) = results["rounds"]
    assert r1["round"] == 1 and r1["unlabelled"] == 12 and 1 <= r1["kept"] <= 6
    assert set(r1["pseudo_label"]) == {"kept", "all"} and r1["pseudo_label"]["all"]["num_utts"] == 12
    assert r1["target"]["before"] == results["start"]["target"] and "wer" in r1["source"]["after"]
    rows = list(csv.DictReader((out / "round-1" / "pseudo_labels.tsv").open(), delimiter="\t"))
    kept = {r["id"]: r["hypothesis"] for r in rows if r["kept"] == "1"}
    train = read_manifest(out / "round-1" / "train.jsonl")  # what the student trained on: the teacher's words only
    assert {u.id: u.text for u in train} == kept and len(kept) == r1["kept"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["rounds"][0]["kept"] == r1["kept"] and saved["hidden_references"] == 12
    assert (out / "model.safetensors").is_file() and "| 1 | " in (out / "report.md").read_text()
    assert saved["change"]["baseline"] == "starting model" and set(saved["change"]["target"]) >= {"delta", "low"}
    history = json.loads((out / "round-1" / "results.json").read_text())["train"]["history"]
    assert r1["dev_wer"]["start"] == history[0]["dev_wer"] and r1["dev_wer"]["chosen"] is not None


def test_resume_skips_a_finished_round(tone_data, tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "st"
    cfg = _config(tone_data, tiny_model_dir, out, train=str(tone_data["dev"]))
    # the labelled minutes (round 0) are the dev manifest here: dev and the source stand-in must be other audio
    cfg = dataclasses.replace(cfg, dev=str(tone_data["test"]), source_test=str(tone_data["test"]))
    st = SelfTrainingConfig(unlabelled=str(tone_data["train"]), rounds=1, keep_fraction=1.0)
    first = run_self_training(cfg, st, progress=False)
    assert [r["round"] for r in first["rounds"]] == [0, 1]
    ran = []
    real = st_module.run_adaptation
    monkeypatch.setattr(st_module, "run_adaptation", lambda c, *a, **k: ran.append(c.out) or real(c, *a, **k))
    cfg, st = dataclasses.replace(cfg, resume=True), dataclasses.replace(st, rounds=2)
    again = run_self_training(cfg, st, progress=False)  # rounds 0 and 1 are done: only round 2 runs
    assert ran == [str(out / "round-2")] and again["rounds"][:2] == first["rounds"]
    assert [r["round"] for r in again["rounds"]] == [0, 1, 2] and again["rounds"][2]["teacher"] == str(out / "round-1")
    with pytest.raises(ConfigError, match="other self-training settings"):
        run_self_training(cfg, dataclasses.replace(st, keep_fraction=0.5), progress=False)  # a finished round made otherwise is never silently reused


def test_cli_self_training_from_a_folder_and_overlap_error(tone_data, tiny_model_dir, tmp_path, capsys):
    args = ["adapt", "--model", str(tiny_model_dir), "--dev", str(tone_data["dev"]), "--test", str(tone_data["test"]),
            "--max-steps", "2", "--eval-every", "2", "--batch-seconds", "4", "--quiet", "--rounds", "1",
            "--keep-fraction", "1", "--confidence", "entropy"]
    assert main([*args, "--unlabelled", str(tone_data["train"].parent), "--out", str(tmp_path / "a")]) == 0
    assert "| 1 | " in capsys.readouterr().out
    assert main([*args, "--unlabelled", str(tone_data["test"]), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "also in the unlabelled set" in err[0]


def test_lm_pseudo_labels_pull_a_misread_word_to_a_known_one(tmp_path):
    from speechtl.decode import greedy_decode
    from speechtl.decode.ngram import build_arpa, read_text_files
    from speechtl.models import build_processor
    from speechtl.text import build_vocab

    tokenizer = build_processor(build_vocab(["abc"])).tokenizer  # <pad>=0 <s> </s> <unk> |=4 a=5 b=6 c=7
    (tmp_path / "text.txt").write_text("ab bca\nbca ab\nab bca ab\ncab bca\n" * 5)
    build_arpa(read_text_files([tmp_path / "text.txt"]), 2, tmp_path / "lm.arpa")
    path = [0, 5, 0, 6, 0, 4, 0, 6, 0, 7, 0, 6, 0]  # greedy: "ab bcb"; 'a' a close second at frame 11
    logits = torch.full((1, len(path), 8), -8.0)
    logits[0, torch.arange(len(path)), torch.tensor(path)] = -0.05
    logits[0, 11, 5] = -0.4
    lengths = torch.tensor([len(path)])
    assert greedy_decode(logits, lengths, tokenizer) == ["ab bcb"]
    decode = lm_decoder(str(tmp_path / "lm.arpa"))
    assert decode(logits, lengths, tokenizer) == ["ab bca"] == decode(logits, lengths, tokenizer)


def test_pseudo_lm_that_is_not_an_arpa_file_is_refused_before_any_work(tone_data, tiny_model_dir, tmp_path):
    (tmp_path / "lm.txt").write_text("just some text\n")
    st = SelfTrainingConfig(unlabelled=str(tone_data["train"]), pseudo_lm=str(tmp_path / "lm.txt"))
    with pytest.raises(ConfigError, match="not an ARPA language model"):
        run_self_training(_config(tone_data, tiny_model_dir, tmp_path / "st"), st, progress=False)
    assert not (tmp_path / "st").exists()


def test_forgetting_limit_is_measured_against_the_original_model():
    base = train_config(max_forgetting=0.05)
    assert limit_against_original(base, 0.20, 0.20).selection.max_forgetting == 0.05  # first round: the teacher is the original
    assert limit_against_original(base, 0.20, 0.21).selection.max_forgetting == 0.0  # the teacher used up the budget
    assert limit_against_original(base, 0.20, 0.19).selection.max_forgetting == pytest.approx(1.05 * 0.20 / 0.19 - 1, abs=1e-6)
    assert limit_against_original(base, None, 0.21) is base  # no source dev set: nothing to measure
    off = train_config(max_forgetting=0.05, guard=False)
    assert limit_against_original(off, 0.20, 0.21) is off


def test_routed_self_training_labels_with_the_routed_teacher(tiny_model_dir, tmp_path):
    """With ``--route``, every round is a routed run (the source keeps the start model) and the next round's teacher
    is that routed folder: pseudo-labels come from it, and the result is routed too."""
    from conftest import make_tone_set

    target = {name: make_tone_set(tmp_path / name, n, seed=s, name=f"{name}.jsonl", accent="high", pitch=1.6)
              for name, n, s in (("train", 6, 11), ("unl", 8, 12), ("dev", 4, 13))}
    source = make_tone_set(tmp_path / "source", 6, seed=14, name="source.jsonl")
    cfg = AdaptConfig(model=str(tiny_model_dir), train=str(target["train"]), dev=str(target["dev"]),
                      test=[str(target["dev"])], source_test=str(source), route=str(source), out=str(tmp_path / "st"),
                      mismatch_utts=0, training=train_config(lr=1e-4, max_steps=2, eval_every=2, batch_seconds=4,
                                                             guard=False))
    results = run_self_training(cfg, SelfTrainingConfig(unlabelled=str(target["unl"]), rounds=1), progress=False)
    r0, r1 = results["rounds"]
    assert (r0["round"], r1["round"]) == (0, 1) and r1["pseudo_label"]["all"]["num_utts"] == 8
    assert r1["teacher"].endswith("round-0")
    for folder in ("round-0", "round-1"):
        assert json.loads((tmp_path / "st" / folder / "results.json").read_text())["routing"] is not None
    from speechtl.models import load_model
    from speechtl.models.router import RoutedCTC

    assert isinstance(load_model(str(tmp_path / "st"))[0], RoutedCTC)  # the result routes like its last round
