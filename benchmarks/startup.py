"""Start-up time of the ``speechtl`` command against ``python -c "import torch"`` measured in the same run.

Run (from the repository root):

    .venv/bin/python benchmarks/startup.py                 # 5 runs of each command (~20 s)
    .venv/bin/python benchmarks/startup.py --repeats 9 --output-format json

Each command runs in a fresh interpreter (``python -m speechtl.cli ...``, this checkout first on
``PYTHONPATH``), the commands taking turns so that a change in the machine's load touches them alike, after one
untimed warm-up run each (file cache). The table shows the median wall time, its ratio to importing torch, and
whether the command imported torch (from ``python -X importtime``). Nothing is asserted: the tests check that no
heavy package is imported (``tests/test_startup.py``); this says how long it takes here.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from speechtl.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {  # row name -> python arguments
    "speechtl --version": ["-m", "speechtl.cli", "--version"],
    "speechtl --help": ["-m", "speechtl.cli", "--help"],
    "speechtl adapt --help": ["-m", "speechtl.cli", "adapt", "--help"],
    "python -c 'import torch'": ["-c", "import torch"],  # the baseline
    "python -c pass": ["-c", "pass"],  # the interpreter alone
}
BASELINE = "python -c 'import torch'"


@dataclass
class StartupConfig:
    repeats: int = 5  # timed runs of each command (the median is shown)
    output_format: str = "table"  # table | json


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def wall_time(args: list[str]) -> float:
    """Seconds from starting ``python ARGS`` to its exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def imports_torch(args: list[str]) -> bool:
    done = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT, env=_env(), check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return any(line.rsplit("|", 1)[-1].strip() == "torch" for line in done.stderr.splitlines())  # "... |   torch"


def measure(repeats: int) -> list[dict]:
    for args in COMMANDS.values():  # warm-up: file cache, .pyc files
        wall_time(args)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, args in COMMANDS.items():
            times[name].append(wall_time(args))
    base = statistics.median(times[BASELINE])
    return [{"command": name, "median_s": round(statistics.median(t), 4), "min_s": round(min(t), 4),
             "max_s": round(max(t), 4), "x_import_torch": round(statistics.median(t) / base, 3),
             "imports_torch": imports_torch(COMMANDS[name])} for name, t in times.items()]


def machine_facts() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.partition(":")[2].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": metadata.version("torch"), "transformers": metadata.version("transformers"),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def render(rows: list[dict], facts: dict, repeats: int) -> str:
    lines = [" ".join(f"{k}={v}" for k, v in facts.items()), f"median of {repeats} runs each, fresh interpreter",
             "", f"{'command':28} {'median s':>9} {'min s':>7} {'max s':>7} {'x import torch':>15} {'torch?':>7}"]
    for r in rows:
        lines.append(f"{r['command']:28} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {r['max_s']:>7.3f} "
                     f"{r['x_import_torch']:>15.3f} {'yes' if r['imports_torch'] else 'no':>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(StartupConfig, argv, description=__doc__.splitlines()[0])
    print("$ " + shlex.join([Path(sys.executable).name, "benchmarks/startup.py", *(argv or sys.argv[1:])]))
    facts = machine_facts()  # before the runs: the load they start under
    rows = measure(cfg.repeats)
    if cfg.output_format == "json":
        print(json.dumps({"machine": facts, "repeats": cfg.repeats, "rows": rows}, indent=2))
    else:
        print(render(rows, facts, cfg.repeats))


if __name__ == "__main__":
    main()
