"""Win-tie-loss counts, the sign test, prompt-level bootstrap intervals and majority votes (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.stats.pairwise import WinTieLoss, bootstrap_over_prompts, count_outcomes, majority, sign_test


def test_win_tie_loss_properties_and_text():
    record = WinTieLoss(wins=59, ties=22, losses=47)
    assert record.total == 128
    assert record.win_rate == pytest.approx(59 / 106)
    assert record.score == pytest.approx((59 + 11) / 128)
    assert str(record) == "59-22-47"


def test_win_tie_loss_is_undefined_without_outcomes():
    assert WinTieLoss(0, 3, 0).win_rate is None
    assert WinTieLoss(0, 3, 0).score == 0.5
    assert WinTieLoss(0, 0, 0).score is None


def test_count_outcomes_counts_each_label():
    assert count_outcomes(["win", "tie", "win", "loss", "win"]) == WinTieLoss(3, 1, 1)
    assert count_outcomes([]) == WinTieLoss(0, 0, 0)


def test_count_outcomes_rejects_unknown_labels():
    with pytest.raises(ValueError, match="draw"):
        count_outcomes(["win", "draw"])


def binomial_two_sided(wins: int, losses: int) -> float:
    """Exact two-sided sign test by hand: double the smaller tail of Binomial(n, 1/2), capped at 1."""
    n = wins + losses
    tail = sum(math.comb(n, k) for k in range(max(wins, losses), n + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize(("wins", "losses"), [(7, 3), (3, 7), (10, 0), (12, 4), (5, 5)])
def test_sign_test_matches_binomial_arithmetic(wins, losses):
    assert sign_test(wins, losses) == pytest.approx(binomial_two_sided(wins, losses), rel=1e-12)


def test_sign_test_seven_three_by_hand():
    assert sign_test(7, 3) == pytest.approx(2 * (120 + 45 + 10 + 1) / 1024)  # 0.34375


def test_sign_test_without_decisive_outcomes_is_one_and_rejects_negative_counts():
    assert sign_test(0, 0) == 1.0
    with pytest.raises(ValueError):
        sign_test(-1, 3)


def test_bootstrap_of_identical_prompts_is_a_point():
    assert bootstrap_over_prompts([(1, 0, 1)] * 30, rounds=200) == (0.5, 0.5)


def test_bootstrap_is_reproducible_and_depends_on_the_seed():
    rng = np.random.default_rng(1)
    per_prompt = [tuple(row) for row in rng.integers(0, 4, size=(50, 3))]
    first = bootstrap_over_prompts(per_prompt, rounds=300, seed=3)
    assert first == bootstrap_over_prompts(per_prompt, rounds=300, seed=3)
    assert first != bootstrap_over_prompts(per_prompt, rounds=300, seed=4)
    assert first[0] < first[1]


def test_bootstrap_score_interval_matches_the_normal_approximation():
    # 400 prompts, one decisive judgment each, 60% wins: the interval is about 0.6 +- 1.96 sqrt(.24 / 400).
    per_prompt = [(1, 0, 0)] * 240 + [(0, 0, 1)] * 160
    lower, upper = bootstrap_over_prompts(per_prompt, rounds=4000, seed=0)
    half_width = 1.96 * math.sqrt(0.6 * 0.4 / 400)
    assert lower == pytest.approx(0.6 - half_width, abs=0.006)
    assert upper == pytest.approx(0.6 + half_width, abs=0.006)


def test_bootstrap_resamples_prompts_not_judgments():
    # 100 prompts with 10 judgments that all agree: the interval is as wide as for 100 judgments, not 1000.
    per_prompt = [(10, 0, 0)] * 50 + [(0, 0, 10)] * 50
    lower, upper = bootstrap_over_prompts(per_prompt, rounds=4000, seed=0)
    assert upper - lower == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 100), rel=0.1)


def test_bootstrap_win_rate_ignores_ties():
    per_prompt = [(1, 5, 0)] * 20  # every round: win rate 1, score (1 + 2.5) / 6
    assert bootstrap_over_prompts(per_prompt, rounds=100, statistic="win_rate") == (1.0, 1.0)
    assert bootstrap_over_prompts(per_prompt, rounds=100) == pytest.approx((3.5 / 6, 3.5 / 6))


def test_bootstrap_win_rate_of_ties_only_is_undefined():
    lower, upper = bootstrap_over_prompts([(0, 2, 0)] * 5, rounds=50, statistic="win_rate")
    assert math.isnan(lower) and math.isnan(upper)


@pytest.mark.parametrize(
    ("per_prompt", "options"),
    [
        ([], {}),
        ([(1, 2)], {}),
        ([(1, -1, 0)], {}),
        ([(1, 0, 0)], {"statistic": "median"}),
        ([(1, 0, 0)], {"level": 1.0}),
        ([(1, 0, 0)], {"rounds": 0}),
    ],
)
def test_bootstrap_rejects_bad_input(per_prompt, options):
    with pytest.raises(ValueError):
        bootstrap_over_prompts(per_prompt, **options)


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        (["win"], "win"),
        (["win", "win", "loss"], "win"),
        (["loss", "tie", "loss"], "loss"),
        (["win", "loss"], "tie"),
        (["win", "tie"], "win"),  # nobody contradicted the win
        (["win", "win", "tie", "tie"], "win"),
        (["win", "tie", "tie"], "tie"),  # the ties are the majority
        (["tie", "tie", "win"], "tie"),
        (["win", "win", "loss", "loss", "tie"], "tie"),
    ],
)
def test_majority(votes, expected):
    assert majority(votes) == expected


def test_majority_rejects_no_votes_and_unknown_labels():
    with pytest.raises(ValueError):
        majority([])
    with pytest.raises(ValueError):
        majority(["win", "maybe"])
