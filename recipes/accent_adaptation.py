"""Accent adaptation: evaluate before → adapt → evaluate after (target and source accent) → results.

    python recipes/accent_adaptation.py                               # offline default (= speechtl demo)
    python recipes/accent_adaptation.py --accent en-029 --train-minutes 10 --out runs/caribbean
    python recipes/accent_adaptation.py --smoke                       # seconds, tiny random model

The config is :class:`speechtl.demo.AccentDemoConfig`; every field is a flag (``--help``). The run
folder gets the adapted model, ``results.json``, ``report.md`` and ``recipe_config.json``. With real
recordings and a hub model, use ``speechtl adapt`` with your manifests instead (see the README).
"""

from __future__ import annotations

import sys
from pathlib import Path

from speechtl.adapt.report import RunResult
from speechtl.config import parse_config
from speechtl.demo import AccentDemoConfig, demo_config_dict, format_table, run_accent_demo
from speechtl.errors import exit_status
from speechtl.fileio import atomic_write_json


def main(argv: list[str] | None = None) -> RunResult:
    cfg = parse_config(AccentDemoConfig, argv)
    result = run_accent_demo(cfg)
    atomic_write_json(Path(cfg.out) / "recipe_config.json", demo_config_dict(cfg))
    print(format_table(result))
    return result


if __name__ == "__main__":
    sys.exit(exit_status("recipes/accent_adaptation.py", lambda: main(sys.argv[1:])))
