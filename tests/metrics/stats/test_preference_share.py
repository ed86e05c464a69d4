"""A/B preference shares with "no preference" as half a point each (no database)."""

from __future__ import annotations

import math

import pytest

from metrics.stats.preference_share import preference_shares


def test_points_and_shares_by_hand():
    result = preference_shares([("p1", "a"), ("p1", "none"), ("p2", "a"), ("p3", "b")], rounds=50)
    assert (result.points_a, result.points_b) == (2.5, 1.5)
    assert (result.share_a, result.share_b) == (62.5, 37.5)
    assert (result.n_judgments, result.n_prompts) == (4, 3)


def test_interval_of_prompts_with_equal_shares_is_a_point():
    judgments = [(prompt, choice) for prompt in range(20) for choice in ("a", "a", "b", "none")]
    result = preference_shares(judgments, rounds=100)
    assert result.share_a == 62.5
    assert result.ci_a == (62.5, 62.5)
    assert result.ci_b == (37.5, 37.5)


def test_interval_resamples_prompts():
    # 200 prompts, each judged 5 times the same way, half for A: the interval is as wide as for 200 judgments.
    judgments = [(prompt, "a" if prompt % 2 else "b") for prompt in range(200) for _ in range(5)]
    result = preference_shares(judgments, rounds=4000, seed=1)
    lower, upper = result.ci_a
    assert result.share_a == 50.0
    assert upper - lower == pytest.approx(2 * 1.96 * 100 * math.sqrt(0.25 / 200), rel=0.1)
    assert result.ci_b == pytest.approx((100 - upper, 100 - lower))


def test_interval_is_reproducible():
    judgments = [(prompt % 13, "abn"[prompt % 3].replace("n", "none")) for prompt in range(60)]
    assert preference_shares(judgments, seed=5).ci_a == preference_shares(judgments, seed=5).ci_a


def test_rejects_unknown_choices_and_no_judgments():
    with pytest.raises(ValueError, match="tie"):
        preference_shares([("p1", "tie")])
    with pytest.raises(ValueError):
        preference_shares([])
