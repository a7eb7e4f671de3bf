"""``speechtl pretrain``: wav2vec 2.0's self-supervised objective on untranscribed audio, before fine-tuning.

Continued pretraining on a user's own in-domain audio (Robust wav2vec 2.0, Hsu et al. 2021) moves a model's
encoder toward that audio before ``speechtl adapt`` spends the few labelled minutes. The objective is
transformers' ``Wav2Vec2ForPreTraining`` as its ``run_wav2vec2_pretraining_no_trainer.py`` example trains it:
spans of encoder frames are masked (``--mask-prob``, ``--mask-length``), the context network must pick each
masked frame's quantized latent among ``--num-negatives`` distractors from the same utterance (contrastive
loss), a diversity term keeps the codebook in use, the Gumbel temperature decays per step, and
loss = contrastive + ``--diversity-weight`` · diversity, divided by the number of masked frames.

Audio is decoded once (``data.dataset.load_utterance_audio``), batched by length under a seconds budget, and a
held-out share gives a validation loss every ``--eval-every`` steps, with its masks drawn from a fixed seed so the
values compare across steps. Checkpoints (``adapt.checkpoint``) make ``--resume`` exact; a resume with other
settings is refused, naming them. The output folder is a ``Wav2Vec2ForCTC`` model (:mod:`.pretrain_model`) plus
``pretrain_log.jsonl``, ``pretrain_loss.png`` (with matplotlib) and ``pretrain_config.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from speechtl.adapt.config import PretrainConfig
from speechtl.adapt.checkpoint import check_made_with, load_checkpoint, save_checkpoint
from speechtl.adapt.pretrain_model import contrastive_loss, frame_counts, mask_and_negatives, min_frames, \
    plot_log, pretraining_model, save_ctc_folder
from speechtl.adapt.nonfinite import all_finite, check_skips, note_step, skipped_warning
from speechtl.adapt.train import use_device
from speechtl.adapt.train_config import RuntimeConfig
from speechtl.audio import AUDIO_SUFFIXES, SAMPLE_RATE, find_audio_files
from speechtl.config import ConfigError
from speechtl.data.dataset import ON_ERROR, AudioDataset, CtcCollator, length_grouped_batches, load_utterance_audio
from speechtl.data.manifest import Utterance, read_manifest
from speechtl.fileio import INCOMPLETE, atomic_write_json, atomic_write_text, remove_folders, remove_temporaries
from speechtl.models import load_model, uses_attention_mask
from speechtl.models.dropout import use_fast_dropout
from speechtl.models.pos_conv import use_fft_pos_conv
from speechtl.runtime import PRECISIONS, autocast, resolve_precision, set_threads

__all__ = ["PretrainConfig", "PretrainResult", "run_pretraining", "read_audio_inputs", "CHECKPOINT", "LOG_FILE",
           "PLOT_FILE"]

CHECKPOINT = "checkpoint"  # the state --resume continues from; removed once the model is saved
LOG_FILE, PLOT_FILE, CONFIG_FILE = "pretrain_log.jsonl", "pretrain_loss.png", "pretrain_config.json"
MANIFEST_SUFFIXES = (".jsonl", ".csv")
PLACEMENT = ("threads", "device", "resume")  # where and how a run computes, not what: a resume may change them


@dataclass
class PretrainResult:
    steps: int
    train_files: int
    held_out_files: int
    audio_s: float
    final_loss: float | None  # the mean training loss of the last logged window
    final_val_loss: float | None
    skipped: list[dict]  # {"id", "audio_path", "reason"}: unreadable (--on-error skip) or too short
    out: str
    wall_s: float
    plot: bool  # whether pretrain_loss.png was drawn (matplotlib installed)
    warnings: list[str] = field(default_factory=list)  # e.g. steps skipped for a non-finite loss (also in CONFIG_FILE)
    source_test: dict | None = None  # the CLI's --source-test: {"before", "after"} WER/CER (speechtl.pretrain)


@dataclass
class _State:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    log: list[dict] = field(default_factory=list)  # the lines of pretrain_log.jsonl so far
    window: list[dict] = field(default_factory=list)  # per-step figures not yet averaged into a log line
    skipped_steps: int = 0  # steps skipped for a non-finite loss or gradients (speechtl.adapt.nonfinite)
    skipped_in_a_row: int = 0
    first_skipped: dict | None = None  # {"step", "ids"}


def _validate(cfg: PretrainConfig) -> None:
    checks = [(cfg.steps >= 1, "--steps must be at least 1"), (cfg.lr > 0, "--lr must be positive"),
              (0 <= cfg.warmup < 1, "--warmup must be in [0, 1)"), (cfg.batch_seconds > 0, "--batch-seconds must be "
                                                                                             "positive"),
              (0 < cfg.mask_prob <= 1, "--mask-prob must be in (0, 1]"), (cfg.mask_length >= 1, "--mask-length must "
                                                                                                  "be at least 1"),
              (cfg.num_negatives >= 1, "--num-negatives must be at least 1"),
              (0 < cfg.gumbel_temp_min <= cfg.gumbel_temp_max, "need 0 < --gumbel-temp-min <= --gumbel-temp-max"),
              (0 < cfg.gumbel_temp_decay <= 1, "--gumbel-temp-decay must be in (0, 1]"),
              (0 <= cfg.held_out < 1, "--held-out must be in [0, 1)"), (cfg.eval_every >= 1, "--eval-every must be "
                                                                                              "at least 1"),
              (cfg.log_every >= 1, "--log-every must be at least 1"),
              (cfg.on_error in ON_ERROR, f"--on-error must be one of {ON_ERROR}"),
              (cfg.precision in PRECISIONS, f"--precision must be one of {PRECISIONS}")]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def read_audio_inputs(paths: Sequence[str]) -> list[Utterance]:
    """Audio files, folders (searched recursively) and manifests (transcripts ignored) as utterances to decode."""
    utts: list[Utterance] = []
    for p in map(Path, paths):
        if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            utts += [dataclasses.replace(u, text="") for u in read_manifest(p, require_text=False)]
        elif p.is_dir():
            files = find_audio_files([p])
            if not files:
                raise ConfigError(f"{p}: no audio files in this folder (suffixes: {', '.join(AUDIO_SUFFIXES)})")
            utts += [Utterance(f.as_posix(), f) for f in files]
        elif p.exists() and not p.is_file():
            raise ConfigError(f"{p}: neither an audio file, a folder nor a manifest")
        else:
            utts.append(Utterance(p.as_posix(), p))  # a missing file: load_audio names it
    ids = [u.id for u in utts]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"the audio {next(i for i in ids if ids.count(i) > 1)!r} is given twice")
    return utts


def _load_audio(cfg: PretrainConfig, paths: Sequence[str], ctc, progress: bool):
    """Decoded audio too long for one mask span, split into training and held-out; and what was skipped."""
    if not paths:
        raise ConfigError("give at least one audio file, folder or manifest")
    utts, audio, skipped = load_utterance_audio(read_audio_inputs(paths), cfg.on_error, progress, "loading audio")
    need = min_frames(cfg.mask_length)
    frames = frame_counts(ctc, [len(a) for a in audio]) if audio else []
    keep = [i for i, n in enumerate(frames) if n >= need]
    skipped += [{"id": utts[i].id, "audio_path": str(utts[i].audio_path),
                 "reason": f"{frames[i]} encoder frames, fewer than the {need} one mask span needs (--mask-length)"}
                for i, n in enumerate(frames) if n < need]
    if not keep:
        raise ConfigError(f"no usable audio left: {len(skipped)} file(s) skipped (unreadable, or too short for "
                          f"--mask-length {cfg.mask_length})")
    order = random.Random(cfg.seed).sample(keep, len(keep))
    n_held = min(int(round(cfg.held_out * len(keep))) or (1 if cfg.held_out > 0 else 0), len(keep) - 1)
    held, train = sorted(order[:n_held]), sorted(order[n_held:])
    return ([utts[i] for i in train], [audio[i] for i in train]), ([audio[i] for i in held]), skipped


@dataclass
class _Session:
    cfg: PretrainConfig
    accelerator: Accelerator
    model: torch.nn.Module  # prepared (DDP-wrapped under accelerate launch)
    raw: torch.nn.Module  # the Wav2Vec2ForPreTraining itself
    optimizer: torch.optim.Optimizer
    scheduler: object
    precision: str
    pass_mask: bool


def _session(cfg: PretrainConfig, ctc, processor, source: str) -> _Session:
    """Device, seed, pretraining model, optimizer and schedule, in this order (random draws depend on it)."""
    accelerator = Accelerator(cpu=use_device(RuntimeConfig(device=cfg.device)))
    set_seed(cfg.seed)
    raw = pretraining_model(ctc, source, cfg.from_scratch, cfg.mask_prob, cfg.mask_length, cfg.diversity_weight)
    freeze = cfg.freeze_feature_encoder if cfg.freeze_feature_encoder is not None else not cfg.from_scratch
    if freeze:
        raw.freeze_feature_encoder()
    use_fast_dropout(raw)  # torch's CPU masks are drawn one element at a time off Intel: models/dropout.py
    use_fft_pos_conv(raw)  # the positional convolution by FFT while training on CPU: models/pos_conv.py
    optimizer = torch.optim.AdamW([p for p in raw.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.98),
                                  eps=1e-6, weight_decay=cfg.weight_decay)
    n = accelerator.num_processes  # accelerate steps a prepared scheduler once per process
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup * cfg.steps) * n, cfg.steps * n)
    model, optimizer, scheduler = accelerator.prepare(raw.train(), optimizer, scheduler)
    return _Session(cfg, accelerator, model, raw, optimizer, scheduler,
                    resolve_precision(cfg.precision, accelerator.device), uses_attention_mask(processor))


def _forward(s: _Session, batch: dict) -> tuple[dict[str, torch.Tensor], int]:
    """The losses (``loss``, ``contrastive``, ``diversity``: sums over masked frames; ``perplexity``) on a padded
    batch with fresh masks and negatives, and the number of masked frames."""
    c, device = s.cfg, s.accelerator.device
    mask, negatives, _ = mask_and_negatives(s.raw, batch["attention_mask"], c.mask_prob, c.mask_length,
                                            c.num_negatives)
    with autocast(device, s.precision):  # the model's forward; the loss (contrastive_loss) in fp32
        out = s.model(batch["input_values"].to(device),
                      attention_mask=batch["attention_mask"].to(device) if s.pass_mask else None,
                      mask_time_indices=mask.to(device))
    return {**contrastive_loss(s.raw.config, out, mask, negatives), "perplexity": out.codevector_perplexity}, \
        int(mask.sum())


def _figures(losses: dict[str, torch.Tensor], n: int) -> dict:
    return {"loss": losses["loss"].item() / n, "contrastive": losses["contrastive"].item() / n,
            "diversity": losses["diversity"].item() / n, "perplexity": losses["perplexity"].item()}


def _step(s: _Session, batch: dict, state: _State) -> dict | None:
    """One optimizer step at Gumbel temperature max(max · decay^step, min); the step's figures, or None when its
    loss or gradients were not finite and the update was skipped (as in fine-tuning: speechtl.adapt.nonfinite;
    the schedule goes on, so a resume stays exact)."""
    c = s.cfg
    temperature = max(c.gumbel_temp_max * c.gumbel_temp_decay ** state.step, c.gumbel_temp_min)
    s.raw.set_gumbel_temperature(temperature)
    lr = s.scheduler.get_last_lr()[0]
    losses, n = _forward(s, batch)
    s.accelerator.backward(losses["loss"] / n)
    grad_norm = s.accelerator.clip_grad_norm_([p for p in s.raw.parameters() if p.requires_grad],
                                              c.max_grad_norm or float("inf"))
    stepped = all_finite(s.accelerator, bool(torch.isfinite(losses["loss"].detach())), torch.as_tensor(grad_norm))
    if stepped:
        s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad()
    note_step(state, stepped, batch["ids"])
    check_skips(state, batch["ids"], lr, s.precision, "")
    return {**_figures(losses, n), "gumbel_temp": temperature, "lr": lr} if stepped else None


@contextlib.contextmanager
def _fixed_rng(seed: int, device: torch.device):
    """Draws inside come from ``seed``; the global torch and numpy RNG continue afterwards as if nothing was drawn."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def _validation(s: _Session, batches: list[dict]) -> dict:
    """Loss per masked frame on the held-out audio (eval mode: hard codevectors, no dropout; fixed masks)."""
    sums, frames = {"loss": 0.0, "contrastive": 0.0, "diversity": 0.0}, 0
    s.model.eval()
    with torch.no_grad(), _fixed_rng(s.cfg.seed, s.accelerator.device):
        for batch in batches:
            losses, n = _forward(s, batch)
            for k, v in _figures(losses, 1).items():
                if k in sums:
                    sums[k] += v
            frames += n
    s.model.train()
    return {f"val_{k}": round(v / frames, 5) for k, v in sums.items()}


def _log_line(state: _State) -> None:
    """The window's steps averaged into one log line."""
    w, state.window = state.window, []
    line = {"step": state.step, **{k: round(float(np.mean([e[k] for e in w])), 5) for k in w[0]}}
    line["lr"] = w[-1]["lr"]
    state.log.append(line)


def _write_log(out: Path, log: list[dict]) -> None:
    atomic_write_text(out / LOG_FILE, "".join(json.dumps(e) + "\n" for e in log))


def made_with(cfg: PretrainConfig, model: str, utts: Sequence[Utterance], audio: Sequence[np.ndarray]) -> dict:
    """What shapes the weights: every setting but placement, the start model, and a digest of the training audio."""
    digest = hashlib.sha256()
    for u, a in zip(utts, audio):
        digest.update(f"{u.id}\t{len(a)}\n".encode())
    settings = {k: v for k, v in asdict(cfg).items() if k not in PLACEMENT}
    return json.loads(json.dumps({**settings, "model": model, "train_files": len(utts),
                                  "train_digest": digest.hexdigest()[:16]}))


def _loop(s: _Session, state: _State, data: tuple, held: list[dict], feature_extractor, out: Path,
          made: dict, progress: bool, on_step: Callable[[_State], None] | None) -> None:
    c, (utts, audio) = s.cfg, data
    dataset, collate = AudioDataset(utts, audio=audio), CtcCollator(feature_extractor)
    bar = tqdm(total=c.steps, initial=state.step, desc="pretraining", unit="step",
               disable=not (progress and s.accelerator.is_main_process))
    start, before = time.perf_counter(), state.elapsed_s
    while state.step < c.steps:
        batches = length_grouped_batches([len(a) / SAMPLE_RATE for a in audio], c.batch_seconds,
                                         seed=c.seed * 100_003 + state.epoch)
        # own generator: creating a loader must not draw from the global RNG, or resuming would diverge
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches[state.batch_in_epoch:], collate_fn=collate,
                                             generator=torch.Generator().manual_seed(c.seed))
        for batch in s.accelerator.prepare_data_loader(loader, device_placement=False):
            figures = _step(s, batch, state)
            state.step += 1
            state.batch_in_epoch += s.accelerator.num_processes
            bar.update(1)
            if figures is not None:
                state.window.append(figures)
                bar.set_postfix(loss=f"{figures['loss']:.3f}", refresh=False)
            if (state.step % c.log_every == 0 or state.step == c.steps) and state.window:
                _log_line(state)
            if state.step % c.eval_every == 0 or state.step == c.steps:
                if held:
                    state.log.append({"step": state.step, **_validation(s, held)})
                state.elapsed_s = before + time.perf_counter() - start
                _checkpoint(s, state, out, made)
            if on_step is not None:
                on_step(state)
            if state.step >= c.steps:
                break
        else:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    bar.close()


def _checkpoint(s: _Session, state: _State, out: Path, made: dict) -> None:
    if s.accelerator.is_main_process:
        save_checkpoint(out / CHECKPOINT, s.raw, s.optimizer, s.scheduler, asdict(state), made)
        _write_log(out, state.log)
    s.accelerator.wait_for_everyone()


def run_pretraining(model: str, audio: Sequence[str], out: str | os.PathLike, cfg: PretrainConfig = PretrainConfig(),
                    progress: bool = True, on_step: Callable[[_State], None] | None = None) -> PretrainResult:
    """Pretrain ``model`` (a wav2vec2 CTC model: folder, hub id or shipped name) on ``audio`` (files, folders,
    manifests) and save it as a ``Wav2Vec2ForCTC`` folder at ``out`` that ``speechtl adapt --model`` takes."""
    _validate(cfg)
    began, out = time.perf_counter(), Path(out)
    set_threads(cfg.threads)
    ctc, processor = load_model(model)
    data, held_audio, skipped = _load_audio(cfg, audio, ctc, progress)
    collate = CtcCollator(processor.feature_extractor)
    held = [collate([{"id": str(i), "audio": held_audio[i]} for i in b])
            for b in length_grouped_batches([len(a) / SAMPLE_RATE for a in held_audio], cfg.batch_seconds, seed=None)]
    s = _session(cfg, ctc, processor, str(model))
    made, state = made_with(cfg, str(model), *data), _State()
    if cfg.resume and (out / CHECKPOINT / "trainer_state.json").is_file():
        check_made_with(out / CHECKPOINT, made)
        state = _State(**load_checkpoint(out / CHECKPOINT, s.raw, s.optimizer, s.scheduler))
        s.accelerator.print(f"resuming from step {state.step} ({out / CHECKPOINT})")
    _loop(s, state, data, held, processor.feature_extractor, out, made, progress, on_step)
    plot, skipped_steps = False, skipped_warning(state.skipped_steps, state.step, state.first_skipped)
    warnings = [skipped_steps] if skipped_steps else []
    if s.accelerator.is_main_process:
        plot = _save(s, state, ctc, processor, out, {"model": str(model), "audio": [str(a) for a in audio],
                                                     "settings": asdict(cfg), "skipped": skipped,
                                                     "skipped_steps": state.skipped_steps, "warnings": warnings})
    s.accelerator.wait_for_everyone()
    train_lines, val_lines = [e for e in state.log if "loss" in e], [e for e in state.log if "val_loss" in e]
    return PretrainResult(state.step, len(data[0]), len(held_audio), round(sum(len(a) for a in data[1]) / SAMPLE_RATE, 2),
                          train_lines[-1]["loss"] if train_lines else None,
                          val_lines[-1]["val_loss"] if val_lines else None, skipped, str(out),
                          round(time.perf_counter() - began, 2), plot, warnings)


def _save(s: _Session, state: _State, ctc, processor, out: Path, record: dict) -> bool:
    """The CTC model folder, the log, the plot and the settings; then the checkpoint goes (main process only)."""
    atomic_write_text(out / INCOMPLETE, f"pid {os.getpid()} was writing this folder; if it stopped, run the same "
                                        f"speechtl pretrain command with --resume to finish it\n")
    remove_temporaries(out)  # what a run killed midway left: a half-written checkpoint, model, log
    save_ctc_folder(s.raw, ctc, processor, out, keep_head=not s.cfg.from_scratch)
    _write_log(out, state.log)
    plot = plot_log(state.log, out / PLOT_FILE)
    if not plot:
        (out / PLOT_FILE).unlink(missing_ok=True)  # never leave an older run's figure behind
    atomic_write_json(out / CONFIG_FILE, record)
    (out / INCOMPLETE).unlink()
    remove_folders(out, (CHECKPOINT,))
    return plot
