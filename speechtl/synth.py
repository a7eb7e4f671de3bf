"""Synthetic labelled speech in many accents, made offline with espeak-ng::

    synthesize("data/scotland-test", accent="en-gb-scotland", split="test", minutes=5)

writes ``wav/<id>.wav`` (16 kHz mono 16-bit PCM) and ``manifest.jsonl``. What it promises:

* Text comes from a seeded template grammar (word lists in :mod:`speechtl.synth_words`). Whether a
  sentence is "train" (~85 %), "dev" (~5 %) or "test" (~10 %) is a SHA-1 hash of its normalised text
  (:func:`split_of`), so a test sentence is never a training sentence, whatever the seed, accent, day
  or machine.
* A speaker is an espeak voice variant with a base pitch and rate (``en-gb-scotland/f2/p60/r165``);
  speakers are shared by all splits unless ``speaker_disjoint=True`` (then hashed into pools as well).
* The same arguments give the same texts, speakers and bit-identical audio. espeak carries state from
  one utterance to the next (pitch-flutter phase, noise generator), so each chunk of utterances is
  rendered by a freshly forked process with a freshly loaded library.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import functools
import hashlib
import io
import itertools
import multiprocessing
import os
import random
import re
import threading
import unicodedata
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import espeakng_loader
import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

from speechtl import synth_words as W
from speechtl.audio import SAMPLE_RATE
from speechtl.data.manifest import Utterance, write_manifest

__all__ = [
    "ENGLISH_ACCENTS", "FOREIGN_ACCENTS", "ACCENTS", "VARIANTS", "SPLITS", "Speaker",
    "supported_languages", "split_of", "sentences", "vocabulary", "speakers", "speak", "synthesize",
]

ESPEAK_RATE = 22_050  # espeak-ng's native output rate
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
KEEP_SILENCE_S = 0.1  # silence kept before and after the speech
SILENCE_LEVEL = 0.005  # |sample| below this counts as silence when trimming
MIN_WORDS, MAX_WORDS = 4, 15

# espeak-ng C API constants (speak_lib.h)
_SYNCHRONOUS, _DONT_EXIT, _CHARS_UTF8, _POS_CHARACTER = 2, 0x8000, 1, 1
_RATE, _PITCH = 1, 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def supported_languages() -> list[str]:
    """Languages the text generator writes ("en" plus those of :data:`speechtl.synth_words.FOREIGN`)."""
    return sorted(["en", *W.FOREIGN])


def _check(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


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
        raise ValueError(f"num_speakers must be 1..{len(pool)} for accent {accent!r} and split {split}, got {n}")
    return random.Random(_hash("speakers", accent, seed, split)).sample(pool, n)


# --- espeak-ng -------------------------------------------------------------------------------------

class _Espeak:
    """espeak-ng loaded into this process. The C library is global state: keep one (see _engine)."""

    def __init__(self) -> None:
        self.lib = lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.libc = ctypes.CDLL(None)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data = espeakng_loader.get_data_path()
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 1000, os.fsencode(data), _DONT_EXIT)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak-ng failed to initialise with data at {data} (returned {rate})")
        self.blocks: list[np.ndarray] = []
        self.callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: C holds only the pointer
        lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav, num_samples: int, events) -> int:
        if num_samples > 0:
            self.blocks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def pcm(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        """(T,) int16 at ESPEAK_RATE."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)
        self.libc.srand(0)  # espeak's breath noise uses the C library's rand()
        self.lib.espeak_ng_SetRandSeed(0)
        self.blocks = []
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0 or not self.blocks:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r} with voice {voice} (status {status})")
        return np.concatenate(self.blocks)

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)  # unload, so the next load starts from pristine C state


_ENGINE: _Espeak | None = None
_ENGINE_LOCK = threading.Lock()  # one synthesis at a time: espeak-ng is not thread-safe


def _engine(fresh: bool = False) -> _Espeak:
    global _ENGINE
    if fresh and _ENGINE is not None:
        _ENGINE.close()
        _ENGINE = None
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


@functools.cache
def _resampler() -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(ESPEAK_RATE, SAMPLE_RATE)  # functional.resample, kernel cached


def _to_16k(pcm: np.ndarray) -> np.ndarray:
    """int16 espeak audio → (T,) float32 at 16 kHz in [-1, 1), silence trimmed to KEEP_SILENCE_S."""
    with torch.inference_mode():
        audio = _resampler()(torch.from_numpy(pcm.astype(np.float32) / 32768.0)).numpy()
    loud = np.flatnonzero(np.abs(audio) > SILENCE_LEVEL)
    if loud.size == 0:
        raise ValueError("espeak-ng produced only silence")
    keep = int(KEEP_SILENCE_S * SAMPLE_RATE)
    audio = audio[max(0, loud[0] - keep): loud[-1] + 1 + keep]
    return np.clip(audio, -1.0, 32767 / 32768).astype(np.float32)


def _check_voice(voice: str, rate: int, pitch: int) -> None:
    accent, _, variant = voice.partition("+")
    _check("accent", accent, ACCENTS)
    if variant:
        _check("voice variant", variant, VARIANTS)
    if not (80 <= rate <= 450 and 0 <= pitch <= 99):
        raise ValueError(f"rate must be 80..450 words/min and pitch 0..99, got rate={rate}, pitch={pitch}")


def speak(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> np.ndarray:
    """Say ``text`` with an espeak voice ("en-gb-scotland", "de+f2"): (T,) float32 at 16 kHz.

    Runs in this process. espeak's pitch-flutter phase carries over between calls, so repeating a
    call can differ very slightly; :func:`synthesize` gives bit-identical audio.
    """
    _check_voice(voice, rate, pitch)
    if not text.strip():
        raise ValueError("speak() needs non-empty text")
    with _ENGINE_LOCK:
        pcm = _engine().pcm(text, voice, rate, pitch)
    return _to_16k(pcm)


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


def _render_chunk(jobs: list[_Job], conn) -> None:
    """Child process: a freshly loaded espeak renders ``jobs``; sends back their 16 kHz audio."""
    job = jobs[0]
    try:
        torch.set_num_threads(1)  # this process only: short clips resample faster on one thread and
        torch.backends.mkldnn.enabled = False  # without oneDNN, which compiles a kernel per new length
        engine = _engine(fresh=True)
        out = []
        for job in jobs:
            out.append(_to_16k(engine.pcm(job.text, job.speaker.voice, job.rate, job.pitch)))
        conn.send(("ok", out))
    except Exception as e:
        conn.send(("error", f"utterance {job.id} ({job.text!r}, voice {job.speaker.voice}): {e}"))
    finally:
        conn.close()


def _rendered(chunks: Iterable[list[_Job]], workers: int) -> Iterator[tuple[list[_Job], list[np.ndarray]]]:
    """Render chunks, at most ``workers`` at a time, each in a fresh forked process; yields in order."""
    ctx = multiprocessing.get_context("fork")
    running: deque = deque()

    def finish(jobs, proc, conn):
        try:
            status, payload = conn.recv()
        except EOFError:
            proc.join()
            status, payload = "error", f"synthesis process died (exit code {proc.exitcode})"
        conn.close()
        proc.join()
        if status != "ok":
            raise RuntimeError(f"synthesis of {jobs[0].id}..{jobs[-1].id} failed: {payload}")
        return jobs, payload

    try:
        for jobs in chunks:
            conn, child_conn = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_render_chunk, args=(jobs, child_conn), daemon=True)
            proc.start()
            child_conn.close()
            running.append((jobs, proc, conn))
            if len(running) >= workers:
                yield finish(*running.popleft())
        while running:
            yield finish(*running.popleft())
    finally:
        for _, proc, conn in running:
            proc.terminate()
            proc.join()
            conn.close()


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
            raise ValueError(f"there is no {accent!r} text generator: pass language= one of {supported_languages()}")
    _check("language", language, supported_languages())
    return language


def _check_amounts(minutes: float | None, num_utterances: int | None, workers: int) -> None:
    if minutes is None and num_utterances is None:
        raise ValueError("give minutes or num_utterances (or both)")
    if (minutes is not None and minutes <= 0) or (num_utterances is not None and num_utterances < 1) or workers < 1:
        raise ValueError(f"minutes and num_utterances must be positive and workers >= 1, got "
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

    with bar, contextlib.closing(_rendered(chunks, workers)) as results:  # closing stops its processes
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
