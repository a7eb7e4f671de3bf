"""Several accents behind one router: the folder ``speechtl combine RUN1 RUN2 ... --out DIR`` writes.

Each RUN is a routed run folder (``speechtl adapt --route``: adapted model + ``router/``), all adapted from the
**same** base model (the routers' base digests must agree, and so must the vocabularies and text languages).
DIR holds one file, ``speechtl_multiroute.json`` (format ``speechtl-multiroute/1``): the base model, and per member
its name (an accent label: the most common ``accent`` of the run's training manifest, else the folder's name;
``NAME=RUN`` overrides it), the run folder's absolute path, its kind and the SHA-256 of each file it is served
from. No weights are copied: the members stay where they are, and a member whose files changed since is refused
when the folder loads (:func:`verify_member`). :mod:`speechtl.models.multiroute` serves the folder.

Kinds: ``lora`` / ``adapter`` (the run has ``adapter/``): only the adapter is loaded, over the one shared base;
``full`` (any other strategy): the member's whole adapted model, so memory grows with each full member.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

from speechtl.config import ConfigError
from speechtl.data.manifest import read_manifest
from speechtl.errors import SpeechtlError
from speechtl.fileio import atomic_write_json
from speechtl.models import ModelLoadError, TEXT_LANGUAGE_KEY, refuse_incomplete
from speechtl.models.adapter import ADAPTER_DIR
from speechtl.models.router import META as ROUTER_META, ROUTER_DIR, read_router_meta

__all__ = ["FORMAT", "MANIFEST", "combine_runs", "read_multiroute", "verify_member", "member_files"]

FORMAT = "speechtl-multiroute/1"
MANIFEST = "speechtl_multiroute.json"
_NAME = re.compile(r"^[\w.\-]+$")
_ADAPTER_META = "speechtl_adapter.json"


def member_files(run: Path) -> tuple[str, list[str]]:
    """The member's kind and the files (relative to ``run``) it is served from: its router, and its adapter or its
    whole model."""
    router = [f"{ROUTER_DIR}/{p.name}" for p in sorted((run / ROUTER_DIR).glob("*")) if p.is_file()]
    adapter_meta = run / ADAPTER_DIR / _ADAPTER_META
    if adapter_meta.is_file():
        strategy = _json(adapter_meta).get("strategy", "")
        files = [f"{ADAPTER_DIR}/{p.name}" for p in sorted((run / ADAPTER_DIR).glob("*")) if p.is_file()]
        return str(strategy), router + files
    model = [p.name for p in sorted(run.glob("model*.safetensors"))]
    return "full", router + ["config.json"] + model


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digests(run: Path, files: Sequence[str]) -> dict[str, str]:
    try:
        return {name: _sha256(run / name) for name in files}
    except OSError as e:
        raise ModelLoadError(f"{run}: cannot read {e.filename} ({e.strerror})") from e


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: unreadable ({type(e).__name__}: {e})") from e


def accent_label(run: Path) -> str:
    """The most common non-empty ``accent`` of the run's training manifest (``run_config.json``), else the folder
    name."""
    try:
        train = json.loads((run / "run_config.json").read_text(encoding="utf-8")).get("train") or ""
        accents = Counter(u.accent for u in read_manifest(train, check_files=False) if u.accent) if train else {}
    except (OSError, ValueError, SpeechtlError):  # the manifest moved or is gone: the folder names it
        accents = Counter()
    return accents.most_common(1)[0][0] if accents else run.resolve().name


def _split(spec: str) -> tuple[str | None, str]:
    """``NAME=RUN`` → (NAME, RUN); a spec naming an existing path is a run alone."""
    if "=" in spec and not Path(spec).exists():
        name, run = spec.split("=", 1)
        return name, run
    return None, spec


def _member(spec: str) -> dict:
    """The manifest entry of one ``[NAME=]RUN`` (refused unless RUN is a finished routed run folder)."""
    name, run = _split(spec)
    path = Path(refuse_incomplete(run))
    if not path.is_dir():
        raise ConfigError(f"{run}: not a folder; give routed run folders (speechtl adapt --route ... --out RUN)")
    meta = read_router_meta(path)
    if meta is None:
        raise ConfigError(f"{run}: not a routed run folder (no {ROUTER_DIR}/{ROUTER_META}): adapt with --route")
    name = name if name is not None else accent_label(path)
    if not _NAME.match(name):
        raise ConfigError(f"{run}: member name {name!r} is not letters, digits, '_', '.', '-': give NAME={run}")
    kind, files = member_files(path)
    return {"name": name, "path": str(path.resolve()), "kind": kind, "base_model": meta["base_model"],
            "base_weights_sha256": meta.get("base_weights_sha256"), "files": _digests(path, files),
            # a folder written before the language was recorded normalises as English, as evaluate reads it
            "text_language": _json(path / "config.json").get(TEXT_LANGUAGE_KEY) or "en",
            "vocab": _json(path / "vocab.json")}


def _check_members(members: list[dict]) -> None:
    """One base, one vocabulary, one text language, distinct names and folders: else one line naming the folder."""
    first = members[0]
    for m in members[1:]:
        if m["base_weights_sha256"] != first["base_weights_sha256"]:
            raise ConfigError(f"{m['path']}: adapted from {m['base_model']!r}, whose weights differ from the base "
                              f"of {first['path']} ({first['base_model']!r}): every member must be adapted from the "
                              f"same base model")
        for key, what in (("vocab", "vocabulary"), ("text_language", "text language")):
            if m[key] != first[key]:
                values = f" ({m[key]!r} vs {first[key]!r})" if key == "text_language" else ""
                raise ConfigError(f"{m['path']}: its {what} differs from {first['path']}'s{values}: members share "
                                  f"the base's CTC head layout and normaliser (adapt them with --vocab keep, one "
                                  f"language)")
    for key, what in (("path", "folder"), ("name", "name")):
        seen = Counter(m[key] for m in members)
        if (twice := [v for v, n in seen.items() if n > 1]):
            hint = "" if key == "path" else ": name members with NAME=RUN"
            raise ConfigError(f"{twice[0]}: the {what} of two members{hint}")


def combine_runs(specs: Sequence[str], out: str | Path, overwrite: bool = False) -> dict:
    """Write ``out/speechtl_multiroute.json`` for the routed runs ``specs`` (``[NAME=]RUN``); returns it. Every run
    is checked before anything is written. ``overwrite``: replace a combined folder already there."""
    if not specs:
        raise ConfigError("give at least one routed run folder to combine")
    out = Path(out)
    if any((out / f).exists() for f in ("config.json", "model.safetensors", "results.json")):
        raise ConfigError(f"{out}: holds a model or a run; give --out an empty or new folder")
    if (out / MANIFEST).exists() and not overwrite:
        raise ConfigError(f"{out}: holds a combined folder already; --overwrite to replace it")
    members = [_member(s) for s in specs]
    _check_members(members)
    first = members[0]
    manifest = {"format": FORMAT, "base_model": first["base_model"],
                "base_weights_sha256": first["base_weights_sha256"], "text_language": first["text_language"],
                "members": [{k: m[k] for k in ("name", "path", "kind", "files")} for m in members]}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def read_multiroute(folder: str | Path) -> dict | None:
    """The manifest of a combined folder, or None when ``folder`` is not one."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    meta = _json(path)
    members = meta.get("members") if isinstance(meta, dict) else None
    if meta.get("format") != FORMAT or not meta.get("base_model") or not isinstance(members, list) or not members \
            or not all(isinstance(m, dict) and {"name", "path", "kind", "files"} <= set(m) for m in members):
        raise ModelLoadError(f"{path} is not a {FORMAT} description (base model and members with name, path, kind, "
                             f"files)")
    return meta


def verify_member(member: dict, folder: str | Path) -> None:
    """Refuse a member whose files are not those ``speechtl combine`` hashed (retrained, edited, moved)."""
    run = Path(member["path"])
    if not run.is_dir():
        raise ModelLoadError(f"{folder}: member {member['name']!r} ({run}) is gone; combine the runs again")
    kind, files = member_files(run)
    now = _digests(run, files) if kind == member["kind"] else {}
    if now != member["files"]:
        changed = sorted(set(now) ^ set(member["files"]) | {f for f in now if now[f] != member["files"].get(f)})
        raise ModelLoadError(f"{folder}: member {member['name']!r} ({run}) changed since it was combined "
                             f"({', '.join(changed[:3]) or member['kind'] + ' → ' + kind}); combine the runs again")
