"""The feature cache: a training step from cached feature-encoder outputs equals one from audio (loss, gradients,
SpecAugment included), a short run gives the same weights, the cache stays off where it would not, and spills to
disk beyond its budget. All in fp32 on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tone_audio
from speechtl.adapt.feature_cache import FEATURE_CACHE, cache_blocker, check_feature_cache, training_inputs
from speechtl.adapt.losses import ctc_loss
from speechtl.adapt.run import labels_for
from speechtl.adapt.strategies import apply_strategy
from speechtl.adapt.train import TrainData, train, train_config
from speechtl.config import ConfigError
from speechtl.data.dataset import AudioDataset, CtcCollator, load_utterance_audio
from speechtl.data.augment import make_augment
from speechtl.data.feature_cache import FeatureCollator, FeatureDataset, FeatureStore
from speechtl.data.manifest import read_manifest
from speechtl.decode import forward_logits
from speechtl.models import load_model, random_model
from speechtl.text import build_vocab

TEXTS = ["ab ba", "c", "abc cab aab"]  # three lengths: the batch is padded
SPEC_AUGMENT = dict(mask_time_prob=0.3, mask_time_length=2, mask_feature_prob=0.3, mask_feature_length=4)
CPU = torch.device("cpu")


def _tiny(strategy: str, **config):
    vocab = build_vocab(["abc"])
    model, processor = random_model(vocab, "tiny", seed=1, **config)
    trained = apply_strategy(model, strategy, top_k=1)
    labels = [[vocab[c] for c in t.replace(" ", "|")] for t in TEXTS]
    audio = AudioDataset([_utt(i) for i in range(len(TEXTS))], labels, audio=[tone_audio(t, i) for i, t in
                                                                                   enumerate(TEXTS)])
    return trained.train(), processor, audio


def _utt(i: int):
    from speechtl.data.manifest import Utterance

    return Utterance(f"u{i}", f"u{i}.wav", TEXTS[i])


def _batches(model, processor, audio: AudioDataset, tmp_path) -> tuple[dict, dict]:
    """The same three utterances as an audio batch and as a cached-feature batch."""
    cached, collate, store = training_inputs(model, processor, audio, train_config().runtime, tmp_path, CPU, "fp32",
                                             pass_mask=True)
    assert isinstance(cached, FeatureDataset) and store is not None
    items = list(range(len(audio)))
    return CtcCollator(processor.feature_extractor)([audio[i] for i in items]), collate([cached[i] for i in items])


def _step(model, batch: dict, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and gradients of one forward/backward, with torch's and numpy's RNG (dropout, SpecAugment) seeded."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    logits, lengths = forward_logits(model, batch, True, "fp32")
    loss = ctc_loss(logits, lengths, batch["labels"], batch["label_lengths"], blank=0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    return loss.detach(), grads


@pytest.mark.parametrize("strategy", ["full", "top_k", "lora", "adapter"])
def test_a_cached_step_has_the_loss_and_gradients_of_a_step_on_audio(strategy, tmp_path):
    model, processor, audio = _tiny(strategy, **SPEC_AUGMENT)
    on_audio, on_features = _batches(model, processor, audio, tmp_path)
    assert on_features["extract_features"].shape[:2] == (3, int(on_features["feature_lengths"].max()))
    loss_a, grads_a = _step(model, on_audio, seed=5)
    loss_f, grads_f = _step(model, on_features, seed=5)
    torch.testing.assert_close(loss_f, loss_a, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_f.keys() and grads_a
    total = torch.cat([g.flatten() for g in grads_a.values()]).norm()
    for name in grads_a:  # the convolution ran on other lengths: fp32 rounding apart, the same gradient
        # (a floor at 1e-6 of the whole gradient: k_proj.bias's is 0 in exact arithmetic, ~1e-12 of rounding here)
        assert (grads_f[name] - grads_a[name]).norm() <= 1e-4 * grads_a[name].norm() + 1e-6 * total, name
    # SpecAugment acts on the cached path (after the cache): another draw, or no masking, changes the loss
    assert not torch.allclose(_step(model, on_features, seed=6)[0], loss_f)
    model_nomask, processor, audio = _tiny(strategy)
    assert not torch.allclose(_step(model_nomask, _batches(model_nomask, processor, audio, tmp_path)[1], 5)[0], loss_f)


def test_padding_frames_do_not_reach_the_valid_ones(tmp_path):
    """In eval mode each row of a padded cached batch gives the logits it gives alone."""
    model, processor, audio = _tiny("full")
    model.eval()
    cached, collate, _ = training_inputs(model, processor, audio, train_config().runtime, tmp_path, CPU, "fp32", True)
    batch = collate([cached[i] for i in range(len(audio))])
    with torch.no_grad():
        logits, lengths = forward_logits(model, batch, True)
        for i in range(len(audio)):
            alone, n = forward_logits(model, collate([cached[i]]), True)
            torch.testing.assert_close(logits[i, : int(lengths[i])], alone[0, : int(n[0])], rtol=1e-4, atol=1e-5)


def _run(tone_data, tiny_model_dir, out, on_step=None, **flags):
    utts, audio, _ = load_utterance_audio(read_manifest(tone_data["train"]))
    model, processor = load_model(str(tiny_model_dir))
    cfg = train_config(lr=3e-3, max_steps=8, eval_every=8, batch_seconds=3, precision="fp32", seed=2,
                       mask_time_prob=0.1, **flags)
    train(model, processor, TrainData(utts, labels_for(utts, processor.tokenizer), audio), out, cfg, progress=False,
          on_step=on_step)
    return model


@pytest.mark.parametrize("strategy", ["full", "top_k"])
def test_training_with_the_cache_gives_the_weights_of_training_without_it(tone_data, tiny_model_dir, tmp_path,
                                                                          strategy):
    spilled = []

    def look(state):  # a budget of 0 MB puts every utterance's features on disk
        spilled.append(len(list((tmp_path / "on" / FEATURE_CACHE).glob("*.npy"))))

    cached = _run(tone_data, tiny_model_dir, tmp_path / "on", look, strategy=strategy, feature_cache_mb=0)
    plain = _run(tone_data, tiny_model_dir, tmp_path / "off", strategy=strategy, feature_cache="off")
    assert max(spilled) > 0 and not (tmp_path / "on" / FEATURE_CACHE).exists()  # used, then removed
    start = load_model(str(tiny_model_dir))[0].state_dict()
    after = plain.state_dict()
    moved = {k: v - start.get(k, torch.zeros_like(v)) for k, v in after.items()}  # masked_spec_embed: added in train
    total = torch.cat([m.flatten() for m in moved.values()]).norm()
    assert total > 0  # training moved the weights: the comparison is not vacuous
    for name, value in after.items():
        # what training did to each tensor agrees, with and without the cache, to fp32 rounding (floor: 1e-5 of the
        # whole move, for k_proj.bias, whose gradient is 0 in exact arithmetic and rounding noise that AdamW scales)
        assert (cached.state_dict()[name] - value).norm() <= 1e-4 * moved[name].norm() + 1e-5 * total, name


def test_the_cache_stays_off_where_it_would_change_the_result(tmp_path):
    model, processor, audio = _tiny("full")
    runtime = train_config().runtime
    assert cache_blocker(runtime, model, audio, True, 1) is None
    noisy = AudioDataset(audio.utts, audio.labels, audio.audio, transform=make_augment((0.9, 1.1)))
    assert "augmentation" in cache_blocker(runtime, model, noisy, True, 1)
    assert "augmentation" in cache_blocker(runtime, model, AudioDataset(audio.utts, audio.labels, audio.audio,
                                                                        transform=make_augment((), 10.0)), True, 1)
    dataset, collate, store = training_inputs(model, processor, noisy, runtime, tmp_path, CPU, "fp32", True)
    assert dataset is noisy and isinstance(collate, CtcCollator) and store is None
    with pytest.raises(ValueError, match="augmentation"):
        FeatureDataset(noisy, lambda a: torch.zeros(1, 1), FeatureStore(tmp_path, 0))
    assert "off" in cache_blocker(train_config(feature_cache="off").runtime, model, audio, True, 1)
    assert "processes" in cache_blocker(runtime, model, audio, True, 2)
    assert "attention mask" in cache_blocker(runtime, model, audio, False, 1)
    trains_cnn = apply_strategy(random_model(build_vocab(["abc"]), "tiny")[0], "full", freeze_feature_encoder=False)
    assert "trains" in cache_blocker(runtime, trains_cnn, audio, True, 1)
    group_norm = random_model(build_vocab(["abc"]), "tiny", feat_extract_norm="group")[0]
    group_norm.freeze_feature_encoder()
    assert "group-norm" in cache_blocker(runtime, group_norm, audio, True, 1)
    for bad in (dict(feature_cache="on"), dict(feature_cache_mb=-1.0)):
        with pytest.raises(ConfigError, match="--feature-cache"):
            check_feature_cache(train_config(**bad).runtime)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_store_keeps_its_budget_in_memory_and_the_rest_on_disk(tmp_path, dtype):
    tensors = [torch.randn(n, 8).to(dtype) for n in (5, 7, 3)]
    store = FeatureStore(tmp_path / "cache", budget_bytes=tensors[0].numel() * tensors[0].element_size())
    for i, t in enumerate(tensors):
        store.put(i, t)
    assert list(store.memory) == [0] and sorted(store.on_disk) == [1, 2] and len(store) == 3
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["1.npy", "2.npy"]
    for i, t in enumerate(tensors):
        assert store.get(i).dtype == dtype and torch.equal(store.get(i), t)
    assert store.get(3) is None
    store.close()
    assert not (tmp_path / "cache").exists() and len(store) == 0


def test_each_utterance_is_encoded_once(tmp_path):
    _, _, audio = _tiny("full")
    calls = []

    def encode(wav):
        calls.append(len(wav))
        return torch.from_numpy(wav[:10].copy())[:, None]

    dataset = FeatureDataset(audio, encode, FeatureStore(tmp_path, 0))
    for _ in range(2):  # two epochs
        items = [dataset[i] for i in range(len(dataset))]
    assert len(calls) == len(audio) and [it["id"] for it in items] == ["u0", "u1", "u2"]
    batch = FeatureCollator()(items)
    assert batch["extract_features"].shape == (3, 10, 1) and batch["labels"].shape[0] == 3


def test_a_wrong_feature_cache_setting_stops_adapt_before_any_work(tone_data, tiny_model_dir, tmp_path, capsys):
    from speechtl.cli import main

    assert main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--test",
                 str(tone_data["test"]), "--out", str(tmp_path / "run"), "--feature-cache", "on", "--quiet"]) == 2
    assert "--feature-cache must be one of auto, off" in capsys.readouterr().err and not (tmp_path / "run").exists()
