"""Accent routing: the router's decision, the routed model's outputs row by row, the run folder round trip."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from speechtl.adapt.routing import RunRouter, pooled_states
from speechtl.adapt.run import AdaptConfig, run_adaptation
from speechtl.adapt.train import train_config
from speechtl.cli import main
from speechtl.config import ConfigError
from speechtl.decode import forward_logits, transcribe_arrays, uses_attention_mask
from speechtl.models import ModelLoadError, load_model, random_model
from speechtl.models.router import ROUTER_DIR, RoutedCTC, Router, fit_gate, fit_router, masked_mean, weights_digest
from speechtl.text import build_vocab

from conftest import adapt_routed, make_tone_set


def test_fit_router_separates_two_clouds_and_weighs_the_classes_equally():
    rng = np.random.default_rng(0)
    target = rng.normal(+1.0, 1.0, size=(20, 8))  # few target utterances ...
    source = rng.normal(-1.0, 1.0, size=(2000, 8))  # ... against many source ones
    router = fit_router(target, source)
    held_t, held_s = rng.normal(+1.0, 1.0, size=(500, 8)), rng.normal(-1.0, 1.0, size=(500, 8))
    hit_t = router(torch.tensor(held_t)).float().mean().item()
    hit_s = 1 - router(torch.tensor(held_s)).float().mean().item()
    assert hit_t > 0.95 and hit_s > 0.95  # unweighted, 100:1 would push the boundary into the target cloud
    mid = router.logit(torch.zeros(1, 8)).item()  # the point halfway between the clouds
    assert abs(mid) < 1.5


def test_fit_router_needs_two_of_each():
    with pytest.raises(ValueError, match="at least 2 target and 2 source"):
        fit_router(np.zeros((1, 4)), np.zeros((5, 4)))


def _clouds(seed: int, n: int = 200, dim: int = 8) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return rng.normal(+1.0, 1.0, size=(n, dim)), rng.normal(-1.0, 1.0, size=(n, dim)), rng


def test_the_gate_routes_the_target_cloud_keeps_the_source_and_abstains_far_from_both():
    target, source, rng = _clouds(0)
    router = fit_router(target, source)
    fit_gate(router, target, keep=0.95)
    points = torch.tensor([[1.0] * 8, [-1.0] * 8, [1.0, -40.0] * 4, [40.0] * 8])  # target, source, far, far
    d = router.decide(points)
    assert d.routed.tolist() == [True, False, False, False]
    # far points the classifier calls target (the last: deep on the target side) are held back, not routed
    assert bool(router.logit(points[3:]) > 0) and d.abstained[3]
    assert d.abstained[2] == bool(router.logit(points[2:3]) > 0) and not d.abstained[:2].any()
    assert router(points).tolist() == d.routed.tolist()
    assert 0 < d.probability[1] < 0.5 < d.probability[0] < 1


@pytest.mark.parametrize("keep", [0.8, 0.95])
def test_the_gate_keeps_about_the_requested_share_of_held_out_target_points(keep):
    target, source, rng = _clouds(1, n=400, dim=16)
    speakers = [f"s{i % 40}" for i in range(len(target))]
    router = fit_router(target, source)
    figures = fit_gate(router, target, keep=keep, groups=speakers)
    assert figures["keep"] == keep and figures["threshold"] > 0 and figures["folds"] == 5
    assert abs(figures["held_out_target_kept"] - keep) < 0.02  # the cross-fitted quantile, by construction
    held = router.decide(torch.tensor(rng.normal(+1.0, 1.0, size=(4000, 16))))
    assert abs(held.routed.float().mean().item() - keep) < 0.04  # new target points: about `keep` pass


def test_a_gate_with_keep_1_or_too_few_target_points_is_no_gate():
    target, source, _ = _clouds(2, n=20)
    router = fit_router(target, source)
    assert fit_gate(router, target, keep=1.0)["threshold"] is None and not router.gated
    assert "too few" in fit_gate(router, target[:3], keep=0.9)["note"] and not router.gated
    with pytest.raises(ValueError, match=r"share of the target in \(0, 1\]"):
        fit_gate(router, target, keep=0.0)


def test_masked_mean_ignores_padding():
    h = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    assert masked_mean(h, torch.tensor([2, 3])).squeeze(-1).tolist() == [2.0, 4.0]


def _models():
    vocab = build_vocab(["abc"])
    base, processor = random_model(vocab, size="tiny", seed=0)
    adapted, _ = random_model(vocab, size="tiny", seed=1)
    return base.eval(), adapted.eval(), processor


def _router(dim: int, bias: float, weight: torch.Tensor | None = None) -> Router:
    r = Router(dim)
    r.std.fill_(1.0)
    r.bias.fill_(bias)
    if weight is not None:
        r.weight.copy_(weight)
    return r


def _padded_batch(rows: int, seed: int, pad_from: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random audio, the last row zero-padded from sample ``pad_from``, and its attention mask."""
    x = torch.randn(rows, 8000, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(x, dtype=torch.long)
    mask[-1, pad_from:] = 0
    x[-1, pad_from:] = 0
    return x, mask


@torch.no_grad()
def test_routed_model_serves_each_row_from_the_model_the_router_picks():
    base, adapted, _ = _models()
    x, mask = _padded_batch(3, seed=0, pad_from=5000)
    ref_base, ref_adapted = base(x, attention_mask=mask).logits, adapted(x, attention_mask=mask).logits
    assert torch.equal(RoutedCTC(base, adapted, _router(32, -1.0))(x, mask).logits, ref_base)
    assert torch.equal(RoutedCTC(base, adapted, _router(32, +1.0))(x, mask).logits, ref_adapted)
    # a router that picks by the pooled state: its decision per row decides which model's rows come out
    w = torch.randn(32, generator=torch.Generator().manual_seed(1))
    pooled = masked_mean(base.base_model(x, attention_mask=mask).last_hidden_state,
                         base._get_feat_extract_output_lengths(mask.sum(-1)))
    bias = -float((pooled @ w).median())  # one row on each side of the boundary (the middle one on it)
    routed = RoutedCTC(base, adapted, _router(32, bias, w))
    picks = routed.router(pooled)
    out = routed(x, mask).logits
    for i, pick in enumerate(picks.tolist()):
        assert torch.allclose(out[i], (ref_adapted if pick else ref_base)[i], atol=1e-5)
    assert routed.counts == [int(picks.sum()), 3]


@torch.no_grad()
def test_a_gate_that_finds_every_row_far_serves_all_from_the_start_model_and_counts_them_abstained():
    base, adapted, _ = _models()
    x, mask = _padded_batch(3, seed=3, pad_from=4000)
    router = _router(32, +1.0)  # the classifier says target for every row ...
    router.gate_threshold.fill_(-1.0)  # ... but every distance (>= 0) is past the threshold
    routed = RoutedCTC(base, adapted, router)
    assert torch.equal(routed(x, mask).logits, base(x, attention_mask=mask).logits)
    stats = routed.pop_stats()
    assert stats["routed_share"] == 0 and stats["abstained_share"] == 1
    assert stats["mean_probability"] == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), abs=1e-4)
    assert routed.pop_stats() == {"routed_share": 0, "abstained_share": 0, "mean_probability": 0}  # restarted


@torch.no_grad()
def test_a_routed_model_always_gets_the_mask_and_passes_it_on_only_where_its_models_use_one():
    base, adapted, _ = _models()
    x, mask = _padded_batch(2, seed=2, pad_from=6000)
    routed = RoutedCTC(base, adapted, _router(32, -1.0), pass_mask=False)  # as for a group-norm model
    seen = []
    routed.forward = lambda *a, **k: (seen.append(k["attention_mask"]), RoutedCTC.forward(routed, *a, **k))[1]
    logits, lengths = forward_logits(routed, {"input_values": x, "attention_mask": mask}, pass_mask=False)
    assert seen[0] is not None and torch.equal(seen[0], mask)  # the router pools over valid frames
    assert torch.equal(logits, base(x).logits.float())  # the base itself got no mask, as the HF convention asks
    assert lengths.tolist() == base._get_feat_extract_output_lengths(mask.sum(-1)).tolist()


def test_the_base_digest_ignores_the_randomly_initialised_mask_embedding():
    model = torch.nn.Module()
    model.wav2vec2, model.lm_head = torch.nn.Module(), torch.nn.Linear(4, 3)
    model.wav2vec2.masked_spec_embed = torch.nn.Parameter(torch.zeros(4))
    before = weights_digest(model)
    with torch.no_grad():
        model.wav2vec2.masked_spec_embed.uniform_()  # what transformers does when a checkpoint lacks it
    assert weights_digest(model) == before
    with torch.no_grad():
        model.lm_head.bias.add_(1.0)
    assert weights_digest(model) != before


@pytest.mark.parametrize("strategy", ["lora", "adapter", "head"])
def test_routing_works_with_every_strategy(strategy, tone_data, tiny_model_dir, tmp_path):
    source = make_tone_set(tmp_path / "src", 4, seed=8, accent="src")
    results = adapt_routed(tiny_model_dir, tone_data["train"], source, tmp_path / "run", tone_data["test"],
                           tone_data["dev"], strategy=strategy, lora_r=4, adapter_dim=8)
    assert set(results.routing["routed_share"]) == {"test", "src"}
    assert isinstance(load_model(str(tmp_path / "run"))[0], RoutedCTC)


@pytest.fixture(scope="module")
def routed_run(tone_data, tiny_model_dir, tmp_path_factory):
    """A routed run: tone-language target, a 'source accent' of the same tones one octave lower."""
    root = tmp_path_factory.mktemp("routed")
    source = make_tone_set(root / "src", 8, seed=7, accent="src")
    return root / "run", adapt_routed(tiny_model_dir, tone_data["train"], source, root / "run", tone_data["test"],
                                      tone_data["dev"]), source


def test_a_routed_run_records_its_router_and_how_it_split_each_set(routed_run, tiny_model_dir):
    out, results, _ = routed_run
    routing = results.routing
    assert routing["utterances"] == {"target": 12, "source": 8}
    for key in ("routed_share", "abstained_share", "mean_probability"):
        assert set(routing[key]) == set(results.sets) and all(0 <= v <= 1 for v in routing[key].values())
    assert all(routing["routed_share"][n] + routing["abstained_share"][n] <= 1 for n in results.sets)
    gate = routing["gate"]  # calibrated on the target's 12 utterances: a finite threshold, ~95 % kept held out
    assert gate["keep"] == 0.95 and gate["threshold"] > 0 and 0.8 <= gate["held_out_target_kept"] <= 1
    assert 0 <= gate["source_within"] <= 1
    saved = json.loads((out / "results.json").read_text())["routing"]
    assert saved["gate"] == gate and saved["abstained_share"] == routing["abstained_share"]
    meta = json.loads((out / ROUTER_DIR / "speechtl_router.json").read_text())
    assert meta["format"] == "speechtl-router/2" and meta["gate"] == gate
    assert meta["base_model"] == str(tiny_model_dir.resolve()) and meta["routed_share"] == routing["routed_share"]
    assert results.artifacts["router_bytes"] > 0
    report = (out / "report.md").read_text()
    assert "Routing: share served by the adapted model" in report
    assert "the out-of-distribution gate (passes 95 % of held-out target speakers)" in report


def test_the_run_folder_loads_as_the_routed_system_and_scores_as_the_run_did(routed_run, capsys):
    out, results, source = routed_run
    model, _ = load_model(str(out))
    assert isinstance(model, RoutedCTC)
    alone, _ = load_model(str(out), route=False)
    assert not isinstance(alone, RoutedCTC)
    assert main(["evaluate", str(out), str(source), "--output-format", "json", "--quiet", "--precision",
                 "bf16"]) == 0
    scored = json.loads(capsys.readouterr().out)["sets"]["src"]
    assert scored["wer"] == pytest.approx(results.sets["src"]["after"]["wer"])
    assert scored["routed_share"] == results.routing["routed_share"]["src"]


def test_a_version_1_router_folder_loads_without_a_gate_and_routes_on_the_classifier_alone(routed_run, tmp_path):
    out, _, _ = routed_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    meta_path, weights = old / ROUTER_DIR / "speechtl_router.json", old / ROUTER_DIR / "router.safetensors"
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if not k.startswith("gate_")}, weights)  # what /1 wrote
    meta = {k: v for k, v in json.loads(meta_path.read_text()).items() if k not in ("gate", "abstained_share",
                                                                                   "mean_probability")}
    meta_path.write_text(json.dumps({**meta, "format": "speechtl-router/1"}))
    model, _ = load_model(str(old))
    assert isinstance(model, RoutedCTC) and not model.router.gated
    for name in ("mean", "std", "weight", "bias"):
        assert torch.equal(getattr(model.router, name), tensors[name])
    points = torch.randn(64, 32, generator=torch.Generator().manual_seed(0)) * 3 + model.router.mean
    assert torch.equal(model.router(points), model.router.logit(points) > 0)  # p > 0.5, as /1 routed
    assert not model.router.decide(points).abstained.any()
    meta_path.write_text(json.dumps({**meta, "format": "speechtl-router/9"}))
    with pytest.raises(ModelLoadError, match="is not a speechtl-router/1 or speechtl-router/2 description"):
        load_model(str(old))


def test_a_router_refuses_another_base(routed_run, tmp_path):
    out, _, _ = routed_run
    meta_path = out / ROUTER_DIR / "speechtl_router.json"
    other = tmp_path / "other"
    model, processor = random_model(build_vocab(["abc"]), size="tiny", seed=5)
    model.save_pretrained(other)
    processor.save_pretrained(other)
    meta = json.loads(meta_path.read_text())
    try:
        meta_path.write_text(json.dumps({**meta, "base_model": str(other)}))
        with pytest.raises(ModelLoadError, match="has other weights: the router only works with the base"):
            load_model(str(out))
    finally:
        meta_path.write_text(json.dumps(meta))


def test_a_router_that_cannot_tell_the_accents_apart_is_reported(tone_data, tiny_model_dir, tmp_path):
    cfg = AdaptConfig(model=str(tiny_model_dir), train=str(tone_data["train"]), test=[str(tone_data["test"])],
                      route=str(tone_data["train"]), out=str(tmp_path / "run"), mismatch_utts=0,
                      training=train_config(max_steps=1, batch_seconds=4))  # "source" = the target audio itself
    results = run_adaptation(cfg, progress=False)
    assert any("the router tells the accents apart on only" in w for w in results.warnings)
    assert "Warnings:\n- the router tells the accents apart" in (tmp_path / "run" / "report.md").read_text()


def test_routing_needs_the_kept_vocabulary_and_a_plain_start_model(routed_run, tone_data, tmp_path):
    out, _, source = routed_run
    cfg = AdaptConfig(model=str(out), train=str(tone_data["train"]), test=[str(tone_data["test"])],
                      out=str(tmp_path / "again"), training=train_config(max_steps=1))
    with pytest.raises(ConfigError, match="is a routed run folder"):
        run_adaptation(cfg, progress=False)
    with pytest.raises(ConfigError, match="--vocab keep"):
        run_adaptation(dataclasses.replace(cfg, route=str(source), vocab="copy"), progress=False)
    with pytest.raises(ConfigError, match="--route-minutes must be positive"):  # 0 means no router, in adapt too
        run_adaptation(dataclasses.replace(cfg, route=str(source), route_minutes=0.0), progress=False)
    with pytest.raises(ConfigError, match=r"--route-keep is the share .* in \(0, 1\]"):
        run_adaptation(dataclasses.replace(cfg, route=str(source), route_keep=0.0), progress=False)


def test_a_gate_that_could_not_be_calibrated_is_a_warning():
    from speechtl.adapt.routing import router_warning

    target, source, _ = _clouds(3, n=3)
    router = fit_router(target, source)
    routing = {"train_accuracy": {"target": 1.0, "source": 1.0}, "gate": fit_gate(router, target)}
    assert not router.gated
    (msg,) = router_warning(routing)
    assert "too few to calibrate" in msg and "may be routed to the adapted model" in msg
    assert router_warning({**routing, "gate": {"keep": 1.0, "threshold": None}}) == []  # no gate, as asked


@torch.no_grad()
def test_dev_scoring_computes_the_frozen_half_once_and_writes_what_the_routed_system_writes():
    base, adapted, processor = _models()
    rng = np.random.default_rng(0)
    audio = [rng.standard_normal(int(rng.integers(4000, 16000))).astype(np.float32) for _ in range(10)]
    w = torch.randn(32, generator=torch.Generator().manual_seed(1))
    pooled = torch.from_numpy(pooled_states(base, processor, audio, 1.0, "fp32"))
    middle = (pooled @ w).sort().values[4:6].mean()  # half the rows on each side, none near the boundary
    router = RunRouter(base, _router(32, -float(middle), w), {}, uses_attention_mask(processor))
    routed = router.router(pooled).tolist()
    assert sum(routed) == 5  # both models serve some rows

    base_calls = []
    base.base_model.register_forward_hook(lambda *_: base_calls.append(1))
    for seed in (1, 2):  # the weights in training change between evaluations; the frozen half is computed once
        if seed == 2:
            for p in adapted.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
        expected = transcribe_arrays(router.around(adapted), processor, audio, 1.0, "fp32").texts
        calls = len(base_calls)
        got = router.dev_transcripts("dev", adapted, processor, audio, 1.0, "fp32")
        assert got.texts == expected and got.audio_s == pytest.approx(sum(map(len, audio)) / 16000)
        assert (len(base_calls) > calls) == (seed == 1)
    own = transcribe_arrays(adapted, processor, audio, 1.0, "fp32").texts
    kept = transcribe_arrays(base, processor, audio, 1.0, "fp32").texts
    assert [o if r else k for o, k, r in zip(own, kept, routed)] == got.texts
    assert any(o != k for o, k in zip(own, kept))  # the two models write different transcripts: the test can fail
