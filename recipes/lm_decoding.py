"""Greedy vs beam search with a word n-gram LM on the offline default: WER per accent.

    python recipes/lm_decoding.py                  # shipped model, en-us and en-gb-scotland, ~3 min on one core
    python recipes/lm_decoding.py --smoke          # seconds, tiny random model (for tests)

1. LM text: ``lm_sentences`` sentences of the synthetic *training* pool (``speechtl.synth.sentences``;
   dev and test sentences are other pools, so none of them is in the LM), written to ``lm_train.txt``;
   ``lm.arpa`` built from it (order ``order``, modified Kneser–Ney) — what ``speechtl lm build`` does.
2. Dev and test sets per accent (``speechtl.synth``), frame log-probabilities computed once per set.
3. LM weight and word score tuned on the dev sets (lowest mean dev WER over the accents), then test WER
   greedy vs LM with the chosen pair. Writes ``results.json`` (with the command) and prints a table.
"""

from __future__ import annotations

import dataclasses
import itertools
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from speechtl import synth
from speechtl.config import parse_config
from speechtl.data.manifest import read_manifest
from speechtl.decode.lm import LmSettings, load_lm_decoder
from speechtl.decode.longform import file_log_probs
from speechtl.decode.ngram import build_arpa, read_text_files
from speechtl.decode.timestamps import greedy_words
from speechtl.demo import smoke_model
from speechtl.errors import exit_status
from speechtl.eval import error_rates
from speechtl.fileio import atomic_write_json, atomic_write_text
from speechtl.models import load_model
from speechtl.runtime import set_threads


@dataclass
class LmDecodingConfig:
    """Greedy vs n-gram LM beam search on synthetic accents; LM weight and word score tuned on dev."""

    model: str = "speechtl/en-us-synth"  # the acoustic model
    accents: list[str] = field(default_factory=lambda: ["en-us", "en-gb-scotland"])  # one dev and test set each
    lm_sentences: int = 100_000  # training-pool sentences for the LM
    order: int = 3  # n-gram order
    dev_minutes: float = 4.0  # per accent, for tuning
    test_minutes: float = 6.0  # per accent, for the reported WER
    lm_weights: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 3.0])  # grid tuned on dev
    word_scores: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0, 2.0])  # grid tuned on dev
    beam_size: int = 50  # hypotheses kept per frame
    seed: int = 0
    threads: int = 1  # torch CPU threads
    out: str = "runs/lm_decoding"  # LM, data and results.json
    smoke: bool = False  # seconds: tiny random model, a few sentences and utterances


def _smoke(cfg: LmDecodingConfig) -> LmDecodingConfig:
    folder = smoke_model(cfg.out)
    return dataclasses.replace(cfg, model=folder, lm_sentences=200, dev_minutes=0.1, test_minutes=0.1,
                               lm_weights=[1.0], word_scores=[0.0, 1.0], beam_size=8)


def _set(cfg: LmDecodingConfig, accent: str, split: str, minutes: float, net, processor) -> tuple[list, list[str]]:
    """(per-utterance (T, V) log-probs, reference texts) of a synthetic set, synthesised once."""
    utts = read_manifest(synth.prepare_synthetic(Path(cfg.out) / "data", accent, split, minutes, cfg.seed,
                                                 language="en", progress=False))
    log_probs = [None] * len(utts)
    for r in file_log_probs(net, processor, [u.audio_path for u in utts], batch_seconds=60.0, precision="bf16"):
        log_probs[r.index] = r.log_probs
    return log_probs, [u.text for u in utts]


def _wer(log_probs, refs, decode) -> float:
    return error_rates(refs, [decode(lp) for lp in log_probs]).wer


def _words(refs: list[str]) -> int:
    return error_rates(refs, refs).num_words


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = parse_config(LmDecodingConfig, argv)
    cfg = _smoke(cfg) if cfg.smoke else cfg
    set_threads(cfg.threads)
    start, out = time.perf_counter(), Path(cfg.out)
    text = "\n".join(synth.sentences("en", "train", n=cfg.lm_sentences, seed=cfg.seed)) + "\n"
    atomic_write_text(out / "lm_train.txt", text)
    lm_info = build_arpa(read_text_files([out / "lm_train.txt"]), cfg.order, out / "lm.arpa")
    net, processor = load_model(cfg.model)
    tok = processor.tokenizer

    def greedy(lp):
        return " ".join(w.word for w in greedy_words(lp, tok, 0.02, float("inf")))

    def with_lm(weight, score):
        return load_lm_decoder(out / "lm.arpa", tok, LmSettings(cfg.beam_size, weight, score)).text

    with torch.inference_mode():
        dev = {a: _set(cfg, a, "dev", cfg.dev_minutes, net, processor) for a in cfg.accents}
        test = {a: _set(cfg, a, "test", cfg.test_minutes, net, processor) for a in cfg.accents}
    grid = {(w, s): {a: _wer(*dev[a], with_lm(w, s)) for a in cfg.accents}
            for w, s in itertools.product(cfg.lm_weights, cfg.word_scores)}
    best = min(grid, key=lambda k: (sum(grid[k].values()), k))
    results = {
        "command": shlex.join(["python", "recipes/lm_decoding.py", *argv]),
        "config": dataclasses.asdict(cfg), "lm": lm_info,
        "chosen": {"lm_weight": best[0], "word_score": best[1], "beam_size": cfg.beam_size},
        "dev_grid": [{"lm_weight": w, "word_score": s, **{f"wer_{a}": v for a, v in r.items()}}
                     for (w, s), r in grid.items()],
        "dev": {a: {"greedy": _wer(*dev[a], greedy), "lm": grid[best][a]} for a in cfg.accents},
        "test": {a: {"greedy": _wer(*test[a], greedy), "lm": _wer(*test[a], with_lm(*best)),
                     "utts": len(test[a][1]), "words": _words(test[a][1])}
                 for a in cfg.accents},
    }
    results["wall_s"] = round(time.perf_counter() - start, 1)
    atomic_write_json(out / "results.json", results)
    print(format_table(results))
    return results


def format_table(r: dict) -> str:
    c = r["chosen"]
    lines = [f"$ {r['command']}",
             f"LM: order {r['lm']['order']}, {r['lm']['sentences']} training-pool sentences, vocabulary "
             f"{r['lm']['vocabulary']}; tuned on dev: lm_weight {c['lm_weight']:g}, word_score {c['word_score']:g}, "
             f"beam {c['beam_size']}",
             f"{'test set':18} {'utts':>5} {'words':>6} {'WER % greedy':>13} {'WER % LM':>9} {'relative':>9}"]
    for a, t in r["test"].items():
        rel = (t["lm"] - t["greedy"]) / t["greedy"] if t["greedy"] else 0.0
        lines.append(f"{a:18} {t['utts']:>5} {t['words']:>6} {100 * t['greedy']:>13.1f} {100 * t['lm']:>9.1f} "
                     f"{100 * rel:>+8.0f}%")
    lines.append(f"wall time {r['wall_s']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(exit_status("recipes/lm_decoding.py", main))
