"""The negative-transfer guard: which checkpoint a run returns, given the dev scores it saw."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import speechtl.adapt.select as select_module
from speechtl.adapt.report import verdict
from speechtl.adapt.run import labels_for
from speechtl.adapt.train import DevSets, TrainData, train, train_config
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest
from speechtl.models import load_model


def scripted_evaluate(monkeypatch, target_wers, source_wers, empty=()):
    """Replace dev scoring by scripted WERs: calls alternate target, source at each evaluation.
    ``empty``: for each target evaluation, whether every hypothesis is empty (default: none is)."""
    calls = {"target": iter(target_wers), "source": iter(source_wers)}
    blanks = iter(empty)

    def fake(model, processor, utts, *args, **kwargs):
        kind = "source" if utts[0].id.startswith("src") else "target"
        wer = next(calls[kind])
        hyp = "" if kind == "target" and next(blanks, False) else "a b"
        return SimpleNamespace(wer=wer, cer=wer / 2, rows=[{"hypothesis": hyp} for _ in utts])

    monkeypatch.setattr(select_module, "evaluate", fake)


def run(tone_data, tiny_model_dir, tmp_path, **cfg):
    model, processor = load_model(str(tiny_model_dir))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    utts, audio, _ = load_utterance_audio(read_manifest(tone_data["train"]))
    dev, dev_audio = utts[:2], audio[:2]
    src = [u.__class__("src" + u.id, u.audio_path, u.text) for u in utts[2:4]]
    cfg.setdefault("interpolate", [])
    config = train_config(lr=1e-2, max_steps=4, eval_every=2, batch_seconds=4, freeze_feature_encoder=False, **cfg)
    result = train(model, processor, TrainData(utts, labels_for(utts, processor.tokenizer), audio), tmp_path, config,
                   DevSets(dev, dev_audio, src, audio[2:4]), progress=False)
    same = all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    return result, same


def test_worse_checkpoints_return_the_starting_model(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    scripted_evaluate(monkeypatch, [0.50, 0.60, 0.55], [0.20, 0.20, 0.20])
    result, same = run(tone_data, tiny_model_dir, tmp_path)
    assert result.best_step == 0 and same
    assert verdict(result.history, result.best_step, 0.05).startswith("negative transfer")


def test_forgetting_beyond_the_limit_disqualifies_a_checkpoint(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    # step 2 is best on target but raises source WER by 25% (> 5%); step 4 is within the limit
    scripted_evaluate(monkeypatch, [0.50, 0.30, 0.40], [0.20, 0.25, 0.21])
    result, same = run(tone_data, tiny_model_dir, tmp_path)
    assert result.best_step == 4 and not same
    assert [h["qualifies"] for h in result.history] == [True, False, True]
    text = verdict(result.history, result.best_step, 0.05)
    assert text == ("adapted: step 4 chosen, target dev WER 50.0% → 40.0%, source dev WER 20.0% → 21.0% "
                    "(source forgetting limit 5%)")


def test_without_limit_the_best_target_checkpoint_wins(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    scripted_evaluate(monkeypatch, [0.50, 0.30, 0.40], [0.20, 0.25, 0.21])
    result, _ = run(tone_data, tiny_model_dir, tmp_path, max_forgetting=float("inf"))
    assert result.best_step == 2


def test_guard_off_never_returns_the_start(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    scripted_evaluate(monkeypatch, [0.50, 0.60, 0.70], [0.20, 0.20, 0.20])
    result, same = run(tone_data, tiny_model_dir, tmp_path, guard=False)
    assert result.best_step == 2 and not same


def test_interpolation_between_start_and_the_best_target_checkpoint(monkeypatch, tone_data, tiny_model_dir,
                                                                    tmp_path):
    # checkpoints forget too much (source 0.25, 0.26 > 0.21); half-way from the start to step 2 does not
    scripted_evaluate(monkeypatch, [0.50, 0.30, 0.40, 0.35], [0.20, 0.25, 0.26, 0.205])
    result, same = run(tone_data, tiny_model_dir, tmp_path, interpolate=[0.5])
    assert (result.best_step, result.best_alpha) == (2, 0.5) and not same
    assert result.history[-1] == {"step": 2, "alpha": 0.5, "dev_wer": 0.35, "dev_cer": 0.175, "empty_share": 0.0,
                                  "source_dev_wer": 0.205, "qualifies": True}
    assert verdict(result.history, 2, 0.05, 0.5) == (
        "adapted: step 2 chosen, interpolated 0.5 of the way from the start (WiSE-FT), target dev WER 50.0% → "
        "35.0%, source dev WER 20.0% → 20.5% (source forgetting limit 5%)")


def test_blank_collapse_stops_with_a_diagnosis(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    scripted_evaluate(monkeypatch, [0.5, 1.0], [0.2, 0.2], empty=[False, True])
    with pytest.raises(select_module.BlankCollapseError, match=r"blank collapse at step 2: 100% .*--lr 0.01"):
        run(tone_data, tiny_model_dir, tmp_path)
    assert (tmp_path / "checkpoint" / "trainer_state.json").is_file()


@pytest.mark.parametrize("start_wer,start_empty", [(1.0, True), (1.3, False)])
def test_a_random_or_blank_start_is_no_collapse(monkeypatch, tone_data, tiny_model_dir, tmp_path, start_wer,
                                                start_empty):
    """Training from scratch starts blank or random, then passes through a blank phase: not a collapse."""
    scripted_evaluate(monkeypatch, [start_wer, 1.0, 1.0], [1.0, 1.0, 1.0], empty=[start_empty, True, True])
    result, _ = run(tone_data, tiny_model_dir, tmp_path)
    assert result.steps == 4


@pytest.mark.parametrize("history,best,expected", [
    ([], None, "no dev set: the last step's weights are returned, unchecked"),
    ([{"step": 0, "dev_wer": 0.5}, {"step": 10, "dev_wer": 0.25}], 10, "adapted: step 10 chosen, target dev WER 50.0% → 25.0%"),
])
def test_verdict_literals(history, best, expected):
    assert verdict(history, best, 0.05) == expected


def test_the_verdict_tells_a_forgetting_refusal_from_no_improvement(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    # both checkpoints beat the start on target, both forget more than 5 %: the limit refused them
    scripted_evaluate(monkeypatch, [0.50, 0.30, 0.40], [0.20, 0.30, 0.25])
    result, same = run(tone_data, tiny_model_dir, tmp_path)
    assert result.best_step == 0 and same
    text = verdict(result.history, result.best_step, 0.05)
    assert not text.startswith("negative transfer") and "no checkpoint beat" not in text
    assert text == ("forgetting limit: checkpoints beat the starting model's target dev WER 50.0% (best: step 2, "
                    "30.0%) but forgot more than allowed, source dev WER 20.0% → 30.0% (source forgetting limit 5%); "
                    "the starting model is returned unchanged")
    assert (tmp_path / "best_target" / "model.safetensors").is_file()  # what run_adaptation keeps as refused_best/


def test_a_refused_run_keeps_the_refused_weights_and_says_so(monkeypatch, tone_data, tiny_model_dir, tmp_path, capsys):
    from speechtl.adapt.run import REFUSED_BEST, AdaptConfig, run_adaptation

    scripted_evaluate(monkeypatch, [0.50, 0.30], [0.20, 0.30])  # dev scoring only: the test sets are really scored
    from conftest import make_tone_set

    src = make_tone_set(tmp_path / "src", 4, seed=7, accent="src")  # ids start with "src": scripted as source
    cfg = AdaptConfig(model=str(tiny_model_dir), train=str(tone_data["train"]), dev=str(tone_data["dev"]),
                      source_dev=str(src), test=[str(tone_data["test"])], out=str(tmp_path / "run"), mismatch_utts=0,
                      training=train_config(lr=1e-2, max_steps=2, eval_every=2, batch_seconds=4, interpolate=[]))
    result = run_adaptation(cfg, progress=False)
    assert result.train.best_step == 0 and result.verdict.startswith("forgetting limit")
    # the tiny random model's test WER is saturated: the verdict ends with that caution after the refused weights
    assert f"the starting model is returned unchanged (the refused checkpoint's weights: {REFUSED_BEST}/)" in result.verdict
    refused = tmp_path / "run" / REFUSED_BEST
    assert (refused / "model.safetensors").is_file() and '"step": 2' in (refused / "refused.json").read_text()
    assert not (tmp_path / "run" / "best_target").exists()
    phases = capsys.readouterr().err.splitlines()
    assert [p for p in phases if p.startswith("adapt: ")][-1] == f"adapt: writing {tmp_path / 'run'}"  # quiet, not mute
