"""Compare ASR models on labelled test sets: ``speechtl compare``.

hyps.py (model specs, hypothesis cache) → analysis.py (per-utterance errors, error analysis) →
run.py (the evaluation matrix, breakdowns; bootstrap intervals and paired tests from :mod:`speechtl.eval.stats`)
→ tables.py / figures.py / report.py (report.md, report.html, CSV, JSON; figures need matplotlib, the ``plot``
extra, and are left out without it).

The package itself imports only :class:`~speechtl.compare.config.CompareConfig` (torch-free, for the command
line's parser); the run is ``from speechtl.compare.run import run_compare``.
"""

from speechtl.compare.config import CompareConfig

__all__ = ["CompareConfig"]
