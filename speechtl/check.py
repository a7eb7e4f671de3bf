"""``speechtl check``: a pre-flight check of labelled manifests before training or scoring.

Per utterance: unreadable audio; sample rate and channels; duration too short for the transcript at
the model's frame rate (CTC needs a frame per character plus one between repeated characters),
duration outliers and a ``duration_s`` that disagrees with the file; empty or odd text; characters
outside the model's vocabulary. Per manifest: duplicate ids and duplicate audio (content hash).
Between roles (train / dev / test, from the flags or the file names): shared speakers, sentences
and audio. Errors make a run fail or its scores meaningless; warnings deserve a look.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from speechtl.audio import SAMPLE_RATE, AudioError, audio_info, load_audio
from speechtl.data.dataset import frames_needed
from speechtl.data.manifest import Utterance, read_manifest
from speechtl.decode.chunking import receptive_field
from speechtl.text import find_oov, normalize, text_to_model_alphabet

__all__ = ["Problem", "ManifestSummary", "CheckReport", "check_manifests", "role_clashes", "format_report",
           "infer_role", "short_name", "frames_for", "ROLES"]

ROLES = ("train", "dev", "test")
_ROLE_WORDS = {"train": "train", "training": "train", "dev": "dev", "valid": "dev", "validation": "dev",
               "val": "dev", "test": "test", "eval": "test", "evaluation": "test", "replay": "train"}
WAV2VEC2_CONV = ((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))  # (kernels, strides) of wav2vec2's feature encoder
OUTLIER_FACTOR = 3.0  # seconds per character this many times above/below the manifest's median
MIN_FOR_OUTLIERS = 10  # utterances needed before outliers are looked for
LONG_S = 60.0  # longer utterances are a memory risk in training
DURATION_TOLERANCE_S = 0.05
# Markup is bracketed or tagged ([noise], <unk>, {laughter}, (cough), ++NOISE++), never a bare word: "IF YOU
# MAKE ANY NOISE" is English.
_MARKUP = re.compile(r"[<>\[\]{}]|\((?:noise|laughter|laugh|unk|sil|cough|breath|um|uh)\)|\+\+\w+\+\+", re.I)
_REPEATS = re.compile(r"(\w)\1{3,}")


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    check: str  # e.g. "audio-unreadable", "too-short", "oov", "speaker-overlap"
    manifest: str
    utterance: str  # id, or "" for a problem of the whole manifest
    message: str


@dataclass
class ManifestSummary:
    manifest: str
    role: str  # train, dev, test or "" (unknown)
    num_utts: int = 0
    minutes: float = 0.0
    num_speakers: int = 0
    sampling_rates: dict[str, int] = field(default_factory=dict)  # "16000" → utterances
    channels: dict[str, int] = field(default_factory=dict)


@dataclass
class CheckReport:
    manifests: list[ManifestSummary]
    problems: list[Problem]
    model: str | None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def to_dict(self) -> dict:
        return {"model": self.model, "manifests": [asdict(m) for m in self.manifests],
                "problems": [asdict(p) for p in self.problems],
                "num_errors": len(self.errors), "num_warnings": len(self.warnings)}


def infer_role(path: str | Path) -> str:
    """train / dev / test from the words of the file name and its folder ("en-us-test-6min/manifest.jsonl")."""
    p = Path(path)
    words = re.split(r"[^a-z]+", f"{p.parent.name} {p.stem}".lower())
    found = [_ROLE_WORDS[w] for w in words if w in _ROLE_WORDS]
    return found[-1] if found else ""


def short_name(path: str | Path) -> str:
    """``folder/file`` for display."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def frames_for(num_samples: int, conv: tuple[Sequence[int], Sequence[int]] = WAV2VEC2_CONV) -> int:
    """Output frames of a wav2vec2-style conv feature encoder for ``num_samples`` at 16 kHz."""
    length = num_samples
    for kernel, stride in zip(*conv):
        length = (length - kernel) // stride + 1
    return max(length, 0)


def _odd_text(text: str) -> str:
    reasons = []
    if any(c.isdigit() for c in text):
        reasons.append("digits (spell numbers out as spoken)")
    if _MARKUP.search(text):
        reasons.append("markup or tags such as [noise] or <unk>")
    if any(unicodedata.category(c)[0] in "CS" and c not in "\t\n" for c in text):
        reasons.append("control characters or symbols")
    if _REPEATS.search(text):
        reasons.append("a character repeated 4+ times")
    return "; ".join(reasons)


class _Checker:
    """Accumulates problems; one method per check."""

    def __init__(self, model: str | None):
        self.problems: list[Problem] = []
        self.model_name, self.vocab, self.conv = model, None, WAV2VEC2_CONV
        if model:
            from speechtl.models import load_model

            net, processor = load_model(model)
            self.vocab = processor.tokenizer.get_vocab()
            self.conv = (tuple(net.config.conv_kernel), tuple(net.config.conv_stride))

    def add(self, severity: str, check: str, manifest: str, utt: str, message: str) -> None:
        self.problems.append(Problem(severity, check, manifest, utt, message))

    def text(self, name: str, u: Utterance) -> str | None:
        """The label (normalised, in the model's alphabet) or None when there is none."""
        if not normalize(u.text):
            what = "empty text" if not u.text.strip() else f"no words after normalisation ({u.text!r})"
            self.add("error", "empty-text", name, u.id, f"{what}: a labelled utterance needs a transcript")
            return None
        odd = _odd_text(u.text)
        if odd:
            self.add("warning", "odd-text", name, u.id, f"{odd}: {u.text!r}")
        label = normalize(u.text).replace(" ", "|")
        return text_to_model_alphabet(label, self.vocab) if self.vocab else label

    def audio(self, name: str, u: Utterance, label: str | None, summary: ManifestSummary) -> tuple[float, str] | None:
        """Reads the file; returns (seconds, content hash) or None when unreadable."""
        try:
            info = audio_info(u.audio_path)
            wav = load_audio(u.audio_path)
            digest = hashlib.sha256(Path(u.audio_path).read_bytes()).hexdigest()
        except AudioError as e:
            self.add("error", "audio-unreadable", name, u.id, str(e))
            return None
        summary.sampling_rates[str(info.sampling_rate)] = summary.sampling_rates.get(str(info.sampling_rate), 0) + 1
        summary.channels[str(info.channels)] = summary.channels.get(str(info.channels), 0) + 1
        if info.sampling_rate < SAMPLE_RATE:
            self.add("warning", "sample-rate", name, u.id, f"{info.sampling_rate} Hz: upsampled to {SAMPLE_RATE} Hz "
                     f"(narrow-band audio; expect higher error rates)")
        if info.channels > 1:
            self.add("warning", "channels", name, u.id, f"{info.channels} channels, averaged to mono (make sure the "
                     f"channels are not different speakers)")
        seconds = len(wav) / SAMPLE_RATE
        if u.duration_s is not None and abs(u.duration_s - seconds) > DURATION_TOLERANCE_S + 0.01 * seconds:
            self.add("warning", "duration-mismatch", name, u.id,
                     f"duration_s {u.duration_s:.2f} s but the file lasts {seconds:.2f} s")
        if seconds > LONG_S:
            self.add("warning", "long-audio", name, u.id, f"{seconds:.1f} s: split it (memory in training)")
        field = receptive_field(*self.conv)
        if len(wav) < field:
            self.add("error", "too-short", name, u.id,
                     f"{1000 * seconds:.1f} ms is shorter than the model's receptive field ({field} samples = "
                     f"{1000 * field / SAMPLE_RATE:.1f} ms): no output frame (adapt and evaluate refuse it; "
                     f"--on-error skip leaves it out)")
        elif label:
            frames, needed = frames_for(len(wav), self.conv), frames_needed(label)
            if frames < needed:
                self.add("error", "too-short", name, u.id,
                         f"{seconds:.2f} s gives {frames} frames but its {len(label)}-character transcript needs "
                         f"{needed} (CTC cannot align it; the audio is cut or the transcript belongs elsewhere)")
        return seconds, digest

    def outliers(self, name: str, rates: dict[str, float]) -> None:
        if len(rates) < MIN_FOR_OUTLIERS:
            return
        median = float(np.median(list(rates.values())))
        for uid, r in rates.items():
            if r > OUTLIER_FACTOR * median or r < median / OUTLIER_FACTOR:
                self.add("warning", "duration-outlier", name, uid,
                         f"{1000 * r:.0f} ms per character vs the manifest's median {1000 * median:.0f} ms "
                         f"(long silence, or a transcript that does not match the audio)")


def _duplicates(chk: _Checker, name: str, utts: list[Utterance], hashes: dict[str, str]) -> None:
    seen: set[str] = set()
    for u in utts:
        if u.id in seen:
            chk.add("error", "duplicate-id", name, u.id, f"id {u.id!r} occurs more than once")
        seen.add(u.id)
    by_hash: dict[str, list[str]] = defaultdict(list)
    for uid, digest in hashes.items():
        by_hash[digest].append(uid)
    for ids in by_hash.values():
        for uid in ids[1:]:
            chk.add("warning", "duplicate-audio", name, uid, f"same audio content as {ids[0]!r}")


def _overlaps(chk: _Checker, sets: dict[str, dict]) -> None:
    """Speakers, sentences and audio shared between manifests of different roles."""
    names = [n for n in sets if sets[n]["role"]]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = sets[a]["role"], sets[b]["role"]
            if ra == rb:
                continue
            pair = f"{short_name(a)} ({ra}) and {short_name(b)} ({rb})"
            leak = "error" if "train" in (ra, rb) else "warning"  # the same file in training and evaluation
            for kind, severity, key in (("speaker", "warning", "speakers"), ("sentence", "warning", "sentences"),
                                        ("audio", leak, "hashes")):
                shared = sorted(set(sets[a][key]) & set(sets[b][key]))
                if not shared:
                    continue
                examples = ", ".join(repr(s[:60]) for s in shared[:3]) if kind != "audio" else ""
                ids = [sets[b][key][s] for s in shared[:3]]
                chk.add(severity, f"{kind}-overlap", b, ", ".join(ids),
                        f"{len(shared)} {kind}{'s' if len(shared) > 1 else ''} in both {pair}"
                        + (f", e.g. {examples}" if examples else " (identical files)"))


def role_clashes(role_paths: Sequence[tuple[str, str]]) -> list[Problem]:
    """One manifest file given in two roles (``--train X --test X``): an error, since the check of the two as
    different sets would silently merge them into one."""
    seen: dict[str, tuple[str, str]] = {}
    problems = []
    for role, path in role_paths:
        key = os.path.realpath(path)
        if key in seen and seen[key][0] != role:
            problems.append(Problem("error", "same-file", str(path), "",
                                    f"given as both the {seen[key][0]} and the {role} set: a model scored on "
                                    f"its own training data says nothing about new speech"))
        seen.setdefault(key, (role, str(path)))
    return problems


def check_manifests(
    paths: Sequence[str], model: str | None = None, roles: dict[str, str] | None = None, progress: bool = False
) -> CheckReport:
    """Check every manifest; ``roles`` maps a path to train/dev/test (else inferred from its name)."""
    chk = _Checker(model)
    summaries, sets = [], {}
    for path in paths:
        name, role = str(path), (roles or {}).get(str(path)) or infer_role(path)
        summary = ManifestSummary(name, role)
        summaries.append(summary)
        utts = read_manifest(path, require_text=False, check_files=False, unique_ids=False)
        hashes, rates, seconds = {}, {}, 0.0
        for u in tqdm(utts, desc=f"checking {Path(path).name}", unit="utt", disable=not progress, leave=False):
            label = chk.text(name, u)
            got = chk.audio(name, u, label, summary)
            if got is None:
                continue
            seconds += got[0]
            hashes[u.id] = got[1]
            if label:
                rates[u.id] = got[0] / len(label)
        chk.outliers(name, rates)
        _duplicates(chk, name, utts, hashes)
        if chk.vocab is not None:
            oov = find_oov([(u.id, u.text) for u in utts], chk.vocab)
            for c, n in sorted(oov.chars.items()):
                chk.add("error", "oov", name, ", ".join(oov.utterances[c]),
                        f"{c!r} ×{n} is not in {model}'s vocabulary (training refuses it; scoring counts it wrong)")
        summary.num_utts, summary.minutes = len(utts), seconds / 60
        summary.num_speakers = len({u.speaker for u in utts if u.speaker})
        sets[name] = {"role": role, "speakers": {u.speaker: u.id for u in utts if u.speaker},
                      "sentences": {normalize(u.text): u.id for u in utts if normalize(u.text)},
                      "hashes": {h: uid for uid, h in hashes.items()}}
    _overlaps(chk, sets)
    return CheckReport(summaries, chk.problems, model)


def format_report(report: CheckReport, max_per_check: int = 10) -> str:
    """A readable table: manifests, then problems grouped by check (at most ``max_per_check`` listed each)."""
    lines = [f"{'manifest':<48} {'role':<5} {'utts':>6} {'min':>6} {'spk':>4}  sample rates / channels"]
    for m in report.manifests:
        rates = ", ".join(f"{r} Hz×{n}" for r, n in sorted(m.sampling_rates.items()))
        chans = ", ".join(f"{c} ch×{n}" for c, n in sorted(m.channels.items()))
        name = short_name(m.manifest)
        name = name if len(name) <= 48 else "…" + name[-47:]
        lines.append(f"{name:<48} {m.role or '?':<5} {m.num_utts:>6} {m.minutes:>6.1f} "
                     f"{m.num_speakers:>4}  {rates or '-'} / {chans or '-'}")
    groups: dict[tuple[str, str], list[Problem]] = defaultdict(list)
    for p in report.problems:
        groups[(p.severity, p.check)].append(p)
    for (severity, check), probs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "error", kv[0][1])):
        lines += ["", f"{severity.upper()} {check} ({len(probs)})"]
        for p in probs[:max_per_check]:
            where = short_name(p.manifest) + (f" {p.utterance}" if p.utterance else "")
            lines.append(f"  {where}: {p.message}")
        if len(probs) > max_per_check:
            lines.append(f"  … and {len(probs) - max_per_check} more (--output-format json lists all)")
    counts = Counter(p.severity for p in report.problems)
    vocab = f"; vocabulary and frame rate of {report.model}" if report.model else \
        "; no --model: no vocabulary check, frame rate of wav2vec2 (20 ms)"
    lines += ["", f"{counts['error']} error(s), {counts['warning']} warning(s){vocab}"]
    return "\n".join(lines)
