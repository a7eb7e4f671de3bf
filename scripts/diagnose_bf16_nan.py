"""Hunt the intermittent NaN of tiny bf16 trainings on AMX CPUs (ARCHITECTURE.md, "things that bit us").

    python scripts/diagnose_bf16_nan.py [RUNS] [bf16|fp32]

Trains the tests' tiny model on the tests' tone data (300 steps, lr 3e-3, like the overfit test) RUNS times in one
process, filling freshly freed memory with NaN after every step. A kernel that reads memory it did not write then
turns the loss NaN now and then; seeds are fixed, so a run whose losses differ from the first is the symptom. It
was seen once in 3 bf16 runs (after 3 clean ones in the same process) and never in fp32; not yet traced to an op.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_tone_set  # noqa: E402  (the tests' tone language)

from speechtl.adapt.inputs import labels_for  # noqa: E402
from speechtl.adapt.train import TrainData, train  # noqa: E402
from speechtl.adapt.train_config import train_config  # noqa: E402
from speechtl.data.dataset import load_utterance_audio  # noqa: E402
from speechtl.data.manifest import read_manifest  # noqa: E402
from speechtl.models import load_model, random_model  # noqa: E402
from speechtl.text import build_vocab  # noqa: E402


def main(runs: int = 5, precision: str = "bf16") -> None:
    work = Path(tempfile.mkdtemp())
    manifest = make_tone_set(work / "train", 12, seed=1, name="train.jsonl")
    model, processor = random_model(build_vocab(["abc"]), size="tiny", seed=0)
    model.save_pretrained(work / "model")
    processor.save_pretrained(work / "model")
    utts, audio, _ = load_utterance_audio(read_manifest(manifest))
    cfg = train_config(lr=3e-3, max_steps=300, eval_every=100, batch_seconds=8, warmup_ratio=0.1,
                       freeze_feature_encoder=False, seed=0, precision=precision)
    junk_sizes = torch.Generator().manual_seed(1)

    def dirty(state) -> None:  # allocate, fill with NaN, free: the allocator hands these pages out next
        junk = [torch.full((int(torch.randint(1, 300_000, (1,), generator=junk_sizes)),), float("nan"))
                for _ in range(6)]
        del junk

    for k in range(runs):
        model, processor = load_model(str(work / "model"))
        result = train(model, processor, TrainData(utts, labels_for(utts, processor.tokenizer), audio),
                       work / f"run{k}", cfg, progress=False, on_step=dirty)
        print(k, [h["train_loss"] for h in result.history], flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5, sys.argv[2] if len(sys.argv) > 2 else "bf16")
