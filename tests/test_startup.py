"""Start-up: the parser, ``--version`` and every ``--help`` are built without torch and the other heavy stacks.

Each check runs in a fresh interpreter (this one has torch loaded by other tests). Timing is not asserted here
(it depends on the machine): ``benchmarks/startup.py`` measures it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import speechtl

ROOT = Path(__file__).resolve().parents[1]
# what a verb imports when it runs, never to parse its flags
HEAVY = ("torch", "torchaudio", "transformers", "accelerate", "peft", "numpy", "scipy", "sklearn", "soundfile",
         "jiwer", "matplotlib", "tqdm")
VERBS = (["adapt"], ["demo"], ["evaluate"], ["compare"], ["check"], ["transcribe"], ["prepare"], ["prepare", "kaldi"],
         ["lm", "build"])


def _python(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _heavy_after(code: str) -> list[str]:
    """The heavy top-level packages loaded after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = _python("-c", probe)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    return [m for m in loaded if m in HEAVY]


def test_building_the_parser_imports_no_heavy_package():
    assert _heavy_after("import speechtl.cli as c; c.build_parser()") == []
    assert _heavy_after("import speechtl") == []


def test_every_help_and_version_imports_no_heavy_package():
    code = ("import contextlib, io, speechtl.cli as c\n"
            f"for argv in {[[*v, '--help'] for v in VERBS] + [['--help'], ['--version']]!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        c.main(argv)")
    assert _heavy_after(code) == []


def test_version_exits_0_and_prints_the_version():
    done = _python("-m", "speechtl.cli", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"speechtl {speechtl.__version__}"


def test_a_verb_help_still_lists_its_config_flags():
    done = _python("-m", "speechtl.cli", "adapt", "--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--train", "--lr", "--strategy", "--unlabelled", "--precision"):
        assert flag in done.stdout, flag
