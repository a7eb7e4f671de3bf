#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs the offline demo (speechtl demo; extra flags pass through).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/speechtl demo "$@"
