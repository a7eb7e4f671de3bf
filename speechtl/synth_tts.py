"""Synthetic labelled speech from many offline TTS engines, voices and real sentences::

    prepare_tts_set("runs/data", TRAIN_VOICES, text="mixed", split="train", minutes=60, seed=0, workers=2)

writes ``wav/<id>.wav`` (16 kHz mono 16-bit PCM), ``manifest.jsonl`` and ``summary.json`` into one folder per
set (``tts-train-mixed-60min-<voices digest>-seed0``), like :func:`speechtl.synth.prepare_synthetic`: the
``.done`` marker, written last, holds the parameters; a folder whose marker differs is rebuilt.

What it promises:

* Voices are ``"engine/name"`` ids of :mod:`speechtl.tts` (flite, festival, pico, mbrola, piper, hibari) or
  ``espeak/<accent>[+variant]`` (espeak-ng as :mod:`speechtl.synth` renders it). Each voice gives
  ``speakers_per_voice`` speakers: a rate factor and (where the voice can shift pitch) a pitch factor drawn from
  ``rate_range`` / ``pitch_range``; the speaker id is :func:`speechtl.tts.voice_label` (``flite/slt/p1.10/r0.90``).
  Each utterance draws a voice, then one of its speakers.
* Text: ``kjv`` (King James verses, :func:`speechtl.text_sources.kjv_verses`), ``grammar``
  (:func:`speechtl.synth.sentences`), ``mixed`` (each utterance one or the other, even odds) or ``arctic`` (the
  CMU ARCTIC prompts: **test sets only** — real fixtures and L2-ARCTIC read them). A sentence's pool
  (train/dev/test) is :func:`speechtl.synth.split_of` of its text, so a test sentence is never trained on.
  Transcripts are :func:`speechtl.text.normalize`; sentences with other characters are skipped and counted.
* Train and dev sets refuse the :data:`HELD_OUT_VOICES` (split by speaker: kal under flite and festival is one
  speaker, as is each MBROLA us1/us2/us3/en1 database under espeak-ng and festival).
* The same parameters give bit-identical audio whatever ``workers``: every engine is deterministic per call
  (:mod:`speechtl.tts`), and espeak is reloaded at the start of each fixed chunk of utterances.
  An utterance an engine fails on is left out and listed in ``summary.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from speechtl.audio import SAMPLE_RATE
from speechtl.data.manifest import Utterance, write_manifest
from speechtl.espeak import engine as espeak_engine
from speechtl.espeak import to_16k
from speechtl.fileio import atomic_write_json, build_once
from speechtl.synth import ACCENTS, SPLITS, VARIANTS, sentences, split_of
from speechtl.text_sources import Sentence, arctic_prompts, kjv_verses, spoken_sentence
from speechtl.tts import TtsError, Voice, engine_available, list_voices, render, voice_label

__all__ = ["TRAIN_VOICES", "HELD_OUT_VOICES", "TEXTS", "SPEAKER_OF", "TtsSetError", "TtsSet", "speaker_of",
           "installed", "build_tts_set", "prepare_tts_set"]

TRAIN_VOICES = (  # docs/tts_engines.md's plan: every speaker not held out
    "flite/kal16", "flite/kal", "flite/rms", "flite/slt", "flite/awb",
    "festival/kal_diphone", "festival/cmu_us_slt_arctic_hts", "festival/rab_diphone", "festival/don_diphone",
    "festival/us1_mbrola", "festival/us2_mbrola", "festival/en1_mbrola",
    "mbrola/mb-us1", "mbrola/mb-us2", "mbrola/mb-en1", "piper/en_US-joe-medium",
)
HELD_OUT_VOICES = (  # never trained on: a whole engine (pico), a neural voice, two diphone speakers
    "pico/en-US", "pico/en-GB", "hibari/heart", "festival/ked_diphone", "festival/us3_mbrola", "mbrola/mb-us3",
)
SPEAKER_OF = {  # voices that are one recorded speaker under several names (the rest: the voice id)
    "flite/kal": "kal", "flite/kal16": "kal", "festival/kal_diphone": "kal",
    "flite/slt": "slt", "festival/cmu_us_slt_arctic_hts": "slt",
    **{f"festival/{db}_mbrola": db for db in ("us1", "us2", "us3", "en1")},
    **{f"mbrola/mb-{db}": db for db in ("us1", "us2", "us3", "en1")},
}
TEXTS = ("kjv", "grammar", "mixed", "arctic")
CHUNK_SIZE = 32  # utterances per rendering task at most (espeak is reloaded at the start of each)
ESPEAK_WPM, ESPEAK_PITCH = 175, 50  # espeak's rate and pitch at factor 1.0


class TtsSetError(TtsError):
    """A TTS set that cannot be made as asked (a held-out voice in training, ARCTIC prompts outside test …)."""


def speaker_of(voice_id: str) -> str:
    """The recorded speaker behind a voice id (``flite/kal`` and ``festival/kal_diphone`` are both ``kal``)."""
    return SPEAKER_OF.get(voice_id, voice_id)


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode("utf-8")).digest()[:8], "big")


# --- voices ----------------------------------------------------------------------------------------

def _voice(voice_id: str) -> Voice:
    """The installed :class:`speechtl.tts.Voice` of an id; espeak voices are made here."""
    engine, _, name = voice_id.partition("/")
    if engine == "espeak":
        accent, _, variant = name.partition("+")
        if accent not in ACCENTS or (variant and variant not in VARIANTS):
            raise TtsSetError(f"unknown espeak voice {name!r}: <accent>[+variant], accents {', '.join(ACCENTS)}")
        return Voice("espeak", name, accent if accent.startswith("en") else f"{accent}-en",
                     "f" if variant.startswith("f") else "m", True)
    match = [v for v in list_voices(engine) if v.name == name]  # raises when the engine is missing
    if not match:
        raise TtsSetError(f"voice {voice_id} is not installed here; installed {engine} voices: "
                          f"{', '.join(v.name for v in list_voices(engine)) or 'none'}")
    return match[0]


def installed(voice_ids: tuple[str, ...] | list[str]) -> tuple[list[str], list[str]]:
    """``voice_ids`` split into (installed here, missing), order kept."""
    present, missing = [], []
    for vid in voice_ids:
        engine = vid.partition("/")[0]
        ok = engine == "espeak" or (engine_available(engine) and any(v.id == vid for v in list_voices(engine)))
        (present if ok else missing).append(vid)
    return present, missing


def _speakers(voice: Voice, n: int, seed: int, rates: tuple, pitches: tuple) -> list[tuple[float, float]]:
    """``n`` distinct (rate, pitch) factors of a voice, rounded to 0.01 (pitch 1.0 where it cannot shift)."""
    rng, out = random.Random(_hash("speakers", voice.id, seed)), []
    for _ in range(1000 * n):
        rate = round(rng.uniform(*rates), 2)
        pitch = round(rng.uniform(*pitches), 2) if voice.pitch else 1.0
        if (rate, pitch) not in out:
            out.append((rate, pitch))
        if len(out) == n:
            return out
    raise TtsSetError(f"{voice.id}: cannot draw {n} distinct speakers from rates {rates}, pitches {pitches}")


# --- text ------------------------------------------------------------------------------------------

def _pool(text: str, split: str, seed: int, arctic: str, skipped: list[str], count: int) -> Iterator[Sentence]:
    """Sentences of ``split``'s pool: kjv cycles (reshuffled per pass) in train, other splits stop after one;
    grammar gives ``count`` distinct sentences (the grammar is endless; it is drawn eagerly)."""
    if text == "arctic":
        yield from arctic_prompts(arctic, skipped)
        return
    if text == "grammar":
        for i, line in enumerate(sentences("en", split, count, seed)):
            s = spoken_sentence(f"grammar-{split}-{seed}-{i}", line)
            if s is None:
                skipped.append(line)
                continue
            yield s
        return
    verses = [v for v in kjv_verses(skipped=skipped) if split_of(v.text) == split]
    rng = random.Random(_hash("kjv", split, seed))
    for _ in itertools.count() if split == "train" and verses else range(1):
        rng.shuffle(verses)
        yield from verses


def _texts(spec: TtsSet, skipped: list[str]) -> Iterator[Sentence]:
    # enough grammar sentences for the set: none is shorter than half a second
    count = min(spec.num_utterances or 10**9, int(2 * 60 * (spec.minutes or 10**9))) + 1
    if spec.text != "mixed":
        yield from _pool(spec.text, spec.split, spec.seed, spec.arctic, skipped, count)
        return
    kjv, grammar = (_pool(t, spec.split, spec.seed, "", skipped, count) for t in ("kjv", "grammar"))
    rng = random.Random(_hash("mixed", spec.split, spec.seed))
    for source in iter(lambda: kjv if rng.random() < 0.5 else grammar, None):
        s = next(source, None)
        if s is None:
            return
        yield s


# --- the set ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TtsSet:
    """Everything that decides a TTS set's texts, voices and audio: its folder name and ``.done`` marker."""

    voices: tuple[str, ...]  # "engine/name" ids (see speechtl.tts.VOICES; espeak/<accent>[+variant])
    text: str = "mixed"  # kjv | grammar | mixed | arctic (test only)
    split: str = "train"  # sentence pool
    minutes: float | None = None  # stop after this much audio
    num_utterances: int | None = None  # stop after this many utterances
    seed: int = 0
    speakers_per_voice: int = 8
    rate_range: tuple[float, float] = (0.85, 1.2)  # tempo factors
    pitch_range: tuple[float, float] = (0.85, 1.2)  # mean-pitch factors (voices that can shift pitch)
    label: str = ""  # the set's name in its folder name (default: the split)
    arctic: str = ""  # the cmuarctic.data prompt file (text="arctic")

    def folder_name(self) -> str:
        digest = hashlib.sha1("|".join(self.voices).encode()).hexdigest()[:8]
        parts = ["tts", self.label or self.split, self.text]
        parts += [f"{self.minutes:g}min"] if self.minutes is not None else []
        parts += [f"{self.num_utterances}utt"] if self.num_utterances is not None else []
        return "-".join([*parts, f"{len(self.voices)}v{digest}", f"seed{self.seed}"])

    def marker(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples as lists, as read back

    def check(self) -> None:
        """Refuse what the set must never be: raises :class:`TtsSetError` naming the setting."""
        if self.text not in TEXTS or self.split not in SPLITS:
            raise TtsSetError(f"text must be one of {', '.join(TEXTS)} and split one of {', '.join(SPLITS)}, "
                              f"got text={self.text!r}, split={self.split!r}")
        if self.text == "arctic" and (self.split != "test" or not self.arctic):
            raise TtsSetError("the CMU ARCTIC prompts make test sets only (real fixtures and L2-ARCTIC read them), "
                              "and need arctic=<path to cmuarctic.data>")
        held = {speaker_of(v) for v in HELD_OUT_VOICES}
        leaked = [v for v in self.voices if self.split != "test" and speaker_of(v) in held]
        if leaked:
            raise TtsSetError(f"held-out voice(s) {', '.join(leaked)} (speakers of HELD_OUT_VOICES) may make test "
                              f"sets only, not {self.split}")
        if not self.voices or len(set(self.voices)) != len(self.voices) or self.speakers_per_voice < 1:
            raise TtsSetError(f"give distinct voices and speakers_per_voice >= 1, got {list(self.voices)}, "
                              f"{self.speakers_per_voice}")
        if (self.minutes is None and self.num_utterances is None) or (self.minutes or 1) <= 0 \
                or (self.num_utterances or 1) < 1:
            raise TtsSetError(f"give positive minutes or num_utterances, got minutes={self.minutes}, "
                              f"num_utterances={self.num_utterances}")


@dataclass(frozen=True)
class _Job:
    id: str
    sentence: Sentence
    voice: Voice
    rate: float
    pitch: float


def _plan(spec: TtsSet, skipped: list[str]) -> Iterator[_Job]:
    voices = [_voice(v) for v in spec.voices]
    speakers = {v.id: _speakers(v, spec.speakers_per_voice, spec.seed, spec.rate_range, spec.pitch_range)
                for v in voices}
    rng = random.Random(_hash("plan", spec.split, spec.text, spec.seed))
    prefix = f"tts-{spec.label or spec.split}-{spec.seed}"
    for i, sentence in enumerate(_texts(spec, skipped)):
        voice = rng.choice(voices)
        rate, pitch = rng.choice(speakers[voice.id])
        yield _Job(f"{prefix}-{i:06d}", sentence, voice, rate, pitch)


def _render_chunk(jobs: list[_Job]) -> list[tuple[np.ndarray | None, str]]:
    """Worker: each job's 16 kHz audio, or None and the reason; espeak starts fresh at every chunk."""
    torch.set_num_threads(1)
    fresh, out = True, []
    for job in jobs:
        try:
            if job.voice.engine == "espeak":
                espeak = espeak_engine(fresh=fresh)
                fresh = False
                pitch = min(99, round(ESPEAK_PITCH * job.pitch))
                audio = to_16k(espeak.pcm(job.sentence.text, job.voice.name, round(ESPEAK_WPM * job.rate), pitch))
            else:
                audio = render(job.sentence.text, job.voice.engine, job.voice.name, job.rate, job.pitch)
            out.append((audio, ""))
        except (TtsError, ValueError, RuntimeError) as e:
            out.append((None, f"{job.id} ({job.voice.id}, {job.sentence.id}): {e}"))
    return out


def _chunk_size(spec: TtsSet) -> int:
    """Utterances per rendering task: a quarter of the set's likely size (~3 s each), 1..CHUNK_SIZE. A function of
    the parameters alone, so that chunk boundaries (where espeak restarts) do not depend on ``workers``."""
    likely = min(spec.num_utterances or 10**9, (spec.minutes or 10**9) * 60 / 3)
    return max(1, min(CHUNK_SIZE, math.ceil(likely / 4)))


def _rendered(jobs: Iterator[_Job], size: int, workers: int) -> Iterator[tuple[_Job, np.ndarray | None, str]]:
    """Render chunks of ``size`` jobs in ``workers`` forked processes, ``workers`` chunks at a time, in order."""
    chunks = iter(lambda: list(itertools.islice(jobs, size)), [])
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        while batch := list(itertools.islice(chunks, workers)):
            for chunk, results in zip(batch, pool.map(_render_chunk, batch)):
                for job, (audio, error) in zip(chunk, results):
                    yield job, audio, error


def _write_wav(path: Path, audio: np.ndarray) -> None:
    """16-bit WAV encoded in memory (libsndfile fsyncs on close, which costs more than the synthesis)."""
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    path.write_bytes(buf.getvalue())


def _synthesize(out_dir: Path, spec: TtsSet, workers: int, progress: bool) -> dict:
    """Write the set's wav/ and manifest.jsonl into ``out_dir``; returns its summary."""
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    utts, failed, total_s = [], [], 0.0
    limit_s = spec.minutes * 60 if spec.minutes is not None else float("inf")
    bar = tqdm(desc=f"tts {spec.label or spec.split}", disable=not progress, unit="utt", total=spec.num_utterances)
    with bar, contextlib.closing(_rendered(_plan(spec, skipped), _chunk_size(spec), workers)) as results:
        for job, audio, error in results:
            if audio is None:
                failed.append(error)
                continue
            path = out_dir / "wav" / f"{job.id}.wav"
            _write_wav(path, audio)
            utts.append(Utterance(job.id, path, job.sentence.transcript, voice_label(job.voice, job.rate, job.pitch),
                                  job.voice.accent, "en", len(audio) / SAMPLE_RATE, gender=job.voice.gender))
            total_s += utts[-1].duration_s
            bar.update()
            if total_s >= limit_s or len(utts) == spec.num_utterances:
                break
    if not utts:
        raise TtsSetError(f"the {spec.text} {spec.split} pool gave no audio with voices {', '.join(spec.voices)}"
                          + (f"; first failure: {failed[0]}" if failed else ""))
    write_manifest(utts, out_dir / "manifest.jsonl")
    by_voice = {v: sum(u.speaker.startswith(f"{v}/p") for u in utts) for v in spec.voices}
    return {"utterances": len(utts), "minutes": round(total_s / 60, 3), "by_voice": by_voice,
            "speakers": len({u.speaker for u in utts}), "skipped_sentences": len(skipped),
            "skipped_examples": skipped[:20], "failed": failed}


def build_tts_set(folder: str | os.PathLike, spec: TtsSet, *, workers: int = 1, progress: bool = True) -> Path:
    """``folder/manifest.jsonl`` of ``spec``, synthesised unless ``folder``'s ``.done`` marker holds these
    parameters (:func:`speechtl.fileio.build_once`, as :func:`speechtl.synth.build_set`)."""
    spec.check()
    if workers < 1:
        raise TtsSetError(f"workers must be >= 1, got {workers}")

    def make(tmp: Path) -> None:
        atomic_write_json(tmp / "summary.json", _synthesize(tmp, spec, workers, progress))

    own = (lambda p: p.name in ("wav", "summary.json", "manifest.jsonl"))
    return build_once(folder, spec.marker(), make, own, TtsSetError) / "manifest.jsonl"


def prepare_tts_set(out_root: str | os.PathLike, voices: tuple[str, ...] | list[str], text: str = "mixed",
                    split: str = "train", minutes: float | None = None, seed: int = 0, *, workers: int = 1,
                    progress: bool = True, **spec) -> Path:
    """The manifest of a TTS set cached under ``out_root`` in :meth:`TtsSet.folder_name`; made once.

    ``spec`` holds the other :class:`TtsSet` fields (num_utterances, speakers_per_voice, rate_range, pitch_range,
    label, arctic). Idempotent: a second call with the same parameters returns at once."""
    s = TtsSet(tuple(voices), text, split, minutes, seed=seed, **spec)
    return build_tts_set(Path(out_root) / s.folder_name(), s, workers=workers, progress=progress)
