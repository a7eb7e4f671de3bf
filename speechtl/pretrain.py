"""``speechtl pretrain``: the verb's parser and its run (the library: :mod:`speechtl.adapt.pretrain`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from speechtl.adapt.config import PretrainConfig
from speechtl.config import add_dataclass_arguments, dataclass_from_args

__all__ = ["add_pretrain_parser", "run_pretrain"]


def run_pretrain(args) -> int:
    """Pretrain with the parsed flags; print what was written (or the result as JSON)."""
    from speechtl.adapt.pretrain import run_pretraining

    r = run_pretraining(args.model, args.audio, args.out, dataclass_from_args(PretrainConfig, args), not args.quiet)
    print("".join(f"skipped {s['id']}: {s['reason']}\n" for s in r.skipped), end="", file=sys.stderr)
    print("".join(f"warning: {w}\n" for w in r.warnings), end="", file=sys.stderr)
    print(json.dumps(asdict(r), indent=2) if args.output_format == "json" else
          f"pretrained {r.steps} steps on {r.train_files} files ({r.audio_s:.0f} s): loss {r.final_loss}, validation "
          f"loss {r.final_val_loss} (log: {r.out}/pretrain_log.jsonl); fine-tune with speechtl adapt --model {r.out}")
    return 0


def add_pretrain_parser(sub) -> None:
    """The ``pretrain`` subcommand: model, audio, --out and every :class:`PretrainConfig` field as a flag."""
    p = sub.add_parser("pretrain", help="wav2vec 2.0 self-supervised (continued) pretraining on untranscribed audio",
                       description="wav2vec 2.0's contrastive + diversity objective on untranscribed audio, continuing "
                                   "MODEL (or --from-scratch); --out gets a CTC model folder for speechtl adapt --model.")
    p.add_argument("model", help="start model: folder, hub id, or shipped model (speechtl/en-us-synth)")
    p.add_argument("audio", nargs="+", help="audio files, folders (searched recursively) or manifests (text ignored)")
    p.add_argument("--out", required=True, help="the folder to write the pretrained model to")
    add_dataclass_arguments(p, PretrainConfig)
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_pretrain)
