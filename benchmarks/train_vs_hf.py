"""speechtl's training loop against the Hugging Face ``Trainer`` recipe: throughput, memory, start-up, dev WER.

Run (from the repository root):

    .venv/bin/python benchmarks/train_vs_hf.py --threads 1

The same model, the same synthetic manifests (the demo's: 10 min of en-gb-scotland to train, 4 min to score), the
same padded seconds per batch, the same number of optimizer steps, learning rate and warm-up, the feature encoder
frozen in all, the same dropouts and SpecAugment in all (``--dropout example``, the default: the example's defaults,
every dropout 0 and time masks at 0.05; ``--dropout model``: the model's own config), through three arms, each in its
own process (so peak RSS is its own):

- ``hf_fp32``: ``Trainer`` set up as transformers' ``run_speech_recognition_ctc.py`` sets it up
  (:mod:`hf_ctc_recipe`), fp32 as a CPU user gets by default;
- ``hf_bf16``: the same with ``bf16=True``;
- ``speechtl``: the library's loop, :func:`speechtl.adapt.train.train` (as ``speechtl adapt`` calls it), with its
  defaults (bf16 autocast where supported, the feature cache).

The ``Trainer`` batches by count: its per-device batch size is the speechtl batches' mean padded seconds over the
mean utterance length, rounded; the table shows the padded seconds each arm's batches really had. After the arms,
speechtl alone at other batch sizes and under ``torchrun --nproc_per_node 2`` (gloo, one thread each).

Figures: ``audio-s/s`` real audio seconds of steps 2..N over the time from the end of step 1 to the end of step N;
``first step s`` from launching the process to the end of step 1 (imports, loading, data preparation included);
``RSS MB`` the process's peak resident memory at the end of training (VmHWM; summed over processes);
``dev WER`` the returned weights on the dev manifest with :func:`speechtl.eval.evaluate` in fp32, for every arm.
Ratios are against the ``hf_*`` rows of the same model in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ARMS = ("hf_fp32", "hf_bf16", "speechtl")
MODELS = ("shipped", "base")  # speechtl/en-us-synth; a random wav2vec2-base-sized model (or tiny, small: random)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), help="shipped, base, or model folders")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process (default: 1)")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per arm")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per batch")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--dropout", default="example", choices=("example", "model"),
                   help="every arm's dropouts and SpecAugment: the HF CTC example's defaults (dropouts 0, time masks "
                        "0.05) or the model's own config")
    p.add_argument("--precision", default="auto", help="speechtl's --precision (auto: bf16 where supported)")
    p.add_argument("--scaling", type=float, nargs="*", default=[60.0, 120.0, 240.0],
                   help="speechtl at these batch seconds too (none: skip)")
    p.add_argument("--scaling-epochs", type=float, default=3.0,
                   help="epochs of each scaling and torchrun row (the same audio for every batch size)")
    p.add_argument("--nproc", type=int, default=2, help="processes of the torchrun row (0 or 1: no such row)")
    p.add_argument("--data", default="runs/data", help="synthetic data cache (the demo's sets)")
    p.add_argument("--train", default="", help="training manifest instead of the synthetic one")
    p.add_argument("--dev", default="", help="dev manifest instead of the synthetic one")
    p.add_argument("--work", default="", help="folder for the random model and the runs (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-format", default="table", choices=("table", "json"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one arm, as JSON spec
    args = p.parse_args(argv)
    if args.steps < 2 or args.scaling_epochs <= 0:
        p.error("--steps must be at least 2 (throughput is measured after the first step), --scaling-epochs > 0")
    if args.batch_seconds <= 0 or any(b <= 0 for b in args.scaling) or args.threads < 1:
        p.error("--batch-seconds and --scaling must be > 0, --threads >= 1")
    return args


def manifests(args) -> tuple[str, str]:
    """The training and dev manifests: given, or the demo's synthetic sets (made once under ``--data``)."""
    if args.train and args.dev:
        return args.train, args.dev
    if args.train or args.dev:
        raise SystemExit("give both --train and --dev, or neither")
    from speechtl.demo import AccentDemoConfig, synth_set

    cfg = AccentDemoConfig(data=args.data, quiet=True)
    return synth_set(cfg, "train", cfg.train_minutes), synth_set(cfg, "dev", cfg.dev_minutes)


def model_folder(name: str, work: Path, seed: int) -> str:
    """A folder both the ``Trainer`` and speechtl load: the shipped model's, or a random model saved once."""
    from speechtl.models import MODEL_SIZES, SHIPPED_DIR, random_model
    from speechtl.text import ENGLISH_CHARS, build_vocab

    if name == "shipped":
        return str(SHIPPED_DIR / "en-us-synth")
    if name not in MODEL_SIZES:
        return name
    folder = work / f"random-{name}"
    if not (folder / "config.json").is_file():
        model, processor = random_model(build_vocab([], ENGLISH_CHARS), size=name, seed=seed)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return str(folder)


def durations(manifest: str) -> list[float]:
    import soundfile as sf

    from speechtl.data.manifest import read_manifest

    return [u.duration_s or sf.info(str(u.audio_path)).duration for u in read_manifest(manifest)]


def mean_padded(durs: list[float], batches: list[list[int]]) -> float:
    return sum(len(b) * max(durs[i] for i in b) for b in batches) / len(batches)


def hf_padded(durs: list[float], size: int, seed: int) -> float:
    """Mean padded seconds of the ``Trainer``'s length-grouped batches of ``size`` utterances."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    order = list(LengthGroupedSampler(size, lengths=[round(d * 16_000) for d in durs],
                                      generator=torch.Generator().manual_seed(seed)))
    return mean_padded(durs, [order[i:i + size] for i in range(0, len(order), size)])


def hf_batch_size(durs: list[float], batch_seconds: float, seed: int) -> tuple[int, float]:
    """The ``Trainer``'s batch size whose mean padded seconds come closest to speechtl's batches', and theirs."""
    from speechtl.data.dataset import length_grouped_batches

    target = mean_padded(durs, length_grouped_batches(durs, batch_seconds, seed=seed))
    sizes = range(1, min(len(durs), int(target / min(durs)) + 1) + 1)
    return min(sizes, key=lambda n: abs(hf_padded(durs, n, seed) - target)), target


def epoch_steps(durs: list[float], batch_seconds: float, epochs: float, nproc: int, seed: int) -> int:
    """Optimizer steps of ``epochs`` passes over the data at ``batch_seconds`` on ``nproc`` processes."""
    from speechtl.data.dataset import length_grouped_batches

    per_epoch = -(-len(length_grouped_batches(durs, batch_seconds, seed=seed)) // max(1, nproc))
    return max(2, round(epochs * per_epoch))


def launch(spec: dict, nproc: int = 1) -> dict:
    """Run one arm in fresh process(es); its figures, timed from the launch."""
    out = Path(spec["work"]) / f"result-{spec['tag']}"
    spec = {**spec, "result": str(out)}
    script = [str(HERE / "train_vs_hf.py"), "--worker", json.dumps(spec)]
    cmd = [sys.executable, *script] if nproc <= 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "TOKENIZERS_PARALLELISM": "false"}
    start = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL if nproc > 1 else None)
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(max(1, nproc))]
    main, ends, steps = ranks[0], ranks[0]["ends"], ranks[0]["steps"]
    return {"arm": spec["arm"], "precision": main["precision"], "procs": max(1, nproc),
            "batch_seconds": spec["batch_seconds"], "steps": len(ends),
            "padded_s_per_batch": sum(s[1] for s in steps) / sum(s[2] for s in steps),
            "audio_s_per_s": sum(s[0] for s in steps[1:]) / (ends[-1] - ends[0]),
            "first_step_s": ends[0] - start, "total_s": ends[-1] - start,
            "rss_mb": sum(r["rss_mb"] for r in ranks), "dev_wer": main["dev_wer"],
            "gpu_mb": main.get("gpu_mb"),
            "hf_batch_size": spec.get("hf_batch_size")}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    import torch

    from train_infer_speed import command_line, machine_facts

    torch.set_num_threads(args.threads)
    facts = machine_facts(torch.device("cpu"))
    train, dev = manifests(args)
    durs = durations(train)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in args.models:
            rows += model_rows(args, name, model_folder(name, work, args.seed), train, dev, durs, work)
    return {"command": command_line(argv, __file__), "machine": facts, "load_avg_end": os.getloadavg()[0],
            "rows": rows, "train_audio_s": sum(durs), "train_utts": len(durs), "dropout": args.dropout}


def model_rows(args, name: str, folder: str, train: str, dev: str, durs: list[float], work: Path) -> list[dict]:
    base = {"model_dir": folder, "train": train, "dev": dev, "lr": args.lr, "warmup_ratio": args.warmup_ratio,
            "threads": args.threads, "seed": args.seed, "precision": args.precision, "work": str(work),
            "dropout": args.dropout}
    label = Path(name).name if "/" in name else name
    rows = []

    def one(arm: str, batch_seconds: float, steps: int, part: str, nproc: int = 1) -> None:
        size, _ = hf_batch_size(durs, batch_seconds, args.seed)
        tag = f"{label}-{arm}-{batch_seconds:g}-{nproc}"
        spec = {**base, "arm": arm, "batch_seconds": batch_seconds, "steps": steps, "tag": tag,
                "hf_batch_size": size if arm != "speechtl" else None}
        print(f"{label}: {arm} at {batch_seconds:g} s, {steps} steps, {nproc} process(es)", file=sys.stderr)
        rows.append({"model": label, "part": part, **launch(spec, nproc)})

    for arm in args.arms:
        one(arm, args.batch_seconds, args.steps, "arms")
    for b in args.scaling:
        one("speechtl", b, epoch_steps(durs, b, args.scaling_epochs, 1, args.seed), "scaling")
    if args.nproc > 1:
        steps = epoch_steps(durs, args.batch_seconds, args.scaling_epochs, args.nproc, args.seed)
        one("speechtl", args.batch_seconds, steps, "scaling", args.nproc)
    return rows


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        from train_vs_hf_worker import work

        work(json.loads(args.worker))
        return {}
    from train_infer_speed import emit
    from train_vs_hf_table import format_table

    return emit(run(args, argv), args.output_format, format_table)


if __name__ == "__main__":
    main()
