"""Paired rubric scores (two models rated on the same prompts): the Wilcoxon signed-rank test and summaries.

Assumptions:
- Pairs are matched by position: `a[i]` and `b[i]` are the two models' scores on the same prompt (a mean over
  annotators, or one annotator's score).
- Zero differences are dropped before ranking (`zero_method="wilcox"`, Wilcoxon's original method and SciPy's
  default). This is the same convention as the sign test of pairwise judgments, where ties are dropped, so a
  rubric table and a pairwise table test the same question: when the two models differ, which is better?
  Pratt's method (zeros ranked, then dropped) would change the ranks of the non-zero differences with the
  number of zeros, which is large for 1-5 rubric scores. Tied non-zero differences get average ranks.
- Two-sided; SciPy picks the exact null distribution for small samples without ties and the normal
  approximation (with the tie correction) otherwise (`method="auto"`).
- With no non-zero difference there is nothing to test: statistic 0.0, p-value 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.stats import wilcoxon


@dataclass(frozen=True)
class WilcoxonResult:
    statistic: float  # the smaller of the positive-rank and negative-rank sums, as SciPy reports it
    p_value: float
    n_pairs: int
    n_nonzero: int


class ScoreSummary(NamedTuple):
    total: float
    mean: float | None  # None for no values
    n: int


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of `a - b`, zero differences dropped."""
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.ndim != 1 or second.ndim != 1:
        raise ValueError("paired_wilcoxon takes two flat sequences of scores")
    if first.shape != second.shape:
        raise ValueError(f"paired scores must have equal lengths, got {first.size} and {second.size}")
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        raise ValueError("scores must be finite numbers (drop missing pairs first)")
    differences = first - second
    n_nonzero = int(np.count_nonzero(differences))
    if n_nonzero == 0:
        return WilcoxonResult(statistic=0.0, p_value=1.0, n_pairs=first.size, n_nonzero=0)
    result = wilcoxon(differences, zero_method="wilcox", alternative="two-sided", method="auto")
    return WilcoxonResult(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        n_pairs=first.size,
        n_nonzero=n_nonzero,
    )


def score_summary(values: Sequence[float]) -> ScoreSummary:
    """Sum, mean (None when empty) and count of scores."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("score_summary takes a flat sequence of scores")
    if not np.isfinite(array).all():
        raise ValueError("scores must be finite numbers")
    n = int(array.size)
    total = float(array.sum())
    return ScoreSummary(total=total, mean=total / n if n else None, n=n)
