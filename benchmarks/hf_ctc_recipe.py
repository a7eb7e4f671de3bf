"""The Hugging Face ``Trainer`` set up as transformers' ``run_speech_recognition_ctc.py`` example sets it up.

Used by ``train_vs_hf.py`` as its baseline arms. What the example does, and what this does the same way:

- the model from ``AutoModelForCTC.from_pretrained`` with the example's config changes at its defaults
  (:data:`EXAMPLE_CONFIG`: every dropout 0, SpecAugment time masks at 0.05 × 10 frames, ``layerdrop`` 0,
  ``ctc_loss_reduction="mean"``) and the feature encoder frozen (``model.freeze_feature_encoder()``); ``load(...,
  example_config=False)`` keeps the model's own dropouts and masking instead (``train_vs_hf.py --dropout model``);
- every utterance run through the feature extractor once, up front (``dataset.map(prepare_dataset)``), its
  ``input_values`` kept with its label ids and its length;
- ``DataCollatorCTCWithPadding``: ``processor.pad`` on the inputs, labels padded and masked with -100;
- ``TrainingArguments`` with length grouping (``group_by_length``; ``train_sampling_strategy="group_by_length"``
  in transformers 5), a per-device batch size, the learning rate, linear warm-up steps, ``bf16`` when asked for,
  and saving, evaluation, logging and reporting off (this is a timing run).

Differences, all of them to compare like with like: the data is a plain list of dicts instead of a ``datasets``
table (the ``Trainer`` computes the same lengths from it), the label ids are speechtl's (the same targets for
every arm), and ``ctc_zero_infinity`` is on as in speechtl's loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCTC, AutoProcessor, Trainer, TrainerCallback, TrainingArguments


@dataclass
class DataCollatorCTCWithPadding:
    """The example's collator, which also records each batch's real and padded samples (for the benchmark)."""

    processor: object
    padding: bool | str = "longest"
    seen: list[tuple[int, int]] = field(default_factory=list)  # (real samples, padded samples) per batch

    def __call__(self, features: list[dict]) -> dict:
        input_features = [{"input_values": f["input_values"]} for f in features]
        label_features = [{"input_ids": f["labels"]} for f in features]
        batch = self.processor.pad(input_features, padding=self.padding, return_tensors="pt")
        labels_batch = self.processor.pad(labels=label_features, padding=self.padding, return_tensors="pt")
        batch["labels"] = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
        if "attention_mask" in batch:
            batch["attention_mask"] = batch["attention_mask"].to(torch.long)
        real = sum(len(f["input_values"]) for f in features)
        self.seen.append((real, batch["input_values"].numel()))
        return batch


class StepTimes(TrainerCallback):
    """Wall-clock time (``time.time()``) at the end of every optimizer step."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.time())


# The example's ``config.update`` with its ``ModelArguments`` defaults (what a user gets without those flags).
EXAMPLE_CONFIG = {"attention_dropout": 0.0, "activation_dropout": 0.0, "feat_proj_dropout": 0.0, "hidden_dropout": 0.0,
                  "final_dropout": 0.0, "mask_time_prob": 0.05, "mask_time_length": 10, "mask_feature_prob": 0.0,
                  "mask_feature_length": 10, "layerdrop": 0.0, "ctc_loss_reduction": "mean"}


def load(folder: str, example_config: bool = True):
    """Model and processor as the example loads them, feature encoder frozen."""
    processor = AutoProcessor.from_pretrained(folder)
    changes = EXAMPLE_CONFIG if example_config else {"layerdrop": 0.0, "ctc_loss_reduction": "mean"}
    model = AutoModelForCTC.from_pretrained(folder, **changes, ctc_zero_infinity=True,
                                            pad_token_id=processor.tokenizer.pad_token_id)
    model.freeze_feature_encoder()
    return model, processor


def prepare(processor, arrays, labels) -> list[dict]:
    """``prepare_dataset`` of the example: feature-extractor output, label ids and length per utterance."""
    rows = []
    for wav, ids in zip(arrays, labels):
        values = processor(wav, sampling_rate=16_000).input_values[0]
        rows.append({"input_values": values, "input_length": len(values), "labels": list(ids)})
    return rows


def train(model, processor, rows: list[dict], out_dir: str, *, batch_size: int, steps: int, lr: float,
          warmup_ratio: float, bf16: bool, seed: int) -> tuple[list[float], list[tuple[int, int]]]:
    """``steps`` optimizer steps through ``Trainer``; returns the step end times and the batches' samples."""
    args = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=batch_size, gradient_accumulation_steps=1,
        max_steps=steps, learning_rate=lr, warmup_steps=int(warmup_ratio * steps), weight_decay=0.0,
        train_sampling_strategy="group_by_length", length_column_name="input_length", bf16=bf16,
        use_cpu=not torch.cuda.is_available(), save_strategy="no", eval_strategy="no", logging_strategy="no",
        report_to=[], disable_tqdm=True, seed=seed, dataloader_num_workers=0)
    collator = DataCollatorCTCWithPadding(processor)
    times = StepTimes()
    trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=rows,
                      processing_class=processor.feature_extractor, callbacks=[times])
    trainer.train()
    return times.ends, collator.seen[:steps]
