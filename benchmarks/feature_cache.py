"""Training steps per second with the feature cache off vs on, per strategy, through speechtl's own path.

Run (from the repository root):

    .venv/bin/python benchmarks/feature_cache.py --threads 1

For each model (the shipped ``speechtl/en-us-synth`` and a wav2vec2-base-sized random model) and each strategy
(full with the feature encoder frozen, top_k, lora) one step is: collate → ``forward_logits`` → ``ctc_loss`` →
backward → gradient clipping → AdamW, on the batches :func:`speechtl.adapt.feature_cache.training_inputs` gives —
audio with the cache off, the cached feature-encoder outputs with it on (after one pass that fills the cache,
timed apart as ``fill s``: the first epoch's convolutions). Medians over the timed steps after warm-up; the ratio
is against the cache-off row of the same model and strategy, measured in the same run. Audio is fixed-seed tones
plus noise (4–8 s clips), as in ``train_infer_speed.py``, so the numbers are about speed only.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from speechtl.adapt.feature_cache import training_inputs
from speechtl.adapt.losses import ctc_loss
from speechtl.adapt.strategies import apply_strategy
from speechtl.adapt.train_config import train_config
from speechtl.audio import SAMPLE_RATE
from speechtl.data.dataset import AudioDataset, length_grouped_batches
from speechtl.data.manifest import Utterance
from speechtl.decode import forward_logits
from speechtl.models import load_model, random_model
from speechtl.runtime import pick_device, resolve_precision, set_threads
from speechtl.text import build_vocab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_infer_speed import (CLIP_SECONDS, TEXT, command_line, emit, machine_facts, make_clips,  # noqa: E402
                               make_labels, sync)

MODELS = ("shipped", "base")  # speechtl/en-us-synth; random_model(size="base")
STRATEGIES = ("full", "top_k", "lora")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS + ("tiny",))
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="as speechtl adapt's --precision (auto: bf16 where supported)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per row")
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--batch-seconds", type=float, default=16.0, help="padded audio seconds per batch")
    p.add_argument("--clips", type=int, default=12, help="training clips (4-8 s each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-format", default="table", choices=("table", "json"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 0 or args.batch_seconds <= 0 or args.clips < 1:
        p.error("--steps and --clips must be at least 1, --warmup-steps >= 0, --batch-seconds > 0")
    return args


def build(name: str, seed: int):
    if name == "shipped":
        return load_model("speechtl/en-us-synth")
    return random_model(build_vocab([TEXT]), size=name, seed=seed)


def time_row(model, processor, clips, labels, strategy: str, cached: bool, args, device, precision: str) -> dict:
    """Median step seconds of one (strategy, cache) row; a fresh copy of ``model`` trains."""
    trained = apply_strategy(copy.deepcopy(model), strategy, top_k=2).to(device).train()
    params = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    utts = [Utterance(f"c{i}", f"c{i}.wav", "") for i in range(len(clips))]
    audio = AudioDataset(utts, labels, audio=clips)
    runtime = train_config(feature_cache="auto" if cached else "off").runtime
    with tempfile.TemporaryDirectory() as tmp:
        dataset, collate, store = training_inputs(trained, processor, audio, runtime, tmp, device, precision, True)
        if cached != (store is not None):
            raise SystemExit(f"{strategy}: the feature cache did not turn {'on' if cached else 'off'}")
        start = time.perf_counter()
        if cached:
            for i in range(len(dataset)):  # the first epoch fills the cache
                dataset[i]
        fill_s = time.perf_counter() - start
        durations = [len(c) / SAMPLE_RATE for c in clips]
        batches = length_grouped_batches(durations, args.batch_seconds, seed=args.seed)
        steps = []
        for step in range(args.warmup_steps + args.steps):
            idx = batches[step % len(batches)]
            sync(device)
            start = time.perf_counter()
            batch = collate([dataset[i] for i in idx])
            logits, lengths = forward_logits(trained, batch, True, precision)
            loss = ctc_loss(logits, lengths, batch["labels"].to(device), batch["label_lengths"].to(device),
                            model.config.pad_token_id)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            loss.item()
            sync(device)
            if step >= args.warmup_steps:
                steps.append(time.perf_counter() - start)
    return {"strategy": strategy, "cache": "on" if cached else "off", "step_s": statistics.median(steps),
            "steps_s": steps, "fill_s": fill_s if cached else None,
            "trainable_m": sum(p.numel() for p in params) / 1e6}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    set_threads(args.threads)
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    machine = machine_facts(device)
    clips = make_clips(args.clips * sum(CLIP_SECONDS) / 2, args.seed)
    rows = []
    for name in args.models:
        model, processor = build(name, args.seed)
        labels = make_labels(clips, processor.tokenizer.get_vocab(), args.seed)
        for strategy in args.strategies:
            for cached in (False, True):
                row = time_row(model, processor, clips, labels, strategy, cached, args, device, precision)
                rows.append({"model": name, "params_m": sum(p.numel() for p in model.parameters()) / 1e6, **row})
                print(f"{name} {strategy} cache {row['cache']}: {1 / row['step_s']:.3f} steps/s", file=sys.stderr)
    return {"command": command_line(argv, __file__), "precision": precision, "machine": machine, "rows": rows,
            "settings": {k: getattr(args, k) for k in ("steps", "warmup_steps", "batch_seconds", "clips", "seed")},
            "audio_s": sum(len(c) for c in clips) / SAMPLE_RATE}


def format_table(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    lines = [f"$ {result['command']}",
             f"device={m['device']} threads={m['threads']} precision={result['precision']} torch={m['torch']} "
             f"cpu={m['cpu']} cores={m['cores']} load_avg_1min={m['load_avg_1min']}" + (f" gpu={m['gpu']}" if "gpu" in m
                                                                                     else ""),
             f"{s['clips']} clips ({result['audio_s']:.0f} s of audio); {s['warmup_steps']} warm-up + {s['steps']} "
             f"timed steps of <= {s['batch_seconds']:g} padded s; medians", "",
             f"{'model':<8} {'params':>7} {'strategy':<8} {'trainable':>9} {'off steps/s':>11} {'on steps/s':>10} "
             f"{'x off':>6} {'fill s':>7}"]
    off = {(r["model"], r["strategy"]): r for r in result["rows"] if r["cache"] == "off"}
    for r in result["rows"]:
        if r["cache"] != "on":
            continue
        base = off[(r["model"], r["strategy"])]
        lines.append(f"{r['model']:<8} {r['params_m']:>6.1f}M {r['strategy']:<8} {r['trainable_m']:>8.2f}M "
                     f"{1 / base['step_s']:>11.3f} {1 / r['step_s']:>10.3f} {base['step_s'] / r['step_s']:>6.2f} "
                     f"{r['fill_s']:>7.2f}")
    lines.append("x off: cache-on steps/s over cache-off steps/s of the same model and strategy (higher is faster); "
                 "fill s: the one pass that computes every clip's features (the first epoch's convolutions)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return emit(run(args, argv), args.output_format, format_table)


if __name__ == "__main__":
    main()
