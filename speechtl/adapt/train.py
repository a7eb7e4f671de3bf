"""The fine-tuning loop: CTC on length-grouped batches, built on accelerate.

One loop serves every use (accent adaptation, training the shipped source model from scratch):
AdamW, linear warm-up then linear decay, optional gradient accumulation, bf16 autocast for the
forward pass with the loss in fp32 (:mod:`speechtl.adapt.losses`: CTC plus the regularisers the config
asks for; a step whose loss or gradients are not finite is skipped, :mod:`speechtl.adapt.nonfinite`), dev
evaluation every ``eval_every`` steps with the checkpoint choice in
:mod:`speechtl.adapt.select`, early stopping, and an atomically written checkpoint that ``resume=True``
continues from exactly (same data order, optimizer, scheduler and random state). ``accelerate launch``
runs it on several processes/GPUs with no code change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import extract_model_from_parallel, set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from speechtl.adapt.checkpoint import check_made_with, load_checkpoint, save_checkpoint
from speechtl.adapt.feature_cache import FEATURE_CACHE, training_inputs
from speechtl.adapt.losses import Objective, ctc_loss, distill_loss, l2sp_penalty, objective
from speechtl.adapt.nonfinite import NonFiniteTrainingError, all_finite, check_skips, note_step, skipped_warning
from speechtl.adapt.select import BEST, BEST_TARGET, BlankCollapseError, CheckpointSelector, DevSets, TrainState, \
    selection_criterion
from speechtl.adapt.strategies import apply_strategy, finish_strategy, param_groups
from speechtl.adapt.train_config import RuntimeConfig, TrainConfig, train_config, train_config_dict
from speechtl.config import ConfigError
from speechtl.data.augment import make_augment
from speechtl.data.dataset import AudioDataset, length_grouped_batches
from speechtl.data.manifest import Utterance
from speechtl.decode import forward_logits, uses_attention_mask
from speechtl.models.dropout import use_fast_dropout
from speechtl.models.pos_conv import use_fft_pos_conv
from speechtl.runtime import resolve_precision, set_threads

__all__ = ["TrainConfig", "train_config", "TrainData", "DevSets", "TrainResult", "BlankCollapseError",
           "NonFiniteTrainingError", "skipped_warning", "train",
           "ctc_loss", "l2sp_penalty", "distill_loss", "trainable_parameters", "use_device", "CHECKPOINT", "BEST",
           "BEST_TARGET"]

CHECKPOINT = "checkpoint"  # folder inside the run folder: the state to resume from


@dataclass
class TrainData:
    """The training utterances, their label ids and (optionally) their audio already loaded."""

    utts: Sequence[Utterance]
    labels: Sequence[Sequence[int]]
    audio: Sequence[np.ndarray] | None = None  # else read from disk as needed
    distill: Sequence[bool] | None = None  # per utterance: ``distill`` anchors it to the start (source replay)


@dataclass
class TrainResult:
    steps: int
    best_step: int | None
    best_alpha: float | None  # set when the returned weights interpolate start and a checkpoint
    best_dev_wer: float | None
    trainable_params: int
    wall_s: float
    history: list[dict]
    stopped_early: bool
    criterion: str | None = None  # how dev scores ranked checkpoints: "wer" or "cer" (select.selection_criterion)
    skipped_steps: int = 0  # optimizer steps skipped for a non-finite loss or gradients (adapt.nonfinite)
    first_skipped: dict | None = None  # the first of them: {"step", "ids"}
    earlier_s: float = 0.0  # of wall_s, the training seconds of earlier invocations (a resumed run; 0 otherwise)


@dataclass
class _Session:
    """Everything the loop works with, built once by :func:`_prepare`."""

    accelerator: Accelerator
    model: torch.nn.Module  # what trains (a peft wrapper for LoRA; DDP-wrapped under accelerate launch)
    raw_model: torch.nn.Module  # the same, unwrapped
    optimizer: torch.optim.Optimizer
    scheduler: object
    objective: Objective
    params: list[torch.Tensor]  # the trainable parameters (gradient clipping)
    start_weights: dict  # trainable parameters at the start (the WiSE-FT end point)
    precision: str
    pass_mask: bool
    distills: bool  # whether the objective has a distillation term
    made_with: dict  # the settings and data the checkpoint records (a resume with others is refused)
    loss_finite: bool = True  # every loss of the current accumulation window so far was finite


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _set_spec_augment(model, mask_time_prob: float, mask_feature_prob: float) -> None:
    """SpecAugment settings into the model config (<0 keeps the model's); adds the mask embedding if it lacks one."""
    for name, value in (("mask_time_prob", mask_time_prob), ("mask_feature_prob", mask_feature_prob)):
        if value >= 0:
            setattr(model.config, name, value)
    encoder = model.base_model
    if (model.config.mask_time_prob > 0 or model.config.mask_feature_prob > 0) and \
            getattr(encoder, "masked_spec_embed", None) is None:  # built without masking: add it as transformers would
        encoder.masked_spec_embed = torch.nn.Parameter(torch.empty(model.config.hidden_size).uniform_())


def _set_dropout(model, p: float) -> None:
    """Every dropout of the model to ``p`` (<0 keeps the model's): its ``nn.Dropout`` modules, the attention modules'
    probability (a float they pass to the attention function) and the config's ``*dropout`` fields, so a saved
    checkpoint says what it trained with. Called before the strategy wraps the model: LoRA's own dropout stays."""
    if p < 0:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = p
    for name in [k for k in model.config.to_dict() if k.endswith("dropout")]:
        setattr(model.config, name, p)


def _teacher(model, device):
    """A frozen copy of the starting model, in eval mode (no dropout, no SpecAugment), for ``distill``."""
    teacher = copy.deepcopy(model).to(device).eval()
    teacher.requires_grad_(False)
    return teacher


def _prepare(base, processor, cfg: TrainConfig, data: TrainData) -> _Session:
    """Seed, device, strategy, loss terms, optimizer and schedule — in this order (random draws depend on it)."""
    opt, rt, reg = cfg.optimiser, cfg.runtime, cfg.regularise
    set_threads(rt.threads)
    set_seed(rt.seed)
    accelerator = Accelerator(cpu=use_device(rt), gradient_accumulation_steps=opt.grad_accum)
    precision = resolve_precision(rt.precision, accelerator.device)
    _set_spec_augment(base, cfg.augment.mask_time_prob, cfg.augment.mask_feature_prob)
    _set_dropout(base, reg.dropout)
    use_fast_dropout(base)  # torch's CPU masks are drawn one element at a time off Intel: models/dropout.py
    use_fft_pos_conv(base)  # the positional convolution by FFT while training on CPU: models/pos_conv.py
    distills = bool(reg.distill and data.distill is not None and any(data.distill))
    teacher = _teacher(base, accelerator.device) if distills else None
    m = cfg.method
    model = apply_strategy(base, m.strategy, m.top_k, m.lora_r, m.lora_alpha, m.adapter_dim, m.freeze_feature_encoder)
    base.config.ctc_zero_infinity = True
    params = [p for p in model.parameters() if p.requires_grad]
    start_weights = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(param_groups(model, opt.lr, opt.layer_lr_decay), lr=opt.lr,
                                  weight_decay=opt.weight_decay)
    # accelerate steps a prepared scheduler once per process per optimizer step: count in those units
    n = accelerator.num_processes
    scheduler = get_linear_schedule_with_warmup(optimizer, int(opt.warmup_ratio * opt.max_steps) * n, opt.max_steps * n)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    pass_mask = uses_attention_mask(processor)
    loss = objective(base.config.pad_token_id, reg.l2sp, params, list(start_weights.values()), reg.distill, teacher,
                     pass_mask, precision)
    return _Session(accelerator, model, accelerator.unwrap_model(model), optimizer, scheduler, loss, params,
                    start_weights, precision, pass_mask, distills, made_with(cfg, data))


PLACEMENT = ("threads", "device", "cpu", "feature_cache_mb")  # where a run computes, not what: a resume may change them


def made_with(cfg: TrainConfig, data: TrainData) -> dict:
    """What shapes the trained weights: every setting but placement, and a digest of the training data."""
    digest = hashlib.sha256()
    for u, lab in zip(data.utts, data.labels):
        digest.update(f"{u.id}\t{list(lab)}\n".encode())
    settings = {k: v for k, v in train_config_dict(cfg).items() if k not in PLACEMENT}
    record = {**settings, "train_utterances": len(data.utts), "train_digest": digest.hexdigest()[:16]}
    return json.loads(json.dumps(record))  # as trainer_state.json gives it back (tuples become lists)


def padded_for_masking(model, batch: dict) -> dict:
    """The batch padded (zeros, outside every row's mask and frame count) to at least SpecAugment's time-mask length
    in frames, when the model masks time: transformers refuses to mask a batch shorter than one mask, which a batch of
    ~0.2-s clips (spoken digits, length-grouped together) is. Rows' valid lengths, and so the loss, are unchanged."""
    cfg = extract_model_from_parallel(model).config
    need = getattr(cfg, "mask_time_length", 0) if getattr(cfg, "mask_time_prob", 0.0) > 0 else 0
    if "extract_features" in batch:  # cached feature-encoder outputs (B, T, C)
        short = need - batch["extract_features"].shape[1]
        return batch if short <= 0 else \
            {**batch, "extract_features": torch.nn.functional.pad(batch["extract_features"], (0, 0, 0, short))}
    frames = extract_model_from_parallel(model)._get_feat_extract_output_lengths
    samples = width = batch["input_values"].shape[1]
    while int(frames(torch.tensor(samples))) < need:
        samples += math.prod(cfg.conv_stride)  # one more frame
    if samples == width:
        return batch
    return {**batch, **{k: torch.nn.functional.pad(batch[k], (0, samples - width))
                        for k in ("input_values", "attention_mask")}}


def _step(s: _Session, batch: dict, max_grad_norm: float) -> tuple[torch.Tensor, bool | None]:
    """Forward, loss, backward and (at the end of an accumulation) one optimizer step. Returns the loss and, at
    the end of an accumulation, whether the optimizer stepped (None before): a non-finite loss in the window or
    gradient norm skips the update, the schedule steps either way (:mod:`speechtl.adapt.nonfinite`)."""
    stepped = None
    batch = padded_for_masking(s.model, batch)
    with s.accelerator.accumulate(s.model):
        logits, lengths = forward_logits(s.model, batch, s.pass_mask, s.precision, fast=True)  # bf16: fast encoder
        loss = s.objective(batch, logits, lengths)
        s.accelerator.backward(loss)
        s.loss_finite = s.loss_finite and bool(torch.isfinite(loss.detach()))
        if s.accelerator.sync_gradients:
            norm = s.accelerator.clip_grad_norm_(s.params, max_grad_norm or math.inf)  # inf: the norm, no clipping
            stepped, s.loss_finite = all_finite(s.accelerator, s.loss_finite, norm), True
            if stepped:
                s.optimizer.step()
            s.scheduler.step()
        s.optimizer.zero_grad()
    return loss, stepped


def _evaluate(s: _Session, selector: CheckpointSelector, processor, state: TrainState, out_dir: Path,
              losses: list[float]) -> bool:
    """Score dev, keep the best qualifying weights, write the checkpoint. Returns True when early stopping triggers."""
    entry = {"step": state.step, "train_loss": round(float(np.mean(losses)), 4) if losses else None,
             "lr": s.scheduler.get_last_lr()[0]}
    stop = False
    if selector.dev.target:
        entry.update(selector.score(s.raw_model, processor, state))
        s.model.train()
        stop = selector.judge(entry, s.raw_model, state)
    state.history.append(entry)
    if s.accelerator.is_main_process:
        save_checkpoint(out_dir / CHECKPOINT, s.raw_model, s.optimizer, s.scheduler, asdict(state), s.made_with)
    s.accelerator.wait_for_everyone()
    selector.check_collapse(state)
    return stop


def use_device(runtime: RuntimeConfig) -> bool:
    """Prepare the process for ``runtime.device``; returns accelerate's ``cpu`` switch. Call before the first
    ``PartialState``/``Accelerator`` (the device is fixed then). ``cuda:N`` makes GPU N the current one."""
    device = "cpu" if runtime.cpu else runtime.device
    if device in ("auto", "cpu"):
        return device == "cpu"
    if device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device here (use --device auto or cpu)")
    if device != "cuda":
        index = int(device[5:])
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(index)
    return False


def train(model, processor, data: TrainData, out_dir: str | Path, cfg: TrainConfig, dev: DevSets | None = None,
          resume: bool = False, progress: bool = True, on_step: Callable[[TrainState], None] | None = None,
          on_finish: Callable[[torch.nn.Module], None] | None = None) -> TrainResult:
    """Fine-tune ``model`` in place; at the end it holds the chosen weights (:mod:`speechtl.adapt.select`:
    best target dev WER within the forgetting limit, the start under the guard; the last ones without dev).

    ``on_finish`` sees the module that trained (a peft wrapper for LoRA) holding the returned weights, before
    LoRA is merged (to keep an adapter artifact)."""
    start, out_dir, opt = time.perf_counter(), Path(out_dir), cfg.optimiser
    s = _prepare(model, processor, cfg, data)
    state = _resumed(s, out_dir) if resume else TrainState()
    elapsed_before = state.elapsed_s
    dataset, collate, features = _training_data(s, cfg, data, processor, out_dir, progress)
    selector = CheckpointSelector(dev or DevSets(), cfg.selection, opt.lr, opt.batch_seconds, s.precision, out_dir,
                                  s.accelerator.is_main_process)
    bar = tqdm(total=opt.max_steps, initial=state.step, desc="adapting", unit="step",
               disable=not (progress and s.accelerator.is_main_process))
    if selector.scores_start(state):
        _evaluate(s, selector, processor, state, out_dir, [])  # step 0: the starting model's scores
    s.model.train()
    try:
        stopped_early = _loop(s, cfg, [u.duration_s for u in data.utts], dataset, collate, selector, processor, state,
                              out_dir, bar, on_step, lambda: elapsed_before + time.perf_counter() - start)
    finally:
        if features is not None:
            features.close()
    bar.close()
    selector.finish(s.raw_model, processor, state, s.start_weights)
    return _finish(s, state, on_finish, stopped_early, elapsed_before + time.perf_counter() - start, elapsed_before)


def _loop(s: _Session, cfg: TrainConfig, durations_s: list[float], dataset, collate, selector: CheckpointSelector,
          processor, state: TrainState, out_dir: Path, bar, on_step, elapsed: Callable[[], float]) -> bool:
    """The epochs, until ``max_steps`` or early stopping (returns whether it stopped early). ``elapsed()``: the
    run's training seconds so far (resumed runs included)."""
    opt, losses, stopped_early, ids = cfg.optimiser, [], False, []
    while state.step < opt.max_steps and not stopped_early:
        batches = length_grouped_batches(durations_s, opt.batch_seconds,
                                         seed=cfg.runtime.seed * 100_003 + state.epoch)
        dataset.epoch = state.epoch
        # own generator: creating a loader must not draw from the global RNG (dropout), or resuming would diverge
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches[state.batch_in_epoch:], collate_fn=collate,
                                             generator=torch.Generator().manual_seed(cfg.runtime.seed))
        for batch in s.accelerator.prepare_data_loader(loader, device_placement=False):
            loss, stepped = _step(s, batch, opt.max_grad_norm)
            state.batch_in_epoch += s.accelerator.num_processes  # each process takes every n-th batch of the list
            ids += batch.get("ids", [])
            if math.isfinite(loss.item()):
                losses.append(loss.item())
            if stepped is None:
                continue
            state.step += 1
            note_step(state, stepped, ids)
            check_skips(state, ids, opt.lr, s.precision, cfg.augment.augment)
            ids = []
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if state.step % cfg.selection.eval_every == 0 or state.step == opt.max_steps:
                state.elapsed_s = elapsed()
                stopped_early = _evaluate(s, selector, processor, state, out_dir, losses)
                losses = []
                bar.set_postfix(loss=state.history[-1]["train_loss"], dev_wer=state.history[-1].get("dev_wer"))
            if on_step is not None:
                on_step(state)
            if state.step >= opt.max_steps or stopped_early:
                break
        else:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    return stopped_early


def _resumed(s: _Session, out_dir: Path) -> TrainState:
    """The loop state of the checkpoint in ``out_dir`` (weights, optimizer, scheduler and RNG restored), if any."""
    if not (out_dir / CHECKPOINT / "trainer_state.json").is_file():
        return TrainState()
    check_made_with(out_dir / CHECKPOINT, s.made_with)
    state = TrainState(**load_checkpoint(out_dir / CHECKPOINT, s.raw_model, s.optimizer, s.scheduler))
    s.accelerator.print(f"resuming from step {state.step} ({out_dir / CHECKPOINT})")
    return state


def _training_data(s: _Session, cfg: TrainConfig, data: TrainData, processor, out_dir: Path, progress: bool):
    """The training dataset and collator, cached feature-encoder outputs where valid (:mod:`.feature_cache`), and
    the feature store to close at the end (None without the cache)."""
    aug = cfg.augment
    dataset = AudioDataset(data.utts, data.labels, audio=data.audio,
                           transform=make_augment(aug.speed_perturb, aug.noise_snr_db, cfg.runtime.seed, aug.augment),
                           distill=data.distill if s.distills else None)
    say = s.accelerator.print if progress and s.accelerator.is_main_process else None
    return training_inputs(s.raw_model, processor, dataset, cfg.runtime, out_dir / FEATURE_CACHE, s.accelerator.device,
                           s.precision, s.pass_mask, s.accelerator.num_processes, say)


def _finish(s: _Session, state: TrainState, on_finish, stopped_early: bool, wall_s: float,
            earlier_s: float) -> TrainResult:
    trainable = trainable_parameters(s.raw_model)
    if on_finish is not None:
        on_finish(s.raw_model)
    finish_strategy(s.raw_model).eval()  # LoRA merged into the caller's model object
    return TrainResult(steps=state.step, best_step=state.best_step, best_alpha=state.best_alpha,
                       best_dev_wer=state.best_wer, trainable_params=trainable, wall_s=wall_s,
                       history=state.history, stopped_early=stopped_early,
                       criterion=selection_criterion(state.history), skipped_steps=state.skipped_steps,
                       first_skipped=state.first_skipped, earlier_s=earlier_s)
