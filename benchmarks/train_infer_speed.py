"""Training throughput and inference speed of a random wav2vec2 CTC model, fp32 vs bf16 autocast.

Run (from the repository root):

    .venv/bin/python benchmarks/train_infer_speed.py

Measures, on this machine and through speechtl's own code path:

- training: audio-seconds per second of ``CtcCollator`` → ``forward_logits`` → ``ctc_loss`` → backward →
  gradient clipping → AdamW step, feature encoder frozen (the default adaptation; ``--train-encoder`` trains it, as
  the source build and ``adapt --no-freeze-feature-encoder`` do); median over the timed steps, warm-up steps
  excluded. The ``bf16+fast`` row trains as ``speechtl adapt`` does, ``forward_logits(..., fast=True)``: the feature
  encoder through :func:`speechtl.models.fast_encoder.fast_encode_features_for_training`; the ``bf16`` row through
  transformers' own forward under autocast;
- inference: real-time factor of ``transcribe_arrays`` (median over repetitions, after one warm-up call).

Ratios are against the fp32 row measured in the same run; nothing is compared with stored numbers.
Audio is fixed-seed tones plus noise (4–8 s), labels ~12 characters per second, so the numbers are
about speed only. ``--size small`` is the shipped source model's size, ``--size tiny`` a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from speechtl.adapt.train import ctc_loss
from speechtl.audio import SAMPLE_RATE
from speechtl.data.dataset import CtcCollator, length_grouped_batches
from speechtl.decode import forward_logits, transcribe_arrays, uses_attention_mask
from speechtl.models import MODEL_SIZES, random_model
from speechtl.runtime import pick_device, set_threads
from speechtl.text import build_vocab

TEXT = "the quick brown fox jumps over the lazy dog while five wizards box jovially"
CHARS_PER_SECOND = 12
CLIP_SECONDS = (4.0, 8.0)  # generated clip durations are uniform in this range
TRAIN_CLIPS = 16  # about this many training clips (16 x 6 s mean); the timed steps cycle over their batches


@dataclass
class Row:
    precision: str
    train_audio_s_per_s: float  # median over timed steps of (real audio seconds in the batch) / (step seconds)
    train_step_s: float  # median step wall time
    infer_rtf: float  # median compute seconds per audio second
    peak_mem_mb: float  # CUDA: max allocated in this row; CPU: process peak RSS so far (monotonic)
    train_steps_s: list[float]  # every timed step, to see the spread
    infer_rtfs: list[float]  # every timed repetition


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="base", choices=sorted(MODEL_SIZES), help="random model size (default: base)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--train-encoder", action="store_true",
                   help="train the feature encoder too (the source build), not only the layers above it")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "bf16+fast"],
                   choices=("fp32", "bf16", "bf16+fast"),
                   help="precisions to measure; ratios need fp32 among them")
    p.add_argument("--train-steps", type=int, default=4, help="timed training steps per precision")
    p.add_argument("--warmup-steps", type=int, default=1, help="untimed training steps before the timed ones")
    p.add_argument("--batch-seconds", type=float, default=16.0, help="padded audio seconds per batch")
    p.add_argument("--infer-minutes", type=float, default=0.5, help="audio minutes transcribed per repetition")
    p.add_argument("--infer-repeats", type=int, default=3, help="timed inference repetitions per precision")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-format", default="table", choices=("table", "json"))
    args = p.parse_args(argv)
    for name in ("train_steps", "infer_repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup_steps < 0 or args.batch_seconds <= 0 or args.infer_minutes <= 0:
        p.error("--warmup-steps must be >= 0, --batch-seconds and --infer-minutes > 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def make_clips(total_s: float, seed: int) -> list[np.ndarray]:
    """Fixed-seed clips of CLIP_SECONDS length: a few sine tones plus noise, 16 kHz float32."""
    rng = np.random.default_rng(seed)
    clips, done_s = [], 0.0
    while done_s < total_s:
        n = int(rng.uniform(*CLIP_SECONDS) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        wav = sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 3000, size=3))
        wav = wav + 0.05 * rng.standard_normal(n)
        clips.append(wav.astype(np.float32))
        done_s += n / SAMPLE_RATE
    return clips


def make_labels(clips: list[np.ndarray], vocab: dict[str, int], seed: int) -> list[list[int]]:
    """~CHARS_PER_SECOND random non-special label ids per audio second."""
    rng = np.random.default_rng(seed + 1)
    ids = [i for tok, i in vocab.items() if len(tok) == 1 and tok.isalpha()]
    return [rng.choice(ids, size=max(1, int(len(c) / SAMPLE_RATE * CHARS_PER_SECOND))).tolist() for c in clips]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def time_training(
    model, processor, clips, labels, precision: str, args, device: torch.device, bar: tqdm
) -> tuple[float, list[float]]:
    """Median audio-s/s over the timed steps of the adaptation step, and every timed step's seconds."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    collate = CtcCollator(processor.feature_extractor)
    pass_mask = uses_attention_mask(processor)
    blank = model.config.pad_token_id
    durations = [len(c) / SAMPLE_RATE for c in clips]
    batches = length_grouped_batches(durations, args.batch_seconds, seed=args.seed)
    rates, step_times = [], []
    for step in range(args.warmup_steps + args.train_steps):
        idx = batches[step % len(batches)]
        sync(device)
        start = time.perf_counter()
        batch = collate([{"id": str(i), "audio": clips[i], "labels": labels[i]} for i in idx])
        logits, lengths = forward_logits(model, batch, pass_mask, precision.split("+")[0], precision.endswith("+fast"))
        loss = ctc_loss(logits, lengths, batch["labels"].to(device), batch["label_lengths"].to(device), blank)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        loss.item()
        sync(device)
        elapsed = time.perf_counter() - start
        if step >= args.warmup_steps:
            step_times.append(elapsed)
            rates.append(sum(durations[i] for i in idx) / elapsed)
        bar.update(1)
    return statistics.median(rates), step_times


def time_inference(model, processor, clips, precision: str, args, bar: tqdm) -> list[float]:
    """Real-time factor of transcribe_arrays for each repetition, after one short warm-up call."""
    transcribe_arrays(model, processor, clips[:2], batch_seconds=args.batch_seconds, precision=precision)
    rtfs = []
    for _ in range(args.infer_repeats):
        rtfs.append(transcribe_arrays(model, processor, clips, batch_seconds=args.batch_seconds,
                                      precision=precision).rtf)
        bar.update(1)
    return rtfs


def machine_facts(device: torch.device) -> dict:
    cpu = platform.processor() or "unknown"
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu in ("unknown", "x86_64", ""):
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    facts = {
        "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads(),
        "device": str(device),
        "cpu": cpu,
        "cpu_bf16": ",".join(sorted(flags & {"avx512_bf16", "amx_bf16"})) or "none",  # native bf16 instructions
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1min": round(os.getloadavg()[0], 2),  # before the run: other jobs skew CPU timings
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def command_line(argv: list[str], script: str = __file__) -> str:
    """The command as typed from the repository root (python + the benchmark ``script`` + its arguments)."""
    def relative(path: str) -> str:
        try:
            return str(Path(path).relative_to(Path.cwd()))
        except ValueError:
            return path

    return shlex.join([relative(sys.executable), relative(str(Path(script).resolve())), *argv])


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    set_threads(args.threads)
    device = pick_device(args.device)
    machine = machine_facts(device)
    vocab = build_vocab([TEXT])
    model, processor = random_model(vocab, size=args.size, seed=args.seed)
    if not args.train_encoder:
        model.freeze_feature_encoder()
    model.to(device)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}  # each precision trains from here
    train_clips = make_clips(TRAIN_CLIPS * sum(CLIP_SECONDS) / 2, args.seed)
    labels = make_labels(train_clips, vocab, args.seed)
    infer_clips = make_clips(60 * args.infer_minutes, args.seed + 7)

    rows = []
    per_precision = args.warmup_steps + args.train_steps + args.infer_repeats
    bar = tqdm(total=per_precision * len(args.precisions), desc="benchmark", unit="step", leave=False)
    for precision in args.precisions:
        bar.set_description(f"{precision} train+infer")
        if precision.startswith("bf16") and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            bar.update(per_precision)
            print(f"skipping bf16: {torch.cuda.get_device_name(device)} does not support it", file=sys.stderr)
            continue
        model.load_state_dict(initial)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        train_rate, steps_s = time_training(model, processor, train_clips, labels, precision, args, device, bar)
        rtfs = time_inference(model, processor, infer_clips, precision.split("+")[0], args, bar)
        rows.append(Row(precision, train_rate, statistics.median(steps_s), statistics.median(rtfs),
                        peak_mem_mb(device), steps_s, rtfs))
    bar.close()
    return {
        "command": command_line(argv),
        "size": args.size,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
        "settings": {k: getattr(args, k) for k in ("train_steps", "warmup_steps", "batch_seconds", "train_encoder",
                                                   "infer_minutes", "infer_repeats", "seed")},
        "machine": machine,
        "rows": [asdict(r) for r in rows],
    }


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "-"


def millions(n: float) -> str:
    return f"{n:.1f}M" if n >= 1 else f"{n * 1000:.0f}k"


def format_table(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    base = next((r for r in result["rows"] if r["precision"] == "fp32"), None)
    mem = "peak MB (CUDA alloc)" if m["device"].startswith("cuda") else "peak RSS MB (so far)"
    lines = [
        f"$ {result['command']}",
        f"size={result['size']} params={millions(result['params_m'])} "
        f"trainable={millions(result['trainable_params_m'])} device={m['device']} threads={m['threads']} "
        f"torch={m['torch']} python={m['python']}",
        f"cpu={m['cpu']} cores={m['cores']} cpu_bf16={m['cpu_bf16']} load_avg_1min={m['load_avg_1min']}"
        + (f" gpu={m['gpu']}" if "gpu" in m else ""),
        f"train: {s['warmup_steps']} warm-up + {s['train_steps']} timed steps of <= {s['batch_seconds']:g} padded s, "
        f"feature encoder {'trained' if s.get('train_encoder') else 'frozen'}; "
        f"infer: {s['infer_minutes']:g} min x {s['infer_repeats']} repeats; medians",
        "",
        f"{'precision':<10} {'train audio-s/s':>15} {'x fp32':>7} {'step s':>7} {'max/min':>7} {'infer RTF':>10} "
        f"{'RTFx':>7} {'x fp32':>7} {mem:>21}",
    ]
    for r in result["rows"]:
        spread = max(r["train_steps_s"]) / min(r["train_steps_s"])
        lines.append(
            f"{r['precision']:<10} {r['train_audio_s_per_s']:>15.2f} "
            f"{ratio(r['train_audio_s_per_s'], base and base['train_audio_s_per_s']):>7} {r['train_step_s']:>7.2f} "
            f"{spread:>7.1f} {r['infer_rtf']:>10.4f} {1 / r['infer_rtf']:>7.1f} "
            f"{ratio(1 / r['infer_rtf'], base and 1 / base['infer_rtf']):>7} {r['peak_mem_mb']:>21.0f}"
        )
    lines.append("x fp32: speed relative to the fp32 row above (higher is faster); RTFx = 1 / RTF; "
                 "max/min: slowest / fastest timed step; bf16+fast: training as speechtl adapt runs it (the fast "
                 "feature encoder), inference as the bf16 row")
    if m["device"] == "cpu" and m["load_avg_1min"] >= (m["cores"] or 1) - m["threads"] + 0.5:
        lines.append(f"note: load average {m['load_avg_1min']} on {m['cores']} cores before the run — other jobs "
                     f"share the CPU, so timings are noisy; compare rows of one run or try --threads 1")
    return "\n".join(lines)


def emit(result: dict, output_format: str, format_table) -> dict:
    """Print a benchmark's result as JSON or as its table (every benchmark's last step); returns ``result``."""
    print(json.dumps(result, indent=2) if output_format == "json" else format_table(result))
    return result


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return emit(run(args, argv), args.output_format, format_table)


if __name__ == "__main__":
    main()
