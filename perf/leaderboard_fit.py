"""Speed of the Bradley-Terry leaderboard fit with bootstrap intervals against Chatbot Arena's method.

Builds `--battles` pairwise judgments among `--models` models of known ratings (evenly spaced over
`--spread` points, ties with probability `--tie-prob` between equal models: see `simulate_battles`), then
times, in one run on the same data:

(a) ours: `aggregate_battles` + `bootstrap_ratings` (the fit on all battles and `--rounds` rounds, all rounds
    fitted at once by batched Newton steps on the rounds x models x models win matrices);
(b) the reference, the method Chatbot Arena publishes (written here by hand): battles collapsed to unique
    (model A, model B, outcome) rows with counts (np.unique), ties as half a win, a weighted Bradley-Terry
    log-likelihood in base 10 with scale 400 minimised by `scipy.optimize.minimize(method="L-BFGS-B")` from
    zero ratings with its gradient supplied (Arena's options: maxiter 100, gtol 1e-6), and bootstrap rounds
    that draw Multinomial(N, counts / N) over the rows (weights divided by N) with one L-BFGS-B fit each.

Both sides draw the bootstrap weights from `numpy.random.default_rng(--seed)` over rows in the same order,
so they fit identical rounds and the interval bounds can be compared one to one. Both run on one core
(BLAS threads pinned to 1 before numpy loads): Arena spreads its rounds over a process pool, which would
divide (b) by up to the number of cores, and (a) could be split over processes the same way.

Prints, best of `--repeat`: the time to collapse the battles to rows and the time to fit and bootstrap, for
both; the speed-up of the whole leaderboard and of the fit + bootstrap alone (with and without the cost of
drawing the multinomial weights, which both make in the same way and no solver removes); the largest
rating and interval-bound differences between (a) and (b); and how far both are from the true ratings.

Example:
    .venv/bin/python perf/leaderboard_fit.py --battles 1000000 --models 20 --rounds 1000
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import expit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.stats.ratings import aggregate_battles, bootstrap_ratings, simulate_battles  # noqa: E402

# ---------------------------------------------------------------------------------------------- reference


def reference_rows(a_idx: np.ndarray, b_idx: np.ndarray, outcome: np.ndarray):
    """Unique (a, b, outcome) rows with counts, and A's score per row (1, 1/2, 0)."""
    unique_rows, counts = np.unique(np.column_stack([a_idx, b_idx, outcome]), axis=0, return_counts=True)
    return unique_rows[:, :2], 1.0 - unique_rows[:, 2] / 2.0, counts.astype(np.float64)


def reference_loss_and_gradient(ratings, matchups, score_a, weights, alpha):
    """Negative weighted log-likelihood (a tie is half a win, half a loss) and its gradient."""
    p_a = expit(alpha * (ratings[matchups[:, 0]] - ratings[matchups[:, 1]]))
    loss = -(weights * (score_a * np.log(p_a) + (1.0 - score_a) * np.log(1.0 - p_a))).sum()
    per_row = -alpha * weights * (score_a - p_a)
    gradient = np.zeros_like(ratings)
    np.add.at(gradient, matchups[:, 0], per_row)
    np.add.at(gradient, matchups[:, 1], -per_row)
    return loss, gradient


def reference_fit(matchups, score_a, weights, n_models, alpha):
    result = minimize(
        reference_loss_and_gradient,
        np.zeros(n_models),
        args=(matchups, score_a, weights, alpha),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": 1e-6},
    )
    return result.x


def reference_leaderboard(rows, n_battles, n_models, rounds, seed, scale=400.0, base=10.0, init=1000.0):
    """Ratings (fit on all battles) and 95% percentile bounds over the bootstrap rounds."""
    matchups, score_a, weights = rows
    alpha = math.log(base)
    ratings = init + scale * reference_fit(matchups, score_a, weights, n_models, alpha)
    rng = np.random.default_rng(seed)
    boot_weights = rng.multinomial(n_battles, weights / weights.sum(), size=rounds) / n_battles
    samples = init + scale * np.array(
        [reference_fit(matchups, score_a, round_weights, n_models, alpha) for round_weights in boot_weights]
    )
    lower, upper = np.quantile(samples, [0.025, 0.975], axis=0)
    return ratings, lower, upper


# ---------------------------------------------------------------------------------------------- run


def best_time(function, repeat):
    """The result of `function()` and the shortest of `repeat` wall times (other work shares the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=600.0, help="true ratings span this many points")
    parser.add_argument("--tie-prob", type=float, default=0.3, help="tie probability between equal models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="time each step this many times, keep the best")
    args = parser.parse_args()

    true_ratings = 1000.0 + np.linspace(-args.spread / 2, args.spread / 2, args.models)
    a_idx, b_idx, outcome = simulate_battles(
        true_ratings, args.battles, tie_prob=args.tie_prob, seed=args.seed
    )
    print(
        f"{args.battles:,} battles among {args.models} models (true ratings {true_ratings[0]:.0f} to "
        f"{true_ratings[-1]:.0f}, {np.mean(outcome == 1):.1%} ties), {args.rounds} bootstrap rounds, one core, "
        f"best of {args.repeat}"
    )

    rows, ours_collapse = best_time(
        lambda: aggregate_battles(a_idx, b_idx, outcome, args.models), args.repeat
    )
    ours, ours_fits = best_time(
        lambda: bootstrap_ratings(rows, args.models, rounds=args.rounds, seed=args.seed), args.repeat
    )
    reference_rows_, reference_collapse = best_time(
        lambda: reference_rows(a_idx, b_idx, outcome), args.repeat
    )
    (ref_ratings, ref_lower, ref_upper), reference_fits = best_time(
        lambda: reference_leaderboard(reference_rows_, args.battles, args.models, args.rounds, args.seed),
        args.repeat,
    )
    # Both draw the same rounds x rows multinomial weights; that cost is shared and no solver removes it.
    counts = rows.count.astype(np.float64)
    _, draw_seconds = best_time(
        lambda: np.random.default_rng(args.seed).multinomial(
            rows.total, counts / counts.sum(), size=args.rounds
        ),
        args.repeat,
    )

    ours_total = ours_collapse + ours_fits
    reference_total = reference_collapse + reference_fits
    print(f"{'':34}{'collapse rows':>14}{'fit + bootstrap':>17}{'total':>9}")
    print(f"{'ours (bincount, batched Newton)':34}{ours_collapse:13.3f}s{ours_fits:16.3f}s{ours_total:8.3f}s")
    print(
        f"{'reference (np.unique, L-BFGS-B)':34}{reference_collapse:13.3f}s{reference_fits:16.3f}s"
        f"{reference_total:8.3f}s"
    )
    print(f"speed-up, whole leaderboard: {reference_total / ours_total:.1f}x (goal >= 10x)")
    print(
        f"speed-up, fit + bootstrap alone: {reference_fits / ours_fits:.1f}x; without the multinomial draws both "
        f"make ({draw_seconds:.3f} s): {(reference_fits - draw_seconds) / (ours_fits - draw_seconds):.1f}x"
    )
    bound_difference = max(np.abs(ours.lower - ref_lower).max(), np.abs(ours.upper - ref_upper).max())
    covered = np.mean((ours.lower <= true_ratings) & (true_ratings <= ours.upper))
    print(
        f"largest |ours - reference| rating: {np.abs(ours.ratings - ref_ratings).max():.4f} points (goal <= 0.5); "
        f"interval bound: {bound_difference:.4f} points"
    )
    print(
        f"largest |fit - truth|: ours {np.abs(ours.ratings - true_ratings).max():.2f}, reference "
        f"{np.abs(ref_ratings - true_ratings).max():.2f} points; mean 95% interval width "
        f"{np.mean(ours.upper - ours.lower):.2f} points; true rating inside our interval for {covered:.0%} of models"
    )


if __name__ == "__main__":
    main()
