"""Models: load any wav2vec2-family CTC checkpoint with its processor, or build a random one from a config.

Loading is safetensors-only and never runs remote code. A name is a local folder (``config.json``,
``model.safetensors``, ``vocab.json``, ``preprocessor_config.json``) or a Hugging Face hub id, fetched
through the usual HF cache (``HF_HUB_OFFLINE=1`` uses the cache alone).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import torch
import transformers
from transformers import (
    AutoConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)
from transformers.utils import ModelOutput

from speechtl.audio import SAMPLE_RATE
from speechtl.text import PAD, UNK, WORD_DELIMITER, save_vocab
from speechtl.fileio import INCOMPLETE
from speechtl.models.integrity import ModelLoadError, check_finite, check_vocab_size, load_weights
from speechtl.models.numerics import protect_pos_conv

__all__ = ["SUPPORTED_MODEL_TYPES", "ModelLoadError", "resolve", "load_model", "load_base", "build_processor",
           "random_model",
           "MODEL_SIZES", "uses_attention_mask", "ctc_forward", "TEXT_LANGUAGE_KEY", "model_text_language"]

# wav2vec2-family encoders with a CTC head in transformers (AutoModelForCTC).
SUPPORTED_MODEL_TYPES = (
    "wav2vec2",
    "wav2vec2-conformer",
    "hubert",
    "wavlm",
    "data2vec-audio",
    "unispeech",
    "unispeech-sat",
    "sew",
    "sew-d",
)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
# model.config key naming the language whose normaliser scores (and trained) the model; saved in config.json
TEXT_LANGUAGE_KEY = "text_language"


def resolve(name_or_path: str) -> str:
    """Shipped model names ("speechtl/<name>") resolve to the folder inside the package."""
    if name_or_path.startswith("speechtl/") and not Path(name_or_path).is_dir():
        folder = SHIPPED_DIR / name_or_path.split("/", 1)[1]
        if not folder.is_dir():
            shipped = sorted(p.name for p in SHIPPED_DIR.glob("*") if p.is_dir()) if SHIPPED_DIR.is_dir() else []
            raise ModelLoadError(f"no shipped model {name_or_path!r}; shipped: {['speechtl/' + s for s in shipped]}")
        return str(folder)
    return name_or_path


def load_model(name_or_path: str, attn_implementation: str = "sdpa", adapter: str | None = None,
               route: bool = True, offline: bool = False) -> tuple[PreTrainedModel, Wav2Vec2Processor]:
    """Load a CTC model and its processor from a folder or a hub id (safetensors only, no remote code).

    ``adapter``: an adapter folder (``<run>/adapter`` of a lora/adapter run) applied to this base model;
    see :mod:`speechtl.models.adapter`. A run folder with ``router/`` (an ``adapt --route`` run) loads as the
    routed system, base and adapted model together (:class:`speechtl.models.router.RoutedCTC`), unless
    ``route`` is False (then: the adapted model alone); the base it names is loaded offline unless it is a folder or
    a shipped model. ``offline``: a hub id from the local Hugging Face cache only, never the network. A folder
    written by ``speechtl combine`` loads as its several accents behind one router
    (:class:`speechtl.models.multiroute.MultiRoutedCTC`).
    """
    source = refuse_incomplete(resolve(str(name_or_path)))
    if Path(source, "speechtl_multiroute.json").is_file():  # combine.MANIFEST (combine imports this module)
        from speechtl.models.multiroute import load_multiroute

        if adapter is not None or not route:
            raise ModelLoadError(f"{source} serves several accent-adapted members behind one router: it takes no "
                                 f"--adapter and has no single adapted model for --no-route (load a member's run)")
        return load_multiroute(source, attn_implementation)
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every load
    hub = {"local_files_only": True} if offline else {}
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False, **hub)
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"cannot load model {name_or_path!r}: not a model folder and not a reachable hub id "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Give a folder with config.json and "
            f"model.safetensors, a hub id such as 'facebook/wav2vec2-base-960h' (online or cached), "
            f"or a shipped model such as 'speechtl/en-us-synth'"
        ) from e
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"{name_or_path!r} is a {config.model_type!r} model; speechtl adapts CTC models of type "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    model = load_weights(source, str(name_or_path), attn_implementation, hub)
    try:
        processor = Wav2Vec2Processor.from_pretrained(source, trust_remote_code=False, **hub)
    except (OSError, ValueError, TypeError) as e:
        raise ModelLoadError(
            f"{name_or_path!r} has no CTC processor (vocab.json, tokenizer_config.json, preprocessor_config.json): {e}"
        ) from e
    check_vocab_size(model, processor.tokenizer, str(name_or_path))
    check_finite(model, str(name_or_path))
    protect_pos_conv(model)
    if adapter is not None:
        from speechtl.models.adapter import apply_adapter

        model = apply_adapter(model, processor, adapter, str(name_or_path))
    elif route and Path(source).is_dir():
        model = _routed(source, model, processor, attn_implementation)
    return model, processor


def _routed(source: str, model, processor, attn_implementation: str):
    """The routed system of a run folder with ``router/`` (else ``model``). The base the router names loads from a
    folder, a shipped model or the HF cache: a downloaded folder never makes speechtl reach for the network."""
    from speechtl.models.router import RoutedCTC, load_router, read_router_meta

    meta = read_router_meta(source)
    if meta is None:
        return model
    name = meta["base_model"]
    base, _ = load_base(name, source, attn_implementation, "or load the folder with --no-route for its adapted "
                                                           "model alone")
    return RoutedCTC(base, model, load_router(source, meta, base, name), uses_attention_mask(processor)).eval()


def load_base(name: str, user: str, attn_implementation: str = "sdpa", hint: str = ""):
    """The base model ``name`` that the folder ``user`` routes with, and its processor: from a folder, a shipped
    model or the HF cache (offline): a downloaded folder never makes speechtl reach for the network. ``hint`` ends
    the message when a hub base is not in the cache."""
    local = Path(name).is_dir() or name.startswith("speechtl/")
    try:
        return load_model(name, attn_implementation, route=False, offline=not local)
    except ModelLoadError as e:
        if local:
            raise
        raise ModelLoadError(f"{user} routes with the base {name!r}, which is not a folder here, a shipped model or "
                             f"in the local Hugging Face cache, and speechtl does not download what a folder names: "
                             f"fetch a hub base yourself (hf download {name}){', ' + hint if hint else ''}") from e


def uses_attention_mask(processor) -> bool:
    """Group-norm wav2vec2 models (e.g. base-960h) must not get an attention mask (HF convention)."""
    return bool(getattr(processor.feature_extractor, "return_attention_mask", True))


def model_text_language(model) -> str | None:
    """The language a model was adapted to (its ``config.text_language``), or None (the English default)."""
    return getattr(getattr(model, "config", None), TEXT_LANGUAGE_KEY, None) or None


def ctc_forward(model, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False) -> tuple[ModelOutput, torch.Tensor]:
    """The encoder's outputs and the CTC logits (B, T, V) of a ``*ForCTC`` model in eval mode, for callers that
    need the hidden states too: what every ``*ForCTC.forward`` does (its dropout before the head is off in eval)."""
    enc = model.base_model(input_values, attention_mask=attention_mask, output_hidden_states=output_hidden_states)
    return enc, model.lm_head(enc.last_hidden_state)


def refuse_incomplete(source: str) -> str:
    """``source``, unless it is a run folder whose final save was interrupted (its files may come from two runs)."""
    if (Path(source) / INCOMPLETE).is_file():
        raise ModelLoadError(f"{source}: the run that was writing this folder stopped midway, so its files may come "
                             f"from two runs: finish it with the same speechtl adapt command and --resume, or remove "
                             f"the folder")
    return source


def build_processor(vocab: Mapping[str, int], return_attention_mask: bool = True) -> Wav2Vec2Processor:
    """A Wav2Vec2 processor for a character vocabulary (``<pad>`` = CTC blank, ``|`` = space)."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        save_vocab(vocab, vocab_file)
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab_file), unk_token=UNK, pad_token=PAD, word_delimiter_token=WORD_DELIMITER
        )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=return_attention_mask,
    )
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


# Named architectures. Frame rate is 320 samples (20 ms) for all: strides 5·4·4·4 like wav2vec2's 5·2·2·2·2·2·2.
MODEL_SIZES: dict[str, dict] = {
    # for unit tests: ~60 k parameters
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32, 32), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, mask_time_prob=0.0,
    ),
    # the shipped offline source model (~3.7 M parameters)
    "small": dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        conv_dim=(64, 128, 192, 256), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=16,
    ),
    # wav2vec2-base sized (~94 M parameters), for benchmarks
    "base": dict(),
}


def random_model(
    vocab: Mapping[str, int], size: str = "tiny", seed: int = 0, attn_implementation: str = "sdpa", **overrides
) -> tuple[Wav2Vec2ForCTC, Wav2Vec2Processor]:
    """A randomly initialised Wav2Vec2ForCTC of a named size, with a processor for ``vocab`` (no network)."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose from {sorted(MODEL_SIZES)}")
    kwargs = dict(
        vocab_size=len(vocab),
        pad_token_id=vocab[PAD],
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
        feat_extract_norm="layer",  # padding-invariant: batched output == one-by-one output
        do_stable_layer_norm=True,
        layerdrop=0.0,
    )
    kwargs.update(MODEL_SIZES[size])
    kwargs.update(overrides)
    config = Wav2Vec2Config(**kwargs)
    torch.manual_seed(seed)
    model = protect_pos_conv(Wav2Vec2ForCTC._from_config(config, attn_implementation=attn_implementation))
    return model, build_processor(vocab, return_attention_mask=True)
