"""The ``speechtl`` command: each subcommand parses its flags and calls one library function."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from dataclasses import asdict

# the parser is built from torch-free modules only (speechtl --help starts fast); each verb's handler imports
# the library it runs
from speechtl.adapt.config import AdaptConfig, SelfTrainingConfig
from speechtl.combine import add_combine_parser, member_shares
from speechtl.compare.config import CompareConfig
from speechtl.config import ConfigError, add_dataclass_arguments, add_debug_flag, dataclass_from_args
from speechtl.demo_config import AccentDemoConfig
from speechtl.errors import exit_status
from speechtl.lm import add_lm_parser
from speechtl.pretrain import add_pretrain_parser
from speechtl.settings import PRECISIONS, LmSettings

DESCRIPTION = """\
speechtl adapts a pretrained wav2vec2-family CTC model (a Hugging Face hub id, a local folder,
or the shipped offline model speechtl/en-us-synth) to a new accent or language with a little
labelled audio, and reports WER/CER before and after, on the target and on the source."""

EXAMPLES = """\
examples:
  speechtl demo                      # offline: adapt to synthetic Scottish English, WER before/after
  speechtl adapt --model speechtl/en-us-synth --train train.jsonl --dev dev.jsonl \\
                 --test test.jsonl --source-test source.jsonl --out runs/scottish
  speechtl evaluate runs/scottish test.jsonl --output-format json
  speechtl transcribe runs/scottish recordings/ --output-format json
  speechtl check --train train.jsonl --dev dev.jsonl --test test.jsonl --model speechtl/en-us-synth
  speechtl compare --models speechtl/en-us-synth runs/scottish --test us.jsonl scot.jsonl --out runs/cmp
  speechtl transcribe speechtl/en-us-synth --adapter runs/scottish/adapter recordings/
  speechtl combine runs/scottish runs/irish --out runs/accents && speechtl evaluate runs/accents test.jsonl
  speechtl adapt --language es --vocab copy --train es_train.jsonl --dev es_dev.jsonl --out runs/spanish
  speechtl adapt --unlabelled untranscribed/ --dev dev.jsonl --test test.jsonl --out runs/self_training
  speechtl pretrain speechtl/en-us-synth untranscribed/ --steps 2000 --out runs/pretrained  # then adapt --model
  speechtl lm build corpus.txt --order 3 --out lm.arpa && speechtl transcribe MODEL talk.flac --lm lm.arpa --output-format srt
Manifests are JSONL lines {"id", "audio_path", "text", "speaker", "accent", "language", "duration_s"}
(or CSV with that header); relative audio paths resolve against the manifest's folder."""


def _adapt(args) -> int:
    from speechtl.adapt.report import render_report
    from speechtl.adapt.run import run_adaptation
    from speechtl.adapt.self_training import render_rounds, run_self_training

    cfg = dataclass_from_args(AdaptConfig, args)
    if args.unlabelled:  # self-training on untranscribed audio (--train optional: the labelled minutes)
        results = run_self_training(cfg, dataclass_from_args(SelfTrainingConfig, args), progress=not args.quiet)
        print(json.dumps(results, indent=2) if args.output_format == "json" else render_rounds(results))
        return 0
    result = run_adaptation(cfg, progress=not args.quiet)
    print(json.dumps(result.to_json(), indent=2) if args.output_format == "json" else render_report(result))
    return 0


def _evaluate(args) -> int:
    from speechtl.eval import evaluate_manifests
    from speechtl.runtime import set_threads

    set_threads(args.threads)
    results = evaluate_manifests(args.model, args.manifests, args.out, args.on_error, args.batch_seconds,
                                 args.precision, args.device, progress=not args.quiet, language=args.language,
                                 adapter=args.adapter, route=args.route, int8=args.int8,
                                 **({"lm": args.lm, "lm_settings": _lm_settings(args)} if args.lm else {}))
    if args.output_format == "json":
        print(json.dumps(results, indent=2))
        return 0
    routed = any("routed_share" in r for r in results["sets"].values())  # a routed run folder
    # after the old columns: what a WER near 100 % hides (words right, words written per reference word, empty outputs)
    print(f"{'set':24} {'utts':>6} {'words':>7} {'WER %':>7} {'CER %':>7} {'RTF':>7}" + ("  routed %" if routed else "")
          + f" {'correct %':>9} {'hyp/ref':>7} {'empty %':>7}")
    for name, r in results["sets"].items():
        print(f"{name:24} {r['num_utts']:>6} {r['num_words']:>7} {100 * r['wer']:>7.2f} {100 * r['cer']:>7.2f} "
              f"{r['rtf']:>7.4f}" + (f"  {100 * r['routed_share']:>8.0f}" if routed else "")
              + f" {100 * r['hits'] / max(r['num_words'], 1):>9.1f} {r['hyp_ratio']:>7.2f} {100 * r['empty_share']:>7.1f}")
    for line in member_shares(results):  # a combined folder: who served what
        print(line)
    for s in results["skipped"]:
        print(f"skipped {s['set']}/{s['id']}: {s['reason']}", file=sys.stderr)
    return 0


def _transcribe(args) -> int:
    from speechtl.runtime import set_threads
    from speechtl.transcribe import TranscribeOptions, transcribe_files
    from speechtl.writers import format_transcript

    set_threads(args.threads)
    options = TranscribeOptions(args.chunk_s, args.stride_s, args.batch_seconds, args.lm, _lm_settings(args),
                                args.output_format, args.output_dir, args.adapter, args.route, args.compile, args.int8)
    transcripts, skipped = transcribe_files(args.model, args.paths, args.on_error, args.precision, args.device,
                                            progress=not args.quiet, options=options)
    if args.output_dir:
        print(f"wrote {len(transcripts)} {args.output_format} file(s) to {args.output_dir}", file=sys.stderr)
    elif args.output_format == "json":
        print(json.dumps({"transcripts": [asdict(t) for t in transcripts], "skipped": skipped}, indent=2,
                         ensure_ascii=False))
    elif args.output_format == "txt":
        for t in transcripts:
            print(f"{t.path}\t{t.text}")
    else:
        print(format_transcript(transcripts[0], args.output_format), end="")
    for s in skipped:
        print(f"skipped {s['path']}: {s['reason']}", file=sys.stderr)
    return 0


def _lm_settings(args) -> LmSettings:
    return LmSettings(args.beam_size, args.lm_weight, args.word_score)


def _add_lm_flags(p: argparse.ArgumentParser) -> None:
    d = LmSettings()
    p.add_argument("--lm", default=None, help="ARPA word n-gram LM (speechtl lm build): beam search instead of greedy")
    p.add_argument("--beam-size", type=int, default=d.beam_size, help=f"with --lm (default: {d.beam_size})")
    p.add_argument("--lm-weight", type=float, default=d.lm_weight, help=f"with --lm (default: {d.lm_weight})")
    p.add_argument("--word-score", type=float, default=d.word_score, help=f"with --lm (default: {d.word_score})")


def _demo(args) -> int:
    from speechtl.demo import format_table, run_accent_demo

    cfg = dataclass_from_args(AccentDemoConfig, args)
    result = run_accent_demo(cfg)
    if args.output_format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_table(result))
        print(f"results: {cfg.out}/results.json · report: {cfg.out}/report.md · adapted model: {cfg.out}/")
    return 0


def _compare(args) -> int:
    from speechtl.compare.run import run_compare

    cfg = dataclass_from_args(CompareConfig, args)
    results = run_compare(cfg)
    if args.output_format == "json":
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        from speechtl.compare.tables import delta_table, set_table

        print(set_table(results, results["matrix"], "set", "WER % per test set").markdown())
        if len(results["models"]) > 1:
            print("\n" + delta_table(results, results["matrix"], "set", "Δ WER against the baseline").markdown())
        print(f"report: {cfg.out}/report.html · {cfg.out}/report.md · every number: {cfg.out}/results.json, *.csv")
    return 0


def _check(args) -> int:
    from speechtl.check import check_manifests, format_report, role_clashes
    from speechtl.runtime import set_threads

    set_threads(args.threads)
    roles = {path: role for role in ("train", "dev", "test") for path in getattr(args, role)}
    paths = list(dict.fromkeys(args.manifests + list(roles)))
    if not paths:
        print("speechtl check: error: give at least one manifest", file=sys.stderr)
        return 2
    report = check_manifests(paths, args.model, roles, progress=not args.quiet)
    given = [(role, path) for role in ("train", "dev", "test") for path in getattr(args, role)]
    report.problems[:0] = role_clashes(given)  # one file in two roles: check_manifests sees it once
    if args.output_format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    return 1 if report.errors or (args.strict and report.warnings) else 0


def _add_prepare_parser(sub) -> None:
    from speechtl.prepare import add_prepare_parser  # the layouts and their flags live there

    for layout in add_prepare_parser(sub):
        add_runtime_arguments(layout, model=False)


def _device(value: str) -> str:
    if not re.fullmatch(r"(auto|cpu|cuda(:\d+)?)?", value):  # "": a config default meaning auto
        raise argparse.ArgumentTypeError(f"{value!r}: give auto, cpu, cuda or cuda:N")
    return value


def add_runtime_arguments(p, *, batch_seconds: float | None = None, on_error: str | None = None,
                          device: str | None = "", model: bool = True) -> None:
    """Where and how a command runs, spelled the same in every command: --threads always; --device and
    --precision where a model runs (``model``); --batch-seconds and --on-error where given a default.
    ``device`` is the default the command's library function expects for "auto" (None or "")."""
    g = p.add_argument_group("runtime")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default); bf16 results "
                                                          "differ slightly between thread counts")
    if model:
        g.add_argument("--device", type=_device, default=device, metavar="{auto,cpu,cuda,cuda:N}",
                       help="where the model runs (default: auto = cuda if present, else cpu)")
        g.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto = bf16 autocast where supported, else fp32 (default: auto)")
    if batch_seconds is not None:
        g.add_argument("--batch-seconds", type=float, default=batch_seconds,
                       help=f"padded audio seconds per batch (default: {batch_seconds:g})")
    if on_error is not None:
        g.add_argument("--on-error", choices=("fail", "skip"), default=on_error,
                       help=f"unreadable audio: fail naming the file, or skip it and list it (default: {on_error})")


def _add_int8_flag(p) -> None:
    p.add_argument("--int8", action="store_true",
                   help="linear layers as dynamic int8 (CPU only; the rest as --precision): faster for large models "
                        "on CPUs without bf16 matrix units, slower for small ones; WER cost: evaluate --int8 (README)")


def add_model_arguments(p, adapter: bool = True) -> None:
    """--adapter (a lora/adapter run's adapter on its base) and --route/--no-route (a routed run folder)."""
    if adapter:
        p.add_argument("--adapter", default=None, metavar="DIR",
                       help="adapter folder (<run>/adapter of a lora/adapter run) applied to the model, which must be "
                            "the base it was trained on")
    p.add_argument("--route", action=argparse.BooleanOptionalAction, default=True,
                   help="a routed run folder (adapt --route) runs as the routed system; --no-route: its adapted "
                        "model alone (default: route)")


def _add_scoring_parsers(sub) -> None:
    """evaluate and compare."""
    p = sub.add_parser("evaluate", help="WER/CER of a model on labelled manifests",
                       description="Greedy-decode every utterance of each manifest and report corpus WER/CER "
                                   "(normalised text) and the real-time factor.")
    p.add_argument("model", help="model folder, hub id, or shipped model (speechtl/en-us-synth)")
    p.add_argument("manifests", nargs="+", help="labelled manifests (.jsonl or .csv)")
    p.add_argument("--out", default=None, help="folder for results.json and per-utterance hypotheses")
    p.add_argument("--language", default=None,
                   help="text normaliser language (de, es, fr, sv, ...; default: the model's own, else en)")
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_runtime_arguments(p, batch_seconds=120.0, on_error="fail", device=None)
    _add_int8_flag(p)
    add_model_arguments(p)
    _add_lm_flags(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("compare", help="compare models on test sets: WER/CER with intervals, paired tests, report",
                       description="Score every model on every test set (hypotheses cached per model and set), with "
                                   "95 % bootstrap intervals (speakers resampled when known), a paired bootstrap test "
                                   "of each model against --baseline, breakdowns by manifest field and an error "
                                   "analysis; writes report.html, report.md, results.json and CSVs to --out. A model "
                                   "is [NAME=]MODEL[+ADAPTER_FOLDER], a test set [NAME=]MANIFEST.",
                       conflict_handler="resolve")  # the runtime flags below replace the config's own
    add_dataclass_arguments(p, CompareConfig)
    d = CompareConfig()
    add_runtime_arguments(p, batch_seconds=d.batch_seconds, on_error=d.on_error, device=d.device)
    add_model_arguments(p, adapter=False)  # adapters: MODEL+ADAPTER_FOLDER
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.set_defaults(func=_compare)


def _add_check_parser(sub) -> None:
    p = sub.add_parser("check", help="pre-flight check of manifests: audio, durations, text, vocabulary, overlaps",
                       description="Check labelled manifests before training or scoring: unreadable audio, sample "
                                   "rates and channels, durations (too short for the transcript at the model's frame "
                                   "rate, outliers), empty or odd text, characters outside the model's vocabulary, "
                                   "duplicate ids and audio, speakers/sentences/audio shared between train, dev and "
                                   "test (roles from --train/--dev/--test or the file names). Exit code 1 when an "
                                   "error is found (with --strict: also a warning), 0 otherwise.")
    p.add_argument("manifests", nargs="*", help="manifests (.jsonl/.csv); role from the name (train/dev/test)")
    for role in ("train", "dev", "test"):
        p.add_argument(f"--{role}", nargs="+", default=[], metavar="MANIFEST", help=f"manifests used as {role} data")
    p.add_argument("--model", default=None, help="model whose vocabulary and frame rate to check against")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_runtime_arguments(p, model=False)
    p.set_defaults(func=_check)


def _add_transcribe_parser(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files and folders (any length), with word times",
                       description="CTC transcripts of audio files (folders searched recursively): greedy or beam "
                                   "search with an n-gram LM; long files streamed in overlapping chunks; word times.")
    p.add_argument("model", help="model folder, hub id, or shipped model (speechtl/en-us-synth)")
    p.add_argument("paths", nargs="+", help="audio files or folders")
    p.add_argument("--output-format", choices=("txt", "json", "srt", "vtt", "tsv"), default="txt",
                   help="txt: text (without --output-dir one 'path<TAB>text' line per file); json: text, words with "
                        "start_s/end_s/confidence; srt/vtt: subtitles; tsv: one word a row (default: txt)")
    p.add_argument("--output-dir", default=None, help="write one file per input here (folder layout kept)")
    p.add_argument("--chunk-s", type=float, default=30.0, help="longer files are streamed in chunks this long (default: 30)")
    p.add_argument("--stride-s", type=float, default=3.0, help="overlap on each side of a chunk (default: 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--compile", action="store_true", help="long files' chunks through torch.compile (~1 min once): "
                   "pays on long --precision fp32 jobs; on CPU not in bf16 (README)")
    add_runtime_arguments(p, batch_seconds=60.0, on_error="skip", device=None)
    _add_int8_flag(p)
    add_model_arguments(p)
    _add_lm_flags(p)
    p.set_defaults(func=_transcribe)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechtl", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"speechtl {__import__('speechtl').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("adapt", help="fine-tune a model on labelled target audio; score before and after",
                       description="Evaluate the starting model, fine-tune it with CTC on --train, evaluate again; "
                                   "writes the adapted model, results.json and report.md to --out.")
    add_dataclass_arguments(p, AdaptConfig)
    add_dataclass_arguments(p.add_argument_group("self-training (with --unlabelled)"), SelfTrainingConfig)
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bars (one line per phase on stderr)")
    p.set_defaults(func=_adapt)

    p = sub.add_parser("demo", help="offline demo: adapt the shipped model to a synthetic accent, WER before/after",
                       description="Synthesise a few labelled minutes of a target accent (default en-gb-scotland) "
                                   "plus dev/test sets and an en-us test set, adapt the shipped source model, and "
                                   "print WER/CER before → after on the target and the source accent.")
    add_dataclass_arguments(p, AccentDemoConfig)
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.set_defaults(func=_demo)

    _add_scoring_parsers(sub)
    _add_check_parser(sub)
    _add_transcribe_parser(sub)
    add_combine_parser(sub)
    _add_prepare_parser(sub)
    add_lm_parser(sub)
    add_pretrain_parser(sub)
    add_debug_flag(parser)
    return parser


# what each verb writes, one writer at a time (its flag's dest, kind; speechtl.fileio.folder_lock / file_lock)
LOCKED = {**{verb: (("out", "folder"),) for verb in ("adapt", "demo", "pretrain", "compare", "evaluate", "combine")},
          "transcribe": (("output_dir", "folder"),), "lm": (("out", "file"),),
          "prepare": (("out", "file"), ("audio_out", "folder"))}
# every output a verb writes, (dest, kind): checked before any work (speechtl.fileio.preflight_output)
OUTPUTS = {**LOCKED, "demo": (("out", "folder"), ("data", "folder")),
           "compare": (("out", "folder"), ("cache", "folder"))}


def _output_lock(args) -> contextlib.ExitStack:
    """Check the verb's outputs, then hold the ones it writes; under torchrun / accelerate launch only the main
    process (RANK 0) does either."""
    from speechtl.fileio import file_lock, folder_lock, preflight_output

    held = contextlib.ExitStack()
    if os.environ.get("RANK", "0") != "0":
        return held
    given = [(dest, kind, "--" + dest.replace("_", "-")) for dest, kind in OUTPUTS.get(args.command, ())
             if getattr(args, dest, None)]
    for dest, kind, flag in given:
        preflight_output(getattr(args, dest), kind=kind, flag=flag)
    with held:  # a lock taken before a refused one is released
        for dest, kind, flag in given:
            if (dest, kind) in LOCKED.get(args.command, ()):
                lock = folder_lock if kind == "folder" else file_lock
                held.enter_context(lock(getattr(args, dest), args.command, flag))
        return held.pop_all()


def _run(args: argparse.Namespace) -> int:
    with _output_lock(args):
        return args.func(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_status(f"speechtl {args.command}", lambda: _run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
