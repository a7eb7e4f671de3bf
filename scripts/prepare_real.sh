#!/usr/bin/env bash
# Real speech for speechtl: fetch (when missing) and prepare speechocean762 and the Mboshi corpus as manifests.
# See docs/real_corpora.md. Corpus audio never goes into the repository: everything lands under CORPORA.
#
#   scripts/prepare_real.sh [CORPORA]     # default CORPORA: ../corpora beside the repository
#
# Writes CORPORA/manifests/:
#   speechocean762_train.jsonl, speechocean762_dev.jsonl  (speaker-disjoint, from the training speakers)
#   mboshi_train.jsonl, mboshi_dev.jsonl                  (speaker-disjoint, from the training speakers)
#   reserved_speechocean762_test.jsonl, reserved_mboshi_dev.jsonl
#     ^ RESERVED held-out checks: never train, tune, choose a setting or look at a WER on them.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA="$(realpath -m "${1:-../corpora}")"
PYTHON="${PYTHON:-python}"
SPEECHTL=("$PYTHON" -m speechtl.cli)
M="$CORPORA/manifests"
mkdir -p "$CORPORA" "$M"

fetch() {  # fetch NAME URL: a shallow git clone when CORPORA/NAME is not there yet
    if [ ! -d "$CORPORA/$1" ]; then
        git clone --depth 1 "$2" "$CORPORA/$1"
    fi
}
fetch speechocean762 https://github.com/jimbozhang/speechocean762
fetch mboshi https://github.com/besacier/mboshi-french-parallel-corpus

SO="$CORPORA/speechocean762"
"${SPEECHTL[@]}" prepare kaldi "$SO/train" --language en --accent "zh-L1 English" --child-below 18 \
    --out "$M/speechocean762_train_all.jsonl"
"${SPEECHTL[@]}" prepare kaldi "$SO/test" --language en --accent "zh-L1 English" --child-below 18 \
    --out "$M/reserved_speechocean762_test.jsonl"

MB="$CORPORA/mboshi/full_corpus_newsplit"
"${SPEECHTL[@]}" prepare folder "$MB/train" --transcript-suffix .mb.cleaned --speaker-from prefix --language mdw \
    --on-error skip \
    --out "$M/mboshi_train_all.jsonl"
"${SPEECHTL[@]}" prepare folder "$MB/dev" --transcript-suffix .mb.cleaned --speaker-from prefix --language mdw \
    --on-error skip \
    --out "$M/reserved_mboshi_dev.jsonl"

# Dev sets from the training speakers only, speaker-disjoint from the rest of training (seeded):
# speechocean762 per age group (children and adults both in dev, ~15 %); Mboshi has three training speakers, so its
# dev set is one whole speaker (with these fractions and seed: 'martial', 174 utterances): it can be no finer.
"$PYTHON" - "$M" <<'PY'
import sys
from pathlib import Path

from speechtl.data.importers import summary
from speechtl.data.manifest import read_manifest, speaker_disjoint_split, write_manifest

m = Path(sys.argv[1])
so = read_manifest(m / "speechocean762_train_all.jsonl")
train, dev = [], []
for group in ("adult", "child"):
    part_train, part_dev = speaker_disjoint_split([u for u in so if u.age_group == group], [0.85, 0.15], seed=0)
    train += part_train
    dev += part_dev
mb = read_manifest(m / "mboshi_train_all.jsonl")
mb_train, mb_dev = speaker_disjoint_split(mb, [0.96, 0.04], seed=0)  # 3 speakers: dev = one whole speaker
sets = {"speechocean762_train": train, "speechocean762_dev": dev, "mboshi_train": mb_train, "mboshi_dev": mb_dev}
for name, utts in sets.items():
    write_manifest(utts, m / f"{name}.jsonl")
for name in [*sets, "reserved_speechocean762_test", "reserved_mboshi_dev"]:
    utts = read_manifest(m / f"{name}.jsonl")
    print(f"{name}: {summary(utts)}")
for a, b in ((train, dev), (mb_train, mb_dev)):
    assert not {u.speaker for u in a} & {u.speaker for u in b}, "dev speakers must not be training speakers"
PY
