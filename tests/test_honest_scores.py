"""Honest scores where WER saturates: words correct, hypothesis/reference words and empty outputs beside WER/CER;
a gain made of deleted words or a WER near an empty transcript's is said so; checkpoints are ranked by CER when
the start's dev WER is saturated; intervals from few speakers carry a warning. Literal hypotheses throughout."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import speechtl.adapt.select as select_module
from speechtl.adapt.report import refused_checkpoint, score_warnings, verdict
from speechtl.adapt.select import rank_key, selection_criterion
from speechtl.adapt.train_config import train_config
from speechtl.config import ConfigError
from speechtl.eval import EvalResult, error_rates, utterance_hits, word_figures
from speechtl.eval.caveats import deletion_gain, few_speakers, saturated

REFS = ["the cat sat on the mat", "a dog ran far away", "birds sing at dawn", "rain falls on the roof"]  # 20 words


def figures(refs: list[str], hyps: list[str]) -> dict:
    """What an EvalResult.summary() holds, from literal texts."""
    rates = error_rates(refs, hyps)
    hits, hyp_words = utterance_hits(refs, hyps)
    return {"wer": rates.wer, "cer": rates.cer, "num_words": rates.num_words, **word_figures(hits, hyp_words,
                                                                                              rates.num_words)}


def test_word_figures_literal():
    hits, hyp_words = utterance_hits(["a b c", "d e", "f"], ["a x c d", "", "f"])
    assert hits.tolist() == [2, 0, 1] and hyp_words.tolist() == [4, 0, 1]
    assert word_figures(hits, hyp_words, 6) == {"hits": 3, "hyp_words": 5, "hyp_ratio": 5 / 6, "empty_share": 1 / 3}


def test_summary_keeps_the_old_keys_first_and_adds_the_new_ones():
    r = EvalResult(wer=0.5, cer=0.25, num_utts=2, num_words=4, audio_s=3.0, rtf=0.1, hits=2, hyp_words=3,
                   hyp_ratio=0.75, empty_share=0.5)
    assert list(r.summary()) == ["wer", "cer", "num_utts", "num_words", "audio_s", "rtf", "hits", "hyp_words",
                                 "hyp_ratio", "empty_share"]


def test_an_empty_transcript_scores_100_percent_and_is_saturated():
    empty = figures(REFS, [""] * 4)
    assert empty["wer"] == 1.0 and empty["hits"] == 0 and empty["empty_share"] == 1.0
    assert saturated("test", empty).startswith("test: WER 100.0% is near what an empty transcript scores")


def test_a_gain_made_of_deletions_is_flagged():
    # before: every word written, mostly wrong with insertions (WER > 100 %); after: fewer words, still wrong
    before = figures(REFS, ["da cut sap in da mad ha", "o dug run fur awry ho", "burds sang it down ha",
                            "ran fells in da rough ha"])
    after = figures(REFS, ["da", "o dug", "", "ran"])
    assert before["wer"] > after["wer"] >= 0.9 and after["hits"] == 0
    text = deletion_gain("test", before, after)
    assert text.startswith("test: the WER gain") and "comes from deleting words" in text and "24 → 4" in text
    assert deletion_gain("test", before, after, short=True) == (
        "the gain on test comes from deleting words (hypothesis words 24 → 4 for 20 reference words)")
    assert saturated("test", after)


def test_a_real_gain_is_not_flagged():
    before = figures(REFS, ["the cut sat in the mad", "a dug ran for a way", "birds sang at down", "rain falls in the rough"])
    after = figures(REFS, ["the cat sat on the mat", "a dog ran far away", "birds sing at dawn", "rain falls on the roof"])
    assert after["wer"] == 0.0
    assert deletion_gain("test", before, after) == "" and saturated("test", after) == ""


def test_fewer_words_that_drop_only_insertions_is_a_real_gain():
    # the system stops inserting "uh": far fewer words (ratio 2/7 < 0.7), but every dropped word was an error, so the
    # errors fell by exactly the words no longer written: not flagged
    before = figures(["a b"], ["uh uh a uh b uh uh"])
    after = figures(["a b"], ["a b"])
    assert after["hyp_words"] / before["hyp_words"] < 0.7 and after["wer"] == 0.0
    assert deletion_gain("test", before, after) == "" and saturated("test", after) == ""
    # dropping a right word as well tips it: the errors fell by fewer words (4) than were dropped (6)
    assert deletion_gain("test", before, figures(["a b"], ["a"]))


def test_few_speakers():
    assert few_speakers("test", 3).startswith("test: the 95% interval resamples only 3 speaker(s) (fewer than 10)")
    assert few_speakers("test", 10) == "" and few_speakers("test", 0) == "" and few_speakers("test", None) == ""


# ---- checkpoint choice ------------------------------------------------------------------------------------------

def entry(step, wer, cer, qualifies=True, **kw):
    return {"step": step, "dev_wer": wer, "dev_cer": cer, "qualifies": qualifies, **kw}


def test_selection_criterion_from_a_fake_history():
    assert selection_criterion([]) is None
    assert selection_criterion([{"step": 4, "train_loss": 1.0}]) is None  # no dev set
    assert selection_criterion([entry(2, 0.95, 0.5)]) == "wer"  # the start not scored: WER first, as always
    assert selection_criterion([entry(0, 0.75, 0.4), entry(2, 0.6, 0.3)]) == "wer"  # the espeak demo's start
    assert selection_criterion([entry(0, 0.9, 0.8)]) == "cer"
    assert selection_criterion([entry(0, 1.134, 0.936), entry(2, 1.03, 0.797)]) == "cer"
    assert rank_key(entry(2, 0.5, 0.2), "wer") == (0.5, 0.2) and rank_key(entry(2, 0.5, 0.2), "cer") == (0.2, 0.5)
    # --select-by wer|cer: every dev entry records it, and it wins over the start's WER
    assert selection_criterion([entry(0, 0.5, 0.3, select_by="cer"), entry(2, 0.6, 0.2, select_by="cer")]) == "cer"
    assert selection_criterion([entry(0, 1.1, 0.9, select_by="wer")]) == "wer"


def scripted(monkeypatch, scores):
    """Dev scoring replaced by (WER, CER) pairs, one per evaluation (no source dev set)."""
    it = iter(scores)

    def fake(model, processor, utts, *args, **kwargs):
        wer, cer = next(it)
        return SimpleNamespace(wer=wer, cer=cer, rows=[{"hypothesis": "a b"} for _ in utts])

    monkeypatch.setattr(select_module, "evaluate", fake)


def train_tiny(tone_data, tiny_model_dir, tmp_path, **settings):
    from speechtl.adapt.run import labels_for
    from speechtl.adapt.train import DevSets, TrainData, train, train_config
    from speechtl.data.dataset import load_utterance_audio
    from speechtl.data.manifest import read_manifest
    from speechtl.models import load_model

    model, processor = load_model(str(tiny_model_dir))
    utts, audio, _ = load_utterance_audio(read_manifest(tone_data["train"]))
    config = train_config(lr=1e-2, max_steps=4, eval_every=2, batch_seconds=4, freeze_feature_encoder=False,
                          **settings)
    return train(model, processor, TrainData(utts, labels_for(utts, processor.tokenizer), audio), tmp_path, config,
                 DevSets(utts[:2], audio[:2]), progress=False)


def test_a_saturated_start_ranks_checkpoints_by_cer(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    # step 4 has the lower WER (0.92 < 0.95) but step 2 the far lower CER (0.60 vs 0.80): CER decides
    scripted(monkeypatch, [(1.10, 0.90), (0.95, 0.60), (0.92, 0.80)])
    result = train_tiny(tone_data, tiny_model_dir, tmp_path)
    assert (result.best_step, result.criterion) == (2, "cer")
    assert verdict(result.history, result.best_step, 0.05) == (
        "adapted: step 2 chosen, target dev WER 110.0% → 95.0%, CER 90.0% → 60.0%; ranked by dev CER, then WER: "
        "the starting model's dev WER 110.0% is saturated (≥ 90%, about what an empty transcript scores)")


def test_below_the_threshold_wer_still_decides(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    scripted(monkeypatch, [(0.75, 0.40), (0.60, 0.20), (0.55, 0.30)])
    result = train_tiny(tone_data, tiny_model_dir, tmp_path)
    assert (result.best_step, result.criterion) == (4, "wer")
    assert verdict(result.history, result.best_step, 0.05) == "adapted: step 4 chosen, target dev WER 75.0% → 55.0%"


def test_select_by_cer_ranks_by_cer_below_the_threshold_too(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    """The source build's case: a dev set of many voices, WER 54 % → 57 % while CER 36 % → 27 %."""
    scripted(monkeypatch, [(0.54, 0.36), (0.59, 0.29), (0.57, 0.27)])
    result = train_tiny(tone_data, tiny_model_dir, tmp_path, select_by="cer")
    assert (result.best_step, result.criterion) == (4, "cer")
    assert verdict(result.history, result.best_step, 0.05).endswith("ranked by dev CER, then WER: as --select-by "
                                                                      "cer asks")
    with pytest.raises(ConfigError, match="--select-by 'bleu': choose one of auto, wer, cer"):
        train_config(select_by="bleu")


def test_a_saturated_start_that_no_checkpoint_beats_on_cer_is_kept():
    history = [entry(0, 1.10, 0.50, source_dev_wer=0.2), entry(2, 0.95, 0.60, source_dev_wer=0.2)]
    assert verdict(history, 0, 0.05).startswith(
        "negative transfer: no checkpoint beat the starting model's target dev CER 50.0% (source forgetting limit 5%)")
    assert refused_checkpoint(history) is None
    refused = [entry(0, 1.10, 0.90, source_dev_wer=0.2), entry(2, 1.20, 0.60, False, source_dev_wer=0.3)]
    assert refused_checkpoint(refused)["step"] == 2  # beat the start on CER although its WER is higher


# ---- reports ----------------------------------------------------------------------------------------------------

def _set(role, before, after, speakers=40):
    change = {"wer_delta": after["wer"] - before["wer"], "low": -0.1, "high": 0.1, "level": 0.95,
              "resampled": "speakers", "speakers": speakers}
    return {"role": role, "manifest": "m.jsonl", "before": before, "after": after, "change": change}


def test_score_warnings_name_the_set_and_feed_the_verdict():
    before = figures(REFS, ["da cut sap in da mad ha", "o dug run fur awry ho", "burds sang it down ha",
                            "ran fells in da rough ha"])
    after = figures(REFS, ["da", "o dug", "", "ran"])
    fine = figures(REFS, REFS)
    warnings, phrases = score_warnings({"test": _set("target", before, after, speakers=4),
                                        "src": _set("source", fine, fine)})
    assert [w.split(":")[0] for w in warnings] == ["test (target)", "test (target)", "test (target) WER change"]
    assert phrases[0].startswith("the gain on test comes from deleting words") and phrases[1].startswith("test's WER")
    assert score_warnings({"src": _set("source", fine, fine)}) == ([], [])


def test_the_report_shows_words_correct_ratio_and_empty(tone_data, tiny_model_dir, tmp_path, capsys):
    from speechtl.adapt.run import AdaptConfig, run_adaptation
    from speechtl.adapt.train import train_config

    out = tmp_path / "run"
    cfg = AdaptConfig(model=str(tiny_model_dir), train=str(tone_data["train"]), dev=str(tone_data["dev"]),
                      test=[str(tone_data["test"])], out=str(out), mismatch_utts=0,
                      training=train_config(lr=1e-2, max_steps=2, eval_every=2, batch_seconds=4))
    run_adaptation(cfg, progress=False)
    results = json.loads((out / "results.json").read_text())
    after = results["sets"]["test"]["after"]
    assert list(after)[:6] == ["wer", "cer", "num_utts", "num_words", "audio_s", "rtf"]
    assert {"hits", "hyp_words", "hyp_ratio", "empty_share"} <= set(after)
    assert 0 <= after["hits"] <= after["num_words"] and after["hyp_ratio"] == pytest.approx(
        after["hyp_words"] / after["num_words"], abs=1e-6)
    assert results["sets"]["test"]["change"]["speakers"] == 3  # the tone sets have three speakers
    assert results["train"]["criterion"] in ("wer", "cer")
    few = [w for w in results["warnings"] if "resamples only 3 speaker(s)" in w]
    assert len(few) == 1 and few[0].startswith("test (target) WER change")
    report = (out / "report.md").read_text()
    assert "| words correct % | hyp/ref words | empty % |" in report and "Warnings:" in report
    assert f"warning: {few[0]}" in capsys.readouterr().err.splitlines()


def test_render_report_of_old_results_shows_dashes():
    from speechtl.adapt.report import word_columns

    old = {"wer": 0.5, "cer": 0.2, "num_words": 10}
    assert word_columns(old, old) == ("–", "–", "–")


def test_the_demo_table_keeps_its_columns_and_adds_the_new_ones_at_the_end():
    from speechtl.demo import format_table

    def sc(wer, cer, hits, hyp, empty=0.0):
        return {"wer": wer, "cer": cer, "num_words": 300, "hits": hits, "hyp_words": hyp, "hyp_ratio": hyp / 300,
                "empty_share": empty}

    r = SimpleNamespace(
        extra={"demo": {"accent": "en-gb-scotland", "source_accent": "en-us", "synthesis_s": 10.0}},
        target={"before": sc(0.75, 0.40, 90, 290), "after": sc(0.426, 0.20, 180, 296),
                "change": {"wer_delta": -0.324, "low": -0.36, "high": -0.289}},
        source={"before": sc(0.081, 0.031, 280, 301), "after": sc(0.083, 0.032, 279, 300, 0.01),
                "change": {"wer_delta": 0.002, "low": -0.006, "high": 0.011}},
        labelled_minutes=10.0, replay_minutes=0.0, trainable_params=1_234_567, train=SimpleNamespace(steps=800,
        best_step=600), wall_s=100.0, seed=0, verdict="adapted: step 600 chosen", routing=None, sets={})
    lines = format_table(r).splitlines()
    old = [  # the table before these columns existed, to the character
        "                             WER % before → after     CER % before → after   WER points, 95 % interval",
        "target  en-gb-scotland         75.0 →  42.6 ( -43%)    40.0 →  20.0    -32.4 (-36.0 … -28.9)",
        "source  en-us                   8.1 →   8.3 (  +2%)     3.1 →   3.2    +0.2 (-0.6 … +1.1)",
        "labelled minutes 10.0 (+0.0 source replay) · trainable parameters 1.23 M · steps 800 (chosen 600) · "
        "wall time 110 s · seed 0",
        "verdict: adapted: step 600 chosen"]
    assert all(new.startswith(o) for new, o in zip(lines, old)) and lines[3:] == old[3:]
    assert lines[0].split()[-7:] == ["words", "correct", "%", "hyp/ref", "words", "empty", "%"]
    assert lines[1][len(lines[0]) - len("words correct % hyp/ref words empty %") - 2:].split() == \
        ["30.0", "→", "60.0", "0.97", "→", "0.99", "0", "→", "0"]
    assert lines[2].endswith("93.3 → 93.0     1.00 → 1.00   0 → 1")


# ---- compare ----------------------------------------------------------------------------------------------------

def _row(model, set_name, f, speakers=4, **kw):
    return {"set": set_name, "model": model, "num_utts": 4, "num_speakers": speakers, "resampled": "speakers", **f, **kw}


def test_compare_warnings_and_headline_caution():
    from speechtl.compare.run import score_warnings as compare_warnings
    from speechtl.compare.tables import headline, words_table

    before = figures(REFS, ["da cut sap in da mad ha", "o dug run fur awry ho", "burds sang it down ha",
                            "ran fells in da rough ha"])
    after = figures(REFS, ["da", "o dug", "", "ran"])
    matrix = [_row("base", "test", before), _row("adapted", "test", after, delta_wer=after["wer"] - before["wer"],
                                                 delta_wer_low=-0.5, delta_wer_high=-0.1, p_value=0.002)]
    warnings = compare_warnings(matrix, {}, "base")
    assert warnings[0].startswith("set test (intervals): the 95% interval resamples only 4 speaker(s)")
    assert any(w.startswith("set test, adapted vs base: the WER gain") for w in warnings)
    assert any(w.startswith("set test, adapted: WER") and "near what an empty transcript scores" in w for w in warnings)
    results = {"baseline": "base", "num_bootstrap": 1000}
    line = headline(results, "set", matrix)[0]
    assert "significant" in line and "Caution: the gain on test comes from deleting words" in line
    cells = words_table(results, matrix, "set", "words").rows[0]
    assert cells[3][0] == f"0.0 · {4 / 20:.2f} · 25.0"  # adapted: no word right, 4 of 20 words written, 1 of 4 empty


def test_compare_writes_the_new_figures(tmp_path, tone_data, tiny_model_dir):
    from speechtl.compare import CompareConfig
    from speechtl.compare.run import run_compare

    out = tmp_path / "cmp"
    results = run_compare(CompareConfig(models=[str(tiny_model_dir)], test=[str(tone_data["test"])], out=str(out),
                                        quiet=True, num_bootstrap=100))
    row = results["matrix"][0]
    assert {"hits", "hyp_words", "hyp_ratio", "empty_share"} <= set(row) and row["num_speakers"] == 3
    assert any("resamples only 3 speaker(s)" in w for w in results["warnings"])
    report = (out / "report.md").read_text()
    assert "**Warnings**" in report and "Words correct, words written and empty outputs per test set" in report
    assert "| words correct % | hyp/ref words | empty % |" in report
    assert np.isfinite(row["hyp_ratio"])
