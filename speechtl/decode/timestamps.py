"""Words with start/end times and confidences from CTC output, and subtitle cues built from them.

Greedy path: per-frame argmax → ``torchaudio.functional.merge_tokens`` (token spans with the mean
probability over their frames) → words split at the word delimiter ``|``. A word's start is its first
character's first frame, its end one past its last character's last frame, times the frame duration
(the model's frame hop / 16 kHz = 20 ms for wav2vec2); its confidence is the mean of its characters'
probabilities. Beam-search hypotheses carry one frame per character (:func:`words_from_frames`).

Legend: T = frames, V = vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torchaudio.functional as AF

from speechtl.text import WORD_DELIMITER, normalize

__all__ = ["Word", "Cue", "greedy_words", "words_from_frames", "words_to_cues", "CUE_MAX_S", "CUE_MAX_CHARS",
           "CUE_GAP_S"]

CUE_MAX_S = 6.0  # a subtitle cue lasts at most this long
CUE_MAX_CHARS = 84  # ... and holds at most this many characters (two lines of 42)
CUE_GAP_S = 1.0  # a pause this long starts a new cue


@dataclass(frozen=True)
class Word:
    word: str  # normalised (lower case)
    start_s: float
    end_s: float
    confidence: float  # mean posterior probability of its characters, 0..1


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def _letters(tokenizer) -> dict[int, str]:
    """Token id → the text it writes; the word delimiter maps to ' ', special tokens are absent."""
    special = set(tokenizer.all_special_ids)
    out = {}
    for tok, i in tokenizer.get_vocab().items():
        if tok == WORD_DELIMITER:
            out[i] = " "
        elif i not in special:
            out[i] = tok
    return out


def words_from_frames(tokens: Sequence[int], starts: Sequence[int], ends: Sequence[int], scores: Sequence[float],
                      tokenizer, frame_s: float, duration_s: float, language: str | None = None) -> list[Word]:
    """Group character tokens (with frame spans [start, end) and probabilities) into timed words
    (each normalised with ``language``'s rules, :func:`speechtl.text.normalize`)."""
    letters = _letters(tokenizer)
    words: list[Word] = []
    chars: list[tuple[str, int, int, float]] = []

    def close() -> None:
        text = normalize("".join(c for c, *_ in chars), language)
        if text:
            start = min(chars[0][1] * frame_s, duration_s)
            end = min(max(chars[-1][2] * frame_s, start), duration_s)
            words.append(Word(text, round(start, 3), round(end, 3), round(sum(c[3] for c in chars) / len(chars), 4)))
        chars.clear()

    for tok, s, e, p in zip(tokens, starts, ends, scores):
        ch = letters.get(int(tok))
        if ch is None:
            continue
        if ch == " ":
            close()
        else:
            chars.append((ch, int(s), int(e), float(p)))
    if chars:
        close()
    return words


def greedy_words(log_probs: torch.Tensor, tokenizer, frame_s: float, duration_s: float,
                 language: str | None = None) -> list[Word]:
    """Best-path words of one file's (T, V) log-probabilities."""
    if len(log_probs) == 0:
        return []
    best, ids = log_probs.max(-1)
    spans = AF.merge_tokens(ids, best.exp(), blank=tokenizer.pad_token_id)
    return words_from_frames([s.token for s in spans], [s.start for s in spans], [s.end for s in spans],
                             [s.score for s in spans], tokenizer, frame_s, duration_s, language)


def words_to_cues(words: Sequence[Word], max_s: float = CUE_MAX_S, max_chars: int = CUE_MAX_CHARS,
                  gap_s: float = CUE_GAP_S) -> list[Cue]:
    """Subtitle cues: consecutive words until a pause, the time limit or the length limit."""
    cues: list[Cue] = []
    group: list[Word] = []
    for w in words:
        if group:
            text_len = sum(len(g.word) + 1 for g in group) + len(w.word)
            if w.start_s - group[-1].end_s >= gap_s or w.end_s - group[0].start_s > max_s or text_len > max_chars:
                cues.append(Cue(group[0].start_s, group[-1].end_s, " ".join(g.word for g in group)))
                group = []
        group.append(w)
    if group:
        cues.append(Cue(group[0].start_s, group[-1].end_s, " ".join(g.word for g in group)))
    return cues
