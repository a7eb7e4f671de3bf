"""`speechtl pretrain` steps per second: transformers' own loss and quantizer vs speechtl's, in the same run.

Run (from the repository root):

    .venv/bin/python benchmarks/pretrain_speed.py --threads 1

For each model (the shipped ``speechtl/en-us-synth`` and a wav2vec2-base-sized random model) one row times
speechtl's pretraining step (``speechtl.adapt.pretrain._step``: masks and negatives, forward, loss, backward,
clipping, AdamW) with ``Wav2Vec2ForPreTraining``'s own contrastive loss and Gumbel quantizer (the baseline:
what a transformers user runs), and one with speechtl's (``contrastive_loss``, ``LookupQuantizer``: the same
loss and gradients, tests/test_pretrain.py), on the same fixed-seed batches of tones plus noise (about speed
only). Medians over the timed steps after warm-up; ``x base`` is the ratio to the baseline row of that model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2GumbelVectorQuantizer

import speechtl.adapt.pretrain as pretrain
from speechtl.adapt.config import PretrainConfig
from speechtl.data.dataset import CtcCollator
from speechtl.models import load_model, random_model
from speechtl.runtime import pick_device, set_threads
from speechtl.text import build_vocab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_infer_speed import TEXT, command_line, emit, machine_facts, make_clips, sync  # noqa: E402

MODELS = ("shipped", "base")  # speechtl/en-us-synth; random_model(size="base")
SYSTEMS = ("transformers", "speechtl")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS + ("tiny",))
    p.add_argument("--threads", type=int, default=0, help="torch intra-op CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="as speechtl pretrain's --precision (auto: bf16 where supported)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per row")
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--batch-seconds", type=float, default=30.0, help="audio seconds per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-format", default="table", choices=("table", "json"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 0 or args.batch_seconds <= 0:
        p.error("--steps must be at least 1, --warmup-steps >= 0, --batch-seconds > 0")
    return args


def _transformers_forward(s, batch: dict):
    """The baseline's losses: ``Wav2Vec2ForPreTraining`` computing its own loss from the same masks/negatives."""
    c, device = s.cfg, s.accelerator.device
    mask, negatives, _ = pretrain.mask_and_negatives(s.raw, batch["attention_mask"], c.mask_prob, c.mask_length,
                                                     c.num_negatives)
    with pretrain.autocast(device, s.precision):
        out = s.model(batch["input_values"].to(device), attention_mask=batch["attention_mask"].to(device),
                      mask_time_indices=mask.to(device), sampled_negative_indices=negatives.to(device))
    return {"loss": out.loss, "contrastive": out.contrastive_loss, "diversity": out.diversity_loss,
            "perplexity": out.codevector_perplexity}, int(mask.sum())


def time_row(name: str, system: str, batches: list[dict], args, device) -> dict:
    ctc, processor = (load_model("speechtl/en-us-synth") if name == "shipped"
                      else random_model(build_vocab([TEXT]), size=name, seed=args.seed))
    cfg = PretrainConfig(steps=args.warmup_steps + args.steps, batch_seconds=args.batch_seconds, device=args.device,
                         precision=args.precision, threads=args.threads, seed=args.seed)
    torch.manual_seed(args.seed)
    s = pretrain._session(cfg, ctc.to(device), processor, name)
    if system == "transformers":
        s.raw.quantizer.__class__ = Wav2Vec2GumbelVectorQuantizer
    forward = _transformers_forward if system == "transformers" else pretrain._forward
    state, times = pretrain._State(), []
    with mock.patch.object(pretrain, "_forward", forward):
        for i in range(cfg.steps):
            sync(device)
            start = time.perf_counter()
            figures = pretrain._step(s, batches[i % len(batches)], state)
            sync(device)
            if i >= args.warmup_steps:
                times.append(time.perf_counter() - start)
            state.step += 1
    return {"model": name, "system": system, "step_s": statistics.median(times),
            "audio_s_per_s": args.batch_seconds / statistics.median(times),
            "last_loss": None if figures is None else round(figures["loss"], 3)}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    set_threads(args.threads)
    device = pick_device(args.device)
    machine = machine_facts(device)
    collate = CtcCollator(load_model("speechtl/en-us-synth")[1].feature_extractor)
    batches = []
    for b in range(2):  # two fixed batches of about --batch-seconds each
        clips = make_clips(args.batch_seconds, args.seed + b)
        batches.append(collate([{"id": f"{b}-{i}", "audio": a} for i, a in enumerate(clips)]))
    rows = [time_row(name, system, batches, args, device) for name in args.models for system in SYSTEMS]
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["system"] == "transformers")
        r["x_base"] = round(base["step_s"] / r["step_s"], 2)
    return {"command": command_line(argv, __file__), "machine": machine, "rows": rows}


def format_table(result: dict) -> str:
    m = result["machine"]
    lines = [f"$ {result['command']}",
             f"cpu={m['cpu']} cores={m['cores']} threads={m['threads']} cpu_bf16={m['cpu_bf16']} "
             f"torch={m['torch']} load_avg_1min={m['load_avg_1min']}",
             f"{'model':8} {'loss and quantizer':18} {'step s':>7} {'audio-s/s':>9} {'x base':>6}"]
    lines += [f"{r['model']:8} {r['system']:18} {r['step_s']:7.2f} {r['audio_s_per_s']:9.1f} {r['x_base']:6.2f}"
              for r in result["rows"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return emit(run(args, argv), args.output_format, format_table)


if __name__ == "__main__":
    main()
