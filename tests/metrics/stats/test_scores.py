"""Paired Wilcoxon signed-rank test and score summaries (no database)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats

from metrics.stats.scores import ScoreSummary, paired_wilcoxon, score_summary


def test_wilcoxon_hand_case_exact_distribution():
    # Differences 1, 2, -3, 4, 5: ranks 1..5, negative rank sum 3. Under the null every sign pattern is
    # equally likely: P(rank sum <= 3) = #{subsets of {1..5} with sum <= 3} / 32 = 5 / 32, doubled.
    a = [3, 4, 2, 9, 10]
    b = [2, 2, 5, 5, 5]
    subsets = [s for r in range(6) for s in itertools.combinations(range(1, 6), r) if sum(s) <= 3]
    result = paired_wilcoxon(a, b)
    assert result.statistic == 3.0
    assert result.p_value == pytest.approx(2 * len(subsets) / 32)  # 0.3125
    assert (result.n_pairs, result.n_nonzero) == (5, 5)


def test_wilcoxon_drops_zero_differences():
    with_zeros = paired_wilcoxon([3, 4, 2, 9, 10, 4, 1], [2, 2, 5, 5, 5, 4, 1])
    assert (with_zeros.statistic, with_zeros.p_value) == (3.0, pytest.approx(0.3125))
    assert (with_zeros.n_pairs, with_zeros.n_nonzero) == (7, 5)


@pytest.mark.parametrize("seed", range(4))
def test_wilcoxon_matches_scipy_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 6, size=60).astype(float)  # 1-5 rubric scores: many ties and zeros
    b = np.clip(a + rng.integers(-2, 3, size=60), 1, 5)
    expected = scipy.stats.wilcoxon(a, b, zero_method="wilcox")
    result = paired_wilcoxon(a.tolist(), b.tolist())
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert result.n_nonzero == int(np.count_nonzero(a - b))


def test_wilcoxon_detects_a_shift():
    rng = np.random.default_rng(7)
    a = rng.normal(size=40)
    assert paired_wilcoxon(a + 1.0, a + rng.normal(scale=0.5, size=40)).p_value < 1e-4


def test_wilcoxon_of_identical_scores_is_not_significant():
    result = paired_wilcoxon([1, 2, 3], [1, 2, 3])
    assert (result.statistic, result.p_value, result.n_pairs, result.n_nonzero) == (0.0, 1.0, 3, 0)
    assert paired_wilcoxon([], []).p_value == 1.0


def test_wilcoxon_rejects_unequal_lengths_and_missing_scores():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_wilcoxon([1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        paired_wilcoxon([1, float("nan")], [1, 2])


def test_score_summary():
    total, mean, n = score_summary([4, 5, 3])
    assert (total, mean, n) == (12.0, 4.0, 3)
    assert score_summary([]) == ScoreSummary(total=0.0, mean=None, n=0)
    with pytest.raises(ValueError):
        score_summary([1.0, float("inf")])
