"""Does the domain-mismatch score, measured without transcripts, order accents by the source model's WER?

    python recipes/mismatch_ranking.py                 # offline default: 10 synthetic accents vs en-us (~5 min)
    python recipes/mismatch_ranking.py --accents en-029 de fr --wer-minutes 3
    python recipes/mismatch_ranking.py --smoke         # seconds, tiny random model

For every target accent: :func:`speechtl.eval.mismatch.mismatch_score` of an unlabelled dev-split sample
against an unlabelled en-us dev-split sample, and the model's WER on a labelled test-split set of that
accent (:func:`speechtl.eval.evaluate`). Prints a table and the Spearman rank correlation of each score
with WER (scipy), and writes ``results.json`` (rows, correlations, the command) to ``--out``. The data
are the demo's synthetic sets (:func:`speechtl.demo.synth_set`), cached under ``--data``.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scipy.stats import spearmanr

from speechtl.config import ConfigError, override, parse_config
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest
from speechtl.demo import AccentDemoConfig, smoke_model, synth_set
from speechtl.errors import exit_status
from speechtl.eval import evaluate
from speechtl.eval.mismatch import mismatch_score
from speechtl.fileio import atomic_write_json
from speechtl.models import load_model
from speechtl.runtime import pick_device, resolve_precision, set_threads

DEFAULT_ACCENTS = ["en-gb-scotland", "en-029", "en-gb-x-rp", "en", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                   "de", "fr", "es"]  # the last three: German, French, Spanish voices reading English
SCORES = {  # column -> how to read it from a mismatch_score result
    "frechet": lambda m: m["frechet"],
    "entropy": lambda m: m["entropy"]["target"],
    "confidence": lambda m: m["confidence"]["target"],
}


@dataclass
class MismatchRankingConfig:
    """Rank target accents by a transcript-free mismatch score and compare with the source model's WER."""

    model: str = "speechtl/en-us-synth"  # the source model
    source_accent: str = "en-us"  # the accent the model was trained on
    accents: list[str] = field(default_factory=lambda: list(DEFAULT_ACCENTS))  # target accents (>= 3 for a ranking)
    sample_minutes: float = 4.0  # unlabelled dev-split audio per accent for the score (and of the source)
    wer_minutes: float = 6.0  # labelled test-split audio per accent for the WER
    max_utts: int = 100  # utterances per side in the score (fewer if a sample has fewer: the same for every accent)
    num_speakers: int = 20  # synthetic voices per set
    data: str = "runs/data"  # synthetic data cache (shared with the demo)
    out: str = "runs/mismatch_ranking"  # results.json goes here
    seed: int = 0
    threads: int = 0  # CPU threads for torch (0: torch's default)
    smoke: bool = False  # seconds: tiny random model, 3 accents, a few utterances (for tests)
    quiet: bool = False  # no progress bars


def _audio(manifest: str, progress: bool):
    utts, audio, _ = load_utterance_audio(read_manifest(manifest), "fail", progress, f"loading {Path(manifest).parent.name}")
    return utts, audio


def _demo_cfg(cfg: MismatchRankingConfig, accent: str) -> AccentDemoConfig:
    return override(AccentDemoConfig(), accent=accent, source_accent=cfg.source_accent, num_speakers=cfg.num_speakers,
                    data=cfg.data, quiet=cfg.quiet, seed=cfg.seed)


def _smoke(cfg: MismatchRankingConfig) -> MismatchRankingConfig:
    cfg.model = smoke_model(cfg.data)
    cfg.accents = cfg.accents[:3] if len(cfg.accents) >= 3 else DEFAULT_ACCENTS[:3]
    cfg.sample_minutes = cfg.wer_minutes = 0.1
    cfg.max_utts, cfg.num_speakers = 4, 3
    return cfg


def rank(cfg: MismatchRankingConfig) -> dict:
    if cfg.smoke:
        cfg = _smoke(cfg)
    set_threads(cfg.threads)
    progress = not cfg.quiet
    model, processor = load_model(cfg.model)
    device = pick_device(None)
    model.to(device)
    precision = resolve_precision("auto", device)
    # the source sample is the demo's source dev set; every accent's sample is its own dev set (the source
    # accent's too: a second sample of the source itself, the score's noise floor), its WER set its test set
    _, source = _audio(synth_set(_demo_cfg(cfg, cfg.accents[0]), "source-dev", cfg.sample_minutes), progress)
    accents = [cfg.source_accent, *cfg.accents]
    samples = {a: _audio(synth_set(_demo_cfg(cfg, a), "dev", cfg.sample_minutes), progress)[1] for a in accents}
    n = min(cfg.max_utts, len(source), *map(len, samples.values()))  # one sample size for every row: same bias
    rows = []
    for accent in accents:
        utts, audio = _audio(synth_set(_demo_cfg(cfg, accent), "test", cfg.wer_minutes), progress)
        m = mismatch_score(model, processor, source, samples[accent], n, cfg.seed, precision=precision)
        r = evaluate(model, processor, utts, precision=precision, audio=audio, progress=progress, desc=accent)
        rows.append({"accent": accent, "role": "source" if accent == cfg.source_accent else "target",
                     "wer": round(r.wer, 6), "cer": round(r.cer, 6), "num_words": r.num_words,
                     **{k: f(m) for k, f in SCORES.items()}, "mismatch": m})
    targets = [r for r in rows if r["role"] == "target"]
    wers = [r["wer"] for r in targets]
    layers = list(rows[0]["mismatch"]["frechet_by_layer"])
    corr = {k: _spearman([r[k] for r in targets], wers) for k in SCORES}
    by_layer = {layer: _spearman([r["mismatch"]["frechet_by_layer"][layer] for r in targets], wers) for layer in layers}
    return {"model": cfg.model, "source_accent": cfg.source_accent, "rows": rows, "spearman": corr,
            "spearman_frechet_by_layer": by_layer, "config": asdict(cfg),
            "command": shlex.join(["python", "recipes/mismatch_ranking.py", *sys.argv[1:]])}


def _spearman(x: list[float], y: list[float]) -> dict:
    """Spearman's ρ; undefined (None, with the reason) when either side is constant, e.g. every WER tied."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return {"rho": None, "p": None, "n": len(x), "note": "undefined: " + ("all WERs tie" if len(set(y)) < 2
                                                                            else "all scores tie")}
    rho, p = spearmanr(x, y)
    return {"rho": round(float(rho), 4), "p": float(f"{p:.3g}"), "n": len(x)}


def _rho(v: dict, p: bool = True) -> str:
    if v["rho"] is None:
        return f"– ({v['note']})"
    return f"{v['rho']:+.2f}" + (f" (p {v['p']:.2g})" if p else "")


def format_table(results: dict) -> str:
    lines = [f"{'accent':<16} {'WER %':>6} {'CER %':>6} {'Fréchet':>8} {'entropy':>8} {'confidence':>10}"]
    for r in sorted(results["rows"], key=lambda r: (r["role"] != "source", r["wer"])):
        label = r["accent"] + (" (source)" if r["role"] == "source" else "")
        lines.append(f"{label:<16} {100 * r['wer']:>6.1f} {100 * r['cer']:>6.1f} {r['frechet']:>8.3f} "
                     f"{r['entropy']:>8.3f} {r['confidence']:>10.3f}")
    s = results["spearman"]
    lines.append("Spearman ρ with WER over the target accents (n = {}): ".format(s["frechet"]["n"]) +
                 ", ".join(f"{k} {_rho(v)}" for k, v in s.items()))
    lines.append("Fréchet distance by layer, ρ with WER: " + ", ".join(
        f"{k} {_rho(v, p=False)}" for k, v in results["spearman_frechet_by_layer"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(MismatchRankingConfig, argv)
    if len(cfg.accents) < 3 and not cfg.smoke:
        raise ConfigError(f"a rank correlation needs at least 3 target accents, got {cfg.accents}")
    results = rank(cfg)
    atomic_write_json(Path(cfg.out) / "results.json", results)
    print(format_table(results))
    return results


if __name__ == "__main__":
    sys.exit(exit_status("recipes/mismatch_ranking.py", lambda: main(sys.argv[1:])))
