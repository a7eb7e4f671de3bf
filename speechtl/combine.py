"""``speechtl combine``: the verb's parser and its run (the library: :mod:`speechtl.models.combine`, served by
:mod:`speechtl.models.multiroute`)."""

from __future__ import annotations

__all__ = ["add_combine_parser", "run_combine", "member_shares"]


def run_combine(args) -> int:
    """Combine the parsed runs into --out; print what was written."""
    from speechtl.models.combine import combine_runs

    manifest = combine_runs(args.runs, args.out, args.overwrite)
    members = ", ".join(f"{m['name']} ({m['kind']})" for m in manifest["members"])
    print(f"wrote {args.out}: {len(manifest['members'])} member(s) over {manifest['base_model']}: {members}")
    return 0


def member_shares(results: dict) -> list[str]:
    """``speechtl evaluate``'s lines for a combined folder: per set, the share each member and the base served."""
    return [f"{name}: served by " + ", ".join(f"{m} {100 * v:.0f} %" for m, v in r["member_shares"].items())
            + f", the base {100 * (1 - r['routed_share']):.0f} %" for name, r in results["sets"].items()
            if "member_shares" in r]


def add_combine_parser(sub) -> None:
    """The ``combine`` subcommand: [NAME=]RUN ..., --out, --overwrite."""
    p = sub.add_parser("combine", help="several accent-adapted routed runs of one base behind one router",
                       description="Combine routed run folders (adapt --route) adapted from the same base into one "
                                   "folder that evaluate, transcribe and compare serve: the base runs on every "
                                   "utterance, each member's router scores it, and of the members whose routers take it "
                                   "(classifier and gate) the one nearest its own accent serves it; else the base. Writes a small manifest "
                                   "(no weights are copied); a member whose files change is refused at load.")
    p.add_argument("runs", nargs="+", metavar="[NAME=]RUN",
                   help="routed run folders; NAME (default: the accent of the run's training manifest) names it")
    p.add_argument("--out", required=True, help="the folder to write speechtl_multiroute.json into")
    p.add_argument("--overwrite", action="store_true", help="replace a combined folder already in --out")
    p.set_defaults(func=run_combine)
