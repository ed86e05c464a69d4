"""A/B preference shares, as in the Step-Video-T2V report's evaluation of its DPO model against the baseline.

Each judgment compares model A's and model B's videos for one prompt and chooses "a", "b" or "none" (no
preference). The preferred model gets 1 point; "none" gives each model half a point. A model's share is its
points over the number of judgments, in percent, so the two shares add up to 100.

The interval for A's share is bootstrapped over prompts: prompts are drawn with replacement (as many as there
are), all judgments of a drawn prompt come along (several annotators, repeated generations), and the
interval is the percentile interval of A's share over the rounds. B's interval is 100 minus A's, reversed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from metrics.stats.bootstrap import check_rounds_and_level, percentile_interval, resample_counts

CHOICE_POINTS_FOR_A = {"a": 1.0, "b": 0.0, "none": 0.5}


@dataclass(frozen=True)
class ShareResult:
    points_a: float
    points_b: float
    share_a: float  # percent
    share_b: float  # percent
    ci_a: tuple[float, float]  # percent
    n_judgments: int
    n_prompts: int

    @property
    def ci_b(self) -> tuple[float, float]:
        return (100.0 - self.ci_a[1], 100.0 - self.ci_a[0])


def preference_shares(
    judgments: Sequence[tuple[Hashable, str]],
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> ShareResult:
    """Points and percent shares of A and B from (prompt_key, choice) judgments, choice in "a"/"b"/"none"."""
    if not judgments:
        raise ValueError("preference_shares needs at least one judgment")
    check_rounds_and_level(rounds, level)
    prompt_index: dict[Hashable, int] = {}
    prompt_of_judgment = np.empty(len(judgments), dtype=np.int64)
    points_for_a = np.empty(len(judgments), dtype=np.float64)
    for position, (prompt_key, choice) in enumerate(judgments):
        if choice not in CHOICE_POINTS_FOR_A:
            raise ValueError(f"choice must be 'a', 'b' or 'none', got {choice!r}")
        prompt_of_judgment[position] = prompt_index.setdefault(prompt_key, len(prompt_index))
        points_for_a[position] = CHOICE_POINTS_FOR_A[choice]
    n_prompts = len(prompt_index)
    points_per_prompt = np.bincount(prompt_of_judgment, weights=points_for_a, minlength=n_prompts)
    judgments_per_prompt = np.bincount(prompt_of_judgment, minlength=n_prompts).astype(np.float64)

    rng = np.random.default_rng(seed)
    draws = resample_counts(n_prompts, rounds, rng)
    bootstrap_shares = 100.0 * (draws @ points_per_prompt) / (draws @ judgments_per_prompt)

    points_a = float(points_for_a.sum())
    n_judgments = len(judgments)
    share_a = 100.0 * points_a / n_judgments
    return ShareResult(
        points_a=points_a,
        points_b=n_judgments - points_a,
        share_a=share_a,
        share_b=100.0 - share_a,
        ci_a=percentile_interval(bootstrap_shares, level),
        n_judgments=n_judgments,
        n_prompts=n_prompts,
    )
