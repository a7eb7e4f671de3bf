"""The positional convolution as torch's grouped Conv1d vs by FFT (``speechtl.models.pos_conv``): per call, per step.

Run (from the repository root):

    .venv/bin/python benchmarks/pos_conv.py --threads 1

First table: forward + backward of the layer (weight-normed grouped Conv1d, same padding, GELU) under the run's
autocast precision, on 60-s batches (3,000 frames) cut into utterances of 100, 300 and 1,000 frames, for the shipped
model's layer (256 channels, kernel 64, 16 groups) and wav2vec2-base's (768, 128, 16): the layer's own forward
against the FFT path :func:`~speechtl.models.pos_conv.use_fft_pos_conv` gives it while training on CPU.
Second table: training steps per second of the shipped model and a base-sized random one (strategy full, feature
encoder frozen and its outputs cached, numpy's dropout masks where training takes them: what ``speechtl adapt``
runs), the layer as it was, then with the FFT path — the step of ``benchmarks/feature_cache.py`` (collate → forward
→ CTC → backward → clip → AdamW). Ratios are against the layer's own forward in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from speechtl.models.dropout import use_fast_dropout
from speechtl.models.pos_conv import use_fft_pos_conv
from speechtl.runtime import autocast, pick_device, resolve_precision, set_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dropout import median_ms  # noqa: E402
from dropout import parse_args as dropout_args  # noqa: E402
from feature_cache import build, time_row  # noqa: E402
from train_infer_speed import CLIP_SECONDS, command_line, emit, machine_facts, make_clips, make_labels  # noqa: E402

FRAMES = (100, 300, 1000)  # utterance lengths in frames; each batch is 3,000 frames (60 s)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return dropout_args(argv, __doc__, calls=10)


def per_call(args: argparse.Namespace, device: torch.device, precision: str) -> list[dict]:
    """Median milliseconds of the layer's forward + backward per model and utterance length, its own vs FFT."""
    rows = []
    for name in args.models:
        model, _ = build(name, args.seed)
        layer = use_fft_pos_conv(model).wav2vec2.encoder.pos_conv_embed.train()
        conv = layer.conv
        for frames in FRAMES:
            x = torch.randn(max(3000 // frames, 1), frames, conv.in_channels, requires_grad=True)
            row = {"model": name, "channels": conv.in_channels, "kernel": conv.kernel_size[0],
                   "groups": conv.groups, "batch": list(x.shape[:2])}
            for column, forward in (("own", lambda h: layer.forward_before_fft(layer, h)), ("fft", layer)):
                def step():
                    with autocast(device, precision):
                        y = forward(x)
                    y.float().square().mean().backward()
                row[f"{column}_ms"] = median_ms(step, args.calls)
            rows.append(row)
    return rows


def time_steps(args: argparse.Namespace, device: torch.device, precision: str) -> list[dict]:
    """Median training-step seconds per model with the layer's own forward, then the FFT's."""
    clips = make_clips(args.clips * sum(CLIP_SECONDS) / 2, args.seed)
    steps = []
    for name in args.models:
        model, processor = build(name, args.seed)
        use_fast_dropout(model)  # as training runs it
        labels = make_labels(clips, processor.tokenizer.get_vocab(), args.seed)
        row = {"model": name}
        for column in ("own", "fft"):
            if column == "fft":
                use_fft_pos_conv(model)
            torch.manual_seed(args.seed)
            timed = time_row(model, processor, clips, labels, "full", True, args, device, precision)
            row[f"{column}_step_s"] = timed["step_s"]
            print(f"{name} {column}: {1 / timed['step_s']:.3f} steps/s", file=sys.stderr)
        steps.append(row)
    return steps


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    set_threads(args.threads)
    device = pick_device("cpu")
    precision = resolve_precision("auto", device)
    return {"command": command_line(argv, __file__), "machine": machine_facts(device), "precision": precision,
            "calls": per_call(args, device, precision), "steps": time_steps(args, device, precision),
            "settings": {k: getattr(args, k) for k in ("calls", "steps", "warmup_steps", "batch_seconds", "clips")}}


def format_table(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    lines = [f"$ {result['command']}",
             f"threads={m['threads']} torch={m['torch']} cpu={m['cpu']} cores={m['cores']} "
             f"load_avg_1min={m['load_avg_1min']} precision={result['precision']}", "",
             f"the positional convolution, forward + backward, median of {s['calls']}",
             f"{'model':<8} {'C/K/groups':<12} {'batch':<10} {'own ms':>8} {'fft ms':>8} {'x own':>6}"]
    for r in result["calls"]:
        lines.append(f"{r['model']:<8} {r['channels']}/{r['kernel']}/{r['groups']:<6} "
                     f"{'x'.join(map(str, r['batch'])):<10} {r['own_ms']:>8.1f} {r['fft_ms']:>8.1f} "
                     f"{r['own_ms'] / r['fft_ms']:>6.2f}")
    lines += ["", f"training step (full, features cached, <= {s['batch_seconds']:g} padded s; {s['warmup_steps']} "
                  f"warm-up + {s['steps']} timed, median)",
              f"{'model':<8} {'own steps/s':>11} {'fft steps/s':>11} {'x own':>6}"]
    for r in result["steps"]:
        lines.append(f"{r['model']:<8} {1 / r['own_step_s']:>11.3f} {1 / r['fft_step_s']:>11.3f} "
                     f"{r['own_step_s'] / r['fft_step_s']:>6.2f}")
    lines.append("x own: the layer's own time over the FFT path's, same run (higher: FFT faster)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return emit(run(args, argv), args.output_format, format_table)


if __name__ == "__main__":
    main()
