#!/usr/bin/env bash
# The GPU checks, in under 8 minutes on one GPU: the test suite's device tests, 200 steps of a base-sized
# adaptation in bf16 through speechtl's loop (benchmarks/train_vs_hf.py, speechtl arm), and the transcription
# throughput of train_infer_speed.py (transcribe_arrays, fp32 and bf16), each printing throughput and peak memory.
#
#   benchmarks/gpu_check.sh                 # on a machine with CUDA (refused, exit 2, without one)
#   benchmarks/gpu_check.sh --cpu-dry-run   # the same pieces on the CPU at tiny sizes: tests the script itself
#
# PYTHON picks the interpreter (default .venv/bin/python). The training audio is tone clips (tests/conftest.py's
# tone language, written to a temporary folder), so the check needs neither espeak-ng nor network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DRY=0
case "${1:-}" in
  --cpu-dry-run) DRY=1 ;;
  "") ;;
  *) echo "gpu_check.sh: unknown option ${1} (allowed: --cpu-dry-run)" >&2; exit 2 ;;
esac
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if (( ! DRY )) && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check.sh: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine," \
       "or use --cpu-dry-run to test the script on the CPU" >&2
  exit 2
fi
if (( DRY )); then
  DEVICE=cpu SIZE=tiny STEPS=2 UTTS=12 TESTS="device_flag" INFER=(--infer-minutes 0.05 --infer-repeats 1)
else
  DEVICE=cuda SIZE=base STEPS=200 UTTS=600 TESTS="device or cuda or bf16 or precision"
  INFER=(--infer-minutes 5 --infer-repeats 3)
  "$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"gpu: {p.name}, {p.total_memory / 2**30:.0f} GiB")'
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== 1/3 device tests (pytest -k '$TESTS')"
"$PY" -m pytest -q -x -p no:cacheprovider -k "$TESTS" tests

echo "== 2/3 adaptation: $STEPS steps of a $SIZE-sized model in bf16 on $DEVICE (speechtl's loop)"
"$PY" - "$WORK" "$UTTS" <<'PYEOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import make_tone_set  # the test suite's tone language: letters a, b, c as tones
work, n = Path(sys.argv[1]), int(sys.argv[2])
make_tone_set(work / "train", n, seed=1, name="train.jsonl")
make_tone_set(work / "dev", max(4, n // 10), seed=2, name="dev.jsonl")
PYEOF
"$PY" benchmarks/train_vs_hf.py --models "$SIZE" --arms speechtl --steps "$STEPS" --precision bf16 --scaling \
  --nproc 0 --train "$WORK/train/train.jsonl" --dev "$WORK/dev/dev.jsonl" --work "$WORK/train" --threads 1

echo "== 3/3 transcription: transcribe_arrays throughput, fp32 and bf16 (benchmarks/train_infer_speed.py)"
"$PY" benchmarks/train_infer_speed.py --size "$SIZE" --device "$DEVICE" --train-steps 1 --warmup-steps 0 "${INFER[@]}"

echo "gpu_check.sh: done in ${SECONDS} s (budget 480 s on a GPU)"
if (( ! DRY && SECONDS > 480 )); then
  echo "gpu_check.sh: took ${SECONDS} s, over the 8-minute budget" >&2
  exit 1
fi
