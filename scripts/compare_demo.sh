#!/usr/bin/env bash
# Offline: compare the shipped model with two accent-adapted ones on four synthetic accents (speechtl compare).
#   bash scripts/compare_demo.sh          # writes runs/compare_demo/report.html (+ report.md, results.json, CSVs)
# Makes what is missing first: two adapted models with `speechtl demo` (en-gb-scotland and en-029, LoRA r16 with
# 3:1 replay on 10 labelled minutes each, pinned below so the table in RESULTS.md stays reproducible — with their
# 6-minute test sets and the en-us test set), and a 6-minute en-gb-x-rp test set that no model was adapted to.
# Re-running reuses all of it and the cached hypotheses. THREADS=1 (default) keeps it to one core;
# PY=/path/to/python skips the .venv set-up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${PY:-}" ]; then
  bash scripts/setup.sh
  PY=.venv/bin/python
fi
THREADS=${THREADS:-1}
LORA=(--strategy lora --lr 1e-3 --lora-r 16 --lora-alpha 16 --max-steps 300 --eval-every 50 --replay-ratio 3
      --source-dev-minutes 4 --num-speakers 20 --replay-speakers 0 --route-minutes 0)
for accent in en-gb-scotland en-029; do
  [ -f "runs/demo_$accent/model.safetensors" ] ||
    "$PY" -m speechtl.cli demo --accent "$accent" --out "runs/demo_$accent" --threads "$THREADS" --quiet "${LORA[@]}"
done
rp=runs/data/en-gb-x-rp-test-6min-seed0
[ -f "$rp/manifest.jsonl" ] ||
  "$PY" scripts/synthesize.py --out "$rp" --accent en-gb-x-rp --split test --minutes 6 --seed 2 --quiet
"$PY" -m speechtl.cli compare \
  --models en-us-synth=speechtl/en-us-synth scot-lora=runs/demo_en-gb-scotland carib-lora=runs/demo_en-029 \
  --test en-us=runs/data/en-us-source-test-6min-seed0/manifest.jsonl \
         en-gb-scotland=runs/data/en-gb-scotland-test-6min-seed0/manifest.jsonl \
         en-029=runs/data/en-029-test-6min-seed0/manifest.jsonl \
         en-gb-x-rp=$rp/manifest.jsonl \
  --out runs/compare_demo --threads "$THREADS" "$@"
