#!/usr/bin/env bash
# Creates .venv and installs speechtl with its test extras; does nothing when already up to date.
# Sourced by scripts/demo.sh and scripts/test.sh, so each of the README's two commands sets itself up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "speechtl needs Python >= 3.10 (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.speechtl-install
want=$(cat pyproject.toml | sha1sum | cut -c1-40)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (torch, transformers, ...; about 2 minutes the first time)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,plot]"
  echo "$want" > "$stamp"
fi
