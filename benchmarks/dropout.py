"""Dropout masks drawn by torch vs by numpy (``speechtl.models.dropout``): per call, and per training step.

Run (from the repository root):

    .venv/bin/python benchmarks/dropout.py --threads 1

First table: one dropout call (p = 0.1) on activations of the shapes a 60-s training batch of the shipped model
gives (20 utterances × 150 frames × its 256- and 1024-wide layers, and a base-sized model's 768 / 3072), in fp32
and bf16: ``torch.nn.functional.dropout`` against :class:`~speechtl.models.dropout.FastDropout`'s numpy path.
Second table: training steps per second of the shipped model and a base-sized random one with the model's own
dropouts (0.1; strategy full, feature encoder frozen and its outputs cached, as ``speechtl adapt`` trains by
default), with every ``nn.Dropout`` torch's, then swapped for ``FastDropout`` — the same step as
``benchmarks/feature_cache.py`` (collate → forward → CTC → backward → clip → AdamW). Both tables force the numpy path
for their ``numpy`` column; the header says which one training takes on this machine (numpy where torch draws its
masks one element at a time: not an Intel CPU with MKL). Ratios are against torch in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from speechtl.models import dropout as fast
from speechtl.models.dropout import FastDropout, use_fast_dropout
from speechtl.runtime import pick_device, resolve_precision, set_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feature_cache import build, time_row  # noqa: E402
from train_infer_speed import CLIP_SECONDS, command_line, emit, machine_facts, make_clips, make_labels  # noqa: E402

MODELS = ("shipped", "base")
SHAPES = ((20, 150, 256), (20, 150, 1024), (20, 150, 768), (20, 150, 3072))


def parse_args(argv: list[str] | None, doc: str = __doc__, calls: int = 20) -> argparse.Namespace:
    """The flags of this benchmark and of those built like it (per call, then per training step): ``doc`` gives
    the description, ``calls`` the default of ``--calls``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS + ("tiny",))
    p.add_argument("--threads", type=int, default=0, help="torch intra-op CPU threads (0: torch's default)")
    p.add_argument("--calls", type=int, default=calls, help="timed calls per shape")
    p.add_argument("--steps", type=int, default=6, help="timed training steps per row")
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per batch (the demo's)")
    p.add_argument("--clips", type=int, default=24, help="training clips (4-8 s each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-format", default="table", choices=("table", "json"))
    args = p.parse_args(argv)
    if min(args.calls, args.steps, args.clips) < 1 or args.warmup_steps < 0 or args.batch_seconds <= 0:
        p.error("--calls, --steps and --clips must be at least 1, --warmup-steps >= 0, --batch-seconds > 0")
    return args


def per_call(calls: int) -> list[dict]:
    """Median milliseconds of one dropout call per shape and dtype, torch's and the numpy path's."""
    rows = []
    for shape in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(shape).to(dtype)
            ours = FastDropout(0.1).train()
            row = {"shape": list(shape), "dtype": str(dtype).removeprefix("torch.")}
            for name, f in (("torch", lambda: torch.nn.functional.dropout(x, 0.1, True)), ("numpy", lambda: ours(x))):
                row[f"{name}_ms"] = median_ms(f, calls)
            rows.append(row)
    return rows


def median_ms(f, calls: int) -> float:
    """Median milliseconds of ``calls`` calls of ``f``, after one untimed call."""
    f()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    set_threads(args.threads)
    device = pick_device("cpu")
    precision = resolve_precision("auto", device)
    serial, draws_serially = fast.torch_draws_serially(), fast.torch_draws_serially
    fast.torch_draws_serially = lambda: True  # the numpy columns take the numpy path on any CPU
    try:
        calls, steps = per_call(args.calls), time_steps(args, device, precision)
    finally:
        fast.torch_draws_serially = draws_serially
    return {"command": command_line(argv, __file__), "machine": machine_facts(device),
            "precision": precision, "training_uses": "numpy" if serial else "torch",
            "calls": calls, "steps": steps,
            "settings": {k: getattr(args, k) for k in ("calls", "steps", "warmup_steps", "batch_seconds", "clips")}}


def time_steps(args: argparse.Namespace, device: torch.device, precision: str) -> list[dict]:
    """Median training-step seconds per model with torch's masks, then numpy's."""
    clips = make_clips(args.clips * sum(CLIP_SECONDS) / 2, args.seed)
    steps = []
    for name in args.models:
        model, processor = build(name, args.seed)
        labels = make_labels(clips, processor.tokenizer.get_vocab(), args.seed)
        row = {"model": name, "dropouts": sorted({m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)})}
        for masks in ("torch", "numpy"):
            if masks == "numpy":
                use_fast_dropout(model)
            torch.manual_seed(args.seed)
            timed = time_row(model, processor, clips, labels, "full", True, args, device, precision)
            row[f"{masks}_step_s"] = timed["step_s"]
            print(f"{name} {masks} masks: {1 / timed['step_s']:.3f} steps/s", file=sys.stderr)
        steps.append(row)
    return steps


def format_table(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    lines = [f"$ {result['command']}",
             f"threads={m['threads']} torch={m['torch']} cpu={m['cpu']} cores={m['cores']} "
             f"load_avg_1min={m['load_avg_1min']} precision={result['precision']}; "
             f"training here takes the {result['training_uses']} masks", "",
             f"one dropout call, p 0.1, median of {s['calls']}",
             f"{'shape':<16} {'dtype':<9} {'torch ms':>9} {'numpy ms':>9} {'x torch':>8}"]
    for r in result["calls"]:
        lines.append(f"{'x'.join(map(str, r['shape'])):<16} {r['dtype']:<9} {r['torch_ms']:>9.2f} "
                     f"{r['numpy_ms']:>9.2f} {r['torch_ms'] / r['numpy_ms']:>8.2f}")
    if result["steps"]:
        lines += ["", f"training step (full, features cached, <= {s['batch_seconds']:g} padded s, the model's dropouts; "
                      f"{s['warmup_steps']} warm-up + {s['steps']} timed, median)",
                  f"{'model':<8} {'dropouts':<10} {'torch steps/s':>13} {'numpy steps/s':>13} {'x torch':>8}"]
        for r in result["steps"]:
            lines.append(f"{r['model']:<8} {','.join(f'{p:g}' for p in r['dropouts']):<10} "
                         f"{1 / r['torch_step_s']:>13.3f} {1 / r['numpy_step_s']:>13.3f} "
                         f"{r['torch_step_s'] / r['numpy_step_s']:>8.2f}")
    lines.append("x torch: torch's time over the numpy path's, same run (higher: numpy faster)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return emit(run(args, argv), args.output_format, format_table)


if __name__ == "__main__":
    main()
