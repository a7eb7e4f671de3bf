"""Model loading: folders, hub ids through the HF cache (offline), safetensors only, clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from speechtl.models import ModelLoadError, load_model, random_model
from speechtl.text import build_vocab


def _fake_hub_cache(cache, repo_id: str, model_dir) -> None:
    """Lay out a model folder the way huggingface_hub caches a download (refs/main → snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)


def test_hub_id_loads_from_the_cache_with_hf_hub_offline(tiny_model_dir, tmp_path):
    _fake_hub_cache(tmp_path / "hub", "someone/tiny-ctc", tiny_model_dir)
    code = ("from speechtl.models import load_model; m, p = load_model('someone/tiny-ctc'); "
            "print(type(m).__name__, len(p.tokenizer))")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["Wav2Vec2ForCTC", "8"]


def test_unknown_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="not a model folder and not a reachable hub id"):
        load_model("nobody/no-such-model")


def test_pickle_weights_are_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    model, _ = load_model(str(folder))
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        load_model(str(folder))


def test_non_ctc_model_type_is_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'bert' model"):
        load_model(str(tmp_path))


def test_unknown_shipped_model_lists_the_shipped_ones():
    with pytest.raises(ModelLoadError, match="shipped"):
        load_model("speechtl/no-such-model")


def test_random_model_sizes_and_padding_invariance():
    vocab = build_vocab([], "abc")
    model, processor = random_model(vocab, size="tiny")
    assert model.config.vocab_size == len(vocab) == 8 and model.config.pad_token_id == 0
    model.eval()
    x = torch.randn(1, 8000)
    feats = processor.feature_extractor([x[0].numpy(), torch.randn(16000).numpy()], sampling_rate=16000,
                                        padding=True, return_tensors="pt")
    with torch.no_grad():
        alone = model(torch.tensor(processor.feature_extractor(x[0].numpy(), sampling_rate=16000).input_values[0])[None]).logits
        batched = model(feats.input_values, attention_mask=feats.attention_mask).logits
    assert torch.allclose(alone[0], batched[0, : alone.shape[1]], atol=1e-4)
    with pytest.raises(ValueError, match="unknown model size"):
        random_model(vocab, size="huge")
