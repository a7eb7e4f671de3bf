"""Synthesise a labelled speech set in one accent with espeak-ng (a thin CLI over speechtl.synth).

    .venv/bin/python scripts/synthesize.py --out data/scotland-test --accent en-gb-scotland --split test --minutes 5
    .venv/bin/python scripts/synthesize.py --out data/de-reads-en --accent de --language en --num-utterances 200
    .venv/bin/python scripts/synthesize.py --list        # accents, voice variants and text languages

Writes OUT/wav/<id>.wav (16 kHz mono 16-bit) and OUT/manifest.jsonl. Test sentences never occur in
training sets (the split is a hash of the sentence); the same flags give bit-identical audio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from speechtl.data.manifest import total_minutes
from speechtl.synth import ACCENTS, SPLITS, VARIANTS, supported_languages, synthesize


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="output folder (wav/ and manifest.jsonl)")
    p.add_argument("--accent", default="en-us", help=f"espeak voice accent, one of: {', '.join(ACCENTS)}")
    p.add_argument("--language", default=None,
                   help=f"text language (default: the accent's own), one of: {', '.join(supported_languages())}")
    p.add_argument("--split", default="train", choices=SPLITS, help="sentence pool (default: train)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this much audio")
    p.add_argument("--num-utterances", type=int, default=None, help="stop after this many utterances")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-speakers", type=int, default=20, help="voice/pitch/rate combinations (default: 20)")
    p.add_argument("--speaker-disjoint", action="store_true",
                   help="draw speakers from this split's own pool (default: speakers shared by all splits)")
    p.add_argument("--workers", type=int, default=1, help="synthesis processes (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list accents, voice variants and languages, then exit")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(f"accents:   {' '.join(ACCENTS)}\nvariants:  {' '.join(VARIANTS)}\n"
              f"languages: {' '.join(supported_languages())}")
        return 0
    if args.out is None:
        parser.error("--out is required")
    start = time.perf_counter()
    try:
        utts = synthesize(args.out, accent=args.accent, language=args.language, split=args.split,
                          minutes=args.minutes, num_utterances=args.num_utterances, seed=args.seed,
                          num_speakers=args.num_speakers, speaker_disjoint=args.speaker_disjoint,
                          workers=args.workers, progress=not args.quiet)
    except ValueError as e:
        parser.error(str(e))
    seconds = time.perf_counter() - start
    minutes = total_minutes(utts)
    print(f"wrote {len(utts)} utterances, {minutes:.2f} min of audio, {len({u.speaker for u in utts})} speakers "
          f"to {args.out / 'manifest.jsonl'} in {seconds:.1f} s ({60 * minutes / seconds:.0f}x real time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
