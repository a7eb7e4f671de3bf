"""Synthesise a labelled speech set in one accent with espeak-ng (a thin CLI over speechtl.synth).

    .venv/bin/python scripts/synthesize.py --out data/scotland-test --accent en-gb-scotland --split test --minutes 5
    .venv/bin/python scripts/synthesize.py --out data/de-reads-en --accent de --language en --num-utterances 200
    .venv/bin/python scripts/synthesize.py --data runs/data --accent en-029 --split test --minutes 6
    .venv/bin/python scripts/synthesize.py --list        # accents, voice variants and text languages

Writes OUT/wav/<id>.wav (16 kHz mono 16-bit) and OUT/manifest.jsonl; with --data instead of --out, into the
folder under DATA that the demo and recipes use for these parameters (runs/data/en-029-test-6min-seed0).
A finished set is reused (its .done marker holds the parameters); a half-written one is made again.
Test sentences never occur in training sets (the split is a hash of the sentence); the same flags give
bit-identical audio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from speechtl.data.manifest import read_manifest, total_minutes
from speechtl.synth import ACCENTS, DONE, SPLITS, VARIANTS, SyntheticSet, build_set, supported_languages


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="output folder (wav/ and manifest.jsonl)")
    p.add_argument("--data", type=Path, default=None,
                   help="instead of --out: the cache folder the demo and recipes use (runs/data); the set's folder "
                        "inside is named by its parameters")
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
    if (args.out is None) == (args.data is None):
        parser.error("give --out (a folder) or --data (the cache folder), not both")
    start = time.perf_counter()
    try:
        spec = SyntheticSet(args.accent, args.split, args.minutes, args.seed, args.num_speakers, args.language,
                            args.num_utterances, args.speaker_disjoint)
        folder = args.out or args.data / spec.folder_name()
        marker = folder / DONE
        before = marker.stat().st_mtime_ns if marker.is_file() else None
        manifest = build_set(folder, spec, workers=args.workers, progress=not args.quiet)
    except ValueError as e:
        parser.error(str(e))
    seconds = time.perf_counter() - start
    utts = read_manifest(manifest)
    minutes = total_minutes(utts)
    what = f"{len(utts)} utterances, {minutes:.2f} min of audio, {len({u.speaker for u in utts})} speakers"
    if before is not None and marker.stat().st_mtime_ns == before:
        print(f"reused {what} in {manifest} (made earlier with the same parameters)")
    else:
        print(f"wrote {what} to {manifest} in {seconds:.1f} s ({60 * minutes / seconds:.0f}x real time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
