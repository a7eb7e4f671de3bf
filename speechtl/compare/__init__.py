"""Compare ASR models on labelled test sets: ``speechtl compare``.

hyps.py (model specs, hypothesis cache) → analysis.py (per-utterance errors, error analysis) →
stats.py (bootstrap intervals, paired test) → run.py (the evaluation matrix, breakdowns) →
tables.py / figures.py / report.py (report.md, report.html, CSV, JSON).
"""

from speechtl.compare.run import CompareConfig, run_compare

__all__ = ["CompareConfig", "run_compare"]
