"""Settings and defaults that lower layers use and the command line shows, in a module that imports nothing heavy.

``speechtl.cli`` builds its whole parser (every verb's flags, defaults and choices) from torch-free modules, so
``speechtl --version`` and ``speechtl VERB --help`` start in well under a second; each verb imports torch and
the rest only when it runs. The values here are re-exported where they are used (:mod:`speechtl.runtime`,
:mod:`speechtl.decode.lm`, :mod:`speechtl.eval.stats`, :mod:`speechtl.data.importers`); the configs of the
upper layers live in their own torch-free modules (``adapt/train_config.py``, ``adapt/config.py``,
``compare/config.py``, ``demo_config.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRECISIONS", "LmSettings", "NUM_BOOTSTRAP", "CHILD_BELOW_YEARS", "SPEAKER_FROM", "GATE_KEEP",
           "MAX_SKIPPED_IN_A_ROW"]

PRECISIONS = ("auto", "bf16", "fp32")  # --precision: auto = bf16 autocast where supported, else fp32

NUM_BOOTSTRAP = 1000  # resamples; percentile 95 % intervals are stable to ~±0.3 WER points at this size

CHILD_BELOW_YEARS = 18.0  # speakers younger than this are "child" (speechocean762: ages 5-43, half children)
SPEAKER_FROM = ("none", "parent", "prefix")  # where prepare_folder finds a speaker
GATE_KEEP = 0.95  # the accent router's gate: default share of held-out target utterances it lets through
# training: this many optimizer steps in a row with a non-finite loss or gradients (each skipped) stop the run
MAX_SKIPPED_IN_A_ROW = 20


@dataclass(frozen=True)
class LmSettings:
    """The beam search with an n-gram LM (:mod:`speechtl.decode.lm`)."""

    beam_size: int = 50  # hypotheses kept per frame
    lm_weight: float = 2.0  # weight of the LM's log-probability (tuned on dev by recipes/lm_decoding.py)
    word_score: float = -1.0  # score added per word (likewise tuned; ≤ 0 here: few insertions to counter)
    beam_threshold: float = 25.0  # drop hypotheses this far below the best
