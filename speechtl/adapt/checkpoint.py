"""Training checkpoints: everything an exact resume needs, written atomically into one folder.

``model.safetensors`` (weights), ``optimizer.pt`` (AdamW state; loaded with ``weights_only=True``),
``rng.safetensors`` + ``trainer_state.json`` (torch/CUDA/numpy/python RNG, scheduler, loop state).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from speechtl.config import ConfigError
from speechtl.fileio import atomic_dir, atomic_write_json

__all__ = ["state_dict_cpu", "save_checkpoint", "load_checkpoint", "check_made_with"]


def _rng_state() -> tuple[dict, dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": _to_json(random.getstate())}
    return tensors, meta


def _to_json(x):
    return [_to_json(v) for v in x] if isinstance(x, tuple) else x


def _set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


def state_dict_cpu(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict, made_with: dict | None = None) -> None:
    """``state``: the training loop's own state as a JSON-able dict; ``made_with``: the settings and data that
    shaped it (a resume with others is refused, :func:`check_made_with`)."""
    with atomic_dir(folder) as tmp:
        save_file(state_dict_cpu(model), tmp / "model.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        rng_tensors, rng_meta = _rng_state()
        save_file(rng_tensors, tmp / "rng.safetensors")
        atomic_write_json(tmp / "trainer_state.json", {
            "state": state, "scheduler": scheduler.state_dict(), "rng": rng_meta, "made_with": made_with,
        })


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG in place; returns the loop state saved with them.
    A damaged or foreign file (a pickle that ``weights_only`` refuses, a cut-short safetensors) is a
    :class:`ConfigError` naming it."""
    meta = _trainer_state(folder)
    with _unusable(folder, "model.safetensors"):
        model.load_state_dict(load_file(folder / "model.safetensors"))
    with _unusable(folder, "optimizer.pt"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's pickle-protocol notes on a file refused anyway, or fine
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    with _unusable(folder, "trainer_state.json"):
        scheduler.load_state_dict(meta["scheduler"])
    with _unusable(folder, "rng.safetensors"):
        _set_rng_state(load_file(folder / "rng.safetensors"), meta["rng"])
    with _unusable(folder, "trainer_state.json"):
        return dict(meta["state"])


@contextlib.contextmanager
def _unusable(folder: Path, name: str):
    """Any failure to read ``folder/name`` as one line naming it, with the way out."""
    try:
        yield
    except (pickle.UnpicklingError, SafetensorError, OSError, EOFError, RuntimeError, ValueError, KeyError,
            TypeError, IndexError) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ConfigError(f"--resume: {folder / name} cannot be used ({type(e).__name__}: {reason}); it is damaged or "
                          f"not a speechtl checkpoint: remove the folder {folder} to train from the start") from e


def _trainer_state(folder: Path) -> dict:
    with _unusable(folder, "trainer_state.json"):
        meta = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        return meta


def check_made_with(folder: Path, made_with: dict) -> None:
    """Refuse to resume ``folder``'s checkpoint with other settings or data than it was made with, naming them
    (a checkpoint from before this record is accepted as it is)."""
    saved = _trainer_state(folder).get("made_with")
    if saved is None:
        return
    changed = [f"{k} {saved.get(k)!r} → {made_with.get(k)!r}" for k in sorted(set(saved) | set(made_with))
               if saved.get(k) != made_with.get(k)]
    if changed:
        raise ConfigError(f"--resume: the checkpoint in {folder} was made with other settings or data: "
                          f"{'; '.join(changed)}. Resume with the same ones, or train into a new --out")
