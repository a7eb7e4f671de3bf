"""Models to compare, their identity, and a hypothesis cache per (model, test set).

A model spec is ``[NAME=]MODEL[+ADAPTER]``: ``MODEL`` is a folder, a hub id or a shipped model
(``speechtl/en-us-synth``); ``+ADAPTER`` adds an adapter folder on top of the base model
(``speechtl/en-us-synth+runs/scot_adapter``); ``NAME=`` sets the name shown in the report.

The cache key hashes the model's identity (resolved path, and for each weight/config file its
SHA-256, or size and mtime above :data:`HASH_LIMIT_BYTES`; for hub ids the cached snapshot), the
adapter's, the test manifest's bytes, the audio files' sizes and mtimes, and the decoding precision.
So re-running ``speechtl compare`` with one more model decodes only that model.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from speechtl.config import ConfigError
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import Utterance
from speechtl.decode import transcribe_arrays
from speechtl.fileio import atomic_write_json
from speechtl.models import load_model, resolve  # resolve: shipped names → the folder inside the package
from speechtl.models.multiroute import MultiRoutedCTC
from speechtl.models.router import RoutedCTC

__all__ = ["ModelSpec", "split_name", "parse_model_spec", "fingerprint", "TestSet", "Decoding", "AudioCache",
           "model_hypotheses", "CACHE_VERSION"]

CACHE_VERSION = 1
HASH_LIMIT_BYTES = 256 * 2**20  # larger weight files are identified by size + mtime instead of a full hash
_NAME = re.compile(r"^[\w.\-]+$")
_IDENTITY_FILES = ("*.safetensors", "*.json", "*.txt", "router/*.safetensors", "router/*.json")  # router: routed runs


@dataclass(frozen=True)
class ModelSpec:
    spec: str  # as given on the command line
    name: str  # shown in the report
    base: str
    adapter: str | None = None


def split_name(spec: str) -> tuple[str | None, str]:
    """``NAME=REST`` → (NAME, REST); anything else (or an existing path) → (None, spec)."""
    if "=" in spec and not Path(spec).exists():
        head, tail = spec.split("=", 1)
        if _NAME.match(head) and tail:
            return head, tail
    return None, spec


def parse_model_spec(spec: str) -> ModelSpec:
    """``[NAME=]MODEL[+ADAPTER]``; a spec naming an existing path is taken whole."""
    name, rest = split_name(spec)
    base, adapter = rest, None
    if "+" in rest and not Path(rest).exists():
        base, adapter = rest.rsplit("+", 1)
        if not base or not adapter:
            raise ConfigError(f"model spec {spec!r}: use BASE+ADAPTER_FOLDER, e.g. speechtl/en-us-synth+runs/adapter")
        if not Path(adapter).is_dir():
            raise ConfigError(f"model spec {spec!r}: adapter folder not found: {adapter}")
    if name is None:
        short = lambda s: Path(s.rstrip("/")).name or s  # noqa: E731
        name = short(base) + (f"+{short(adapter)}" if adapter else "")
    return ModelSpec(spec=spec, name=name, base=base, adapter=adapter)


def _file_id(path: Path) -> str:
    st = path.stat()
    if st.st_size > HASH_LIMIT_BYTES:
        return f"size={st.st_size} mtime_ns={st.st_mtime_ns}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256=" + digest.hexdigest()


def fingerprint(name_or_path: str) -> dict:
    """What identifies a model's weights: its files (folder) or its cached snapshot (hub id)."""
    source = Path(resolve(name_or_path))
    if source.is_dir():
        files = sorted({p for pattern in _IDENTITY_FILES for p in source.glob(pattern)})
        return {"path": str(source.resolve()), "files": {p.relative_to(source).as_posix(): _file_id(p) for p in files}}
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, "config.json")
        snapshot = Path(cached).parent.name if isinstance(cached, str) else None
    except Exception:  # noqa: BLE001 (any hub-client problem: the id alone identifies the model)
        snapshot = None
    return {"hub_id": name_or_path, "snapshot": snapshot}


@dataclass(frozen=True)
class TestSet:
    name: str
    manifest: Path
    utts: tuple[Utterance, ...]

    def fingerprint(self) -> str:
        digest = hashlib.sha256(Path(self.manifest).read_bytes())
        for u in self.utts:
            p = Path(u.audio_path)
            st = p.stat() if p.is_file() else None
            digest.update(f"{p}\0{st.st_size if st else -1}\0{st.st_mtime_ns if st else -1}\n".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Decoding:
    batch_seconds: float
    precision: str  # resolved: "bf16" or "fp32"
    device: str
    route: bool = True  # False: routed run folders score their adapted model alone


def _cache_path(cache_dir: Path, identity: dict, test_set: TestSet, decoding: Decoding) -> Path:
    key = {"version": CACHE_VERSION, "model": identity, "test": test_set.fingerprint(),
           "precision": decoding.precision, "device_type": decoding.device.split(":")[0],
           **({} if decoding.route else {"route": False})}  # routed keys stay as they were
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir / f"{test_set.name}-{digest}.json"


class AudioCache:
    """Each test set's audio, decoded once per run and shared by every model."""

    def __init__(self, on_error: str, progress: bool):
        self.on_error, self.progress, self.sets = on_error, progress, {}

    def get(self, test_set: TestSet) -> tuple[list[Utterance], list[np.ndarray], list[dict]]:
        if test_set.name not in self.sets:
            self.sets[test_set.name] = load_utterance_audio(test_set.utts, self.on_error, self.progress,
                                                            f"loading {test_set.name}")
        return self.sets[test_set.name]


def _decode(spec: ModelSpec, loaded, test_set: TestSet, audio: AudioCache, decoding: Decoding, progress: bool) -> dict:
    model, processor = loaded
    utts, arrays, skipped = audio.get(test_set)
    out = transcribe_arrays(model, processor, arrays, decoding.batch_seconds, decoding.precision, progress,
                            desc=f"{spec.name} on {test_set.name}")
    entry = {"hyps": {u.id: t for u, t in zip(utts, out.texts)}, "skipped": skipped,
             "audio_s": out.audio_s, "compute_s": out.compute_s}
    if isinstance(model, (RoutedCTC, MultiRoutedCTC)):  # the share each adapted model (member) served
        entry["routing"] = model.pop_stats()
    return entry


def _load(spec: ModelSpec, device: str, route: bool = True):
    kwargs = ({"adapter": spec.adapter} if spec.adapter else {}) | ({} if route else {"route": False})
    model, processor = load_model(spec.base, **kwargs)
    model.to(device)
    return model, processor


def model_hypotheses(
    spec: ModelSpec,
    test_sets: Sequence[TestSet],
    cache_dir: Path,
    decoding: Decoding,
    audio: AudioCache,
    progress: bool = True,
) -> dict[str, dict]:
    """Raw hypotheses of one model on each test set, from the cache where the key matches, else decoded
    (the model is loaded only then). Each entry: hyps {id: text}, skipped, audio_s, compute_s, params, cached, and
    for a routed or combined model its ``routing`` shares (:meth:`MultiRoutedCTC.pop_stats`)."""
    identity = {"base": fingerprint(spec.base), "adapter": fingerprint(spec.adapter) if spec.adapter else None}
    loaded, results = None, {}
    for test_set in test_sets:
        path = _cache_path(cache_dir, identity, test_set, decoding)
        if path.is_file():
            results[test_set.name] = dict(json.loads(path.read_text(encoding="utf-8")), cached=True)
            continue
        if loaded is None:
            start = time.perf_counter()
            loaded = _load(spec, decoding.device, **({} if decoding.route else {"route": False}))
            load_s = time.perf_counter() - start
        entry = _decode(spec, loaded, test_set, audio, decoding, progress)
        entry.update(model=spec.spec, identity=identity, manifest=str(test_set.manifest), load_s=round(load_s, 2),
                     params=int(sum(p.numel() for p in loaded[0].parameters())), precision=decoding.precision,
                     device=decoding.device)
        atomic_write_json(path, entry)
        results[test_set.name] = dict(entry, cached=False)
    return results
