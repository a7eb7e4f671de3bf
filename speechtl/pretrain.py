"""``speechtl pretrain``: the verb's parser and its run (the library: :mod:`speechtl.adapt.pretrain`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from speechtl.adapt.config import PretrainConfig
from speechtl.config import add_dataclass_arguments, dataclass_from_args

__all__ = ["add_pretrain_parser", "run_pretrain", "source_warning", "SOURCE_FILE"]

SOURCE_FILE = "source_test.json"  # --source-test's WER/CER before and after, in --out
FORGETTING = 0.05  # a relative rise of the source test's WER beyond this draws a warning (adapt's --max-forgetting)


def source_warning(before: float, after: float, limit: float = FORGETTING) -> str | None:
    """The warning for a source test whose WER rose by more than ``limit`` (relative), else None."""
    if after <= before * (1 + limit) + 1e-9:
        return None
    return (f"--source-test WER {100 * before:.1f} % -> {100 * after:.1f} %: pretraining moved the encoder under a "
            f"CTC head it does not train; adapt with source speech too (speechtl adapt --replay SOURCE) or keep the "
            f"start model for source speech")


def _score(model: str, manifest: str, cfg: PretrainConfig) -> dict:
    from speechtl.eval import evaluate_manifests

    (r,) = evaluate_manifests(model, [manifest], precision=cfg.precision, device=cfg.device, progress=False)[
        "sets"].values()
    return {"wer": r["wer"], "cer": r["cer"], "num_utts": r["num_utts"]}


def run_pretrain(args) -> int:
    """Pretrain with the parsed flags (scoring --source-test before and after); print what was written (or the
    result as JSON)."""
    from speechtl.adapt.pretrain import run_pretraining
    from speechtl.fileio import atomic_write_json

    cfg = dataclass_from_args(PretrainConfig, args)
    before = _score(args.model, args.source_test, cfg) if args.source_test else None  # bad input fails here, early
    r = run_pretraining(args.model, args.audio, args.out, cfg, not args.quiet)
    if before is not None:
        after = _score(r.out, args.source_test, cfg)
        atomic_write_json(Path(r.out) / SOURCE_FILE, {"manifest": args.source_test, "before": before, "after": after})
        r.source_test = {"before": before, "after": after}
        r.warnings += [w for w in [source_warning(before["wer"], after["wer"])] if w]
    print("".join(f"skipped {s['id']}: {s['reason']}\n" for s in r.skipped), end="", file=sys.stderr)
    print("".join(f"warning: {w}\n" for w in r.warnings), end="", file=sys.stderr)
    source = "" if before is None else \
        f"; source test WER {100 * before['wer']:.1f} % -> {100 * r.source_test['after']['wer']:.1f} %"
    print(json.dumps(asdict(r), indent=2) if args.output_format == "json" else
          f"pretrained {r.steps} steps on {r.train_files} files ({r.audio_s:.0f} s): loss {r.final_loss}, validation "
          f"loss {r.final_val_loss}{source} (log: {r.out}/pretrain_log.jsonl); fine-tune with speechtl adapt --model "
          f"{r.out}")
    return 0


def add_pretrain_parser(sub) -> None:
    """The ``pretrain`` subcommand: model, audio, --out and every :class:`PretrainConfig` field as a flag."""
    p = sub.add_parser("pretrain", help="wav2vec 2.0 self-supervised (continued) pretraining on untranscribed audio",
                       description="wav2vec 2.0's contrastive + diversity objective on untranscribed audio, continuing "
                                   "MODEL (or --from-scratch); --out gets a CTC model folder for speechtl adapt --model.")
    p.add_argument("model", help="start model: folder, hub id, or shipped model (speechtl/en-us-synth)")
    p.add_argument("audio", nargs="+", help="audio files, folders (searched recursively) or manifests (text ignored)")
    p.add_argument("--out", required=True, help="the folder to write the pretrained model to")
    p.add_argument("--source-test", default="", metavar="MANIFEST",
                   help="labelled speech the start model already recognises: scored before and after (WER/CER in "
                        f"--out/{SOURCE_FILE}), with a warning when pretraining made it worse")
    add_dataclass_arguments(p, PretrainConfig)
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_pretrain)
