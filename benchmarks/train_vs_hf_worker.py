"""One arm of ``train_vs_hf.py`` in its own process: load, prepare, train, measure, score dev; JSON out.

Writes ``{result}.{rank}`` with the wall-clock end of every optimizer step, per step the real and padded audio
seconds and batches (over all processes), the peak RSS at the end of training (VmHWM) and, on rank 0, the dev WER.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

from speechtl.adapt.inputs import labels_for
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest
from speechtl.eval import evaluate
from speechtl.runtime import set_threads

SAMPLE_RATE = 16_000


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; ``ru_maxrss`` would carry a forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _same_config(spec: dict) -> dict:
    """speechtl's flags for the model config the ``Trainer`` arms train (``--dropout example``: the example's)."""
    if spec.get("dropout", "example") == "model":
        return {}
    from hf_ctc_recipe import EXAMPLE_CONFIG

    (dropout,) = {v for k, v in EXAMPLE_CONFIG.items() if k.endswith("dropout")}  # one value for every dropout
    return {"dropout": dropout, "mask_time_prob": EXAMPLE_CONFIG["mask_time_prob"],
            "mask_feature_prob": EXAMPLE_CONFIG["mask_feature_prob"]}


def run_speechtl(spec: dict, folder: str, utts, audio, out_dir: str):
    """The library's loop (:func:`speechtl.adapt.train.train`), no dev sets: it returns the last weights."""
    from speechtl.adapt.train import TrainData, train, train_config
    from speechtl.data.dataset import length_grouped_batches
    from speechtl.models import load_model

    model, processor = load_model(folder)
    labels = labels_for(utts, processor.tokenizer, "en")
    cfg = train_config(lr=spec["lr"], max_steps=spec["steps"], warmup_ratio=spec["warmup_ratio"],
                       batch_seconds=spec["batch_seconds"], eval_every=spec["steps"], guard=False,
                       threads=spec["threads"], seed=spec["seed"], precision=spec["precision"], **_same_config(spec))
    durs = [u.duration_s for u in utts]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ends, steps = [], []

    def on_step(state) -> None:
        ends.append(time.time())
        # the loop's batches of this step: epoch order as adapt.train draws it, every process one batch
        order = length_grouped_batches(durs, spec["batch_seconds"], seed=spec["seed"] * 100_003 + state.epoch)
        batches = order[max(0, state.batch_in_epoch - world):state.batch_in_epoch]
        steps.append((sum(durs[i] for b in batches for i in b),
                      sum(len(b) * max(durs[i] for i in b) for b in batches), len(batches)))

    train(model, processor, TrainData(utts, labels, audio), out_dir, cfg, dev=None, progress=False, on_step=on_step)
    from speechtl.runtime import resolve_precision

    return model, processor, ends, steps, resolve_precision(spec["precision"], model.device)


def run_hf(spec: dict, folder: str, utts, audio, out_dir: str):
    """The ``Trainer`` recipe (:mod:`hf_ctc_recipe`)."""
    import hf_ctc_recipe

    model, processor = hf_ctc_recipe.load(folder, example_config=spec.get("dropout", "example") == "example")
    rows = hf_ctc_recipe.prepare(processor, audio, labels_for(utts, processor.tokenizer, "en"))
    bf16 = spec["arm"] == "hf_bf16"
    ends, seen = hf_ctc_recipe.train(model, processor, rows, out_dir, batch_size=spec["hf_batch_size"],
                                     steps=spec["steps"], lr=spec["lr"], warmup_ratio=spec["warmup_ratio"],
                                     bf16=bf16, seed=spec["seed"])
    steps = [(real / SAMPLE_RATE, padded / SAMPLE_RATE, 1) for real, padded in seen]
    return model, processor, ends, steps, "bf16" if bf16 else "fp32"


def work(spec: dict) -> None:
    set_threads(spec["threads"])
    rank = int(os.environ.get("RANK", "0"))
    utts, audio, _ = load_utterance_audio(read_manifest(spec["train"]))
    with tempfile.TemporaryDirectory(dir=spec["work"]) as out_dir:
        arm = run_speechtl if spec["arm"] == "speechtl" else run_hf
        model, processor, ends, steps, precision = arm(spec, spec["model_dir"], utts, audio, out_dir)
    rss = peak_rss_mb()
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    wer = None
    if rank == 0:
        dev, dev_audio, _ = load_utterance_audio(read_manifest(spec["dev"]))
        wer = evaluate(model.eval(), processor, dev, precision="fp32", audio=dev_audio, language="en").wer
    Path(f"{spec['result']}.{rank}").write_text(json.dumps(
        {"ends": ends, "steps": steps, "rss_mb": rss, "gpu_mb": gpu_mb, "dev_wer": wer, "precision": precision}))
