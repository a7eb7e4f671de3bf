"""What an adaptation run reads before any work: manifests checked, audio decoded once, labels.

Every transcript must have words after normalisation and be spellable by the model; large source sets
(replay, router audio) are sampled from their headers before decoding; unreadable audio fails naming the
file or (``on_error="skip"``) is left out and listed.
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np
import torch

from speechtl.config import ConfigError
from speechtl.data.dataset import frames_needed, load_utterance_audio
from speechtl.data.manifest import (Utterance, add_durations, read_manifest, sample_minutes, set_name,
                                    shared_with, total_minutes, unique_names)
from speechtl.errors import SpeechtlError
from speechtl.text import find_oov, normalize, text_to_model_alphabet

__all__ = ["VocabularyError", "labels_for", "check_transcripts", "eval_set_names", "load_sets", "too_short"]


class VocabularyError(SpeechtlError, ValueError):
    """Transcripts contain characters the model cannot output."""


def labels_for(utts: list[Utterance], tokenizer, language: str | None = None) -> list[list[int]]:
    """Token ids of the normalised transcripts, in the model's letter case."""
    vocab = tokenizer.get_vocab()
    return [tokenizer(text_to_model_alphabet(normalize(u.text, language), vocab)).input_ids for u in utts]


def check_transcripts(sets: dict[str, list[Utterance]], tokenizer, model_name: str, language: str | None) -> None:
    """Before any work: every transcript has words after normalisation, and the model can spell it."""
    vocab = tokenizer.get_vocab()
    for name, utts in sets.items():
        empty = next((u for u in utts if not normalize(u.text, language)), None)
        if empty is not None:
            raise VocabularyError(f"{name}: utterance {empty.id!r} has no words after normalisation: {empty.text!r}")
        report = find_oov([(u.id, u.text) for u in utts], vocab, language)
        if report:
            raise VocabularyError(
                f"{name}: {report.describe()}. The model {model_name!r} cannot write these; they would be "
                f"trained and scored as <unk>. Fix the transcripts, or give the model a head for the new "
                f"alphabet (--vocab copy or extend, with --language)."
            )


DATA_SETS = ("train", "dev", "source_dev", "replay", "route")  # the names load_sets gives the other manifests


def eval_set_names(test: list[str], source_test: str, dev: str = "",
                   source_dev: str = "") -> dict[str, tuple[str, str]]:
    """Evaluation set name -> (role, manifest path); names come from the manifest paths, never one of
    :data:`DATA_SETS` (a test manifest called train.jsonl must not replace the training set) — unless the set is
    the ``dev`` (or ``source_dev``) file itself, scored under that name."""
    entries = [("target", p) for p in test] + ([("source", source_test)] if source_test else [])
    names = unique_names([p for _, p in entries], taken=DATA_SETS)
    same = {"dev": dev, "source_dev": source_dev}
    for i, (_, path) in enumerate(entries):
        name = set_name(path)
        if same.get(name) and os.path.realpath(same[name]) == os.path.realpath(path) and name not in names:
            names[i] = name
    return {name: entry for name, entry in zip(names, entries)}


def load_sets(cfg, tokenizer, progress: bool, language: str | None):
    """Read every manifest of an :class:`~speechtl.adapt.run.AdaptConfig`, check transcripts, decode all audio
    once. Returns (utts, audio, skipped) by set name."""
    named = {"train": cfg.train, **({"dev": cfg.dev} if cfg.dev else {}),
             **({"source_dev": cfg.source_dev} if cfg.source_dev else {}),
             **({"replay": cfg.replay} if cfg.replay else {}),
             **{name: path for name, (_, path) in
                eval_set_names(cfg.test, cfg.source_test, cfg.dev, cfg.source_dev).items()}}
    utts = {name: read_manifest(path) for name, path in named.items()}
    check_disjoint(utts, named)
    check_transcripts(utts, tokenizer, cfg.model, language)
    audio, skipped = {}, []
    if cfg.route:  # audio only: the router learns what source speech sounds like, not what it says
        named["route"], utts["route"] = cfg.route, read_manifest(cfg.route, require_text=False)
    # sample large source sets from headers first: they are never decoded whole
    target_minutes = total_minutes(add_durations(utts["train"], "skip")[0]) if cfg.replay else 0.0
    for name, minutes in (("replay", cfg.replay_ratio * target_minutes), ("route", cfg.route_minutes)):
        if name in utts:
            kept, bad = add_durations(utts[name], cfg.on_error)
            skipped += [{"id": i, "audio_path": "", "reason": r, "set": name} for i, r in bad]
            utts[name] = sample_minutes(kept, minutes, cfg.training.runtime.seed)
    for name in utts:
        utts[name], audio[name], bad = load_utterance_audio(utts[name], cfg.on_error, progress, f"loading {name}")
        skipped += [dict(s, set=name) for s in bad]
        if not utts[name]:
            raise ConfigError(f"{named[name]}: no readable audio left ({len(bad)} file(s) skipped)")
    check_disjoint_audio(utts, audio, named)
    for s in skipped:
        print(f"skipped {s['set']}/{s['id']}: {s['reason']}", file=sys.stderr)
    return utts, audio, skipped


def check_disjoint(utts: dict[str, list[Utterance]], paths: dict[str, str]) -> None:
    """Training data (train, replay) must share no utterance id or audio file with any evaluation set: scores on
    what the model trained on say nothing about new speech."""
    for trained in ("train", "replay"):
        for name in utts:
            if name in ("train", "replay", "route") or trained not in utts:
                continue
            shared = shared_with(utts[trained], utts[name])
            if shared:
                raise ConfigError(f"{paths[name]} ({name}) shares {' and '.join(shared)} with the {trained} set "
                                  f"{paths[trained]}: evaluate on held-out utterances (speechtl.data.manifest."
                                  f"speaker_disjoint_split makes a dev set from training speakers)")


def check_disjoint_audio(utts: dict[str, list[Utterance]], audio: dict[str, list[np.ndarray]],
                         paths: dict[str, str]) -> None:
    """The same samples in training data and an evaluation set (a copied file under another name and id) is
    the same leak as a shared file: refused, naming both utterances."""
    def digest(a: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest()

    for trained in ("train", "replay"):
        if trained not in utts:
            continue
        seen = {digest(a): u.id for u, a in zip(utts[trained], audio[trained])}
        for name in utts:
            if name in DATA_SETS and name not in ("dev", "source_dev"):
                continue
            same = [(u.id, seen[d]) for u, a in zip(utts[name], audio[name]) if (d := digest(a)) in seen]
            if same:
                (uid, tid), more = same[0], f" and {len(same) - 1} more" if len(same) > 1 else ""
                raise ConfigError(f"{paths[name]} ({name}): utterance {uid!r} has the same audio as {trained} "
                                  f"utterance {tid!r} of {paths[trained]}{more}: evaluate on held-out recordings")


def too_short(model, utts, audio, labels) -> list[str]:
    """CTC needs at least one output frame per label (more for repeated letters): such utterances teach nothing."""
    frames = model._get_feat_extract_output_lengths(torch.tensor([len(a) for a in audio])).tolist()
    bad = [u.id for u, f, lab in zip(utts, frames, labels)
           if f < frames_needed(lab)]
    if not bad:
        return []
    msg = (f"{len(bad)} training utterance(s) are too short for their transcripts at the model's frame rate "
           f"and will be ignored by the CTC loss (e.g. {', '.join(bad[:5])}); check audio/transcript pairing")
    print(f"warning: {msg}", file=sys.stderr)
    return [msg]
