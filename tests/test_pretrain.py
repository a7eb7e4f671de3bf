"""speechtl pretrain: the wav2vec 2.0 objective learns, resumes exactly, refuses a changed resume, and leaves a model
folder that load_model and adapt take. Tiny random models in fp32 on tone audio written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from conftest import WORDS, Interrupt, interrupt_at, tone_audio
from speechtl.adapt.pretrain import CHECKPOINT, LOG_FILE, PLOT_FILE, PretrainConfig, run_pretraining
from speechtl.adapt.pretrain_model import PRETRAIN_HEADS
from speechtl.cli import main
from speechtl.config import ConfigError, override
from speechtl.errors import SpeechtlError
from speechtl.models import load_model, random_model
from speechtl.text import build_vocab

# a small codebook, so that a few dozen steps of a ~60 k-parameter model show the objective being learned
TINY_CODEBOOK = dict(num_codevectors_per_group=16, codevector_dim=32, proj_codevector_dim=32)
FAST = PretrainConfig(steps=40, lr=5e-3, batch_seconds=4, mask_length=5, num_negatives=20, eval_every=10,
                      log_every=1, held_out=0.2, freeze_feature_encoder=False, precision="fp32", seed=0)



@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """16 tone clips of three words in a folder (one too short for a mask span beside them) and a tiny model."""
    root = tmp_path_factory.mktemp("pretrain")
    rng = np.random.default_rng(0)
    (root / "audio" / "sub").mkdir(parents=True)
    for i in range(16):
        sf.write(root / "audio" / "sub" / f"{i:02d}.wav", tone_audio(" ".join(rng.choice(WORDS, size=3)), i), 16_000)
    sf.write(root / "audio" / "short.wav", tone_audio("a", 99)[:1600], 16_000)  # 0.1 s: 4 frames < --mask-length 5
    model, processor = random_model(build_vocab(["abc"]), size="tiny", seed=0, **TINY_CODEBOOK)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    return {"audio": root / "audio", "model": root / "model"}


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained") / "run"
    return out, run_pretraining(str(corpus["model"]), [str(corpus["audio"])], out, FAST, progress=False)


def _log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / LOG_FILE).read_text().splitlines()]


def test_the_loss_falls_and_short_audio_is_a_reported_skip(pretrained):
    out, result = pretrained
    log = _log(out)
    train = [e["loss"] for e in log if "loss" in e]
    assert len(train) == FAST.steps and all(np.isfinite(train))
    # a bound, not an outcome: chance is ln(21) ≈ 3.0 with 20 negatives; a loop that does not learn stays there
    assert np.mean(train[-5:]) < 0.9 * np.mean(train[:5]), train
    assert {"contrastive", "diversity", "perplexity", "gumbel_temp", "lr"} <= set(log[0])
    temps = [e["gumbel_temp"] for e in log if "loss" in e]
    assert temps[0] == FAST.gumbel_temp_max and all(a > b for a, b in zip(temps, temps[1:]))  # decays every step
    val = [e["val_loss"] for e in log if "val_loss" in e]
    assert len(val) == FAST.steps // FAST.eval_every and result.final_val_loss == val[-1]
    assert [s["id"].rsplit("/", 1)[-1] for s in result.skipped] == ["short.wav"]
    assert "mask-length" in result.skipped[0]["reason"]
    assert result.train_files + result.held_out_files == 16 and result.held_out_files >= 1
    pytest.importorskip("matplotlib")
    assert result.plot and (out / PLOT_FILE).stat().st_size > 0


def test_the_folder_is_a_ctc_model_that_keeps_the_vocabulary_and_head_and_adapts(pretrained, corpus, tone_data,
                                                                                 tmp_path):
    out, _ = pretrained
    assert not (out / CHECKPOINT).exists() and (out / PRETRAIN_HEADS).is_file()
    model, processor = load_model(str(out))
    start, start_processor = load_model(str(corpus["model"]))
    assert processor.tokenizer.get_vocab() == start_processor.tokenizer.get_vocab()
    assert torch.equal(model.lm_head.weight, start.lm_head.weight)  # continuing: the CTC head is the start's
    changed = [k for k, v in start.wav2vec2.state_dict().items() if not torch.equal(v, model.wav2vec2.state_dict()[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("feature_extractor.") for k in changed)
    args = ["adapt", "--model", str(out), "--train", str(tone_data["train"]), "--dev", str(tone_data["dev"]),
            "--test", str(tone_data["test"]), "--out", str(tmp_path / "adapted"), "--max-steps", "3",
            "--eval-every", "3", "--batch-seconds", "4", "--lr", "1e-3", "--mismatch-utts", "0", "--quiet",
            "--output-format", "json"]
    assert main(args) == 0
    assert json.loads((tmp_path / "adapted" / "results.json").read_text())["train"]["steps"] == 3


def test_continuing_from_a_pretrained_folder_keeps_its_quantizer(pretrained, corpus, tmp_path):
    from speechtl.adapt.pretrain_model import pretraining_model

    out, _ = pretrained
    model, _ = load_model(str(out))
    again = pretraining_model(model, str(out), False, 0.65, 5, 0.1)
    heads = load_file(out / PRETRAIN_HEADS)
    assert heads and all(torch.equal(again.state_dict()[k], v) for k, v in heads.items())
    fresh = pretraining_model(load_model(str(corpus["model"]))[0], str(corpus["model"]), False, 0.65, 5, 0.1)
    assert not torch.equal(fresh.quantizer.codevectors, again.quantizer.codevectors)


def test_resume_is_exact(corpus, tmp_path):
    # several batches per epoch (resume mid-epoch), a log window cut by the checkpoint (eval 4, log 3)
    cfg = override(FAST, steps=12, eval_every=4, log_every=3, batch_seconds=3, seed=3)

    def run(out, on_step=None, resume=False):
        return run_pretraining(str(corpus["model"]), [str(corpus["audio"])], out, override(cfg, resume=resume),
                               progress=False, on_step=on_step)

    run(tmp_path / "straight")

    with pytest.raises(Interrupt):
        run(tmp_path / "interrupted", on_step=interrupt_at(6))
    assert (tmp_path / "interrupted" / CHECKPOINT / "trainer_state.json").is_file()
    assert run(tmp_path / "interrupted", resume=True).steps == 12
    for name in ("model.safetensors", PRETRAIN_HEADS):
        ref, res = load_file(tmp_path / "straight" / name), load_file(tmp_path / "interrupted" / name)
        assert ref.keys() == res.keys() and all(torch.equal(ref[k], res[k]) for k in ref), name
    assert (tmp_path / "straight" / LOG_FILE).read_text() == (tmp_path / "interrupted" / LOG_FILE).read_text()
    key = "wav2vec2.encoder.layers.0.attention.q_proj.weight"  # not vacuous: it trained
    start = load_file(corpus["model"] / "model.safetensors")
    assert not torch.equal(start[key], load_file(tmp_path / "straight" / "model.safetensors")[key])


def test_a_resume_with_a_changed_setting_is_refused_naming_it(corpus, tmp_path):
    cfg = override(FAST, steps=4, eval_every=2)

    with pytest.raises(Interrupt):
        run_pretraining(str(corpus["model"]), [str(corpus["audio"])], tmp_path, cfg, False, interrupt_at(2))
    with pytest.raises(ConfigError, match="mask_prob 0.65 → 0.5"):
        run_pretraining(str(corpus["model"]), [str(corpus["audio"])], tmp_path,
                        override(cfg, resume=True, mask_prob=0.5), progress=False)


def test_from_scratch_gives_a_new_encoder_and_head(corpus, tmp_path):
    cfg = override(FAST, steps=2, eval_every=2, from_scratch=True, held_out=0.0)
    result = run_pretraining(str(corpus["model"]), [str(corpus["audio"])], tmp_path, cfg, progress=False)
    assert result.held_out_files == 0 and result.final_val_loss is None
    model, _ = load_model(str(tmp_path))
    start, _ = load_model(str(corpus["model"]))
    assert not torch.equal(model.lm_head.weight, start.lm_head.weight)
    assert not torch.equal(model.wav2vec2.feature_projection.projection.weight,
                           start.wav2vec2.feature_projection.projection.weight)


def test_bad_input_is_one_line(corpus, tmp_path, capsys):
    missing = tmp_path / "nowhere.wav"
    assert main(["pretrain", str(corpus["model"]), str(missing), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and err.startswith("speechtl pretrain: error:")
    with pytest.raises(SpeechtlError, match="--mask-prob"):
        run_pretraining(str(corpus["model"]), [str(corpus["audio"])], tmp_path, override(FAST, mask_prob=0.0))


def test_the_cli_continues_with_the_feature_encoder_frozen_by_default(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", str(corpus["model"]), str(corpus["audio"]), "--out", str(out), "--steps", "2", "--lr", "5e-3",
            "--eval-every", "2", "--batch-seconds", "4", "--mask-length", "5", "--num-negatives", "10",
            "--precision", "fp32", "--quiet", "--output-format", "json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    start, model = load_model(str(corpus["model"]))[0].wav2vec2, load_model(str(out))[0].wav2vec2
    assert all(torch.equal(v, model.feature_extractor.state_dict()[k])
               for k, v in start.feature_extractor.state_dict().items())
    assert not torch.equal(start.feature_projection.projection.weight, model.feature_projection.projection.weight)


def _poison(monkeypatch, bad_step) -> list[int]:
    """Training forwards whose step ``bad_step(n)`` says get a NaN loss (validation forwards are left alone)."""
    import speechtl.adapt.pretrain as pretrain

    real, calls = pretrain._forward, []

    def forward(s, batch):
        losses, n = real(s, batch)
        if s.model.training:
            calls.append(len(calls))
            if bad_step(calls[-1]):
                losses["loss"] = losses["loss"] * float("nan")
        return losses, n

    monkeypatch.setattr(pretrain, "_forward", forward)
    return calls


def test_a_non_finite_step_is_skipped_and_reported_and_the_weights_stay_finite(corpus, tmp_path, monkeypatch):
    _poison(monkeypatch, lambda n: n in (1, 3))
    cfg = override(FAST, steps=8, eval_every=4)
    result = run_pretraining(str(corpus["model"]), [str(corpus["audio"])], tmp_path, cfg, progress=False)
    assert result.steps == 8 and any("2 of 8 steps skipped" in w for w in result.warnings)
    assert json.loads((tmp_path / "pretrain_config.json").read_text())["skipped_steps"] == 2
    weights = load_file(tmp_path / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert all(np.isfinite(e["loss"]) for e in _log(tmp_path) if "loss" in e)  # skipped steps are not logged
    assert len([e for e in _log(tmp_path) if "loss" in e]) == 6


def test_too_many_non_finite_steps_in_a_row_stop_in_one_line(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("speechtl.adapt.nonfinite.MAX_SKIPPED_IN_A_ROW", 3)
    _poison(monkeypatch, lambda n: n >= 2)
    args = ["pretrain", str(corpus["model"]), str(corpus["audio"]), "--out", str(tmp_path / "run"), "--steps", "20",
            "--precision", "fp32", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "training stopped at step 4" in err and "non-finite" in err


@pytest.mark.parametrize("codebook", [dict(TINY_CODEBOOK), dict(TINY_CODEBOOK, num_codevectors_per_group=2)])
def test_the_loss_equals_transformers_own_with_its_gradients(codebook, corpus):
    """contrastive_loss gives the loss, its parts and the gradients of Wav2Vec2ForPreTraining's own loss (fp32, the
    same masks and negatives); a 2-entry codebook makes negatives equal to their positive, which both mask out."""
    from speechtl.adapt.pretrain_model import contrastive_loss, mask_and_negatives, pretraining_model
    from speechtl.data.dataset import CtcCollator

    ctc, processor = random_model(build_vocab(["abc"]), size="tiny", seed=0, **codebook)
    model = pretraining_model(ctc, None, False, 0.65, 3, 0.1).train()
    rng = np.random.default_rng(1)
    batch = CtcCollator(processor.feature_extractor)(
        [{"id": str(i), "audio": tone_audio(" ".join(rng.choice(WORDS, size=3)), i)} for i in range(3)])
    mask, negatives, _ = mask_and_negatives(model, batch["attention_mask"], 0.65, 3, 10)
    results = []
    for ours in (False, True):
        model.zero_grad()
        torch.manual_seed(0)  # the Gumbel draws and dropout alike in both
        out = model(batch["input_values"], attention_mask=batch["attention_mask"], mask_time_indices=mask,
                    sampled_negative_indices=None if ours else negatives)
        losses = contrastive_loss(model.config, out, mask, negatives) if ours else \
            {"loss": out.loss, "contrastive": out.contrastive_loss, "diversity": out.diversity_loss}
        losses["loss"].backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results.append(({k: v.item() for k, v in losses.items()}, grads))
    (theirs, their_grads), (ours, our_grads) = results
    assert ours == pytest.approx(theirs, rel=1e-5) and np.isfinite(ours["loss"])
    assert their_grads.keys() == our_grads.keys() and len(our_grads) > 10
    for k in their_grads:
        scale = their_grads[k].abs().max().item()  # fp32 sums in another order: close to the tensor's scale
        assert (our_grads[k] - their_grads[k]).abs().max().item() <= 1e-5 * scale + 1e-7, k


@pytest.mark.parametrize("training", [True, False])
def test_the_lookup_quantizer_equals_transformers_own(training):
    """LookupQuantizer (pretraining_model's) gives transformers' codevectors, perplexity and gradients (fp32)."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2GumbelVectorQuantizer

    from speechtl.adapt.pretrain_model import LookupQuantizer, pretraining_model

    ctc, _ = random_model(build_vocab(["abc"]), size="tiny", seed=0, **TINY_CODEBOOK)
    quantizer = pretraining_model(ctc, None, False, 0.65, 3, 0.1).quantizer.train(training)
    assert type(quantizer) is LookupQuantizer
    features = torch.randn(3, 40, quantizer.weight_proj.in_features)
    mask = torch.rand(3, 40) < 0.5
    results = []
    for cls in (Wav2Vec2GumbelVectorQuantizer, LookupQuantizer):
        quantizer.__class__ = cls
        quantizer.zero_grad()
        torch.manual_seed(0)
        codevectors, perplexity = quantizer(features, mask_time_indices=mask)
        (codevectors.square().sum() + perplexity).backward()
        results.append((codevectors.detach(), perplexity.item(),
                        {k: p.grad.clone() for k, p in quantizer.named_parameters() if p.grad is not None}))
    (theirs, their_perplexity, their_grads), (ours, our_perplexity, our_grads) = results
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert our_perplexity == pytest.approx(their_perplexity, rel=1e-6)
    assert their_grads.keys() == our_grads.keys() and len(our_grads) == (3 if training else 1)
    for k in their_grads:
        torch.testing.assert_close(our_grads[k], their_grads[k], rtol=1e-4, atol=1e-5, msg=k)


def test_source_test_is_scored_before_and_after_and_a_worse_one_is_a_warning(corpus, tmp_path, capsys):
    from speechtl.data.manifest import Utterance, write_manifest
    from speechtl.eval import evaluate_manifests
    from speechtl.pretrain import SOURCE_FILE, source_warning

    rng = np.random.default_rng(1)
    utts = []
    for i in range(4):
        text = " ".join(rng.choice(WORDS, size=2))
        sf.write(tmp_path / f"s{i}.wav", tone_audio(text, 50 + i), 16_000)
        utts.append(Utterance(f"s{i}", tmp_path / f"s{i}.wav", text))
    source = tmp_path / "source.jsonl"
    write_manifest(utts, source)
    out = tmp_path / "run"
    args = ["pretrain", str(corpus["model"]), str(corpus["audio"]), "--out", str(out), "--steps", "2", "--lr", "5e-3",
            "--eval-every", "2", "--batch-seconds", "4", "--mask-length", "5", "--num-negatives", "10",
            "--precision", "fp32", "--quiet", "--output-format", "json", "--source-test", str(source)]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)["source_test"]
    written = json.loads((out / SOURCE_FILE).read_text())
    assert written["before"] == printed["before"] and written["after"] == printed["after"]
    for model, when in ((corpus["model"], "before"), (out, "after")):  # the same figures evaluate gives
        (r,) = evaluate_manifests(str(model), [str(source)], precision="fp32", progress=False)["sets"].values()
        assert written[when]["wer"] == pytest.approx(r["wer"]) and written[when]["num_utts"] == 4
    assert source_warning(0.08, 0.64) and "8.0 % -> 64.0 %" in source_warning(0.08, 0.64)
    assert source_warning(0.08, 0.083) is None and source_warning(0.5, 0.4) is None

    missing = tmp_path / "nowhere.jsonl"  # a bad source test fails before any pretraining
    assert main([*args[:-1], str(missing), "--out", str(tmp_path / "run2")]) == 2
    assert str(missing) in capsys.readouterr().err and not (tmp_path / "run2" / CHECKPOINT).exists()
