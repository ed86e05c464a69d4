"""Pairwise (A vs B) judgments of one model against another: counts, significance, intervals, majorities.

Assumptions:
- An outcome is "win", "tie" or "loss" from the point of view of the model being reported.
- `win_rate` ignores ties: wins / (wins + losses). `score` counts a tie as half a win:
  (wins + ties / 2) / total. Both are None when undefined (no decisive outcome / no outcome).
- `sign_test` drops ties and tests wins against losses with an exact two-sided binomial test (p = 1/2).
- `bootstrap_over_prompts` treats the prompt as the unit that is sampled: prompts are drawn with replacement
  (as many as there are), all judgments of a drawn prompt come along, and the interval is the percentile
  interval of the statistic over the rounds. Rounds in which the statistic is undefined (no decisive
  judgment for `win_rate`) are left out of the percentiles.
- `majority` is the one majority rule of the site (results, quality page, preference exports): a side wins
  when it has strictly more votes than the other side and at least as many as the ties. Written as
  (wins, ties, losses): (2, 0, 1), (2, 1, 0) and (2, 2, 0) are wins (a preference nobody contradicted beats an
  equal number of ties); (1, 0, 1), (1, 2, 0) and (1, 1, 1) are ties.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import binomtest

from metrics.stats.bootstrap import check_rounds_and_level, percentile_interval, resample_counts

OUTCOMES = ("win", "tie", "loss")
OUTCOME_INDEX = {outcome: i for i, outcome in enumerate(OUTCOMES)}  # the order of (wins, ties, losses)


@dataclass(frozen=True)
class WinTieLoss:
    wins: int
    ties: int
    losses: int

    @property
    def total(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def win_rate(self) -> float | None:
        decisive = self.wins + self.losses
        return self.wins / decisive if decisive else None

    @property
    def score(self) -> float | None:
        return (self.wins + 0.5 * self.ties) / self.total if self.total else None

    def __str__(self) -> str:
        return f"{self.wins}-{self.ties}-{self.losses}"


def count_outcomes(outcomes: Iterable[str]) -> WinTieLoss:
    """Count "win" / "tie" / "loss" labels; any other label is a ValueError."""
    counts = Counter(outcomes)
    unknown = set(counts) - set(OUTCOMES)
    if unknown:
        raise ValueError(f"outcomes must be 'win', 'tie' or 'loss', got {sorted(map(repr, unknown))}")
    return WinTieLoss(wins=counts["win"], ties=counts["tie"], losses=counts["loss"])


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins against losses (ties already dropped); 1.0 with no decisive outcome."""
    if wins < 0 or losses < 0:
        raise ValueError(f"counts must be non-negative, got wins={wins}, losses={losses}")
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def bootstrap_over_prompts(
    per_prompt: Sequence[tuple[int, int, int]],
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    statistic: Literal["score", "win_rate"] = "score",
) -> tuple[float, float]:
    """Percentile interval of `statistic` with prompts resampled with replacement.

    `per_prompt` holds one (wins, ties, losses) triple per prompt. Returns (nan, nan) when the statistic is
    undefined in every round (e.g. `win_rate` with no decisive judgment at all).
    """
    counts = np.asarray(per_prompt, dtype=np.float64)
    if counts.size == 0:
        raise ValueError("bootstrap_over_prompts needs at least one prompt")
    if counts.ndim != 2 or counts.shape[1] != 3:
        raise ValueError(f"per_prompt must hold (wins, ties, losses) triples, got shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError("per-prompt counts must be non-negative")
    if statistic not in ("score", "win_rate"):
        raise ValueError(f"statistic must be 'score' or 'win_rate', got {statistic!r}")
    check_rounds_and_level(rounds, level)
    n_prompts = counts.shape[0]
    rng = np.random.default_rng(seed)
    wins, ties, losses = (resample_counts(n_prompts, rounds, rng) @ counts).T
    with np.errstate(invalid="ignore", divide="ignore"):
        if statistic == "score":
            values = (wins + 0.5 * ties) / (wins + ties + losses)
        else:
            values = wins / (wins + losses)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    return percentile_interval(values, level)


def majority_of_counts(counts: WinTieLoss) -> str:
    """The verdict of some votes (the rule in the module docstring): "win", "tie" or "loss"."""
    if counts.total == 0:
        raise ValueError("majority of no votes")
    if min(counts.wins, counts.ties, counts.losses) < 0:
        raise ValueError(f"vote counts must be non-negative, got {counts}")
    top = max(counts.wins, counts.losses)
    if counts.wins != counts.losses and top >= counts.ties:
        return "win" if counts.wins > counts.losses else "loss"
    return "tie"


def majority(votes: Sequence[str]) -> str:
    """The verdict of "win" / "tie" / "loss" votes (the rule in the module docstring). Empty is a ValueError."""
    return majority_of_counts(count_outcomes(votes))
