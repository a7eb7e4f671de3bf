"""CTC-head transfer to a new alphabet (inductive transfer to another language).

A CTC model's head (``lm_head``: hidden → V logits, one row per output token) is tied to its
vocabulary. A language with other characters needs a head for *its* vocabulary. Modes:

- ``keep``: the source head and vocabulary, unchanged (transcripts must be written in the source alphabet);
- ``copy``: a head for the target vocabulary (characters of the training text plus the language's
  alphabet, :data:`speechtl.text.TEXT_RULES`, in the usual lower-case layout). Rows of tokens the source
  also has — the blank ``<pad>``, ``<unk>``, the word delimiter ``|`` and shared letters, matched across
  case for upper-case vocabularies such as wav2vec2-base-960h's — are copied exactly. New letters start
  from a copy of their base letter's row (é from e, ñ from n, å from a: the letter without its diacritic,
  by Unicode decomposition) or, without one (ß, æ, ø), from the mean of the source's letter rows; their
  bias is lowered by :data:`NEW_ROW_BIAS_OFFSET` so the start still writes what the source model wrote and
  training only has to raise a new letter where the audio calls for it;
- ``random``: a freshly initialised head for the target vocabulary (normal(0, ``initializer_range``)
  weights and zero bias, as transformers initialises a new head — what ``from_pretrained(...,
  vocab_size=N)`` gives): the baseline that ``copy`` has to beat;
- ``extend``: every source row keeps its id and weights, the target's new characters (in the source's
  letter case) are appended and initialised as in ``copy``. Because a new row's logit is always below
  its base letter's (or the letter mean), greedy transcripts of the source model do not change.
"""

from __future__ import annotations

import copy
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping

import torch
from torch import nn
from transformers import AutoModelForCTC, Wav2Vec2Processor

from speechtl.config import ConfigError
from speechtl.models import build_processor
from speechtl.text import BOS, EOS, PAD, build_vocab, normalize, text_rules, text_to_model_alphabet

__all__ = ["VOCAB_MODES", "NEW_ROW_BIAS_OFFSET", "HeadTransfer", "target_vocab", "transfer_head",
           "adapt_vocabulary", "scratch_model"]

VOCAB_MODES = ("keep", "copy", "random", "extend")
NEW_ROW_BIAS_OFFSET = 1.0  # a new letter's bias starts this far (in nats) below the row it was copied from


@dataclass
class HeadTransfer:
    """What a head transfer did (for results.json); filled in by :func:`transfer_head`."""

    mode: str
    source_size: int  # rows of the source head
    target_size: int  # rows of the new head
    copied: list[str] = field(default_factory=list)  # target tokens whose row is a source row, exactly
    from_base_letter: dict[str, str] = field(default_factory=dict)  # new letter -> the source letter it started from
    from_letter_mean: list[str] = field(default_factory=list)  # new tokens started from the mean letter row
    random: list[str] = field(default_factory=list)  # tokens with freshly initialised rows


def _check_mode(mode: str) -> None:
    if mode not in VOCAB_MODES:
        raise ConfigError(f"unknown vocabulary mode {mode!r}; choose from {', '.join(VOCAB_MODES)}")


def target_vocab(texts: Iterable[str], source_vocab: Mapping[str, int], mode: str,
                 language: str | None = None, head_size: int = 0) -> dict[str, int]:
    """The vocabulary a head of ``mode`` outputs for the (raw) target ``texts`` and the language's alphabet.

    ``head_size``: rows of the source head (extend appends after them and after every source id)."""
    _check_mode(mode)
    alphabet = text_rules(language).alphabet
    if mode == "keep":
        return dict(source_vocab)
    if mode != "extend":
        return build_vocab(texts, alphabet, language)
    # extend: source ids stay; new characters are appended in the source's letter case (A-Z stays A-Z)
    chars = {c for t in texts for c in text_to_model_alphabet(normalize(t, language), source_vocab)}
    chars |= set(text_to_model_alphabet(alphabet, source_vocab))
    vocab = dict(source_vocab)
    next_id = max(head_size, max(vocab.values()) + 1)
    for next_id, c in enumerate(sorted(chars - {" "} - set(vocab)), start=next_id):
        vocab[c] = next_id
    return vocab


def _source_token(token: str, source_vocab: Mapping[str, int]) -> str | None:
    """The source token for a target token: itself, or the same letter in the other case."""
    return next((t for t in (token, token.upper(), token.lower()) if t in source_vocab), None)


def _base_letter(token: str, source_vocab: Mapping[str, int]) -> str | None:
    """The source letter behind a letter with a diacritic (é → e, Å → A), if the source has it."""
    base = unicodedata.normalize("NFD", token)[0]
    return _source_token(base, source_vocab) if base != token and base.isalpha() else None


def transfer_head(model, source_vocab: Mapping[str, int], vocab: Mapping[str, int], mode: str,
                  seed: int = 0) -> HeadTransfer:
    """Replace ``model.lm_head`` by a head for ``vocab`` (see the module docstring); updates the config."""
    _check_mode(mode)
    old = model.lm_head
    weight, bias = old.weight.detach(), old.bias.detach()
    source_ids = {t: i for t, i in source_vocab.items() if i < weight.shape[0]}
    letters = [i for t, i in source_ids.items() if len(t) == 1 and t.isalpha()]
    mean_w = weight[letters].mean(0) if letters else torch.zeros_like(weight[0])
    mean_b = bias[letters].mean() if letters else torch.zeros_like(bias[0])
    size = max(vocab.values()) + 1
    new = nn.Linear(old.in_features, size, device=weight.device, dtype=weight.dtype)
    generator = torch.Generator().manual_seed(seed)
    info = HeadTransfer(mode, weight.shape[0], size)
    with torch.no_grad():
        new.weight.copy_(torch.randn(new.weight.shape, generator=generator) * model.config.initializer_range)
        new.bias.zero_()
        for token, i in vocab.items():
            src, base = _source_token(token, source_ids), _base_letter(token, source_ids)
            if mode == "random":
                info.random.append(token)
            elif src is not None:
                new.weight[i], new.bias[i] = weight[source_ids[src]], bias[source_ids[src]]
                info.copied.append(token)
            elif base is not None:
                new.weight[i], new.bias[i] = weight[source_ids[base]], bias[source_ids[base]] - NEW_ROW_BIAS_OFFSET
                info.from_base_letter[token] = base
            else:
                new.weight[i], new.bias[i] = mean_w, mean_b - NEW_ROW_BIAS_OFFSET
                info.from_letter_mean.append(token)
        if mode == "extend":  # source rows without a token (a head larger than its tokenizer) are kept too
            new.weight[: weight.shape[0]], new.bias[: weight.shape[0]] = weight, bias
    model.lm_head = new
    _set_token_ids(model.config, vocab, size)
    return info


def _set_token_ids(config, vocab: Mapping[str, int], size: int) -> None:
    config.vocab_size = size
    config.pad_token_id = vocab[PAD]
    config.bos_token_id = vocab.get(BOS, config.bos_token_id)
    config.eos_token_id = vocab.get(EOS, config.eos_token_id)


def _processor_for(vocab: Mapping[str, int], processor: Wav2Vec2Processor) -> Wav2Vec2Processor:
    """The source's feature extractor with a tokenizer for ``vocab`` (ids made contiguous with placeholders)."""
    full = dict(vocab)
    for i in sorted(set(range(max(vocab.values()) + 1)) - set(vocab.values())):
        full[f"<unused{i}>"] = i
    tokenizer = build_processor(dict(sorted(full.items(), key=lambda kv: kv[1]))).tokenizer
    return Wav2Vec2Processor(feature_extractor=processor.feature_extractor, tokenizer=tokenizer)


def adapt_vocabulary(model, processor, texts: Iterable[str], mode: str, language: str | None = None,
                     seed: int = 0) -> tuple[Wav2Vec2Processor, dict]:
    """Give ``model`` a head for the target ``texts`` (in place); returns the matching processor and a
    summary for results.json. ``keep`` changes nothing."""
    _check_mode(mode)
    if mode == "keep":
        return processor, {"mode": "keep", "vocab_size": model.config.vocab_size}
    source_vocab = processor.tokenizer.get_vocab()
    vocab = target_vocab(list(texts), source_vocab, mode, language, model.config.vocab_size)
    info = transfer_head(model, source_vocab, vocab, mode, seed)
    return _processor_for(vocab, processor), {"language": language or "en", **asdict(info)}


def scratch_model(model, processor, seed: int = 0):
    """A randomly initialised model of ``model``'s architecture and vocabulary (training from scratch)."""
    config = copy.deepcopy(model.config)
    torch.manual_seed(seed)
    fresh = AutoModelForCTC.from_config(config, attn_implementation="sdpa")
    return fresh, processor
