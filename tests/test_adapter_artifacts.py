"""Adapter artifacts: one base model, several adapters swapped in at load time, each equal to its run's merged model."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

import speechtl.adapt.select as select_module
from speechtl.adapt.report import RunResult
from speechtl.adapt.run import AdaptConfig, labels_for, run_adaptation
from speechtl.adapt.train import DevSets, TrainData, train, train_config
from speechtl.cli import main
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest
from speechtl.models import ModelLoadError, load_model, random_model
from speechtl.models.adapter import apply_adapter, base_fingerprint, capture_adapter, save_adapter
from speechtl.text import build_vocab

from conftest import make_tone_set

X = torch.randn(2, 12_000, generator=torch.Generator().manual_seed(0))


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X).logits


def _adapt(tone_data, model_dir, out, strategy, **training):
    training = {"lr": 1e-2, "max_steps": 3, "eval_every": 3, "batch_seconds": 4, "lora_r": 4, "adapter_dim": 8,
                "guard": False, **training}
    cfg = AdaptConfig(model=str(model_dir), train=str(tone_data["train"]), dev=str(tone_data["dev"]),
                      test=[str(tone_data["test"])], out=str(out), mismatch_utts=0,
                      training=train_config(strategy=strategy, **training))
    return run_adaptation(cfg, progress=False)


@pytest.fixture(scope="module")
def two_runs(tone_data, tiny_model_dir, tmp_path_factory):
    """A LoRA run and an MMS-adapter run from the same base."""
    root = tmp_path_factory.mktemp("adapters")
    return {s: (root / s, _adapt(tone_data, tiny_model_dir, root / s, s)) for s in ("lora", "adapter")}


def test_results_give_each_change_with_its_interval(two_runs):
    for out, results in two_runs.values():
        saved = json.loads((out / "results.json").read_text())  # RunResult.to_json is results.json, in order
        assert list(saved) == list(results.to_json()) and RunResult.from_json(saved).to_json() == saved
        for s in results.sets.values():
            c = s["change"]
            assert c["wer_delta"] == pytest.approx(s["after"]["wer"] - s["before"]["wer"], abs=1e-5)
            assert c["low"] <= c["wer_delta"] <= c["high"] and c["level"] == 0.95
        assert results.target["change"] == next(iter(results.sets.values()))["change"]
        assert "WER points, 95 % interval" in (out / "report.md").read_text()


def test_one_base_two_adapters_each_equal_to_its_merged_model(two_runs, tiny_model_dir):
    base = _logits(load_model(str(tiny_model_dir))[0])
    swapped = {}
    for strategy, (out, results) in two_runs.items():
        assert sorted(p.name for p in (out / "adapter").iterdir()) == sorted(
            {"lora": ["adapter_config.json", "adapter_model.safetensors", "speechtl_adapter.json"],
             "adapter": ["adapter.safetensors", "speechtl_adapter.json"]}[strategy])
        merged = _logits(load_model(str(out))[0])
        swapped[strategy] = _logits(load_model(str(tiny_model_dir), adapter=str(out / "adapter"))[0])
        assert torch.equal(swapped[strategy], merged), strategy
        a = results.artifacts
        assert a["adapter_dir"] == "adapter" and 0 < a["adapter_bytes"] < a["full_model_bytes"]
        assert a["adapter_ratio"] == round(a["adapter_bytes"] / a["full_model_bytes"], 6)
        assert a["full_model_bytes"] == (out / "model.safetensors").stat().st_size
        assert "Artifacts: full model" in (out / "report.md").read_text()
    assert not torch.allclose(swapped["lora"], swapped["adapter"])
    assert not torch.allclose(swapped["lora"], base) and not torch.allclose(swapped["adapter"], base)


def test_the_adapter_holds_lora_factors_and_the_trained_head(two_runs):
    keys = set(load_file(two_runs["lora"][0] / "adapter" / "adapter_model.safetensors"))
    assert keys and all("lora_A" in k or "lora_B" in k or "lm_head" in k for k in keys)
    assert {"base_model.model.lm_head.weight", "base_model.model.lm_head.bias"} <= keys
    keys = set(load_file(two_runs["adapter"][0] / "adapter" / "adapter.safetensors"))
    assert keys and all(".adapter_layer." in k or k.startswith("lm_head.") for k in keys)
    meta = json.loads((two_runs["adapter"][0] / "adapter" / "speechtl_adapter.json").read_text())
    assert meta["strategy"] == "adapter" and meta["adapter_attn_dim"] == 8 and meta["base"]["num_hidden_layers"] == 2


def test_cli_transcribe_and_evaluate_with_adapter(two_runs, tiny_model_dir, tone_data, capsys):
    out = two_runs["lora"][0]
    wav = str(read_manifest(tone_data["test"])[0].audio_path)
    assert main(["transcribe", str(out), wav, "--quiet", "--output-format", "json"]) == 0
    merged = json.loads(capsys.readouterr().out)["transcripts"]
    assert main(["transcribe", str(tiny_model_dir), wav, "--adapter", str(out / "adapter"), "--quiet",
                 "--output-format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["transcripts"] == merged
    assert main(["evaluate", str(tiny_model_dir), str(tone_data["test"]), "--adapter", str(out / "adapter"),
                 "--quiet", "--output-format", "json"]) == 0
    swapped = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(out), str(tone_data["test"]), "--quiet", "--output-format", "json"]) == 0
    assert swapped["sets"]["test"]["wer"] == json.loads(capsys.readouterr().out)["sets"]["test"]["wer"]
    assert swapped["adapter"] == str(out / "adapter")


@pytest.fixture
def broken(two_runs, tmp_path):
    folder = tmp_path / "adapter"
    shutil.copytree(two_runs["lora"][0] / "adapter", folder)
    return folder


@pytest.mark.parametrize("damage, message", [
    (lambda f: shutil.rmtree(f), "is not a folder"),
    (lambda f: (f / "speechtl_adapter.json").unlink(), "cannot read speechtl_adapter.json"),
    (lambda f: (f / "speechtl_adapter.json").write_text("{not json"), "cannot read speechtl_adapter.json"),
    (lambda f: (f / "speechtl_adapter.json").write_text('{"format": "other"}'), "is not a speechtl-adapter/1"),
    (lambda f: (f / "adapter_model.safetensors").unlink(), "adapter_model.safetensors is missing"),
    (lambda f: (f / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"),
     "not a readable safetensors file"),
    (lambda f: save_file({"base_model.model.lm_head.weight": torch.zeros(8, 32)}, f / "adapter_model.safetensors"),
     r"does not fit the model \(missing: base_model.model.lm_head.bias, base_model.model.wav2vec2"),
    (lambda f: save_file({**load_file(f / "adapter_model.safetensors"),
                          "base_model.model.lm_head.weight": torch.zeros(9, 32)}, f / "adapter_model.safetensors"),
     r"does not fit the model \(wrong shape: base_model.model.lm_head.weight\)"),
])
def test_a_malformed_adapter_is_a_clear_error(broken, tiny_model_dir, damage, message):
    damage(broken)
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(tiny_model_dir), adapter=str(broken))


def test_an_adapter_for_another_base_is_refused(two_runs, tone_data, tmp_path, capsys):
    other_weights, other_arch = tmp_path / "other", tmp_path / "wider"
    for folder, kwargs in ((other_weights, {"seed": 1}), (other_arch, {"hidden_size": 48})):
        model, processor = random_model(build_vocab(["abc"]), size="tiny", **kwargs)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    adapter = str(two_runs["adapter"][0] / "adapter")
    with pytest.raises(ModelLoadError, match="whose weights differ from"):
        load_model(str(other_weights), adapter=adapter)
    with pytest.raises(ModelLoadError, match="hidden_size 32.*has hidden_size 48"):
        load_model(str(other_arch), adapter=adapter)
    wav = str(read_manifest(tone_data["test"])[0].audio_path)
    assert main(["transcribe", str(other_weights), wav, "--adapter", adapter, "--quiet"]) == 2
    assert "whose weights differ" in capsys.readouterr().err


def scripted_dev(monkeypatch, target_wers, source_wers):
    """Dev scoring by script (target, source alternating), as in test_guard."""
    calls = {"target": iter(target_wers), "source": iter(source_wers)}

    def fake(model, processor, utts, *args, **kwargs):
        wer = next(calls["source" if utts[0].id.startswith("src") else "target"])
        return SimpleNamespace(wer=wer, cer=wer / 2, rows=[{"hypothesis": "a b"} for _ in utts])

    monkeypatch.setattr(select_module, "evaluate", fake)


def test_the_adapter_reproduces_a_wise_ft_interpolated_choice(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    # both checkpoints forget too much; α = 0.4 keeps the source within the limit and wins
    scripted_dev(monkeypatch, [0.50, 0.30, 0.35, 0.45, 0.40], [0.20, 0.25, 0.26, 0.20, 0.21])
    model, processor = load_model(str(tiny_model_dir))
    base = base_fingerprint(model, processor)
    utts, audio, _ = load_utterance_audio(read_manifest(tone_data["train"]))
    src = [u.__class__("src" + u.id, u.audio_path, u.text) for u in utts[2:4]]
    kept = []
    cfg = train_config(lr=1e-2, max_steps=4, eval_every=2, batch_seconds=4, strategy="lora", lora_r=4,
                      interpolate=[0.2, 0.4])
    result = train(model, processor, TrainData(utts, labels_for(utts, processor.tokenizer), audio), tmp_path, cfg,
                   DevSets(utts[:2], audio[:2], src, audio[2:4]), progress=False,
                   on_finish=lambda m: kept.append(capture_adapter(m, "lora")))
    assert (result.best_step, result.best_alpha) == (2, 0.4)
    save_adapter(kept[0], tmp_path / "adapter", str(tiny_model_dir), base)
    fresh, fresh_processor = load_model(str(tiny_model_dir))
    swapped = apply_adapter(fresh, fresh_processor, tmp_path / "adapter")
    assert torch.equal(_logits(swapped), _logits(model))


def test_no_adapter_when_the_guard_returns_the_start(monkeypatch, tone_data, tiny_model_dir, tmp_path):
    scripted_dev(monkeypatch, [0.50, 0.60], [])
    (tmp_path / "run" / "adapter").mkdir(parents=True)  # an older run's adapter must not survive
    results = _adapt(tone_data, tiny_model_dir, tmp_path / "run", "lora", guard=True)
    assert results.train.best_step == 0
    assert results.artifacts["adapter_bytes"] is None and "no adapter written" in results.artifacts["adapter_note"]
    assert not (tmp_path / "run" / "adapter").exists()


def test_full_fine_tune_reports_its_size_and_writes_no_adapter(tone_data, tiny_model_dir, tmp_path):
    results = _adapt(tone_data, tiny_model_dir, tmp_path / "run", "top_k", top_k=1)
    assert results.artifacts["full_model_bytes"] > 0 and results.artifacts["adapter_bytes"] is None
    assert not (tmp_path / "run" / "adapter").exists()


def test_mismatch_is_measured_before_training_when_source_audio_is_given(tone_data, tiny_model_dir, tmp_path):
    source = make_tone_set(tmp_path / "src", 4, seed=9, accent="src")
    cfg = AdaptConfig(model=str(tiny_model_dir), train=str(tone_data["train"]), test=[str(tone_data["test"])],
                      source_test=str(source), out=str(tmp_path / "run"), mismatch_utts=3,
                      training=train_config(max_steps=1, batch_seconds=4))
    m = run_adaptation(cfg, progress=False).mismatch
    assert m["source_set"] == "src" and m["target_set"] == "train+test"
    assert m["utterances"] == {"source": 3, "target": 3}  # --mismatch-utts caps both sides alike
    assert m["frechet"] == m["frechet_by_layer"]["final"] > 0 and set(m["frechet_by_layer"]) == {"0", "1", "2", "final"}
    assert 0 < m["confidence"]["target"] <= 1 and m["entropy"]["source"] >= 0
    assert "Domain mismatch before adapting (train+test vs src)" in (tmp_path / "run" / "report.md").read_text()


def test_adapter_sizes_benchmark_meets_the_five_percent_aim_on_the_shipped_model(capsys):
    from test_recipes import load_script

    bench = load_script("benchmarks/adapter_sizes.py")
    rows = bench.main(["--models", "speechtl/en-us-synth", "--lora-ranks", "8", "--adapter-dims", "32"])
    assert [(r["strategy"], r["setting"]) for r in rows] == [("lora", "r=8"), ("adapter", "dim=32")]
    assert all(0 < r["ratio"] <= 0.05 and r["ratio"] == round(r["adapter_bytes"] / r["full_model_bytes"], 6)
               for r in rows)
    assert rows[0]["trainable_params"] == 4 * (4 * 8 * (256 + 256) + 2 * 8 * (256 + 1024)) + 32 * 256 + 32
    assert "benchmarks/adapter_sizes.py --models speechtl/en-us-synth" in capsys.readouterr().out
