"""Synthetic labelled speech in many accents, made offline with espeak-ng::

    synthesize("data/scotland-test", accent="en-gb-scotland", split="test", minutes=5)

writes ``wav/<id>.wav`` (16 kHz mono 16-bit PCM) and ``manifest.jsonl``; the demo, recipes, scripts and
benchmarks ask for a cached set instead, made once under a data folder with one naming scheme::

    prepare_synthetic("runs/data", "en-gb-scotland", "test", minutes=5, seed=0)  # .../en-gb-scotland-test-5min-seed0

What it promises:

* Text comes from a seeded template grammar (word lists in :mod:`speechtl.synth_words`). Whether a
  sentence is "train" (~85 %), "dev" (~5 %) or "test" (~10 %) is a SHA-1 hash of its normalised text
  (:func:`split_of`), so a test sentence is never a training sentence, whatever the seed, accent, day
  or machine.
* A speaker is an espeak voice variant with a base pitch and rate (``en-gb-scotland/f2/p60/r165``);
  speakers are shared by all splits unless ``speaker_disjoint=True`` (then hashed into pools as well).
* The same arguments give the same texts, speakers and bit-identical audio. espeak carries state from
  one utterance to the next (pitch-flutter phase, noise generator), so each chunk of utterances is
  rendered by a freshly forked process with a freshly loaded library (:mod:`speechtl.espeak`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import multiprocessing
import os
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechtl import synth_words as W
from speechtl.audio import SAMPLE_RATE
from speechtl.data.manifest import Utterance, write_manifest
from speechtl.errors import SpeechtlError
from speechtl.espeak import ENGINE_LOCK, engine, rendered, to_16k
from speechtl.fileio import DONE, build_once

__all__ = [
    "ENGLISH_ACCENTS", "FOREIGN_ACCENTS", "ACCENTS", "VARIANTS", "SPLITS", "Speaker",
    "supported_languages", "split_of", "sentences", "vocabulary", "speakers", "speak", "synthesize",
    "SynthError", "SyntheticSet", "DONE", "build_set", "prepare_synthetic",
]

ENGLISH_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                   "en-029", "en-us-nyc")  # en-us is the source accent; en = southern British
FOREIGN_ACCENTS = ("de", "es", "fr", "it", "sv", "nl", "pt", "pl")  # these voices can also read English
ACCENTS = ENGLISH_ACCENTS + FOREIGN_ACCENTS
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt6")  # espeak-ng-data/voices/!v (klatt4/5 clip)
PITCHES = range(30, 71, 5)  # espeak base pitch, 0-99 (50 = the variant's default)
RATES = range(145, 196, 5)  # words per minute
SPLITS = ("train", "dev", "test")
TEST_PER_MILLE, DEV_PER_MILLE = 100, 50
CHUNK_SIZE = 64  # utterances per fresh espeak process
MIN_WORDS, MAX_WORDS = 4, 15


class SynthError(SpeechtlError, ValueError):
    """An accent, language, split or amount that the synthesiser does not offer; the message lists what it does."""


def supported_languages() -> list[str]:
    """Languages the text generator writes ("en" plus those of :data:`speechtl.synth_words.FOREIGN`)."""
    return sorted(["en", *W.FOREIGN])


def _check(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise SynthError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


# --- text ------------------------------------------------------------------------------------------

def _normalise(text: str) -> str:
    """Frozen on purpose (not speechtl.text.normalize): changing it would re-draw the split pools."""
    text = unicodedata.normalize("NFC", text).lower().replace("\u2019", "'")
    return " ".join(re.findall(r"\w+(?:'\w+)*", text))


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode("utf-8")).digest()[:8], "big")


def split_of(sentence: str) -> str:
    """The pool ("train", "dev" or "test") a sentence belongs to, from a hash of its normalised text."""
    bucket = _hash(_normalise(sentence)) % 1000
    return "test" if bucket < TEST_PER_MILLE else "dev" if bucket < TEST_PER_MILLE + DEV_PER_MILLE else "train"


def _sentence_stream(language: str, split: str, *seed: object) -> Iterator[str]:
    """Endless distinct sentences of ``split``'s pool, MIN_WORDS..MAX_WORDS words each."""
    rng, seen, misses = random.Random(_hash("text", language, split, *seed)), set(), 0
    while True:
        text = W.make_sentence(language, rng)
        key = _normalise(text)
        if key in seen or split_of(text) != split or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            misses += 1
            if misses > 100_000:
                raise RuntimeError(f"the {language} grammar ran out of new {split} sentences after {len(seen)}")
            continue
        misses = 0
        seen.add(key)
        yield text


def sentences(language: str = "en", split: str = "train", n: int = 10, seed: int = 0) -> list[str]:
    """``n`` distinct sentences of ``split``'s pool, deterministic in (language, split, seed)."""
    _check("language", language, supported_languages())
    _check("split", split, SPLITS)
    return list(itertools.islice(_sentence_stream(language, split, seed), n))


def vocabulary(language: str = "en", num_sentences: int = 20_000, seed: int = 0) -> set[str]:
    """Distinct normalised words in ``num_sentences`` generated sentences (all pools)."""
    _check("language", language, supported_languages())
    rng = random.Random(_hash("vocabulary", language, seed))
    return {w for _ in range(num_sentences) for w in _normalise(W.make_sentence(language, rng)).split()}


# --- speakers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Speaker:
    accent: str
    variant: str
    pitch: int
    rate: int

    @property
    def id(self) -> str:
        return f"{self.accent}/{self.variant}/p{self.pitch}/r{self.rate}"

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def speakers(accent: str, n: int, seed: int = 0, split: str | None = None) -> list[Speaker]:
    """``n`` distinct speakers, deterministic in (accent, seed, split).

    ``split=None`` draws from all voices (the same speakers for every split); a split draws only
    speakers whose id hashes into that split's pool, so train/dev/test speakers are disjoint.
    """
    _check("accent", accent, ACCENTS)
    if split is not None:
        _check("split", split, SPLITS)
    space = [Speaker(accent, v, p, r) for v in VARIANTS for p in PITCHES for r in RATES]
    pool = [s for s in space if split is None or split_of(s.id) == split]
    if not 1 <= n <= len(pool):
        raise SynthError(f"num_speakers must be 1..{len(pool)} for accent {accent!r} and split {split}, got {n}")
    return random.Random(_hash("speakers", accent, seed, split)).sample(pool, n)


# --- espeak-ng -------------------------------------------------------------------------------------

def _check_voice(voice: str, rate: int, pitch: int) -> None:
    accent, _, variant = voice.partition("+")
    _check("accent", accent, ACCENTS)
    if variant:
        _check("voice variant", variant, VARIANTS)
    if not (80 <= rate <= 450 and 0 <= pitch <= 99):
        raise SynthError(f"rate must be 80..450 words/min and pitch 0..99, got rate={rate}, pitch={pitch}")


def speak(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> np.ndarray:
    """Say ``text`` with an espeak voice ("en-gb-scotland", "de+f2"): (T,) float32 at 16 kHz.

    Runs in this process. espeak's pitch-flutter phase carries over between calls, so repeating a
    call can differ very slightly; :func:`synthesize` gives bit-identical audio.
    """
    _check_voice(voice, rate, pitch)
    if not text.strip():
        raise SynthError("speak() needs non-empty text")
    with ENGINE_LOCK:
        pcm = engine().pcm(text, voice, rate, pitch)
    return to_16k(pcm)


# --- data sets -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    id: str
    text: str
    speaker: Speaker
    rate: int
    pitch: int


def _plan(accent: str, language: str, split: str, seed: int, voices: list[Speaker], prefix: str) -> Iterator[_Job]:
    rng = random.Random(_hash("plan", accent, language, split, seed))
    for i, text in enumerate(_sentence_stream(language, split, seed, accent)):
        spk = voices[i % len(voices)]
        rate = round(spk.rate * rng.uniform(0.94, 1.06))
        pitch = min(99, max(0, spk.pitch + rng.randint(-4, 4)))
        yield _Job(f"{prefix}-{i:05d}", text, spk, rate, pitch)



def _write_wav(path: Path, audio: np.ndarray) -> None:
    """Atomic 16-bit WAV; encoded in memory (libsndfile fsyncs on close, which costs more than the synthesis)."""
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def _text_language(accent: str, language: str | None) -> str:
    """The text language: ``language``, else the accent's own (en for English accents)."""
    _check("accent", accent, ACCENTS)
    if language is None:
        language = "en" if accent in ENGLISH_ACCENTS else accent
        if language not in supported_languages():
            raise SynthError(f"there is no {accent!r} text generator: pass language= one of {supported_languages()}")
    _check("language", language, supported_languages())
    return language


def _check_amounts(minutes: float | None, num_utterances: int | None, workers: int) -> None:
    if minutes is None and num_utterances is None:
        raise SynthError("give minutes or num_utterances (or both)")
    if (minutes is not None and minutes <= 0) or (num_utterances is not None and num_utterances < 1) or workers < 1:
        raise SynthError(f"minutes and num_utterances must be positive and workers >= 1, got "
                         f"minutes={minutes}, num_utterances={num_utterances}, workers={workers}")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("synthesize renders in forked processes, which this platform lacks (use Linux)")


def synthesize(
    out_dir: str | os.PathLike,
    *,
    accent: str = "en-us",
    language: str | None = None,
    split: str = "train",
    minutes: float | None = None,
    num_utterances: int | None = None,
    seed: int = 0,
    num_speakers: int = 20,
    speaker_disjoint: bool = False,
    workers: int = 1,
    progress: bool = True,
) -> list[Utterance]:
    """Write ``out_dir/wav/<id>.wav`` and ``out_dir/manifest.jsonl``; stop at ``minutes`` of audio or
    ``num_utterances`` (whichever comes first). Returns the utterances.

    ``accent`` is the voice; ``language`` the text (default: the accent's own language, so
    ``accent="de", language="en"`` is a German voice reading English). Ids are
    ``{accent}-{split}-{seed}-{index:05d}`` (``{accent}_{language}-...`` for a voice reading another
    language). Speakers cycle through ``num_speakers`` voices (see :func:`speakers`).
    """
    language = _text_language(accent, language)
    _check("split", split, SPLITS)
    _check_amounts(minutes, num_utterances, workers)
    voices = speakers(accent, num_speakers, seed, split if speaker_disjoint else None)
    own_language = "en" if accent in ENGLISH_ACCENTS else accent
    prefix = f"{accent if language == own_language else f'{accent}_{language}'}-{split}-{seed}"
    plan = itertools.islice(_plan(accent, language, split, seed, voices, prefix), num_utterances)
    chunks = iter(lambda: list(itertools.islice(plan, CHUNK_SIZE)), [])
    out_dir, utts, total_s = Path(out_dir), [], 0.0
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    seconds_bar = "{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]"
    bar = tqdm(desc=f"{accent} {split}", disable=not progress, total=minutes * 60 if minutes else num_utterances,
               **({"bar_format": seconds_bar} if minutes else {"unit": "utt"}))

    def full() -> bool:
        return (minutes is not None and total_s >= minutes * 60) or len(utts) == num_utterances

    with bar, contextlib.closing(rendered(chunks, workers)) as results:  # closing stops its processes
        for job, audio in ((job, audio) for jobs, audios in results for job, audio in zip(jobs, audios)):
            path = out_dir / "wav" / f"{job.id}.wav"
            _write_wav(path, audio)
            duration = len(audio) / SAMPLE_RATE
            utts.append(Utterance(job.id, path, job.text, job.speaker.id, accent, language, duration))
            total_s += duration
            bar.update(min(duration, bar.total - bar.n) if minutes else 1)
            if full():
                break
    write_manifest(utts, out_dir / "manifest.jsonl")
    return utts


# --- cached sets -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticSet:
    """Everything that decides a synthetic set's texts, voices and audio, and so its folder name and marker."""

    accent: str  # the espeak voice
    split: str = "train"  # sentence pool
    minutes: float | None = None  # stop after this much audio
    seed: int = 0
    num_speakers: int = 20
    language: str | None = None  # the text (default: the accent's own)
    num_utterances: int | None = None  # stop after this many utterances
    speaker_disjoint: bool = False
    stream: int | None = None  # several sets from one run seed: set k is synthesised with seed * 10 + k
    label: str = ""  # the set's name in its folder name (default: the split), e.g. the demo's "source-test"

    @property
    def synthesis_seed(self) -> int:
        return self.seed if self.stream is None else self.seed * 10 + self.stream

    def folder_name(self) -> str:
        """``{voice}-{label}-{minutes}min[-{n}utt][-{n}spk][-disjoint]-seed{seed}``: the voice is the accent, or
        ``{accent}_{language}`` for a voice reading another language (as in the utterance ids); the voice count is
        left out at 20 (the default) and the utterance count when not given."""
        language = _text_language(self.accent, self.language)
        voice = self.accent if language == ("en" if self.accent in ENGLISH_ACCENTS else self.accent) \
            else f"{self.accent}_{language}"
        parts = [voice, self.label or self.split]
        parts += [f"{self.minutes:g}min"] if self.minutes is not None else []
        parts += [f"{self.num_utterances}utt"] if self.num_utterances is not None else []
        parts += [f"{self.num_speakers}spk"] if self.num_speakers != 20 else []
        parts += ["disjoint"] if self.speaker_disjoint else []
        return "-".join([*parts, f"seed{self.seed}"])

    def marker(self) -> dict:
        return {**dataclasses.asdict(self), "synthesis_seed": self.synthesis_seed}


def build_set(folder: str | os.PathLike, spec: SyntheticSet, *, workers: int = 1, progress: bool = True) -> Path:
    """``folder/manifest.jsonl`` of ``spec``, synthesised unless ``folder`` holds a marker with these parameters
    (:func:`speechtl.fileio.build_once`: made in a temporary sibling, moved into place, then marked; a lock
    serialises processes that make the same set at once)."""
    def make(tmp: Path) -> None:
        synthesize(tmp, accent=spec.accent, language=spec.language, split=spec.split, minutes=spec.minutes,
                   num_utterances=spec.num_utterances, seed=spec.synthesis_seed, num_speakers=spec.num_speakers,
                   speaker_disjoint=spec.speaker_disjoint, workers=workers, progress=progress)

    own = (lambda p: p.name == "wav" or p.suffix == ".jsonl")  # what a folder may hold to be rebuilt in place
    return build_once(folder, spec.marker(), make, own, SynthError) / "manifest.jsonl"


def prepare_synthetic(out_root: str | os.PathLike, accent: str, split: str, minutes: float | None, seed: int,
                      num_speakers: int = 20, *, workers: int = 1, progress: bool = True, **spec) -> Path:
    """The manifest of a synthetic set cached under ``out_root`` in :meth:`SyntheticSet.folder_name`; made once.

    ``spec`` holds the other :class:`SyntheticSet` fields (language, num_utterances, speaker_disjoint, stream,
    label). Idempotent: a second call with the same parameters returns at once."""
    s = SyntheticSet(accent, split, minutes, seed, num_speakers, **spec)
    return build_set(Path(out_root) / s.folder_name(), s, workers=workers, progress=progress)
