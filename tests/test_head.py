"""CTC-head transfer: shared rows copied exactly, new rows from base letters / the letter mean, a random head,
extend mode leaving source transcripts unchanged, and `speechtl adapt --vocab copy --language es` end to end."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conftest import Interrupt, interrupt_at
from speechtl.cli import main
from speechtl.data.manifest import read_manifest, write_manifest
from speechtl.decode import transcribe_arrays
from speechtl.models import load_model, random_model
from speechtl.models.head import NEW_ROW_BIAS_OFFSET, adapt_vocabulary, scratch_model, target_vocab
from speechtl.text import ENGLISH_CHARS, build_vocab

SPANISH = ["¿Dónde está el niño?", "El señor Muñoz come piña.", "Él ríe; tú lloras."]


def english_model(upper: bool = False, extra_rows: int = 0):
    vocab = build_vocab([], ENGLISH_CHARS.upper() if upper else ENGLISH_CHARS)
    return random_model(vocab, size="tiny", seed=1, vocab_size=len(vocab) + extra_rows)


def rows(model):
    return model.lm_head.weight.detach().clone(), model.lm_head.bias.detach().clone()


@pytest.mark.parametrize("upper", [False, True], ids=["lower-case source", "upper-case source (like base-960h)"])
def test_copy_mode_copies_shared_rows_exactly(upper):
    model, processor = english_model(upper)
    source = processor.tokenizer.get_vocab()
    w, b = rows(model)
    new_processor, info = adapt_vocabulary(model, processor, SPANISH, "copy", "es")
    vocab = new_processor.tokenizer.get_vocab()
    assert list(vocab)[:5] == ["<pad>", "<s>", "</s>", "<unk>", "|"] and "ñ" in vocab and "'" not in vocab
    nw, nb = rows(model)
    assert nw.shape == (len(vocab), w.shape[1]) and model.config.vocab_size == len(vocab)
    assert model.config.pad_token_id == vocab["<pad>"] == 0
    for token in ["<pad>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz"]:
        src = source[token.upper() if upper and token.isalpha() else token]
        assert torch.equal(nw[vocab[token]], w[src]) and torch.equal(nb[vocab[token]], b[src]), token
    for letter, base in [("ñ", "n"), ("é", "e"), ("ú", "u"), ("ü", "u")]:
        src = source[base.upper() if upper else base]
        assert torch.equal(nw[vocab[letter]], w[src])
        assert nb[vocab[letter]].item() == pytest.approx(b[src].item() - NEW_ROW_BIAS_OFFSET)
        assert info["from_base_letter"][letter] == (base.upper() if upper else base)
    assert len(info["copied"]) == 3 + 2 + 26 and not info["random"]


def test_letters_without_a_base_letter_start_from_the_letter_mean():
    model, processor = english_model()
    source = processor.tokenizer.get_vocab()
    w, b = rows(model)
    new_processor, info = adapt_vocabulary(model, processor, ["Grüße, Straße!"], "copy", "de")
    letters = [source[c] for c in "abcdefghijklmnopqrstuvwxyz"]
    i = new_processor.tokenizer.get_vocab()["ß"]
    assert info["from_letter_mean"] == ["ß"] and info["from_base_letter"] == {"ä": "a", "ö": "o", "ü": "u"}
    assert torch.allclose(model.lm_head.weight[i], w[letters].mean(0))
    assert model.lm_head.bias[i].item() == pytest.approx(b[letters].mean().item() - NEW_ROW_BIAS_OFFSET)


def test_random_mode_is_a_fresh_seeded_head():
    heads = []
    for _ in range(2):
        model, processor = english_model()
        w, _ = rows(model)
        _, info = adapt_vocabulary(model, processor, SPANISH, "random", "es", seed=3)
        nw, nb = rows(model)
        assert not any(torch.equal(row, src) for row in nw for src in w) and torch.all(nb == 0)
        assert nw.std().item() == pytest.approx(model.config.initializer_range, rel=0.2)
        heads.append(nw)
    assert torch.equal(*heads) and len(info["random"]) == nw.shape[0]


def test_keep_mode_changes_nothing():
    model, processor = english_model()
    w, b = rows(model)
    same, info = adapt_vocabulary(model, processor, SPANISH, "keep", "es")
    assert same is processor and info == {"mode": "keep", "vocab_size": w.shape[0]}
    assert torch.equal(rows(model)[0], w)


def test_unknown_mode_is_refused():
    from speechtl.config import ConfigError

    model, processor = english_model()
    with pytest.raises(ConfigError, match="keep, copy, random, extend"):
        adapt_vocabulary(model, processor, SPANISH, "reuse", "es")


def test_extend_keeps_every_source_id_and_appends_in_the_source_case():
    model, processor = english_model(upper=True, extra_rows=2)  # a head with 2 rows beyond its tokenizer
    source = processor.tokenizer.get_vocab()
    w, b = rows(model)
    new_processor, info = adapt_vocabulary(model, processor, SPANISH, "extend", "es")
    vocab = new_processor.tokenizer.get_vocab()
    assert all(vocab[t] == i for t, i in source.items())
    new = {t: i for t, i in vocab.items() if t not in source and not t.startswith("<unused")}
    assert sorted(new) == sorted("ÁÉÍÑÓÚÜ") and min(new.values()) == w.shape[0]  # after the extra rows
    assert sorted(vocab.values()) == list(range(len(vocab)))  # the gap rows got placeholder tokens
    nw, nb = rows(model)
    assert torch.equal(nw[: w.shape[0]], w) and torch.equal(nb[: w.shape[0]], b)
    assert new_processor.tokenizer.decode(new_processor.tokenizer("SEÑOR").input_ids) == "SEÑOR"


def test_extend_keeps_source_transcripts_unchanged_on_source_audio(tmp_path):
    from speechtl.audio import load_audio
    from speechtl.synth import synthesize

    utts = synthesize(tmp_path / "en", accent="en-us", split="test", num_utterances=6, progress=False)
    audio = [load_audio(u.audio_path) for u in utts]
    model, processor = load_model("speechtl/en-us-synth")
    precisions = ("fp32", "bf16")
    before = {p: transcribe_arrays(model, processor, audio, precision=p).texts for p in precisions}
    new_processor, info = adapt_vocabulary(model, processor, SPANISH + ["Märta gå ß"], "extend", "es")
    assert model.config.vocab_size > 32 and "ñ" in new_processor.tokenizer.get_vocab()
    after = {p: transcribe_arrays(model, new_processor, audio, precision=p).texts for p in precisions}
    assert after == before
    assert sum(len(t.split()) for t in before["fp32"]) > 20  # the source model writes real English here


def test_target_vocab_modes():
    source = build_vocab([], ENGLISH_CHARS)
    assert target_vocab(SPANISH, source, "keep", "es") == source
    copy = target_vocab(SPANISH, source, "copy", "es")
    assert copy == target_vocab(SPANISH, source, "random", "es") == build_vocab(SPANISH, "abcdefghijklmnopqrstuvwxyzáéíóúüñ", "es")


def test_scratch_model_has_the_architecture_but_not_the_weights():
    model, processor = english_model()
    fresh, same = scratch_model(model, processor, seed=5)
    assert same is processor and fresh.config.to_dict() == model.config.to_dict()
    assert not torch.equal(fresh.lm_head.weight, model.lm_head.weight)


def test_adapt_vocab_copy_language_es_end_to_end(tone_data, tiny_model_dir, tmp_path):
    # the tone language's letters a, b, c are shared; the Spanish alphabet brings new ones
    out = tmp_path / "run"
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--dev",
               str(tone_data["dev"]), "--test", str(tone_data["test"]), "--out", str(out), "--vocab", "copy",
               "--language", "es", "--max-steps", "2", "--eval-every", "2", "--batch-seconds", "4", "--quiet"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["head"]["mode"] == "copy" and results["head"]["from_base_letter"]["á"] == "a"
    assert results["normalizer"]["language"] == "es" and results["normalizer"]["unicode_form"] == "NFKC"
    assert {"wer", "cer"} <= set(results["target"]["after"])
    vocab = json.loads((out / "vocab.json").read_text())
    assert "ñ" in vocab and json.loads((out / "config.json").read_text())["text_language"] == "es"
    model, processor = load_model(str(out))
    assert model.config.vocab_size == len(processor.tokenizer) == len(vocab)


def test_keep_mode_refuses_a_new_alphabet_and_names_the_fix(tone_data, tiny_model_dir, tmp_path, capsys):
    utts = read_manifest(tone_data["train"])
    write_manifest([dataclasses.replace(u, text=u.text + " ñ") for u in utts], tmp_path / "train.jsonl")
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tmp_path / "train.jsonl"),
               "--test", str(tone_data["test"]), "--out", str(tmp_path / "run"), "--language", "es", "--quiet"])
    assert rc == 2
    assert "'ñ'" in (err := capsys.readouterr().err) and "--vocab copy or extend" in err


def test_resume_with_a_new_head_gives_the_same_weights(tone_data, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import functools

    import speechtl.adapt.run as run_module
    from speechtl.adapt.run import AdaptConfig, run_adaptation
    from speechtl.adapt.train import train_config

    def adapt(out, resume=False):
        training = train_config(lr=1e-3, max_steps=4, eval_every=2, batch_seconds=3, seed=3, guard=False)
        cfg = AdaptConfig(model=str(tiny_model_dir), train=str(tone_data["train"]), dev=str(tone_data["dev"]),
                          out=str(out), vocab="random", language="es", resume=resume, training=training)
        run_adaptation(cfg, progress=False)
        return load_model(str(out))[0].state_dict()

    straight = adapt(tmp_path / "straight")
    train = run_module.train
    monkeypatch.setattr(run_module, "train", functools.partial(train, on_step=interrupt_at(2)))
    with pytest.raises(Interrupt):
        adapt(tmp_path / "interrupted")
    monkeypatch.setattr(run_module, "train", train)
    capsys.readouterr()
    state_file = tmp_path / "interrupted" / "checkpoint" / "trainer_state.json"
    saved = json.loads(state_file.read_text())
    saved["state"]["elapsed_s"] = 1000.0  # as if the interrupted run had trained for 1000 s
    state_file.write_text(json.dumps(saved))
    resumed = adapt(tmp_path / "interrupted", resume=True)
    assert "resuming from step 2" in capsys.readouterr().out  # the checkpoint fitted the rebuilt head
    wall = json.loads((tmp_path / "interrupted" / "results.json").read_text())["wall_s"]
    assert 1000 <= wall < 1000 + 600  # the run's wall time counts the training it resumed
    assert straight.keys() == resumed.keys() and straight["lm_head.weight"].shape[0] > 5 + 3
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_adapt_takes_the_text_language_from_the_training_manifest(tone_data, tiny_model_dir, tmp_path, capsys):
    """Without --language the training manifest's ``language`` field picks the normaliser (and is saved); a
    manifest in two languages is refused, naming them."""
    utts = read_manifest(tone_data["train"])
    write_manifest([dataclasses.replace(u, language="es") for u in utts], tmp_path / "es.jsonl")
    out = tmp_path / "run"
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tmp_path / "es.jsonl"), "--test",
               str(tone_data["test"]), "--out", str(out), "--vocab", "copy", "--max-steps", "1", "--eval-every", "1",
               "--batch-seconds", "4", "--quiet"])
    assert rc == 0 and "text language 'es' from" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["normalizer"]["language"] == "es"
    assert json.loads((out / "config.json").read_text())["text_language"] == "es"
    mixed = [dataclasses.replace(u, language="es" if i % 2 else "de") for i, u in enumerate(utts)]
    write_manifest(mixed, tmp_path / "mixed.jsonl")
    rc = main(["adapt", "--model", str(tiny_model_dir), "--train", str(tmp_path / "mixed.jsonl"), "--test",
               str(tone_data["test"]), "--out", str(tmp_path / "run2"), "--quiet"])
    assert rc == 2 and "2 languages (de, es)" in capsys.readouterr().err
