"""Shared fixtures: a tiny random model and a 'tone language' data set generated in tmp folders.

The tone language spells each letter as a 0.1 s sine tone of its own pitch, so a tiny model can
learn it in a few hundred CPU steps — enough to prove that the training loop really learns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtl.data.manifest import Utterance, write_manifest
from speechtl.models import random_model
from speechtl.text import build_vocab

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TONES_HZ = {"a": 300.0, "b": 700.0, "c": 1300.0}
TONE_S = 0.1
WORDS = ["ab", "ba", "abc", "cab", "bca", "cc", "aab"]


def noise_audio(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    """Quiet white noise (16 kHz float32) of the given sample counts: inputs for numeric comparisons of forwards."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths]


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in fp32."""
    return float((a.float() - b.float()).norm() / b.float().norm())


def tone_audio(text: str, seed: int = 0, sr: int = 16_000, pitch: float = 1.0) -> np.ndarray:
    """A word-separated tone sequence for ``text`` (letters a, b, c; spaces are 0.1 s of quiet noise); ``pitch``
    scales every tone (another "accent" of the same language)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(TONE_S * sr)) / sr
    parts = [np.zeros(int(0.05 * sr))]
    for ch in text:
        parts.append(np.zeros(len(t)) if ch == " " else 0.5 * np.sin(2 * np.pi * pitch * TONES_HZ[ch] * t))
    parts.append(np.zeros(int(0.05 * sr)))
    wav = np.concatenate(parts)
    return (wav + 0.01 * rng.standard_normal(len(wav))).astype(np.float32)


def make_tone_set(folder: Path, n: int, seed: int = 0, name: str = "manifest.jsonl", accent: str = "tone",
                  pitch: float = 1.0) -> Path:
    """Write ``n`` utterances of one or two tone words with a JSONL manifest (tones scaled by ``pitch``); returns
    the manifest path."""
    rng = np.random.default_rng(seed)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 3))))
        path = folder / "wav" / f"{accent}-{seed}-{i:03d}.wav"
        wav = tone_audio(text, seed * 1000 + i, pitch=pitch)
        sf.write(path, wav, 16_000)
        utts.append(Utterance(f"{accent}-{seed}-{i:03d}", path, text, speaker=f"spk{i % 3}", accent=accent,
                              language="", duration_s=len(wav) / 16_000))
    manifest = folder / name
    write_manifest(utts, manifest)
    return manifest


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tones")
    return {
        "train": make_tone_set(folder / "train", 12, seed=1, name="train.jsonl"),
        "dev": make_tone_set(folder / "dev", 4, seed=2, name="dev.jsonl"),
        "test": make_tone_set(folder / "test", 4, seed=3, name="test.jsonl"),
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random tiny Wav2Vec2ForCTC + processor for the tone alphabet, saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny_model")
    model, processor = random_model(build_vocab(["abc"]), size="tiny", seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def adapt_routed(model: Path, train: Path, source: Path, out: Path, test: Path, dev: Path | None = None,
                 **training):
    """A cheap routed run (``adapt --route``, 2 steps at lr 1e-2, no guard; ``training`` overrides): ``source`` is
    the router's source audio and the source test set, ``test`` the target test set. Returns
    the :class:`speechtl.adapt.report.RunResult`."""
    from speechtl.adapt.run import AdaptConfig, run_adaptation
    from speechtl.adapt.train import train_config

    settings = dict(lr=1e-2, max_steps=2, eval_every=2, batch_seconds=4, guard=False) | training
    cfg = AdaptConfig(model=str(model), train=str(train), dev=str(dev) if dev else "", test=[str(test)],
                      source_test=str(source), route=str(source), out=str(out), mismatch_utts=0,
                      training=train_config(**settings))
    return run_adaptation(cfg, progress=False)


class Interrupt(Exception):
    """A simulated crash, raised from a training loop's ``on_step``."""


def interrupt_at(step: int):
    """An ``on_step`` callback that raises :class:`Interrupt` when the loop reaches ``step``."""
    def on_step(state) -> None:
        if state.step == step:
            raise Interrupt
    return on_step


def pytest_terminal_summary(terminalreporter) -> None:
    """Say loudly when the real-recording tests did not run: their many cases collapse into a few skips."""
    if SHARED_DATA.is_dir():
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "shared" in str(r.longrepr)]
    terminalreporter.write_sep("!", "REAL SPEECH NOT TESTED", red=True, bold=True)
    terminalreporter.write_line(
        f"{SHARED_DATA} is absent: {len(skipped)} skip(s) stand for every real-recording case (about 200: each "
        f"fixture file in each format). Lay ../shared/data beside the checkout (see its README) to run them.",
        red=True, bold=True)
