"""Does the accent router hold off its training distribution? Routing on held-out voices and speakers, no training.

    python recipes/router_holdout.py --threads 1                   # the demo's router (~10 min: TTS + forward passes)
    python recipes/router_holdout.py --keep 0.9 --tts-utterances 10
    python recipes/router_holdout.py --smoke                       # seconds, tiny random model

Routing depends only on the start model and the router, so no adapted model is needed. The router is fitted
exactly as the demo fits it (:func:`speechtl.demo.demo_adapt_config`'s sets, :func:`speechtl.adapt.inputs.load_sets`,
:func:`speechtl.adapt.routing.fit_run_router`: target = the demo's espeak-ng Scottish training set, source = its
espeak-ng en-us router set). Then, per held-out set, the share of utterances sent to the adapted model by the OLD
rule (p(target) > 0.5) and by the NEW rule (p > 0.5 and within the out-of-distribution gate), the share the gate
held back (abstained: the start model serves them) and the mean p(target):

- the demo's own target and source test and dev sets (espeak-ng voices the router never saw utterances of);
- US English from every installed voice of the other TTS engines (:mod:`speechtl.tts`: flite, festival, pico2wave,
  MBROLA), ``--tts-utterances`` sentences of the synthetic test pool each, and flite's Scottish ``awb`` (a target
  accent from another engine: reported as such);
- real speakers from ``--real-data`` (``../shared/data``: CMU ARCTIC aew, cathy, LibriVox and other clips;
  skipped with the reason when absent).

The gate's quantile (``--keep``) is NOT chosen on the other engines or the real speakers: the second table shows
each ``--sweep`` value on the demo's held-out target and source dev sets only, which is where it is chosen.
Writes ``router_holdout.{md,csv}`` and ``results.json`` to ``--out``; TTS audio is cached under ``<out>/tts``.
"""

from __future__ import annotations

import csv
import shlex
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechtl.adapt.inputs import eval_set_names, load_sets
from speechtl.adapt.routing import fit_run_router, pooled_states
from speechtl.audio import SAMPLE_RATE, load_audio
from speechtl.config import override, parse_config
from speechtl.data.manifest import Utterance, read_manifest, write_manifest
from speechtl.demo import AccentDemoConfig, demo_adapt_config, smoke_config
from speechtl.errors import exit_status
from speechtl.fileio import atomic_dir, atomic_write_csv, atomic_write_json, atomic_write_text
from speechtl.models import load_model
from speechtl.models.router import GATE_KEEP, fit_gate
from speechtl.runtime import pick_device, resolve_precision, set_threads
from speechtl.synth import sentences
from speechtl.tts import engine_available, list_voices, render, voice_label

ENGINES = ("flite", "festival", "pico", "mbrola")  # the offline engines other than the demo's espeak-ng
REAL = (  # label, folder under --real-data, speaker in its manifest.tsv, kind
    ("real aew (CMU ARCTIC, US male)", "fixtures/cmu_arctic_samples", "aew", "real source accent (US)"),
    ("real cathy (ARCTIC prompts, US female, 48 kHz stereo)", "fixtures/cathy_arctic", "cathy",
     "real source accent (US)"),
    ("real LibriVox reader (pocketsphinx)", "fixtures/pocketsphinx", "librivox sense_and_sensibility reader",
     "real native English"),
    ("real card names (pocketsphinx)", "fixtures/pocketsphinx", "unknown", "real native English"),
    ("real axb (CMU ARCTIC, Indian female)", "fixtures/cmu_arctic_samples", "axb", "real other accent (en-IN)"),
)
COLUMNS = ["set", "kind", "utterances", "old_routed", "new_routed", "abstained", "mean_probability"]


@dataclass
class RouterHoldoutConfig:
    """The demo's accent router on voices and speakers it never saw: the old rule (p > 0.5) against the gate."""

    model: str = "speechtl/en-us-synth"  # the start model (the router reads its pooled states)
    accent: str = "en-gb-scotland"  # the demo's target accent
    source_accent: str = "en-us"  # the accent the model was trained on
    keep: float = GATE_KEEP  # the gate: share of held-out target speakers it lets through (1: no gate)
    sweep: list[float] = field(default_factory=lambda: [0.8, 0.9, 0.95, 0.99])  # keep values shown on the dev sets
    tts_utterances: int = 30  # sentences per TTS voice
    real_data: str = "../shared/data"  # real recordings (see its README); absent: those rows are skipped
    data: str = "runs/data"  # synthetic data cache (shared with the demo)
    out: str = "runs/router_holdout"  # tables, results.json, TTS cache
    seed: int = 0
    threads: int = 0  # CPU threads for torch (0: torch's default)
    smoke: bool = False  # seconds: tiny random model, tiny sets, 2 utterances per voice and real set
    quiet: bool = False  # no progress bars


def _tts_sets(cfg: RouterHoldoutConfig) -> list[tuple[str, str, list[np.ndarray]]]:
    """(label, kind, audio) per installed US voice of the other engines (and flite awb), rendered once."""
    found = []
    for engine in (e for e in ENGINES if engine_available(e)):
        for voice in list_voices(engine):
            if voice.accent == "en-us" or voice.accent == cfg.accent:
                kind = "unseen TTS, target accent" if voice.accent == cfg.accent else "unseen TTS, source accent"
                found.append((f"{voice.id} ({voice.accent})", kind, voice))
    if cfg.smoke:
        found = found[:1]
    return [(label, kind, _rendered(cfg, voice)) for label, kind, voice in found]


def _rendered(cfg: RouterHoldoutConfig, voice) -> list[np.ndarray]:
    folder = Path(cfg.out) / "tts" / f"{voice.engine}-{voice.name}-{cfg.tts_utterances}utt"
    if not (folder / "manifest.jsonl").is_file():
        texts = sentences("en", "test", cfg.tts_utterances, seed=zlib.crc32(voice.id.encode()))
        with atomic_dir(folder) as tmp:
            utts = []
            for i, text in enumerate(texts):
                audio = render(text, voice.engine, voice.name)
                sf.write(tmp / f"{i:03d}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
                utts.append(Utterance(id=f"{voice.engine}-{voice.name}-{i:03d}", audio_path=tmp / f"{i:03d}.wav",
                                      text=text, speaker=voice_label(voice), accent=voice.accent, language="en",
                                      duration_s=round(len(audio) / SAMPLE_RATE, 4)))
            write_manifest(utts, tmp / "manifest.jsonl")
    return [load_audio(u.audio_path) for u in read_manifest(folder / "manifest.jsonl")]


def _real_sets(cfg: RouterHoldoutConfig) -> tuple[list[tuple[str, str, list[np.ndarray]]], list[str]]:
    """(label, kind, audio) per real speaker set found under --real-data, and the reasons for those skipped."""
    sets, skipped = [], []
    for label, folder, speaker, kind in REAL:
        manifest = Path(cfg.real_data) / folder / "manifest.tsv"
        if not manifest.is_file():
            skipped.append(f"{label}: {manifest} is absent (lay ../shared/data beside the checkout or pass "
                           f"--real-data)")
            continue
        with open(manifest, newline="", encoding="utf-8") as f:
            paths = [manifest.parent / r["path"] for r in csv.DictReader(f, delimiter="\t") if r["speaker"] == speaker]
        sets.append((label, kind, [load_audio(p) for p in paths[:2 if cfg.smoke else None]]))
    return sets, skipped


def _demo_sets(utts: dict, audio: dict, adapt_cfg) -> list[tuple[str, str, list[np.ndarray]]]:
    roles = {name: role for name, (role, _) in eval_set_names(adapt_cfg.test, adapt_cfg.source_test,
                                                                adapt_cfg.dev, adapt_cfg.source_dev).items()}
    rows = [(f"demo {role} test ({name})", f"espeak-ng {role} accent, held out", audio[name])
            for name, role in roles.items()]
    return rows + [("demo target dev", "espeak-ng target accent, held out (chooses --keep)", audio["dev"]),
                   ("demo source dev", "espeak-ng source accent, held out (chooses --keep)", audio["source_dev"])]


def _row(label: str, kind: str, router, pooled: np.ndarray) -> dict:
    with torch.no_grad():
        d = router.decide(torch.from_numpy(pooled).to(router.mean.device))
    return {"set": label, "kind": kind, "utterances": len(pooled),
            "old_routed": round(float((d.routed | d.abstained).float().mean()), 4),
            "new_routed": round(float(d.routed.float().mean()), 4),
            "abstained": round(float(d.abstained.float().mean()), 4),
            "mean_probability": round(float(d.probability.mean()), 4)}


def _sweep(cfg: RouterHoldoutConfig, router, train: np.ndarray, speakers: list[str], dev: dict, seed: int) -> list:
    """Per --sweep keep value: the gate refitted on the training states, scored on the held-out dev sets only."""
    rows = []
    for keep in cfg.sweep:
        trial = type(router)(router.mean.numel()).to(router.mean.device)
        trial.load_state_dict(router.state_dict())
        gate = fit_gate(trial, train, keep, speakers, seed=seed)
        rows.append({"keep": keep, "threshold": gate["threshold"],
                     **{f"{name}_new_routed": _row(name, "", trial, x)["new_routed"] for name, x in dev.items()}})
    return rows


def measure(cfg: RouterHoldoutConfig) -> dict:
    if cfg.smoke:
        cfg = override(cfg, tts_utterances=2)
    set_threads(cfg.threads)
    demo = override(AccentDemoConfig(), model=cfg.model, accent=cfg.accent, source_accent=cfg.source_accent,
                    data=cfg.data, quiet=cfg.quiet, seed=cfg.seed)
    adapt_cfg = demo_adapt_config(smoke_config(demo) if cfg.smoke else demo)
    model, processor = load_model(adapt_cfg.model)
    model.to(pick_device(None)).eval()
    precision = resolve_precision(adapt_cfg.training.runtime.precision, pick_device(None))
    utts, audio, _ = load_sets(adapt_cfg, processor.tokenizer, not cfg.quiet, "en")
    speakers = [u.speaker for u in utts["train"]]
    run_router = fit_run_router(model, processor, audio["train"], audio["route"], source_set=adapt_cfg.route,
                                keep=cfg.keep, speakers=speakers, batch_seconds=adapt_cfg.eval_batch_seconds,
                                precision=precision, seed=adapt_cfg.training.runtime.seed)

    def pooled(arrays):
        return pooled_states(run_router.base, processor, arrays, adapt_cfg.eval_batch_seconds, precision)

    real, skipped = _real_sets(cfg)
    sets = _demo_sets(utts, audio, adapt_cfg) + _tts_sets(cfg) + real
    states = {label: pooled(arrays) for label, _, arrays in sets}
    rows = [_row(label, kind, run_router.router, states[label]) for label, kind, _ in sets]
    dev = {"target_dev": states["demo target dev"], "source_dev": states["demo source dev"]}
    sweep = _sweep(cfg, run_router.router, pooled(audio["train"]), speakers, dev, adapt_cfg.training.runtime.seed)
    return {"model": cfg.model, "router": run_router.routing, "rows": rows, "sweep": sweep, "skipped": skipped,
            "config": asdict(cfg), "command": shlex.join(["python", "recipes/router_holdout.py", *sys.argv[1:]])}


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def _num(x: float | None) -> str:
    return "– (no gate)" if x is None else f"{x:.3g}"


def format_markdown(results: dict) -> str:
    gate = results["router"]["gate"]
    lines = ["| set | kind | utts | to adapted, old rule (p > 0.5) % | to adapted, with the gate % | abstained % "
             "| mean p(target) |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['set']} | {r['kind']} | {r['utterances']} | {_pct(r['old_routed'])} | {_pct(r['new_routed'])} "
              f"| {_pct(r['abstained'])} | {r['mean_probability']:.2f} |" for r in results["rows"]]
    lines += ["", f"Gate: keep {gate['keep']} of held-out target speakers (threshold {_num(gate['threshold'])}, "
              f"cross-fitted: {gate.get('held_out_target_kept', '–')} kept; within it: "
              f"{gate.get('source_within', '–')} of the router's source audio).", "",
              "Choosing --keep on the demo's held-out dev sets only (never on the rows above):", "",
              "| keep | threshold | target dev to adapted % | source dev to adapted % |", "|---:|---:|---:|---:|"]
    lines += [f"| {s['keep']} | {_num(s['threshold'])} | {_pct(s['target_dev_new_routed'])} | "
              f"{_pct(s['source_dev_new_routed'])} |" for s in results["sweep"]]
    lines += [*(["", "Skipped: " + "; ".join(results["skipped"])] if results["skipped"] else []), "",
              f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(RouterHoldoutConfig, argv)
    results = measure(cfg)
    out = Path(cfg.out)
    atomic_write_json(out / "results.json", results)
    atomic_write_csv(out / "router_holdout.csv", results["rows"], COLUMNS)
    table = format_markdown(results)
    atomic_write_text(out / "router_holdout.md", table)
    print(table)
    return results


if __name__ == "__main__":
    sys.exit(exit_status("recipes/router_holdout.py", lambda: main(sys.argv[1:])))
