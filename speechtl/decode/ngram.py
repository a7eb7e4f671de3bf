"""Word n-gram language models: count text, smooth with interpolated modified Kneser–Ney, write ARPA.

Hand-written because no pip package builds ARPA files offline: KenLM's ``lmplz`` is a C++ tool
outside its pip bindings (which only query), and ``nltk.lm`` has no ARPA export. The estimate follows
Chen & Goodman (1998) as ``lmplz`` does: continuation ("adjusted") counts below the highest order
(raw counts for n-grams starting with ``<s>``), three discounts per order from counts-of-counts, each
order interpolated with the next lower one, the unigrams with a uniform distribution over the
vocabulary (``<unk>`` included). In ARPA form an n-gram stores its interpolated probability and a
context stores its interpolation weight as backoff, so a backoff reader computes the same model.

Text is normalised with :func:`speechtl.text.normalize`, one sentence per line.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from speechtl.config import ConfigError
from speechtl.fileio import atomic_write_text
from speechtl.errors import SpeechtlError
from speechtl.text import normalize, read_utf8, utf8_lines

__all__ = ["BOS", "EOS", "UNK_WORD", "count_ngrams", "kneser_ney", "write_arpa", "build_arpa", "read_text_files",
           "arpa_vocabulary", "check_order", "FALLBACK_DISCOUNTS", "MIN_ORDER", "MAX_ORDER", "LmError"]

BOS, EOS, UNK_WORD = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # used for an order whose counts-of-counts cannot give discounts (tiny text)
LOG10_ZERO = -99.0  # ARPA's "probability zero" (<s> is never predicted)
MIN_ORDER, MAX_ORDER = 2, 6  # what the decoder reads: KenLM's probing model needs bigrams; built for ≤ 6-grams


class LmError(SpeechtlError, ValueError):
    """An LM file cannot be used with this model; the message says why."""

Gram = tuple[str, ...]


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of every 1..order-gram of ``<s> words </s>``; element n-1 holds the n-grams."""
    counts = [Counter() for _ in range(order)]
    for words in sentences:
        toks = (BOS, *words, EOS)
        for n in range(1, order + 1):
            c = counts[n - 1]
            for i in range(len(toks) - n + 1):
                c[toks[i : i + n]] += 1
    return counts


def _adjusted(raw: list[Counter]) -> list[Counter]:
    """Continuation counts below the highest order (distinct left neighbours); raw counts at the top and after <s>."""
    adj = [Counter() for _ in raw]
    adj[-1] = raw[-1]
    for n in range(len(raw) - 1):
        left = Counter(g[1:] for g in raw[n + 1])
        adj[n] = Counter({g: (c if g[0] == BOS else left[g]) for g, c in raw[n].items()})
    return adj


def _discounts(counts: Counter) -> tuple[float, float, float]:
    """D1, D2, D3+ from counts-of-counts (Chen & Goodman); the fallback where they are undefined."""
    t = Counter(min(c, 4) for c in counts.values())
    t1, t2, t3, t4 = (t[k] for k in (1, 2, 3, 4))
    if not (t1 and t2 and t3 and t4):
        return FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    return d if all(0 < dk < k for k, dk in enumerate(d, 1)) else FALLBACK_DISCOUNTS


def kneser_ney(raw: list[Counter]) -> tuple[list[dict[Gram, float]], list[dict[Gram, float]]]:
    """Interpolated modified Kneser–Ney: per order, {n-gram: probability} and {context: backoff weight}."""
    adj = _adjusted(raw)
    vocab = {g[0] for g in raw[0]} - {BOS} | {UNK_WORD}
    probs: list[dict[Gram, float]] = []
    backoffs: list[dict[Gram, float]] = [dict() for _ in raw]
    for n, counts in enumerate(adj, 1):
        counts = Counter({g: c for g, c in counts.items() if g[-1] != BOS})
        d = _discounts(counts)
        totals: dict[Gram, float] = defaultdict(float)
        freed: dict[Gram, float] = defaultdict(float)
        for g, c in counts.items():
            totals[g[:-1]] += c
            freed[g[:-1]] += d[min(c, 3) - 1]
        gamma = {h: freed[h] / totals[h] for h in totals}
        p: dict[Gram, float] = {}
        for g, c in counts.items():
            h = g[:-1]
            lower = probs[-1][g[1:]] if n > 1 else 1.0 / len(vocab)
            p[g] = (c - d[min(c, 3) - 1]) / totals[h] + gamma[h] * lower
        if n == 1:
            p.setdefault((UNK_WORD,), gamma[()] / len(vocab))  # never seen: its share of the uniform mass
        else:
            backoffs[n - 2] = gamma
        probs.append(p)
    return probs, backoffs


def write_arpa(probs: list[dict[Gram, float]], backoffs: list[dict[Gram, float]], path: str | Path) -> None:
    """ARPA text: ``\\data\\`` counts, then per order ``log10 p <tab> words [<tab> log10 backoff]``."""
    grams = [dict(p) for p in probs]
    grams[0][(BOS,)] = 0.0
    lines = ["", "\\data\\"] + [f"ngram {n}={len(g)}" for n, g in enumerate(grams, 1)]
    for n, g in enumerate(grams, 1):
        lines += ["", f"\\{n}-grams:"]
        for gram in sorted(g):
            lp = LOG10_ZERO if gram == (BOS,) else math.log10(g[gram])
            line = f"{lp:.6f}\t{' '.join(gram)}"
            if n < len(grams) and gram in backoffs[n - 1]:
                line += f"\t{math.log10(backoffs[n - 1][gram]) if backoffs[n - 1][gram] > 0 else LOG10_ZERO:.6f}"
            lines.append(line)
    lines += ["", "\\end\\", ""]
    atomic_write_text(path, "\n".join(lines))


def read_text_files(paths: Sequence[str | Path]) -> list[list[str]]:
    """Normalised sentences (lists of words) from plain-text files, one sentence per line; blank lines dropped."""
    sentences = []
    for path in paths:
        text = read_utf8(path, ConfigError, "the LM text")
        sentences += [words for line in text.splitlines() if (words := normalize(line).split())]
    if not sentences:
        raise ConfigError(f"no words in {[str(p) for p in paths]}: an LM needs text, one sentence per line")
    return sentences


def check_order(order: int) -> int:
    """``order`` if the decoder can read an LM of it (:data:`MIN_ORDER`–:data:`MAX_ORDER`), else ConfigError."""
    if not MIN_ORDER <= order <= MAX_ORDER:
        raise ConfigError(f"an order-{order} LM: the decoder (KenLM in flashlight-text) reads orders {MIN_ORDER}–"
                          f"{MAX_ORDER} (it needs bigrams and was built for at most {MAX_ORDER}-grams)")
    return order


def build_arpa(sentences: Iterable[Sequence[str]], order: int, out: str | Path) -> dict:
    """Count, smooth and write an ARPA model; returns {"order", "sentences", "vocabulary", "ngrams"}."""
    check_order(order)
    if Path(out).is_dir():
        raise ConfigError(f"{out}: is a folder; the LM is one ARPA file: give a file path such as {Path(out) / 'lm.arpa'}")
    sentences = list(sentences)
    raw = count_ngrams(sentences, order)
    probs, backoffs = kneser_ney(raw)
    write_arpa(probs, backoffs, out)
    return {"order": order, "sentences": len(sentences), "vocabulary": len(probs[0]),
            "ngrams": [len(p) + (n == 0) for n, p in enumerate(probs)]}


def arpa_vocabulary(path: str | Path) -> list[str]:
    """The words of an ARPA file's unigram section (without ``<s>``, ``</s>``, ``<unk>``), after checking the
    header (``\\data\\``, one ``ngram N=count`` line per order, an order the decoder reads) and that the unigram
    section holds as many well-formed entries as the header counts; :class:`LmError` naming file and line."""
    lines = ((n, line.strip()) for n, line in utf8_lines(path, LmError, "the ARPA file"))
    lines = ((n, line) for n, line in lines if line)
    n, line = next(lines, (0, ""))
    if line != "\\data\\":
        raise LmError(f"{path}:{n}: not an ARPA file: it must start with \\data\\, found {line[:40]!r}")
    counts: list[int] = []
    for n, line in lines:
        if not line.startswith("ngram "):
            break
        head, _, count = line[6:].partition("=")
        if head.strip() != str(len(counts) + 1) or not count.strip().isdigit():
            raise LmError(f"{path}:{n}: expected 'ngram {len(counts) + 1}=COUNT' in the ARPA header, found {line!r}")
        counts.append(int(count))
    if not MIN_ORDER <= len(counts) <= MAX_ORDER:
        raise LmError(f"{path}: an order-{len(counts)} LM; the decoder reads orders {MIN_ORDER}–{MAX_ORDER} (build one "
                      f"with `speechtl lm build TEXT --order 3 --out LM`)")
    if line != "\\1-grams:":
        raise LmError(f"{path}:{n}: expected \\1-grams: after the ARPA header, found {line[:40]!r}")
    words, entries = [], 0
    for n, line in lines:
        if line.startswith("\\"):
            break
        fields = line.split()
        if len(fields) not in (2, 3) or not _is_number(fields[0]):
            raise LmError(f"{path}:{n}: a unigram entry is 'log10-prob WORD [log10-backoff]', found {line[:60]!r}")
        entries += 1
        if fields[1] not in (BOS, EOS, UNK_WORD):
            words.append(fields[1])
    if entries != counts[0]:
        raise LmError(f"{path}: the header counts {counts[0]} unigrams but the section holds {entries}")
    return words


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
