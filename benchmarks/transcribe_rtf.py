"""Long-file transcription speed: speechtl vs transformers' ASR pipeline, and how speechtl scales with length.

Run (from the repository root):

    .venv/bin/python benchmarks/transcribe_rtf.py --threads 1           # ~10 min on one core
    .venv/bin/python benchmarks/transcribe_rtf.py --threads 1 --quick   # ~1 min: 2-min file, scaling 0.5/2/6 min

Audio: synthetic en-us speech (``speechtl.synth``) joined into one 16 kHz WAV of ``--minutes``, and
files of ``--scaling-minutes`` (the same speech repeated). Models: a wav2vec2-base-sized random model
(``random_model(size="base")``, saved once so both sides load the same weights) and the shipped
``speechtl/en-us-synth``. Each measurement runs in a fresh subprocess (clean peak RSS):

- ``speechtl``: ``transcribe_files`` (streamed chunks, batched, fp32 and bf16 autocast; in bf16 the feature encoder
  runs through ``speechtl.models.fast_encoder``), and both again with ``TranscribeOptions(compile=True)``
  (``--compile``) in a process with an empty inductor cache: its first call's seconds (compiling, from the library's log line) are
  printed apart, with the audio length at which compiling pays; and both again with ``TranscribeOptions(int8=True)``
  (``--int8``: linear layers as dynamic int8, ``speechtl.models.quantize``), whose WER beside the bf16 row's is
  what int8 costs;
- ``pipeline``: ``transformers.pipeline("automatic-speech-recognition", model=folder)`` called with
  ``chunk_length_s``/``stride_length_s`` equal to speechtl's chunk and stride, on the whole array
  (the pipeline needs the file in memory; reading it is timed too).

Printed per row: wall seconds (model loading, reading and transcribing), RTFx = audio seconds / wall seconds,
throughput relative to the pipeline row of the same model, peak RSS of the process, achieved GFLOP/s
(the model's FLOPs per chunk, counted by ``torch.utils.flop_counter``, times the chunks, over wall time)
and that as a share of this machine's matmul peak measured at the start of the same run, the word
agreement of the transcript with the pipeline's, and its WER against the sentences the audio was made of
(``--minutes`` up to 10; longer files repeat the speech and get no WER). Nothing is compared with stored numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_infer_speed import command_line, emit, machine_facts  # noqa: E402  (the house's machine facts)

SAMPLE_RATE = 16_000
GAP_S = 0.3  # silence between joined sentences


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op CPU threads in every process (default: 1)")
    p.add_argument("--minutes", type=float, default=10.0, help="audio minutes for speechtl vs pipeline (default: 10)")
    p.add_argument("--scaling-minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0],
                   help="file lengths for the scaling rows (default: 1 10 60)")
    p.add_argument("--scaling-model", choices=("shipped", "base"), default="shipped",
                   help="model for the scaling rows (default: shipped; base takes ~6 min per audio hour)")
    p.add_argument("--chunk-s", type=float, default=30.0, help="chunk length, both systems (default: 30)")
    p.add_argument("--stride-s", type=float, default=3.0, help="speechtl's stride on each side (default: 3, its own)")
    p.add_argument("--pipeline-stride-s", type=float, default=5.0,
                   help="the pipeline's stride on each side (default: 5 = chunk/6, its own default)")
    p.add_argument("--boundary-s", type=float, default=2.0,
                   help="a difference this close to a chunk seam of either system counts as at a boundary")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="speechtl's padded seconds per batch (default: 60)")
    p.add_argument("--quick", action="store_true", help="2-min comparison, scaling 0.5 2 6 min")
    p.add_argument("--work", default="runs/bench_transcribe", help="audio and the saved random model go here")
    p.add_argument("--output-format", default="table", choices=("table", "json"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one measurement, JSON spec
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.scaling_minutes = 2.0, [0.5, 2.0, 6.0]
    return args


# --- audio and models (parent) ------------------------------------------------------------------

def make_speech(work: Path, minutes: float) -> tuple[np.ndarray, str]:
    """``minutes`` of synthetic en-us sentences joined with short pauses (16 kHz float32): the whole sentences that
    fit, then silence; and their text (normalised), the reference of the WER column."""
    from speechtl.audio import load_audio
    from speechtl.data.manifest import read_manifest
    from speechtl.synth import prepare_synthetic
    from speechtl.text import normalize

    manifest = prepare_synthetic(work, "en-us", "train", minutes * 1.02, seed=11, progress=False)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    total = int(minutes * 60 * SAMPLE_RATE)
    pieces, texts, length = [], [], 0
    for u in read_manifest(manifest):
        piece = np.concatenate([load_audio(u.audio_path), gap])
        if length + len(piece) > total:
            break
        pieces.append(piece)
        texts.append(normalize(u.text))
        length += len(piece)
    return np.concatenate(pieces + [np.zeros(total - length, np.float32)]), " ".join(texts)


def write_repeated(path: Path, speech: np.ndarray, minutes: float) -> Path:
    """A WAV of ``minutes`` made of ``speech`` repeated, written block by block."""
    total = int(minutes * 60 * SAMPLE_RATE)
    with sf.SoundFile(path.with_suffix(".tmp.wav"), "w", SAMPLE_RATE, 1, "PCM_16") as f:
        done = 0
        while done < total:
            block = speech[: total - done]
            f.write(block)
            done += len(block)
    path.with_suffix(".tmp.wav").rename(path)
    return path


def base_model_dir(work: Path) -> Path:
    from speechtl.models import random_model
    from speechtl.text import ENGLISH_CHARS, build_vocab

    folder = work / "base-random"
    if not (folder / "model.safetensors").is_file():
        model, processor = random_model(build_vocab([], ENGLISH_CHARS), size="base", seed=0)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return folder


def matmul_peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n matmul on this machine with the current threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def attention_gflops(dtype: torch.dtype, heads: int, frames: int, head_dim: int = 64, repeats: int = 3) -> float:
    """Best GFLOP/s of torch's fused attention (``scaled_dot_product_attention``) on two chunks' worth of
    (heads, frames, head_dim) queries, keys and values: what attention gets from ``dtype`` on this machine."""
    q, k, v = (torch.randn(2, heads, frames, head_dim, dtype=dtype) for _ in range(3))
    torch.nn.functional.scaled_dot_product_attention(q, k, v)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
        best = min(best, time.perf_counter() - start)
    return 4 * 2 * heads * frames**2 * head_dim / best / 1e9


def flops_per_chunk(model_dir: Path, chunk_s: float) -> float:
    """Forward-pass FLOPs of the model on one chunk (batch of one), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from speechtl.models import load_model

    model, _ = load_model(str(model_dir))
    model.eval()
    x = torch.randn(1, int(chunk_s * SAMPLE_RATE))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:  # (inference_mode trips weight norm)
        model(x)
    return float(counter.get_total_flops())


def num_chunks(seconds: float, chunk_s: float, stride_s: float) -> int:
    step = chunk_s - 2 * stride_s
    return 1 if seconds <= chunk_s else 1 + int(np.ceil((seconds - chunk_s) / step))


# --- one measurement (worker subprocess) --------------------------------------------------------

def worker(spec: dict) -> dict:
    torch.set_num_threads(spec["threads"])
    if spec["system"] == "pipeline":
        from transformers import pipeline

        start = time.perf_counter()
        asr = pipeline("automatic-speech-recognition", model=spec["model"], device="cpu")
        audio, rate = sf.read(spec["audio"], dtype="float32")
        text = asr({"raw": audio, "sampling_rate": rate}, chunk_length_s=spec["chunk_s"],
                   stride_length_s=spec["stride_s"])["text"]
        starts = []
        for special in asr.tokenizer.all_special_tokens:  # the pipeline writes <s>, <unk>... as text; speechtl drops them
            text = text.replace(special, "")
    else:
        from speechtl.transcribe import TranscribeOptions, transcribe_files

        compiled = CompileTime()
        start = time.perf_counter()
        options = TranscribeOptions(spec["chunk_s"], spec["stride_s"], spec["batch_seconds"],
                                    compile=spec.get("compile", False), int8=spec.get("int8", False))
        t = transcribe_files(spec["model"], [spec["audio"]], precision=spec["precision"], progress=False,
                             options=options)[0][0]
        text, starts = t.text, [w.start_s for w in t.words]
    wall = time.perf_counter() - start
    from speechtl.text import normalize

    return {"wall_s": wall, "text": normalize(text), "peak_rss_mb": peak_rss_mb(), "word_starts": starts,
            "compile_s": compiled.seconds if spec["system"] == "speechtl" else None}


class CompileTime(logging.Handler):
    """The seconds of the call that compiled, from the library's log line (``speechtl.decode.compiled``)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds: float | None = None
        logger = logging.getLogger("speechtl.decode.compiled")
        logger.setLevel(logging.INFO)
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.seconds = float(record.args[0])


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would include the parent's, inherited through exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def measure(spec: dict) -> dict:
    """One row in a fresh process; a compiling one with an empty inductor cache (its first call compiles cold)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec['system']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the run (parent) ---------------------------------------------------------------------------

def seams(seconds: float, chunk_s: float, stride_s: float) -> list[float]:
    """Times where the kept frames switch from one chunk to the next."""
    step = chunk_s - 2 * stride_s
    return list(np.arange(chunk_s - stride_s, seconds, step))


def differing_times(ref: str, hyp: str, hyp_starts: list[float]) -> list[float]:
    """Start time (in ``hyp``'s words) of each place where the two transcripts differ."""
    import jiwer

    if not ref or not hyp or not hyp_starts:
        return [] if ref == hyp else [0.0]
    out = jiwer.process_words(ref, hyp)
    return [hyp_starts[min(c.hyp_start_idx, len(hyp_starts) - 1)] for c in out.alignments[0] if c.type != "equal"]


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    import jiwer

    from speechtl.models import SHIPPED_DIR

    torch.set_num_threads(args.threads)
    machine = machine_facts(torch.device("cpu"))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    peaks = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    frames = int(args.chunk_s * 50) - 1  # wav2vec2's 20-ms frames in a chunk
    attention = {p: attention_gflops(dtype, 12, frames) for p, dtype in (("fp32", torch.float32),
                                                                          ("bf16", torch.bfloat16))}
    speech, reference = make_speech(work, min(args.minutes, 10.0))
    wer = (lambda text: jiwer.wer(reference, text)) if args.minutes <= 10 else (lambda text: None)  # else repeated
    models = {"base": base_model_dir(work), "shipped": SHIPPED_DIR / "en-us-synth"}
    flops = {name: flops_per_chunk(folder, args.chunk_s) for name, folder in models.items()}

    files: dict[float, Path] = {}

    def row(kind: str, name: str, system: str, precision: str, minutes: float, stride_s: float,
            compile: bool = False, int8: bool = False) -> dict:
        if minutes not in files:  # written once per run (every run: an older file may hold other speech)
            files[minutes] = write_repeated(work / f"audio-{minutes:g}min.wav", speech, minutes)
        audio = files[minutes]
        r = measure({"threads": args.threads, "chunk_s": args.chunk_s, "stride_s": stride_s,
                     "batch_seconds": args.batch_seconds, "system": system, "model": str(models[name]),
                     "audio": str(audio), "precision": precision, "compile": compile, "int8": int8})
        seconds = minutes * 60
        gflops = flops[name] * num_chunks(seconds, args.chunk_s, stride_s) / r["wall_s"] / 1e9
        return {"kind": kind, "model": name, "system": system, "precision": precision, "compile": compile,
                "int8": int8, "compile_s": r["compile_s"],
                "label": precision + ("+compile" if compile else "") + ("+int8" if int8 else ""), "minutes": minutes,
                "stride_s": stride_s, "wall_s": r["wall_s"], "rtfx": seconds / r["wall_s"],
                "peak_rss_mb": r["peak_rss_mb"], "gflops": gflops, "peak_share": gflops / peaks[precision],
                "text": r["text"], "word_starts": r["word_starts"]}

    rows = []
    for name in ("base", "shipped"):
        ref = row("compare", name, "pipeline", "fp32", args.minutes, args.pipeline_stride_s)
        ref["wer"] = wer(ref["text"])
        rows.append(ref)
        near = seams(args.minutes * 60, args.chunk_s, args.pipeline_stride_s)
        for precision, stride, compile, int8 in (
                ("fp32", args.pipeline_stride_s, False, False), ("fp32", args.pipeline_stride_s, True, False),
                ("fp32", args.pipeline_stride_s, False, True), ("bf16", args.stride_s, False, False),
                ("bf16", args.stride_s, True, False), ("bf16", args.stride_s, False, True)):
            r = row("compare", name, "speechtl", precision, args.minutes, stride, compile, int8)
            r["wer"] = wer(r["text"])
            r["x_pipeline"] = r["rtfx"] / ref["rtfx"]
            r["char_agreement"] = 1 - jiwer.cer(ref["text"], r["text"]) if ref["text"] else float(not r["text"])
            r["identical"] = r["text"] == ref["text"]
            both = near + seams(args.minutes * 60, args.chunk_s, stride)
            diffs = differing_times(ref["text"], r["text"], r["word_starts"])
            r["differences"] = len(diffs)
            r["differences_away"] = sum(min(abs(t - b) for b in both) > args.boundary_s for t in diffs) if both \
                else len(diffs)
            rows.append(r)
    for minutes in args.scaling_minutes:
        rows.append(row("scaling", args.scaling_model, "speechtl", "bf16", minutes, args.stride_s))
    for r in rows:
        r["text_words"] = len(r.pop("text").split())
        r.pop("word_starts")
    return {"command": command_line(argv, __file__), "machine": machine, "matmul_peak_gflops": peaks,
            "attention_gflops": attention,
            "flops_per_chunk": flops, "settings": {k: getattr(args, k) for k in
                                                   ("minutes", "scaling_minutes", "chunk_s", "stride_s",
                                                    "pipeline_stride_s", "boundary_s", "batch_seconds",
                                                    "threads")},
            "rows": rows}


def format_table(result: dict) -> str:
    m, s, pk = result["machine"], result["settings"], result["matmul_peak_gflops"]
    at = result.get("attention_gflops")  # absent in results from before it was measured
    lines = [
        f"$ {result['command']}",
        f"cpu={m['cpu']} cores={m['cores']} threads={m['threads']} cpu_bf16={m['cpu_bf16']} torch={m['torch']} "
        f"load_avg_1min={m['load_avg_1min']}",
        f"matmul peak (2048^2, this run): fp32 {pk['fp32']:.1f} GFLOP/s, bf16 {pk['bf16']:.1f} GFLOP/s; "
        f"chunks {s['chunk_s']:g} s; strides: pipeline {s['pipeline_stride_s']:g} s, speechtl fp32 the same, "
        f"speechtl bf16 {s['stride_s']:g} s (its default)",
        *([f"attention (torch's fused SDPA, 2 chunks x 12 heads x 64, this run): fp32 {at['fp32']:.1f} GFLOP/s, "
           f"bf16 {at['bf16']:.1f} GFLOP/s (bf16/fp32 {at['bf16'] / at['fp32']:.2f}; matmuls: "
           f"{pk['bf16'] / pk['fp32']:.2f})"] if at else []),
        "",
        f"{'model':8} {'system':9} {'prec':12} {'min':>4} {'wall s':>7} {'RTFx':>6} {'x pipe':>6} {'RSS MB':>7} "
        f"{'GFLOP/s':>7} {'% peak':>6} {'char agree %':>12} {'same text':>9} {'diffs (away)':>12} {'WER %':>6}",
    ]
    for r in result["rows"]:
        if r["kind"] != "compare":
            continue
        diffs = f"{r['differences']} ({r['differences_away']})" if "differences" in r else "-"
        wer = "-" if r.get("wer") is None else f"{100 * r['wer']:.1f}"
        lines.append(
            f"{r['model']:8} {r['system']:9} {r.get('label', r['precision']):12} {r['minutes']:>4g} {r['wall_s']:>7.1f} "
            f"{r['rtfx']:>6.1f} {r.get('x_pipeline', 1.0):>6.2f} {r['peak_rss_mb']:>7.0f} {r['gflops']:>7.1f} "
            f"{100 * r['peak_share']:>6.1f} {100 * r.get('char_agreement', 1.0):>12.2f} "
            f"{str(r.get('identical', '-')):>9} {diffs:>12} {wer:>6}")
    scaling = [r for r in result["rows"] if r["kind"] == "scaling"]
    if scaling:
        first = scaling[0]
        lines += ["", f"scaling ({first['model']} model, speechtl bf16): one file each",
                  f"{'minutes':>7} {'wall s':>8} {'s per audio-min':>15} {'RTFx':>7} {'peak RSS MB':>11} "
                  f"{'RSS / first':>11} {'GFLOP/s':>8}"]
        for r in scaling:
            lines.append(f"{r['minutes']:>7g} {r['wall_s']:>8.1f} {r['wall_s'] / r['minutes']:>15.2f} "
                         f"{r['rtfx']:>7.1f} {r['peak_rss_mb']:>11.0f} {r['peak_rss_mb'] / first['peak_rss_mb']:>11.2f} "
                         f"{r['gflops']:>8.1f}")
        last = scaling[-1]
        growth = last["peak_rss_mb"] / first["peak_rss_mb"] - 1
        lines.append(f"peak RSS {last['minutes']:g} min vs {first['minutes']:g} min: {100 * growth:+.1f} % "
                     f"(acceptance: within 20 %: {'yes' if abs(growth) <= 0.2 else 'NO'}); time per audio minute "
                     f"{last['wall_s'] / last['minutes']:.2f} s vs {first['wall_s'] / first['minutes']:.2f} s")
    lines += compile_lines(result["rows"]) + goal_lines(result["rows"])
    lines.append(f"x pipe: throughput relative to the pipeline row of the same model (higher is faster); char "
                 f"agree %: 1 - CER against the pipeline's transcript; diffs (away): places where the words differ "
                 f"(of them, more than {s['boundary_s']:g} s from every chunk seam); % peak: achieved GFLOP/s over the "
                 f"matmul peak of the row's precision (+int8 rows too: no int8 peak is measured); +int8: transcribe --int8 (linear layers "
                 f"int8, the rest in the row's precision); WER %: against the sentences the audio was made of (the base-sized model is "
                 f"random: ~100 % on every path)")
    return "\n".join(lines)


def compile_lines(rows: list[dict]) -> list[str]:
    """Per model and precision, what --compile costs once (its first call, compiling with an empty inductor cache)
    and buys per audio minute after it (the +compile row's wall time less that call, against the eager row's of
    that precision), and so the audio length at which it pays: compile s / (eager - compiled s per audio-min)."""
    lines = []
    for c in rows:
        eager = next((r for r in rows if r["kind"] == c["kind"] == "compare" and r["model"] == c["model"]
                      and r["system"] == "speechtl" and r["precision"] == c["precision"] and not r.get("compile")), None)
        if not c.get("compile") or eager is None or c["compile_s"] is None:
            continue
        per_min = (eager["wall_s"] / eager["minutes"], (c["wall_s"] - c["compile_s"]) / c["minutes"])
        gain = per_min[0] - per_min[1]
        pays = f"after {c['compile_s'] / gain:.0f} audio-min" if gain > 0 else "never (no faster after compiling)"
        lines.append(f"compile: {c['model']} {c['precision']} first call {c['compile_s']:.1f} s (cold inductor cache); s "
                     f"per audio-min eager {per_min[0]:.2f}, compiled after its first call {per_min[1]:.2f}; pays {pays}")
    return lines


GOALS = {"base": 3.0, "shipped": 2.5}  # issue 20: speechtl bf16 over the pipeline's throughput
PEAK_GOAL = 0.5  # and the base-sized model's achieved GFLOP/s over the bf16 matmul peak


def goal_lines(rows: list[dict]) -> list[str]:
    """One line per goal of issue 20 that this run measured: the figure, the goal and whether it is met; for the
    int8 rows also their WER against the bf16 row's (what int8 costs)."""
    lines = []
    for r in rows:
        if r["kind"] == "compare" and r["system"] == "speechtl" and r["precision"] == "bf16" and not r.get("compile"):
            goal = GOALS[r["model"]]
            cost = ""
            if r.get("int8"):
                bf16 = next((b for b in rows if b["kind"] == "compare" and b["system"] == "speechtl"
                             and b["model"] == r["model"] and b["precision"] == "bf16" and not b.get("compile")
                             and not b.get("int8")), None)
                if bf16 is not None and r.get("wer") is not None and bf16.get("wer") is not None:
                    cost = f" (WER {100 * r['wer']:.1f} % vs bf16's {100 * bf16['wer']:.1f} %)"
            lines.append(f"goal: {r['model']} speechtl {r['label']} {r['x_pipeline']:.2f}x the pipeline "
                         f"(goal >= {goal:g}x): {'met' if r['x_pipeline'] >= goal else 'NOT met'}{cost}")
            if r["model"] == "base" and not r.get("int8"):
                lines.append(f"goal: base encoder at {100 * r['peak_share']:.1f} % of the bf16 matmul peak "
                             f"(goal >= {100 * PEAK_GOAL:g} %): {'met' if r['peak_share'] >= PEAK_GOAL else 'NOT met'}")
    return lines


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return {}
    return emit(run(args, argv), args.output_format, format_table)


if __name__ == "__main__":
    main()
