"""The adaptation report, rendered from a literal result: the exact markdown a user reads."""

from __future__ import annotations

from speechtl.adapt.report import RunResult, render_report
from speechtl.adapt.train import TrainResult


def _scores(wer, cer, words, hits, hyp_words, empty):
    return {"wer": wer, "cer": cer, "num_utts": 10, "num_words": words, "hits": hits, "hyp_words": hyp_words,
            "hyp_ratio": hyp_words / words, "empty_share": empty}


def _result() -> RunResult:
    change = {"wer_delta": -0.2, "low": -0.25, "high": -0.15, "level": 0.95, "resampled": "speakers", "speakers": 12}
    sets = {"scot": {"role": "target", "manifest": "scot.jsonl", "before": _scores(0.5, 0.2, 200, 110, 190, 0.0),
                     "after": _scores(0.3, 0.1, 200, 150, 198, 0.1), "change": change}}
    train = TrainResult(steps=40, best_step=30, best_alpha=None, best_dev_wer=0.31, trainable_params=1234,
                        wall_s=12.0, history=[], stopped_early=False, criterion="wer")
    return RunResult(model="speechtl/en-us-synth", sets=sets, target=None, source=None, labelled_minutes=10.0,
                     replay_minutes=0.0, trainable_params=1234, normalizer={}, head=None, train=train, skipped=[
                         {"set": "train", "id": "u7", "reason": "cannot read audio"}], verdict="adapted: step 30 chosen",
                     mismatch=None, routing=None, warnings=["few speakers"], seed=0, device="cpu",
                     processes=1, precision="bf16", wall_s=42.4, command="speechtl adapt --train t.jsonl")


def test_the_report_reads_exactly_so():
    assert render_report(_result()) == "\n".join([
        "# Adaptation of `speechtl/en-us-synth`",
        "",
        "| set | role | WER before | WER after | change | WER points, 95 % interval | CER before | CER after | words "
        "| words correct % | hyp/ref words | empty % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| scot | target | 50.0 | 30.0 | -40% | -20.0 (-25.0 … -15.0) | 20.0 | 10.0 | 200 | 55.0 → 75.0 "
        "| 0.95 → 0.99 | 0 → 10 |",
        "",
        "Words correct: reference words recognised; hyp/ref words: words written per reference word (below 1 the "
        "system drops words; an empty transcript scores 100 % WER); empty: outputs with no word.",
        "",
        "Verdict: adapted: step 30 chosen.",
        "",
        "Labelled minutes: 10.0 · trainable parameters: 1,234 · steps: 40 (best dev step: 30) · wall time: 42 s · "
        "seed: 0 · cpu/bf16",
        "",
        "Warnings:",
        "- few speakers",
        "",
        "Skipped 1 unreadable file(s):",
        "- train/u7: cannot read audio",
        "",
        "Command: `speechtl adapt --train t.jsonl`",
        "",
    ])


def test_results_json_round_trips():
    r = _result()
    assert RunResult.from_json(r.to_json()).to_json() == r.to_json()


def test_user_given_text_cannot_inject_markup_into_the_report():
    import dataclasses

    r = _result()
    r = dataclasses.replace(r, sets={"<script>x</script>|": r.sets["scot"]}, warnings=["id <img src=x onerror=y>"],
                            skipped=[{"set": "train", "id": "a|b", "reason": "<b>bad</b>\nline"}],
                            command="speechtl adapt `touch pwned`")
    md = render_report(r)
    assert "<" not in md.replace("&lt;", "") and "| &lt;script&gt;x&lt;/script&gt;\\| | target |" in md
    assert "- train/a\\|b: &lt;b&gt;bad&lt;/b&gt; line" in md and "Command: `speechtl adapt 'touch pwned'`" in md
