"""The ``speechtl`` command: each subcommand parses its flags and calls one library function."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from speechtl.config import add_dataclass_arguments, dataclass_from_args

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
  speechtl transcribe speechtl/en-us-synth --adapter runs/scottish/adapter recordings/
Manifests are JSONL lines {"id", "audio_path", "text", "speaker", "accent", "language", "duration_s"}
(or CSV with that header); relative audio paths resolve against the manifest's folder."""


def _adapt(args) -> int:
    from speechtl.adapt.run import AdaptConfig, run_adaptation

    results = run_adaptation(dataclass_from_args(AdaptConfig, args), progress=not args.quiet)
    if args.output_format == "json":
        print(json.dumps(results, indent=2))
    else:
        from speechtl.adapt.run import render_report

        print(render_report(results))
    return 0


def _evaluate(args) -> int:
    from speechtl.eval import evaluate_manifests

    results = evaluate_manifests(args.model, args.manifests, args.out, args.on_error, args.batch_seconds,
                                 args.precision, args.device, progress=not args.quiet, adapter=args.adapter)
    if args.output_format == "json":
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'set':24} {'utts':>6} {'words':>7} {'WER %':>7} {'CER %':>7} {'RTF':>7}")
    for name, r in results["sets"].items():
        print(f"{name:24} {r['num_utts']:>6} {r['num_words']:>7} {100 * r['wer']:>7.2f} {100 * r['cer']:>7.2f} "
              f"{r['rtf']:>7.4f}")
    for s in results["skipped"]:
        print(f"skipped {s['set']}/{s['id']}: {s['reason']}", file=sys.stderr)
    return 0


def _transcribe(args) -> int:
    from speechtl.transcribe import transcribe_files

    transcripts, skipped = transcribe_files(args.model, args.paths, args.on_error, args.batch_seconds,
                                            args.precision, args.device, progress=not args.quiet,
                                            adapter=args.adapter)
    if args.output_format == "json":
        print(json.dumps({"transcripts": [asdict(t) for t in transcripts], "skipped": skipped}, indent=2,
                         ensure_ascii=False))
    else:
        for t in transcripts:
            print(f"{t.path}\t{t.text}")
    for s in skipped:
        print(f"skipped {s['path']}: {s['reason']}", file=sys.stderr)
    return 0


def _demo(args) -> int:
    from speechtl.demo import AccentDemoConfig, format_table, run_accent_demo

    cfg = dataclass_from_args(AccentDemoConfig, args)
    results = run_accent_demo(cfg)
    if args.output_format == "json":
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
        print(f"results: {cfg.out}/results.json · report: {cfg.out}/report.md · adapted model: {cfg.out}/")
    return 0


def _add_runtime_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="unreadable audio: fail naming the file, or skip it and list it (default: fail)")
    p.add_argument("--batch-seconds", type=float, default=120.0, help="padded audio seconds per batch (default: 120)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto = bf16 autocast where supported (default: auto)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present, else cpu)")
    p.add_argument("--adapter", default=None, metavar="DIR",
                   help="adapter folder (<run>/adapter of a lora/adapter run) applied to the model, which must be "
                        "the base it was trained on")


def build_parser() -> argparse.ArgumentParser:
    from speechtl.adapt.run import AdaptConfig

    parser = argparse.ArgumentParser(prog="speechtl", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"speechtl {__import__('speechtl').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("adapt", help="fine-tune a model on labelled target audio; score before and after",
                       description="Evaluate the starting model, fine-tune it with CTC on --train, evaluate again; "
                                   "writes the adapted model, results.json and report.md to --out.")
    add_dataclass_arguments(p, AdaptConfig)
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_adapt)

    from speechtl.demo import AccentDemoConfig

    p = sub.add_parser("demo", help="offline demo: adapt the shipped model to a synthetic accent, WER before/after",
                       description="Synthesise a few labelled minutes of a target accent (default en-gb-scotland) "
                                   "plus dev/test sets and an en-us test set, adapt the shipped source model, and "
                                   "print WER/CER before → after on the target and the source accent.")
    add_dataclass_arguments(p, AccentDemoConfig)
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.set_defaults(func=_demo)

    p = sub.add_parser("evaluate", help="WER/CER of a model on labelled manifests",
                       description="Greedy-decode every utterance of each manifest and report corpus WER/CER "
                                   "(normalised text) and the real-time factor.")
    p.add_argument("model", help="model folder, hub id, or shipped model (speechtl/en-us-synth)")
    p.add_argument("manifests", nargs="+", help="labelled manifests (.jsonl or .csv)")
    p.add_argument("--out", default=None, help="folder for results.json and per-utterance hypotheses")
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_runtime_flags(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("transcribe", help="transcribe audio files and folders",
                       description="Greedy CTC transcripts of audio files (folders are searched recursively).")
    p.add_argument("model", help="model folder, hub id, or shipped model (speechtl/en-us-synth)")
    p.add_argument("paths", nargs="+", help="audio files or folders")
    p.add_argument("--output-format", choices=("txt", "json"), default="txt",
                   help="txt: one 'path<TAB>text' line per file; json: transcripts and skipped files")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_runtime_flags(p)
    p.set_defaults(func=_transcribe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from speechtl.adapt.run import VocabularyError
    from speechtl.adapt.train import BlankCollapseError
    from speechtl.audio import AudioError
    from speechtl.config import ConfigError
    from speechtl.data.manifest import ManifestError
    from speechtl.models import ModelLoadError

    try:
        return args.func(args)
    except (AudioError, ManifestError, ModelLoadError, VocabularyError, ConfigError, BlankCollapseError) as e:
        print(f"speechtl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
