"""Beam-search CTC decoding with a word n-gram language model (torchaudio's flashlight-text decoder + KenLM).

The lexicon is the LM's own vocabulary spelled in the model's characters, each spelling ending in the
word delimiter ``|`` (without it the beam glues words together: en-us dev WER 7.9 % instead of 0.9 %),
so the decoder writes only words the LM knows (closed vocabulary: words with characters the model
cannot write are left out and counted). Long files are decoded in segments of at most ``SEGMENT_S`` seconds cut in pauses (runs of
blank or word-delimiter frames), so memory stays bounded; each segment's best path is then aligned
to the frames with ``torchaudio.functional.forced_align`` for word times and confidences.

Legend: T = frames, V = vocabulary.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from speechtl.decode.ngram import LmError, arpa_vocabulary
from speechtl.decode.timestamps import Word, words_from_frames
from speechtl.text import WORD_DELIMITER, text_to_model_alphabet
from speechtl.settings import LmSettings

__all__ = ["LmError", "LmSettings", "LmDecoder", "load_lm_decoder", "pause_segments", "SEGMENT_S"]

SEGMENT_S = 30.0  # longest stretch handed to the beam search at once




def pause_segments(ids: torch.Tensor, quiet: set[int], max_frames: int) -> list[tuple[int, int]]:
    """Cut ``range(len(ids))`` into spans of at most ``max_frames``, each cut in the longest quiet run
    (frames whose best token is in ``quiet``) of the second half of the span, else at its end."""
    n, start, spans = len(ids), 0, []
    is_quiet = np.isin(ids.numpy(), list(quiet))
    while n - start > max_frames:
        lo, hi = start + max_frames // 2, start + max_frames
        best, cut, run = 0, hi, 0
        for t in range(lo, hi):
            run = run + 1 if is_quiet[t] else 0
            if run > best:
                best, cut = run, t - run // 2
        spans.append((start, cut))
        start = cut
    spans.append((start, n))
    return spans


class LmDecoder:
    """Decodes (T, V) log-probabilities of one model with one ARPA file."""

    def __init__(self, lm_path: str | Path, tokenizer, settings: LmSettings = LmSettings()):
        from torchaudio.models.decoder import ctc_decoder  # needs flashlight-text

        vocab = tokenizer.get_vocab()
        self.tokenizer, self.settings = tokenizer, settings
        self.blank = tokenizer.pad_token_id
        self.delimiter = vocab.get(WORD_DELIMITER)
        if self.delimiter is None:
            raise LmError(f"the model has no word delimiter {WORD_DELIMITER!r} token; a word LM needs one")
        tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        words = arpa_vocabulary(lm_path)
        lines, self.unspellable = [], 0
        for w in words:
            spelled = text_to_model_alphabet(w, vocab)
            if all(c in vocab for c in spelled):
                lines.append(f"{w}\t{' '.join(spelled)} {WORD_DELIMITER}")  # a word ends with the delimiter
            else:
                self.unspellable += 1
        if not lines:
            raise LmError(f"{lm_path}: none of its {len(words)} words can be spelled with the model's characters")
        with tempfile.TemporaryDirectory() as tmp:
            lexicon = Path(tmp) / "lexicon.txt"
            lexicon.write_text("\n".join(lines) + "\n", encoding="utf-8")
            try:
                with _quiet_stderr():  # KenLM prints a loading bar to the C-level stderr
                    self.decoder = ctc_decoder(
                        lexicon=str(lexicon), tokens=tokens, lm=str(lm_path), nbest=1, beam_size=settings.beam_size,
                        beam_threshold=settings.beam_threshold, lm_weight=settings.lm_weight,
                        word_score=settings.word_score, blank_token=tokens[self.blank], sil_token=WORD_DELIMITER,
                        unk_word="<unk>",
                    )
            except (RuntimeError, ValueError) as e:
                reason = " ".join(str(e).split("threw ")[-1].split())[:300]  # KenLM's C++ location, then why
                raise LmError(f"{lm_path}: not a usable ARPA language model ({reason})") from e

    def best_tokens(self, log_probs: torch.Tensor) -> torch.Tensor:
        """The beam's best token sequence (blanks and repeats removed) for one (T, V) segment."""
        if len(log_probs) == 0:
            return torch.zeros(0, dtype=torch.long)
        hyps = self.decoder(log_probs[None].contiguous().float())
        return hyps[0][0].tokens.long() if hyps[0] else torch.zeros(0, dtype=torch.long)

    def text(self, log_probs: torch.Tensor) -> str:
        """Transcript of one utterance's (T, V) log-probabilities (no timing)."""
        tokens = self.best_tokens(log_probs).tolist()
        zeros = [0] * len(tokens)
        return " ".join(w.word for w in words_from_frames(tokens, zeros, zeros, zeros, self.tokenizer, 0.0, 0.0))

    def batch_decoder(self):
        """A ``decode`` function for :func:`speechtl.decode.transcribe_arrays`: logits (B, T, V), lengths → texts."""
        def decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
            log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
            return [self.text(lp[: int(n)]) for lp, n in zip(log_probs, lengths)]

        return decode

    def words(self, log_probs: torch.Tensor, frame_s: float, duration_s: float) -> list[Word]:
        """Timed words of a whole file, decoded segment by segment (cut in pauses)."""
        ids = log_probs.argmax(-1)
        max_frames = max(1, int(SEGMENT_S / frame_s))
        out: list[Word] = []
        for a, b in pause_segments(ids, {self.blank, self.delimiter}, max_frames):
            seg = log_probs[a:b]
            tokens = self.best_tokens(seg)
            tok, starts, ends, scores = self._align(seg, tokens)
            out += words_from_frames(tok, [s + a for s in starts], [e + a for e in ends], scores, self.tokenizer,
                                     frame_s, duration_s)
        return out

    def _align(self, seg: torch.Tensor, tokens: torch.Tensor) -> tuple[list[int], list[int], list[int], list[float]]:
        """Frame spans of ``tokens`` in ``seg`` by CTC forced alignment (merge_tokens gives mean probabilities)."""
        if len(tokens) == 0:
            return [], [], [], []
        try:
            frames, scores = AF.forced_align(seg[None], tokens[None].int(), blank=self.blank)
        except RuntimeError:  # no valid path (should not happen: the beam found one); no timing then
            return tokens.tolist(), [0] * len(tokens), [0] * len(tokens), [0.0] * len(tokens)
        spans = AF.merge_tokens(frames[0], scores[0].exp(), blank=self.blank)
        return [s.token for s in spans], [s.start for s in spans], [s.end for s in spans], [s.score for s in spans]


@contextlib.contextmanager
def _quiet_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.lru_cache(maxsize=4)
def _cached(lm_path: str, tokenizer_key: tuple, tokenizer, settings: LmSettings) -> LmDecoder:
    return LmDecoder(lm_path, tokenizer, settings)


def load_lm_decoder(lm_path: str | Path, tokenizer, settings: LmSettings = LmSettings()) -> LmDecoder:
    """An :class:`LmDecoder`, reused for the same file, vocabulary and settings (loading KenLM takes time)."""
    path = Path(lm_path)
    if not path.is_file():
        raise LmError(f"{path}: no such language model file (build one with `speechtl lm build TEXT --out LM`)")
    key = tuple(sorted(tokenizer.get_vocab().items()))
    return _cached(str(path.resolve()), key, tokenizer, settings)
