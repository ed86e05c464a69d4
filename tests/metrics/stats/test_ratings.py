"""Bradley-Terry ratings, bootstrap intervals, interval-respecting ranks (no database).

The reference below is the straightforward method: one row per battle, the Bradley-Terry log-likelihood in
base 10 with scale 400 (a tie is half a win), minimised by SciPy's L-BFGS-B from zero ratings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from metrics.stats.ratings import (
    A_WINS,
    NO_BATTLES,
    NOT_COMPARABLE,
    RATED,
    TIE,
    UNBOUNDED_HIGH,
    UNBOUNDED_LOW,
    BattleRows,
    aggregate_battles,
    bootstrap_ratings,
    connected_groups,
    fit_bradley_terry,
    rank_with_intervals,
    rating_status,
    simulate_battles,
    unbounded_models,
    win_matrix,
)

ALPHA = math.log(10.0)


def lbfgs_reference(a_idx, b_idx, outcome, n_models, weights=None):
    """Ratings (mean 1000) by L-BFGS-B on the per-row weighted log-likelihood."""
    a_idx, b_idx = np.asarray(a_idx), np.asarray(b_idx)
    score_a = 1.0 - np.asarray(outcome) / 2.0
    weights = np.ones(a_idx.size) if weights is None else np.asarray(weights, dtype=float)
    weights = weights / weights.sum()

    def loss_and_gradient(ratings):
        p_a = expit(ALPHA * (ratings[a_idx] - ratings[b_idx]))
        loss = -(weights * (score_a * np.log(p_a) + (1 - score_a) * np.log(1 - p_a))).sum()
        per_row = -ALPHA * weights * (score_a - p_a)
        gradient = np.bincount(a_idx, per_row, n_models) - np.bincount(b_idx, per_row, n_models)
        return loss, gradient

    fitted = minimize(
        loss_and_gradient, np.zeros(n_models), jac=True, method="L-BFGS-B", options={"gtol": 1e-10}
    )
    return 1000.0 + 400.0 * (fitted.x - fitted.x.mean())


def test_aggregate_battles_counts_unique_rows_in_sorted_order():
    rows = aggregate_battles([1, 0, 1, 0, 2], [0, 2, 0, 2, 1], [2, 1, 2, 1, 0], n_models=3)
    assert rows.model_a.tolist() == [0, 1, 2]
    assert rows.model_b.tolist() == [2, 0, 1]
    assert rows.outcome.tolist() == [1, 2, 0]
    assert rows.count.tolist() == [2, 2, 1]
    assert (len(rows), rows.total) == (3, 5)


def test_aggregate_battles_of_a_large_leaderboard_counts_the_same_way():
    a_idx, b_idx, outcome = simulate_battles(np.zeros(1000), 500, tie_prob=0.5, seed=0)
    rows = aggregate_battles(a_idx, b_idx, outcome, 1000)  # 3 million possible rows: sorted, not tabulated
    triples = np.column_stack([a_idx, b_idx, outcome])
    unique, counts = np.unique(triples, axis=0, return_counts=True)
    np.testing.assert_array_equal(np.column_stack([rows.model_a, rows.model_b, rows.outcome]), unique)
    np.testing.assert_array_equal(rows.count, counts)


@pytest.mark.parametrize(
    ("a_idx", "b_idx", "outcome"),
    [
        ([0], [0], [0]),  # a model against itself
        ([0], [3], [0]),  # no such model
        ([-1], [1], [0]),
        ([0], [1], [3]),  # no such outcome
        ([0, 1], [1], [0]),
        ([0.0], [1.0], [0.0]),
    ],
)
def test_aggregate_battles_rejects_bad_battles(a_idx, b_idx, outcome):
    with pytest.raises(ValueError):
        aggregate_battles(a_idx, b_idx, outcome, n_models=3)


def test_win_matrix_counts_ties_as_half_a_win_each():
    rows = aggregate_battles([0, 0, 1, 2], [1, 1, 0, 0], [0, 1, 0, 2], n_models=3)
    expected = [[0, 1.5, 1], [1.5, 0, 0], [0, 0, 0]]
    np.testing.assert_array_equal(win_matrix(rows, 3), expected)


def test_two_models_by_hand():
    # A beats B 3 times out of 4: P = 3/4 = 1 / (1 + 10^(-d/400)), d = 400 log10(3); ratings 1000 +- d/2.
    gap = 400 * math.log10(3)
    rows = aggregate_battles([0, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0], n_models=2)
    np.testing.assert_allclose(fit_bradley_terry(rows, 2), [1000 + gap / 2, 1000 - gap / 2], atol=1e-3)
    # Two wins and two ties score the same 3/4.
    with_ties = aggregate_battles([0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1], n_models=2)
    np.testing.assert_allclose(fit_bradley_terry(with_ties, 2), [1000 + gap / 2, 1000 - gap / 2], atol=1e-3)


def test_scale_base_and_init_rating():
    rows = aggregate_battles([0, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0], n_models=2)
    ratings = fit_bradley_terry(rows, 2, scale=1.0, base=math.e, init_rating=0.0, prior=0.0)
    np.testing.assert_allclose(ratings, [math.log(3) / 2, -math.log(3) / 2], atol=1e-9)
    # The default prior (1e-6 battles) moves this 4-battle fit by less than 1e-6.
    np.testing.assert_allclose(
        fit_bradley_terry(rows, 2, scale=1.0, base=math.e, init_rating=0.0), ratings, atol=1e-6
    )


def test_agrees_with_lbfgs_reference_within_half_a_point():
    true_ratings = np.array([900, 950, 1000, 1010, 1100, 1180.0])
    a_idx, b_idx, outcome = simulate_battles(true_ratings, 3000, tie_prob=0.3, seed=11)
    ours = fit_bradley_terry(aggregate_battles(a_idx, b_idx, outcome, 6), 6)
    reference = lbfgs_reference(a_idx, b_idx, outcome, 6)
    assert np.abs(ours - reference).max() <= 0.5
    assert ours.mean() == pytest.approx(1000.0)


def test_recovers_known_strengths():
    # 200,000 battles among 10 models: the standard error is about 2 points, the tolerance 8.
    true_ratings = np.linspace(700, 1300, 10)
    a_idx, b_idx, outcome = simulate_battles(true_ratings, 200_000, tie_prob=0.4, seed=3)
    fitted = fit_bradley_terry(aggregate_battles(a_idx, b_idx, outcome, 10), 10)
    assert np.abs(fitted - true_ratings).max() < 8.0


def test_anchor_fixes_one_model_and_keeps_differences():
    a_idx, b_idx, outcome = simulate_battles([1000, 1100, 1200], 2000, seed=2)
    rows = aggregate_battles(a_idx, b_idx, outcome, 3)
    centred = fit_bradley_terry(rows, 3)
    anchored = fit_bradley_terry(rows, 3, anchor=1, init_rating=1100.0)
    assert anchored[1] == pytest.approx(1100.0)
    np.testing.assert_allclose(np.diff(anchored), np.diff(centred), atol=1e-9)


def test_unbeaten_model_and_model_without_battles_get_finite_ratings():
    # Model 0 won every battle; model 3 never played.
    rows = aggregate_battles([0, 0, 1, 2, 1], [1, 2, 2, 1, 0], [0, 0, 0, 0, 2], n_models=4)
    ratings = fit_bradley_terry(rows, 4)
    assert np.isfinite(ratings).all()
    assert ratings[0] > ratings[1] + 1000  # unbounded in truth: very large here
    assert ratings[3] == pytest.approx(1000.0)
    with pytest.raises(RuntimeError, match="converge"):
        fit_bradley_terry(rows, 4, prior=0.0)
    unbeaten_only = aggregate_battles([0, 0, 1, 2], [1, 2, 2, 1], [0, 0, 0, 2], n_models=3)
    with pytest.raises(RuntimeError, match="converge"):
        fit_bradley_terry(unbeaten_only, 3, prior=0.0)


def test_fit_rejects_bad_arguments():
    rows = aggregate_battles([0], [1], [0], n_models=2)
    with pytest.raises(ValueError):
        fit_bradley_terry(rows, 2, anchor=2)
    with pytest.raises(ValueError):
        fit_bradley_terry(rows, 2, base=1.0)
    with pytest.raises(ValueError):
        fit_bradley_terry(rows, 1)  # rows name model 1


def test_bootstrap_rounds_are_arena_multinomial_reweightings():
    true_ratings = np.array([950.0, 1000, 1060, 1120])
    a_idx, b_idx, outcome = simulate_battles(true_ratings, 2000, tie_prob=0.2, seed=5)
    rows = aggregate_battles(a_idx, b_idx, outcome, 4)
    result = bootstrap_ratings(rows, 4, rounds=3, seed=9)
    # The same draws, refitted one by one by the reference.
    draws = np.random.default_rng(9).multinomial(rows.total, rows.count / rows.total, size=3)
    for round_ratings, weights in zip(result.samples, draws, strict=True):
        reference = lbfgs_reference(rows.model_a, rows.model_b, rows.outcome, 4, weights=weights)
        assert np.abs(round_ratings - reference).max() <= 0.5
    np.testing.assert_allclose(result.ratings, fit_bradley_terry(rows, 4))


def test_bootstrap_is_reproducible_and_brackets_the_fit():
    a_idx, b_idx, outcome = simulate_battles(np.linspace(900, 1100, 5), 5000, seed=1)
    rows = aggregate_battles(a_idx, b_idx, outcome, 5)
    first = bootstrap_ratings(rows, 5, rounds=200, seed=4)
    again = bootstrap_ratings(rows, 5, rounds=200, seed=4)
    other = bootstrap_ratings(rows, 5, rounds=200, seed=5)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.lower, other.lower)
    assert first.samples.shape == (200, 5)
    assert (first.lower < first.ratings).all() and (first.ratings < first.upper).all()
    np.testing.assert_allclose(first.samples.mean(axis=1), 1000.0)


def test_bootstrap_in_chunks_equals_all_at_once(monkeypatch):
    a_idx, b_idx, outcome = simulate_battles(np.linspace(900, 1100, 5), 3000, seed=8)
    rows = aggregate_battles(a_idx, b_idx, outcome, 5)
    whole = bootstrap_ratings(rows, 5, rounds=50, seed=2)
    monkeypatch.setattr("metrics.stats.ratings.ROUNDS_CHUNK_ENTRIES", 7 * 25)
    chunked = bootstrap_ratings(rows, 5, rounds=50, seed=2)
    np.testing.assert_allclose(chunked.samples, whole.samples, atol=1e-9)


def test_bootstrap_intervals_cover_true_strengths_near_the_nominal_rate():
    true_ratings = np.linspace(850, 1150, 8)
    covered = []
    for repetition in range(40):
        a_idx, b_idx, outcome = simulate_battles(true_ratings, 4000, tie_prob=0.3, seed=100 + repetition)
        result = bootstrap_ratings(
            aggregate_battles(a_idx, b_idx, outcome, 8), 8, rounds=300, seed=repetition
        )
        covered.extend((result.lower <= true_ratings) & (true_ratings <= result.upper))
    # 320 model-repetitions at a nominal 95%: below 85% would be far outside sampling noise (sd ~1.2%).
    assert np.mean(covered) >= 0.85


def test_bootstrap_rejects_no_battles():
    empty = BattleRows(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
    with pytest.raises(ValueError):
        bootstrap_ratings(empty, 2)


def test_rank_with_intervals_by_hand():
    lower = [1100, 1090, 1000, 990, 900]
    upper = [1120, 1110, 1050, 1095, 950]
    # Model 2: two lower bounds (1100, 1090) above its upper 1050 -> rank 3; model 3 (upper 1095): only 1100.
    assert rank_with_intervals(lower, upper) == [1, 1, 3, 2, 5]
    assert rank_with_intervals([10, 5], [12, 10]) == [1, 1]  # touching bounds are not "above"


def test_rank_with_intervals_rejects_bad_bounds():
    with pytest.raises(ValueError):
        rank_with_intervals([1, 2], [3])
    with pytest.raises(ValueError):
        rank_with_intervals([5, 1], [4, 2])


def test_simulated_battles_follow_the_tie_model():
    a_idx, b_idx, outcome = simulate_battles([1000, 1000, 1200], 60_000, tie_prob=0.3, seed=0)
    assert (a_idx != b_idx).all()
    equal = ((a_idx == 0) & (b_idx == 1)) | ((a_idx == 1) & (b_idx == 0))
    assert np.mean(outcome[equal] == 1) == pytest.approx(0.3, abs=0.02)
    # 1200 against 1000: P = 1 / (1 + 10^(-0.5)); ties 0.3 * 2 * (1 - P); A's mean score stays P.
    strong = (a_idx == 2) & (b_idx == 0)
    p_strong = 1 / (1 + 10**-0.5)
    assert np.mean(outcome[strong] == 1) == pytest.approx(0.6 * (1 - p_strong), abs=0.015)
    assert np.mean(1 - outcome[strong] / 2) == pytest.approx(p_strong, abs=0.015)
    again = simulate_battles([1000, 1000, 1200], 60_000, tie_prob=0.3, seed=0)
    np.testing.assert_array_equal(again[2], outcome)


def rows_of(battles, n_models):
    """(winner, loser) pairs, or (a, b, "tie"), as BattleRows."""
    a_idx = [b[0] for b in battles]
    b_idx = [b[1] for b in battles]
    outcome = [TIE if len(b) == 3 else A_WINS for b in battles]
    return aggregate_battles(a_idx, b_idx, outcome, n_models)


def test_connected_groups_number_the_largest_group_first():
    # 0-1-2 linked by a chain, 3-4 apart, 5 without battles.
    rows = rows_of([(0, 1), (2, 1), (3, 4), (4, 3)], 6)
    assert connected_groups(rows, 6) == [0, 0, 0, 1, 1, 2]
    # Two groups of two: the one with more battles comes first.
    rows = rows_of([(0, 1), (2, 3), (3, 2), (2, 3, "tie")], 4)
    assert connected_groups(rows, 4) == [1, 1, 0, 0]


def test_unbounded_models_won_or_lost_every_battle_and_a_tie_bounds_them():
    rows = rows_of([(0, 1), (0, 2), (1, 2), (2, 1), (3, 1, "tie"), (3, 2)], 5)
    # 0 won both its battles; 3 won one and tied one (a tie is half a win: bounded); 4 has no battle.
    assert unbounded_models(rows, 5) == [True, False, False, False, False]
    assert unbounded_models(rows_of([(1, 0), (1, 0)], 2), 2) == [True, True]


def test_rating_status_peels_unbounded_models_and_keeps_the_largest_group():
    # 0 beat everyone it met; 1 lost only to 0 and beat 2 and 3; 2 and 3 traded wins; 4-5 met only
    # each other; 6 never played.
    rows = rows_of([(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (3, 2), (4, 5), (5, 4)], 7)
    assert rating_status(rows, 7) == [
        UNBOUNDED_HIGH,  # won every battle
        UNBOUNDED_HIGH,  # never lost to a model that stays rated
        RATED,
        RATED,
        NOT_COMPARABLE,
        NOT_COMPARABLE,
        NO_BATTLES,
    ]
    # Two models, one won every battle: neither has a finite rating.
    assert rating_status(rows_of([(0, 1), (0, 1)], 2), 2) == [UNBOUNDED_HIGH, UNBOUNDED_LOW]
    # Taking out an unbounded model can split a group: 0 beat 1 and 3; 1-2 and 3-4 never met.
    rows = rows_of([(0, 1), (0, 3), (1, 2), (2, 1), (1, 2), (3, 4), (4, 3)], 5)
    assert rating_status(rows, 5) == [UNBOUNDED_HIGH, RATED, RATED, NOT_COMPARABLE, NOT_COMPARABLE]
    # Everyone met and everyone lost at least once: all rated.
    assert rating_status(rows_of([(0, 1), (1, 2), (2, 0)], 3), 3) == [RATED] * 3
