"""espeak-ng in this process (ctypes) and in freshly forked ones: the renderer behind :mod:`speechtl.synth`.

espeak carries state from one utterance to the next (pitch-flutter phase, noise generator), so
:func:`rendered` renders each chunk of utterances in a freshly forked process with a freshly loaded
library: the same jobs give bit-identical audio whatever the worker count.
"""

from __future__ import annotations

import _ctypes
import ctypes
import functools
import multiprocessing
import os
import threading
from collections import deque
from typing import Iterable, Iterator

import espeakng_loader
import numpy as np
import torch
import torchaudio

from speechtl.audio import SAMPLE_RATE

__all__ = ["ESPEAK_RATE", "KEEP_SILENCE_S", "SILENCE_LEVEL", "ENGINE_LOCK", "Espeak", "engine", "to_16k", "rendered"]

ESPEAK_RATE = 22_050  # espeak-ng's native output rate
KEEP_SILENCE_S = 0.1  # silence kept before and after the speech
SILENCE_LEVEL = 0.005  # |sample| below this counts as silence when trimming

# espeak-ng C API constants (speak_lib.h)
_SYNCHRONOUS, _DONT_EXIT, _CHARS_UTF8, _POS_CHARACTER = 2, 0x8000, 1, 1
_RATE, _PITCH = 1, 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """espeak-ng loaded into this process. The C library is global state: keep one (see engine)."""

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


_ENGINE: Espeak | None = None
ENGINE_LOCK = threading.Lock()  # one synthesis at a time: espeak-ng is not thread-safe


def engine(fresh: bool = False) -> Espeak:
    global _ENGINE
    if fresh and _ENGINE is not None:
        _ENGINE.close()
        _ENGINE = None
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


@functools.cache
def _resampler() -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(ESPEAK_RATE, SAMPLE_RATE)  # functional.resample, kernel cached


def to_16k(pcm: np.ndarray) -> np.ndarray:
    """int16 espeak audio → (T,) float32 at 16 kHz in [-1, 1), silence trimmed to KEEP_SILENCE_S."""
    with torch.inference_mode():
        audio = _resampler()(torch.from_numpy(pcm.astype(np.float32) / 32768.0)).numpy()
    loud = np.flatnonzero(np.abs(audio) > SILENCE_LEVEL)
    if loud.size == 0:
        raise ValueError("espeak-ng produced only silence")
    keep = int(KEEP_SILENCE_S * SAMPLE_RATE)
    audio = audio[max(0, loud[0] - keep): loud[-1] + 1 + keep]
    return np.clip(audio, -1.0, 32767 / 32768).astype(np.float32)


def _render_chunk(jobs: list, conn) -> None:
    """Child process: a freshly loaded espeak renders ``jobs``; sends back their 16 kHz audio."""
    job = jobs[0]
    try:
        torch.set_num_threads(1)  # this process only: short clips resample faster on one thread and
        torch.backends.mkldnn.enabled = False  # without oneDNN, which compiles a kernel per new length
        espeak = engine(fresh=True)
        out = []
        for job in jobs:
            out.append(to_16k(espeak.pcm(job.text, job.speaker.voice, job.rate, job.pitch)))
        conn.send(("ok", out))
    except Exception as e:
        conn.send(("error", f"utterance {job.id} ({job.text!r}, voice {job.speaker.voice}): {e}"))
    finally:
        conn.close()


def rendered(chunks: Iterable[list], workers: int) -> Iterator[tuple[list, list[np.ndarray]]]:
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

