"""``speechtl lm``: the verb's parser and its run (the library: :mod:`speechtl.decode.ngram`; torch-free here, so
``speechtl --help`` starts fast)."""

from __future__ import annotations

import argparse

from speechtl.config import ConfigError

__all__ = ["add_lm_parser"]


def _lm_build(args) -> int:
    from speechtl.decode.ngram import build_arpa, read_text_files

    info = build_arpa(read_text_files(args.text), args.order, args.out)
    print(f"wrote {args.out}: order {info['order']}, {info['sentences']} sentences, vocabulary "
          f"{info['vocabulary']}, n-grams {info['ngrams']}")
    return 0


def _lm_order(value: str) -> int:
    """--order at parse time: an integer the LM decoder reads (``ngram.check_order``)."""
    from speechtl.decode.ngram import check_order

    try:
        return check_order(int(value))
    except ValueError as e:  # int() or ConfigError
        raise argparse.ArgumentTypeError(str(e) if isinstance(e, ConfigError) else f"{value!r} is not an integer")


def add_lm_parser(sub) -> None:
    p = sub.add_parser("lm", help="n-gram language models for beam-search decoding")
    lm_sub = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    p = lm_sub.add_parser("build", help="build a word n-gram LM (ARPA, modified Kneser-Ney) from text files",
                          description="Count word n-grams of plain-text files (one sentence a line, normalised like "
                                      "the transcripts) and write an ARPA model smoothed with interpolated modified "
                                      "Kneser-Ney, for --lm at transcribe and evaluate.")
    p.add_argument("text", nargs="+", help="plain-text files, one sentence per line")
    p.add_argument("--order", type=_lm_order, default=3, help="n-gram order, 2-6 (default: 3)")
    p.add_argument("--out", required=True, help="the ARPA file to write")
    p.set_defaults(func=_lm_build)
