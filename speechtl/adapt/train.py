"""The fine-tuning loop: CTC on length-grouped batches, built on accelerate.

One loop serves every use (accent adaptation, training the shipped source model from scratch):
AdamW, linear warm-up then linear decay, optional gradient accumulation, bf16 autocast for the
forward pass with the CTC loss in fp32, dev WER every ``eval_every`` steps keeping the best weights,
early stopping, and an atomically written checkpoint that ``resume=True`` continues from exactly
(same data order, optimizer, scheduler and random state). ``accelerate launch`` runs it on several
processes/GPUs with no code change.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from speechtl.adapt.checkpoint import load_checkpoint, save_checkpoint, state_dict_cpu
from speechtl.adapt.strategies import apply_strategy, finish_strategy, param_groups
from speechtl.audio import load_audio
from speechtl.data.augment import make_augment
from speechtl.data.dataset import AudioDataset, CtcCollator, length_grouped_batches
from speechtl.data.manifest import Utterance
from speechtl.decode import forward_logits, uses_attention_mask
from speechtl.eval import evaluate
from speechtl.fileio import atomic_dir
from speechtl.runtime import resolve_precision, set_threads
from speechtl.errors import SpeechtlError

__all__ = ["TrainConfig", "TrainResult", "BlankCollapseError", "train", "ctc_loss", "l2sp_penalty", "distill_loss",
           "trainable_parameters"]

CHECKPOINT = "checkpoint"  # folder inside the run folder: the state to resume from
BEST = "best"  # folder inside the run folder: weights with the best dev WER so far
BEST_TARGET = "best_target"  # the best-on-target checkpoint whatever it forgot (the end point of interpolation)


@dataclass
class TrainConfig:
    lr: float = 1e-4  # peak learning rate (AdamW)
    max_steps: int = 300  # optimizer steps
    warmup_ratio: float = 0.1  # share of max_steps with linearly rising learning rate
    batch_seconds: float = 120.0  # padded audio seconds per batch (per process)
    grad_accum: int = 1  # batches per optimizer step
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = 50  # steps between dev evaluations and checkpoints
    patience: int = 0  # stop after this many evaluations without dev improvement (0: never)
    strategy: str = "full"  # what trains: full | top_k | head | lora | adapter (see speechtl.adapt.strategies)
    freeze_feature_encoder: bool = True  # keep the convolutional feature encoder fixed (strategy full)
    top_k: int = 2  # transformer layers trained by strategy top_k
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling numerator (update scale = alpha / r)
    adapter_dim: int = 32  # bottleneck width of strategy adapter
    guard: bool = True  # negative-transfer guard: the starting model competes with every checkpoint on dev
    max_forgetting: float = 0.05  # with a source dev set: allowed relative rise of its WER (inf: no limit)
    speed_perturb: list[float] = field(default_factory=list)  # speed factors, e.g. 0.9 1.0 1.1 (none: off)
    noise_snr_db: float = 0.0  # additive white noise at [snr, snr+10] dB (0: off)
    mask_time_prob: float = -1.0  # SpecAugment time masking in the model config (<0: keep the model's)
    mask_feature_prob: float = -1.0  # SpecAugment feature masking (<0: keep the model's)
    interpolate: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])  # WiSE-FT α for θ₀+α(θ_T−θ₀) (source dev only)
    layer_lr_decay: float = 1.0  # layer-wise lr decay: layer i of N trains at lr·decay^(N−i) (1: off; e.g. 0.8)
    l2sp: float = 0.0  # L2-SP: penalty l2sp·Σ(θ−θ₀)² pulling weights toward the starting model (fights forgetting)
    distill: float = 0.0  # weight of a KL term keeping outputs on source replay audio at the starting model's (0: off)
    precision: str = "auto"  # auto (bf16 where supported) | bf16 | fp32
    seed: int = 0
    threads: int = 0  # CPU threads for torch (0: torch's default)
    cpu: bool = False  # train on the CPU even when CUDA is present


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch's list already consumed (by all processes)
    best_wer: float | None = None
    best_cer: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    source_start_wer: float | None = None  # source dev WER of the starting model
    target_best_wer: float | None = None  # best target dev WER of any checkpoint, forgetting or not
    target_best_step: int | None = None
    best_alpha: float | None = None  # interpolation weight of the chosen weights (None: a checkpoint as trained)
    elapsed_s: float = 0.0  # training wall time up to the last checkpoint, summed over resumed runs
    history: list[dict] = field(default_factory=list)


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


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def ctc_loss(logits: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, label_lengths: torch.Tensor, blank: int):
    """Mean CTC loss per target token, always in fp32 (outside autocast). logits (B, T, V), labels (B, L) padded -100."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
        targets = labels.masked_select(labels >= 0)
        loss = F.ctc_loss(
            log_probs, targets, lengths, label_lengths, blank=blank, reduction="sum", zero_infinity=True
        )
    return loss / label_lengths.sum().clamp(min=1)


def l2sp_penalty(params: Sequence[torch.Tensor], start: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ‖θ − θ₀‖² over the trainable parameters (Li et al. 2018, "explicit inductive bias")."""
    return sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean KL(teacher ‖ student) per valid frame, in fp32 (learning without forgetting, Li & Hoiem 2016,
    on the source audio: the frame posteriors the source accent was decoded with stay where they were)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_p = F.log_softmax(logits.float(), dim=-1)
        log_q = F.log_softmax(teacher_logits.float(), dim=-1)
        kl = (log_q.exp() * (log_q - log_p)).sum(-1)  # (B, T)
        valid = torch.arange(kl.shape[1], device=kl.device)[None, :] < lengths[:, None].to(kl.device)
        return (kl * valid).sum() / valid.sum().clamp(min=1)


def _set_spec_augment(model, mask_time_prob: float, mask_feature_prob: float) -> None:
    """SpecAugment settings into the model config (<0 keeps the model's); adds the mask embedding if it lacks one."""
    for name, value in (("mask_time_prob", mask_time_prob), ("mask_feature_prob", mask_feature_prob)):
        if value >= 0:
            setattr(model.config, name, value)
    encoder = model.base_model
    if (model.config.mask_time_prob > 0 or model.config.mask_feature_prob > 0) and \
            getattr(encoder, "masked_spec_embed", None) is None:  # built without masking: add it as transformers would
        encoder.masked_spec_embed = torch.nn.Parameter(torch.empty(model.config.hidden_size).uniform_())


def train(
    model,
    processor,
    train_utts: Sequence[Utterance],
    labels: Sequence[Sequence[int]],
    out_dir: str | Path,
    cfg: TrainConfig,
    train_audio: Sequence[np.ndarray] | None = None,
    dev_utts: Sequence[Utterance] = (),
    dev_audio: Sequence[np.ndarray] | None = None,
    source_dev_utts: Sequence[Utterance] = (),
    source_dev_audio: Sequence[np.ndarray] | None = None,
    resume: bool = False,
    on_step: Callable[[TrainState], None] | None = None,
    progress: bool = True,
    on_finish: Callable[[torch.nn.Module], None] | None = None,
    distill: Sequence[bool] | None = None,
    score_with: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` in place; at the end it holds the best-dev weights (or the last ones without dev).

    ``train_audio``/``dev_audio``: the utterances' audio already loaded (else read from disk as needed).
    Checkpoints are chosen by target dev WER; with ``source_dev_utts`` only those whose source dev WER
    stays within ``cfg.max_forgetting`` of the start qualify, and with ``cfg.guard`` the starting
    model itself (step 0) is a candidate, so a run that cannot help returns the model it started from.
    ``on_finish`` sees the module that trained (a peft wrapper for LoRA) holding the returned weights, before
    LoRA is merged (to keep an adapter artifact). ``distill``: per training utterance, whether ``cfg.distill``
    anchors its frame posteriors to the starting model's (the source replay utterances). ``score_with``: what
    the dev sets score, given the weights in training (default: those weights; a routed run scores the routed
    system, :class:`speechtl.models.router.RoutedCTC`).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    set_threads(cfg.threads)
    set_seed(cfg.seed)
    accelerator = Accelerator(cpu=cfg.cpu, gradient_accumulation_steps=cfg.grad_accum)
    precision = resolve_precision(cfg.precision, accelerator.device)
    base = model  # the transformers model; `model` becomes what trains (a peft wrapper for LoRA)
    _set_spec_augment(base, cfg.mask_time_prob, cfg.mask_feature_prob)
    teacher = _teacher(base, accelerator.device) if cfg.distill and distill is not None and any(distill) else None
    model = apply_strategy(base, cfg.strategy, cfg.top_k, cfg.lora_r, cfg.lora_alpha, cfg.adapter_dim,
                           cfg.freeze_feature_encoder)
    base.config.ctc_zero_infinity = True
    params = [p for p in model.parameters() if p.requires_grad]
    start_weights = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
    start_params = list(start_weights.values())  # the L2-SP anchor, in `params` order
    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.layer_lr_decay), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    # accelerate steps a prepared scheduler once per process per optimizer step: count in those units
    n = accelerator.num_processes
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * cfg.max_steps) * n, cfg.max_steps * n)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    raw_model = accelerator.unwrap_model(model)

    state = TrainState()
    if resume and (out_dir / CHECKPOINT / "trainer_state.json").is_file():
        state = TrainState(**load_checkpoint(out_dir / CHECKPOINT, raw_model, optimizer, scheduler))
        accelerator.print(f"resuming from step {state.step} ({out_dir / CHECKPOINT})")
    elapsed_before = state.elapsed_s

    dataset = AudioDataset(train_utts, labels, audio=train_audio,
                           transform=make_augment(cfg.speed_perturb, cfg.noise_snr_db, cfg.seed),
                           distill=distill if teacher is not None else None)
    durations = [u.duration_s for u in train_utts]
    collate = CtcCollator(processor.feature_extractor)
    pass_mask = uses_attention_mask(processor)
    blank = base.config.pad_token_id
    dev = _DevSets(dev_utts, dev_audio, source_dev_utts, source_dev_audio, score_with)

    bar = tqdm(total=cfg.max_steps, initial=state.step, desc="adapting", unit="step",
               disable=not (progress and accelerator.is_main_process))
    losses: list[float] = []
    stopped_early = False
    if state.step == 0 and dev.target and (cfg.guard or dev.source):
        _evaluate_and_save(accelerator, model, raw_model, processor, optimizer, scheduler, state, cfg, out_dir,
                           dev, precision, losses)  # step 0: the starting model's scores
    model.train()
    while state.step < cfg.max_steps and not stopped_early:
        batches = length_grouped_batches(durations, cfg.batch_seconds, seed=cfg.seed * 100_003 + state.epoch)
        dataset.epoch = state.epoch
        # own generator: creating a loader must not draw from the global RNG (dropout), or resuming would diverge
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches[state.batch_in_epoch :],
                                             collate_fn=collate, generator=torch.Generator().manual_seed(cfg.seed))
        for batch in accelerator.prepare_data_loader(loader, device_placement=False):
            with accelerator.accumulate(model):
                logits, lengths = forward_logits(model, batch, pass_mask, precision)
                loss = ctc_loss(logits, lengths, batch["labels"].to(logits.device),
                                batch["label_lengths"].to(logits.device), blank)
                if cfg.l2sp:
                    loss = loss + cfg.l2sp * l2sp_penalty(params, start_params)
                if teacher is not None and batch["distill"].any():
                    rows = batch["distill"]
                    with torch.no_grad():
                        teacher_logits, _ = forward_logits(teacher, {k: batch[k][rows] for k in
                                                                     ("input_values", "attention_mask")},
                                                           pass_mask, precision)
                    loss = loss + cfg.distill * distill_loss(logits[rows.to(logits.device)], teacher_logits,
                                                             lengths[rows.to(lengths.device)])
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.batch_in_epoch += n  # each process takes every n-th batch of the epoch's list
            losses.append(loss.item())
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if state.step % cfg.eval_every == 0 or state.step == cfg.max_steps:
                state.elapsed_s = elapsed_before + time.perf_counter() - start
                stopped_early = _evaluate_and_save(
                    accelerator, model, raw_model, processor, optimizer, scheduler, state, cfg, out_dir,
                    dev, precision, losses,
                )
                losses = []
                bar.set_postfix(loss=state.history[-1]["train_loss"], dev_wer=state.history[-1].get("dev_wer"))
            if on_step is not None:
                on_step(state)
            if state.step >= cfg.max_steps or stopped_early:
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
    bar.close()

    if dev.source and cfg.interpolate and state.target_best_step is not None:
        last = state_dict_cpu(raw_model)
        _interpolate(raw_model, processor, dev, cfg, precision, state, accelerator, out_dir, start_weights)
        if state.best_step is None:  # nothing qualified (guard off): the last step's weights, as without it
            raw_model.load_state_dict(last)
    if state.best_step is not None and (out_dir / BEST / "model.safetensors").is_file():
        raw_model.load_state_dict(load_file(out_dir / BEST / "model.safetensors"))
    trainable = trainable_parameters(raw_model)
    if on_finish is not None:
        on_finish(raw_model)
    finish_strategy(raw_model).eval()  # LoRA merged into `base`, the caller's model object
    return TrainResult(
        steps=state.step,
        best_step=state.best_step,
        best_alpha=state.best_alpha,
        best_dev_wer=state.best_wer,
        trainable_params=trainable,
        wall_s=elapsed_before + time.perf_counter() - start,  # over all resumed runs
        history=state.history,
        stopped_early=stopped_early,
    )


def _teacher(model, device):
    """A frozen copy of the starting model, in eval mode (no dropout, no SpecAugment), for ``cfg.distill``."""
    teacher = copy.deepcopy(model).to(device).eval()
    teacher.requires_grad_(False)
    return teacher


class BlankCollapseError(SpeechtlError, RuntimeError):
    """Greedy outputs became (almost) all blank although the starting model wrote text: training is broken."""


BLANK_COLLAPSE_SHARE = 0.95  # share of empty dev transcripts that counts as collapse


def _blank_collapse(history: list[dict], cfg: TrainConfig) -> str:
    """A diagnosis when the latest dev evaluation is (almost) all blank and the (competent) starting model's was not."""
    start = next((h for h in history if h["step"] == 0 and "empty_share" in h), None)
    last = history[-1]
    if start is None or last["step"] == 0 or last.get("empty_share", 0) < BLANK_COLLAPSE_SHARE \
            or start["empty_share"] >= 0.5 or start["dev_wer"] >= 0.9:
        return ""  # a random or blank start (training from scratch) passes through a blank phase: normal
    return (f"blank collapse at step {last['step']}: {100 * last['empty_share']:.0f}% of dev transcripts are empty "
            f"(the starting model: {100 * start['empty_share']:.0f}%). Likely causes: learning rate too high "
            f"(--lr {cfg.lr:g}: try 3-10x lower, or a longer --warmup-ratio); too much SpecAugment masking "
            f"(--mask-time-prob, --mask-feature-prob); transcripts that do not match the audio or "
            f"the model's alphabet; audio too short for its transcripts (see results.json warnings). The best "
            f"weights so far are kept in the run folder's best/ and checkpoint/.")


class _DevSets:
    """The target dev set (checkpoint choice) and the optional source dev set (forgetting limit), loaded once."""

    def __init__(self, target, target_audio, source, source_audio, score_with=None):
        self.target, self.source = list(target), list(source)
        self.score_with = score_with or (lambda m: m)
        self.target_audio = target_audio if target_audio is not None else [load_audio(u.audio_path) for u in target]
        self.source_audio = source_audio if source_audio is not None else [load_audio(u.audio_path) for u in source]


def _score_dev(raw_model, processor, dev: _DevSets, cfg, precision, state: TrainState) -> dict:
    """Target dev WER/CER, source dev WER, and whether the weights stay within the forgetting limit."""
    raw_model = dev.score_with(raw_model)
    result = evaluate(raw_model, processor, dev.target, cfg.batch_seconds, precision, audio=dev.target_audio)
    empty = sum(not r["hypothesis"] for r in result.rows) / max(len(result.rows), 1)
    entry = {"dev_wer": result.wer, "dev_cer": result.cer, "empty_share": round(empty, 4), "qualifies": True}
    if dev.source:
        source_wer = evaluate(raw_model, processor, dev.source, cfg.batch_seconds, precision,
                              audio=dev.source_audio).wer
        entry["source_dev_wer"] = source_wer
        if state.source_start_wer is None and state.step == 0:
            state.source_start_wer = source_wer
        if state.source_start_wer is not None:
            entry["qualifies"] = source_wer <= state.source_start_wer * (1 + cfg.max_forgetting) + 1e-12
    return entry


def _keep_if_best(entry: dict, raw_model, state: TrainState, accelerator, out_dir: Path) -> bool:
    """Save the weights to BEST when they qualify and beat the best so far (target dev WER, then CER)."""
    if not entry["qualifies"] or (state.best_wer is not None and
                                  (entry["dev_wer"], entry["dev_cer"]) >= (state.best_wer, state.best_cer)):
        return False
    state.best_wer, state.best_cer, state.best_step = entry["dev_wer"], entry["dev_cer"], entry["step"]
    state.best_alpha = entry.get("alpha")
    if accelerator.is_main_process:
        with atomic_dir(out_dir / BEST) as tmp:
            save_file(state_dict_cpu(raw_model), tmp / "model.safetensors")
    return True


def _evaluate_and_save(
    accelerator, model, raw_model, processor, optimizer, scheduler, state, cfg, out_dir, dev, precision, losses,
) -> bool:
    """Score dev, keep the best qualifying weights, write the checkpoint. Returns True when early stopping triggers."""
    entry = {"step": state.step, "train_loss": round(float(np.mean(losses)), 4) if losses else None,
             "lr": scheduler.get_last_lr()[0]}
    stop = False
    if dev.target:
        entry.update(_score_dev(raw_model, processor, dev, cfg, precision, state))
        model.train()
        if state.step == 0 and not cfg.guard:
            entry["qualifies"] = False  # scored for the forgetting limit only; the start is no candidate
        if dev.source and state.step > 0 and (state.target_best_wer is None or entry["dev_wer"] < state.target_best_wer):
            state.target_best_wer, state.target_best_step = entry["dev_wer"], state.step  # for interpolation
            if accelerator.is_main_process:
                with atomic_dir(out_dir / BEST_TARGET) as tmp:
                    save_file(state_dict_cpu(raw_model), tmp / "model.safetensors")
        if _keep_if_best(entry, raw_model, state, accelerator, out_dir):
            state.bad_evals = 0
        elif state.step > 0:
            state.bad_evals += 1
            stop = bool(cfg.patience) and state.bad_evals >= cfg.patience
    state.history.append(entry)
    if accelerator.is_main_process:
        save_checkpoint(out_dir / CHECKPOINT, raw_model, optimizer, scheduler, asdict(state))
    accelerator.wait_for_everyone()
    collapse = _blank_collapse(state.history, cfg)
    if collapse:
        raise BlankCollapseError(collapse)
    return stop


@torch.no_grad()
def _interpolate(raw_model, processor, dev, cfg, precision, state, accelerator, out_dir, start_weights) -> None:
    """WiSE-FT (Wortsman et al. 2022): θ = θ₀ + α(θ_T − θ₀) between the start and the best-on-target
    checkpoint; each α that keeps the source within the forgetting limit competes for BEST."""
    raw_model.load_state_dict(load_file(out_dir / BEST_TARGET / "model.safetensors"))
    tuned = {k: v.detach().clone() for k, v in raw_model.named_parameters() if k in start_weights}
    named = dict(raw_model.named_parameters())
    for alpha in sorted(cfg.interpolate):
        for k, p0 in start_weights.items():
            named[k].copy_(p0 + alpha * (tuned[k] - p0))
        entry = {"step": state.target_best_step, "alpha": alpha,
                 **_score_dev(raw_model, processor, dev, cfg, precision, state)}
        state.history.append(entry)
        _keep_if_best(entry, raw_model, state, accelerator, out_dir)
