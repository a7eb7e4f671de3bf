#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# One pytest worker per core (at most 4), one torch thread each: the suite is CPU-bound, so two cores halve its time.
# Each test file runs whole in one worker (--dist loadfile: tests/test_kill_anywhere.py's last test reads what its
# other tests recorded). Arguments go to pytest (`-n 0`: one process, as before).
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} exec .venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile "$@"
