"""Bootstrap helpers shared by the statistics modules.

- Resampling units with replacement is done as multinomial counts: in each round, how many times each unit
  is drawn (Multinomial(n_units, uniform)); a statistic that is a ratio of sums is then one matrix product
  for all rounds, with no Python loop over rounds.
- Intervals are percentile intervals: the (1 - level) / 2 and 1 - (1 - level) / 2 quantiles of the bootstrap
  values, with numpy's default linear interpolation (pandas' `quantile` gives the same).
"""

from __future__ import annotations

import numpy as np


def resample_counts(n_units: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """`(rounds, n_units)` float64: how many times each unit is drawn in each round of a plain bootstrap."""
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=rounds).astype(np.float64)


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap values of one statistic."""
    tail = (1.0 - level) / 2.0
    lower, upper = np.quantile(values, [tail, 1.0 - tail])
    return (float(lower), float(upper))


def check_rounds_and_level(rounds: int, level: float) -> None:
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
