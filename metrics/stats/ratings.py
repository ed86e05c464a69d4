"""Bradley-Terry leaderboard from pairwise battles, with bootstrap intervals and interval-respecting ranks.

The method (Chatbot Arena's, solved faster):
- Battles are collapsed to unique (model A, model B, outcome) rows with counts; outcome 0 = A wins,
  1 = tie, 2 = B wins.
- A tie counts as half a win for each side: the likelihood is that of a Bradley-Terry model in which each
  battle gives A a score of 1, 1/2 or 0, P(A beats B) = 1 / (1 + base ** ((R_B - R_A) / scale)).
  All it needs is the win matrix W[i, j] = wins of i over j (+ half their ties), so it is fitted on W.
- Ratings are the maximum-likelihood fit, found by Newton's method on W (a backtracking line search guards large steps).
  A Gaussian prior of precision `prior` (in battles) on the natural-log strengths keeps every rating finite
  (a model that won every battle, a model with no battle) and leaves ratings fitted on real data unchanged
  to far below a rating point. A model with no battle gets `init_rating`; a model that won (lost) every
  battle gets a very large (small) finite rating that only says "unbounded"; ratings of models in
  disconnected groups (no chain of battles between them) are each centred on their own and not comparable.
- Ratings are centred so that their mean is `init_rating` (the mean of an unanchored maximum-likelihood fit
  started at zero, as Arena's is), or, with `anchor`, so that that model's rating is `init_rating`.
- Intervals: each bootstrap round draws Multinomial(N, counts / N) over the unique rows (N = number of
  battles), i.e. the battles resampled with replacement, and refits; all rounds are fitted at once (batched
  Newton on a rounds x models x models tensor). The interval is the percentile interval of each model's
  rating over the rounds; the reported rating is the fit on all battles.
- Rank with intervals: 1 + the number of models whose lower bound is above this model's upper bound: a
  model ranks below only the models that beat it with intervals that do not overlap its own (Arena's
  "rank (UB)"), so several models can share a rank.
- Which ratings mean something (`rating_status`): the maximum-likelihood rating of a model that never lost
  (never won) is infinite, and models with no chain of battles between them have no common scale. So, in
  turn until nothing changes: keep the largest connected group of models (`connected_groups`), the others
  are "not comparable"; in it, a model with no loss (no win) against the others still kept is "unbounded"
  (`unbounded_models`; a tie is half a win, so a tie makes a model bounded). The models left are "rated":
  fit them on the battles among themselves. Battles against an unbounded model tell nothing about the
  others (in the limit they are certain), so this is the limit of the fit on all battles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
from scipy.special import expit

from metrics.stats.bootstrap import check_rounds_and_level

A_WINS, TIE, B_WINS = 0, 1, 2
RATED = "rated"
UNBOUNDED_HIGH = "unbounded_high"  # no loss against the rated models: its rating has no upper bound
UNBOUNDED_LOW = "unbounded_low"  # no win against the rated models: its rating has no lower bound
NOT_COMPARABLE = "not_comparable"  # no chain of battles to the rated models
NO_BATTLES = "no_battles"
DEFAULT_PRIOR = 1e-6
NEWTON_TOLERANCE = 1e-7  # Newton step (natural-log strength) after which a fit has converged
# Newton steps that move no strength by more than this need no line search (see _backtracking_fractions).
SAFE_STEP = 0.25
NEWTON_MAX_ITERATIONS = 200
ROUNDS_CHUNK_ENTRIES = 4_000_000  # rounds x models^2 fitted at once: bounds memory for large leaderboards


@dataclass(frozen=True)
class BattleRows:
    """Unique (model_a, model_b, outcome) rows and how many battles each stands for, sorted by the triple."""

    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray
    count: np.ndarray

    @property
    def total(self) -> int:
        return int(self.count.sum())

    def __len__(self) -> int:
        return int(self.count.size)


@dataclass(frozen=True)
class BootstrapResult:
    ratings: np.ndarray  # (n_models,) the fit on all battles
    lower: np.ndarray  # (n_models,)
    upper: np.ndarray  # (n_models,)
    samples: np.ndarray  # (rounds, n_models) the ratings of every round


def aggregate_battles(
    a_idx: Sequence[int] | np.ndarray,
    b_idx: Sequence[int] | np.ndarray,
    outcome: Sequence[int] | np.ndarray,
    n_models: int,
) -> BattleRows:
    """Collapse battles (model indices in [0, n_models), outcome 0/1/2) to unique rows with counts."""
    first = np.asarray(a_idx)
    second = np.asarray(b_idx)
    result = np.asarray(outcome)
    if not (first.ndim == second.ndim == result.ndim == 1 and first.size == second.size == result.size):
        raise ValueError("a_idx, b_idx and outcome must be flat arrays of equal length")
    for name, array in (("a_idx", first), ("b_idx", second), ("outcome", result)):
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integers, got {array.dtype}")
    if first.size:
        if min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= n_models:
            raise ValueError(f"model indices must lie in [0, {n_models})")
        if (first == second).any():
            raise ValueError("a model cannot battle itself")
        if result.min() < 0 or result.max() > 2:
            raise ValueError("outcome must be 0 (A wins), 1 (tie) or 2 (B wins)")
    # One integer key per (a, b, outcome), counted in one pass; the keys come out sorted like np.unique's rows.
    keys = (first.astype(np.int64) * n_models + second) * 3 + result
    if n_models * n_models * 3 <= max(10 * keys.size, 1_000_000):
        all_counts = np.bincount(keys, minlength=n_models * n_models * 3)
        present = np.flatnonzero(all_counts)
        counts = all_counts[present]
    else:  # a table of every possible key would dwarf the battles
        present, counts = np.unique(keys, return_counts=True)
    pair, outcome_code = np.divmod(present, 3)
    model_a, model_b = np.divmod(pair, n_models)
    return BattleRows(model_a=model_a, model_b=model_b, outcome=outcome_code, count=counts.astype(np.int64))


def win_matrix(rows: BattleRows, n_models: int) -> np.ndarray:
    """W[i, j]: battles i won against j, plus half of their ties (float64, n_models x n_models)."""
    return _win_matrices(rows, rows.count[None, :].astype(np.float64), n_models)[0]


def fit_bradley_terry(
    rows: BattleRows,
    n_models: int,
    *,
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: int | None = None,
    prior: float = DEFAULT_PRIOR,
) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry ratings (ties as half a win each), mean `init_rating` or anchored."""
    _check_fit_arguments(n_models, scale, base, anchor, prior)
    wins = _win_matrices(rows, rows.count[None, :].astype(np.float64), n_models)
    strengths = _newton_fit(wins, np.zeros((1, n_models)), prior)
    return _to_ratings(strengths, scale, base, init_rating, anchor)[0]


def bootstrap_ratings(
    rows: BattleRows,
    n_models: int,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: int | None = None,
    prior: float = DEFAULT_PRIOR,
) -> BootstrapResult:
    """The fit on all battles and percentile intervals from `rounds` multinomial re-weightings of the rows."""
    _check_fit_arguments(n_models, scale, base, anchor, prior)
    check_rounds_and_level(rounds, level)
    if len(rows) == 0:
        raise ValueError("bootstrap_ratings needs at least one battle")
    counts = rows.count.astype(np.float64)
    full_strengths = _newton_fit(
        _win_matrices(rows, counts[None, :], n_models), np.zeros((1, n_models)), prior
    )
    rng = np.random.default_rng(seed)
    chunk = max(1, ROUNDS_CHUNK_ENTRIES // (n_models * n_models))
    strengths = np.empty((rounds, n_models))
    for start in range(0, rounds, chunk):
        # Drawn chunk by chunk, the rounds are the same as drawn all at once.
        size = min(chunk, rounds - start)
        block = rng.multinomial(rows.total, counts / counts.sum(), size=size).astype(np.float64)
        wins = _win_matrices(rows, block, n_models)
        # Every round starts from the fit on all battles: a few Newton steps from there.
        strengths[start : start + chunk] = _newton_fit(
            wins, np.repeat(full_strengths, block.shape[0], 0), prior
        )
    samples = _to_ratings(strengths, scale, base, init_rating, anchor)
    tail = (1.0 - level) / 2.0
    lower, upper = np.quantile(samples, [tail, 1.0 - tail], axis=0)
    return BootstrapResult(
        ratings=_to_ratings(full_strengths, scale, base, init_rating, anchor)[0],
        lower=lower,
        upper=upper,
        samples=samples,
    )


def rank_with_intervals(
    lower: Sequence[float] | np.ndarray, upper: Sequence[float] | np.ndarray
) -> list[int]:
    """Rank of each model: 1 + the number of models whose lower bound exceeds this model's upper bound."""
    low = np.asarray(lower, dtype=np.float64)
    high = np.asarray(upper, dtype=np.float64)
    if low.ndim != 1 or low.shape != high.shape:
        raise ValueError("lower and upper must be flat arrays of equal length")
    if (low > high).any():
        raise ValueError("every lower bound must be at most its upper bound")
    return [1 + int((low > model_upper).sum()) for model_upper in high]


def connected_groups(rows: BattleRows, n_models: int) -> list[int]:
    """The group of each model: models are in one group when a chain of battles links them. Groups are
    numbered from 0 by size, largest first (then by the most battles, then by the lowest model index); a
    model without battles is a group of its own."""
    _check_rows(rows, n_models)
    graph = scipy.sparse.coo_matrix(
        (np.ones(len(rows)), (rows.model_a, rows.model_b)), shape=(n_models, n_models)
    )
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    battles = np.bincount(rows.model_a, rows.count, n_models) + np.bincount(
        rows.model_b, rows.count, n_models
    )
    members: dict[int, list[int]] = {}
    for model, label in enumerate(labels.tolist()):
        members.setdefault(label, []).append(model)
    order = sorted(members.values(), key=lambda group: (-len(group), -battles[group].sum(), group[0]))
    numbered = [0] * n_models
    for number, group in enumerate(order):
        for model in group:
            numbered[model] = number
    return numbered


def unbounded_models(rows: BattleRows, n_models: int) -> list[bool]:
    """Whether each model won every one of its battles or lost every one (no tie): its maximum-likelihood
    rating is infinite, and any finite number shown for it only reflects the prior."""
    scores, games = _scores_and_games(rows, n_models)
    return [bool(n > 0 and (s == 0 or s == n)) for s, n in zip(scores.tolist(), games.tolist(), strict=True)]


def rating_status(rows: BattleRows, n_models: int) -> list[str]:
    """Per model: RATED, UNBOUNDED_HIGH, UNBOUNDED_LOW, NOT_COMPARABLE or NO_BATTLES (see the module's
    docstring for the order in which they are decided)."""
    _check_rows(rows, n_models)
    _, games = _scores_and_games(rows, n_models)
    status = [RATED if n > 0 else NO_BATTLES for n in games.tolist()]
    while True:
        kept = np.array([s == RATED for s in status])
        among = kept[rows.model_a] & kept[rows.model_b]
        sub = BattleRows(rows.model_a[among], rows.model_b[among], rows.outcome[among], rows.count[among])
        groups = connected_groups(sub, n_models)
        # Groups are numbered largest first, and a model no longer kept is a group of one without battles.
        main = min((groups[m] for m in range(n_models) if kept[m]), default=None)
        changed = False
        for model in range(n_models):
            if kept[model] and groups[model] != main:
                status[model], changed = NOT_COMPARABLE, True
        scores, games = _scores_and_games(sub, n_models)
        for model in range(n_models):
            if status[model] != RATED:
                continue
            if games[model] == 0:  # all its battles were against models no longer rated
                status[model], changed = NOT_COMPARABLE, True
            elif scores[model] == games[model]:
                status[model], changed = UNBOUNDED_HIGH, True
            elif scores[model] == 0:
                status[model], changed = UNBOUNDED_LOW, True
        if not changed:
            return status


def simulate_battles(
    ratings: Sequence[float] | np.ndarray,
    n_battles: int,
    *,
    tie_prob: float = 0.0,
    seed: int = 0,
    scale: float = 400.0,
    base: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Battles between uniformly drawn pairs of distinct models (sides at random) of the given true ratings.

    With P = P(A beats B) under Bradley-Terry, a battle is a tie with probability
    tie_prob * 2 * min(P, 1 - P) (so `tie_prob` between equal models, fewer ties for lopsided pairs), A wins
    with P - ties / 2 and B wins with 1 - P - ties / 2: A's expected score stays P, so ties counted as half
    a win leave the ratings unbiased. Returns (a_idx, b_idx, outcome) with outcome 0 / 1 / 2.
    """
    true_ratings = np.asarray(ratings, dtype=np.float64)
    n_models = true_ratings.size
    if n_models < 2:
        raise ValueError("simulate_battles needs at least two models")
    if not 0.0 <= tie_prob <= 1.0:
        raise ValueError(f"tie_prob must lie in [0, 1], got {tie_prob}")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n_models, size=n_battles)
    second = rng.integers(0, n_models - 1, size=n_battles)
    second += second >= first
    p_first = 1.0 / (1.0 + base ** ((true_ratings[second] - true_ratings[first]) / scale))
    ties = tie_prob * 2.0 * np.minimum(p_first, 1.0 - p_first)
    draw = rng.random(n_battles)
    outcome = np.where(
        draw < p_first - ties / 2.0, A_WINS, np.where(draw < p_first + ties / 2.0, TIE, B_WINS)
    )
    return first, second, outcome


def _check_rows(rows: BattleRows, n_models: int) -> None:
    if len(rows) and (rows.model_a.max() >= n_models or rows.model_b.max() >= n_models):
        raise ValueError(f"rows name a model index beyond n_models={n_models}")


def _scores_and_games(rows: BattleRows, n_models: int) -> tuple[np.ndarray, np.ndarray]:
    """Per model: its score (wins + half its ties) and its number of battles."""
    count = rows.count.astype(np.float64)
    score_a = count * (1.0 - rows.outcome / 2.0)
    scores = np.bincount(rows.model_a, score_a, n_models) + np.bincount(
        rows.model_b, count - score_a, n_models
    )
    games = np.bincount(rows.model_a, count, n_models) + np.bincount(rows.model_b, count, n_models)
    return scores, games


def _check_fit_arguments(n_models: int, scale: float, base: float, anchor: int | None, prior: float) -> None:
    if n_models < 1:
        raise ValueError(f"n_models must be at least 1, got {n_models}")
    if scale <= 0 or base <= 1:
        raise ValueError("scale must be positive and base greater than 1")
    if anchor is not None and not 0 <= anchor < n_models:
        raise ValueError(f"anchor must be a model index in [0, {n_models})")
    if prior < 0:
        raise ValueError("prior must be non-negative")


def _win_matrices(rows: BattleRows, counts: np.ndarray, n_models: int) -> np.ndarray:
    """(rounds, n, n) win matrices (ties as half a win each) from per-round counts of the unique rows."""
    _check_rows(rows, n_models)
    score_a = 1.0 - rows.outcome / 2.0
    n_rows = len(rows)
    # Each row adds its count times A's score to W[a, b] and times B's score to W[b, a].
    mapping = scipy.sparse.csr_matrix(
        (
            np.concatenate([score_a, 1.0 - score_a]),
            (
                np.tile(np.arange(n_rows), 2),
                np.concatenate(
                    [rows.model_a * n_models + rows.model_b, rows.model_b * n_models + rows.model_a]
                ),
            ),
        ),
        shape=(n_rows, n_models * n_models),
    )
    flat = np.asarray((mapping.T @ counts.T).T)
    return flat.reshape(counts.shape[0], n_models, n_models)


def _log_likelihood(wins: np.ndarray, strengths: np.ndarray, prior: float) -> np.ndarray:
    differences = strengths[:, :, None] - strengths[:, None, :]
    log_p = -np.logaddexp(0.0, -differences)
    return (wins * log_p).sum(axis=(1, 2)) - 0.5 * prior * (strengths * strengths).sum(axis=1)


def _newton_fit(wins: np.ndarray, start: np.ndarray, prior: float) -> np.ndarray:
    """Maximise the penalised log-likelihood for each of a batch of win matrices: (batch, n) natural-log
    strengths with mean zero."""
    batch, n_models, _ = wins.shape
    games = wins + wins.transpose(0, 2, 1)
    strengths = start - start.mean(axis=1, keepdims=True)
    active = np.arange(batch)
    identity = np.eye(n_models)
    for _ in range(NEWTON_MAX_ITERATIONS):
        theta = strengths[active]
        w, g = wins[active], games[active]
        p = expit(theta[:, :, None] - theta[:, None, :])
        gradient = (w - g * p).sum(axis=2) - prior * theta
        curvature = g * p * (1.0 - p)
        # Negative Hessian = graph Laplacian of the curvatures (+ prior). The Laplacian is singular along the
        # all-ones direction (ratings are defined up to a shift); adding (mean degree / n) * 1 1^T fixes the
        # shift at zero-sum steps without changing the step elsewhere, since the gradient sums to zero.
        degree = curvature.sum(axis=2)
        shift_fix = (degree.mean(axis=1) + prior + 1.0) / n_models
        system = identity * (degree + prior)[:, :, None] - curvature + shift_fix[:, None, None]
        try:
            step = np.linalg.solve(system, gradient[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError as error:
            raise RuntimeError(_NO_FINITE_FIT.format(prior=prior)) from error
        step -= step.mean(axis=1, keepdims=True)
        size = np.abs(step).max(axis=1)
        large = np.flatnonzero(size > SAFE_STEP)
        if large.size:
            step[large] *= _backtracking_fractions(w[large], theta[large], step[large], prior)[:, None]
        strengths[active] = theta + step
        # Newton converges quadratically: once a step is this small, what is left is far smaller.
        active = active[size >= NEWTON_TOLERANCE]
        if active.size == 0:
            return strengths
    raise RuntimeError(_NO_FINITE_FIT.format(prior=prior))


def _backtracking_fractions(
    wins: np.ndarray, theta: np.ndarray, step: np.ndarray, prior: float
) -> np.ndarray:
    """Per round, the largest of 1, 1/2, 1/4, ... of the step that does not lower the likelihood.

    A step moving no strength by more than SAFE_STEP always raises it: along such a step no pair's curvature
    p (1 - p) grows by more than e^(2 SAFE_STEP) < 2, and a Newton step gains as long as that factor is below 2.
    So halving stops at the latest when the step is that small.
    """
    fraction = np.ones(theta.shape[0])
    current = _log_likelihood(wins, theta, prior)
    for _ in range(64):
        worse = _log_likelihood(wins, theta + fraction[:, None] * step, prior) < current
        if not worse.any():
            break
        fraction[worse] *= 0.5
    return fraction


_NO_FINITE_FIT = (
    "the Bradley-Terry fit did not converge (prior={prior}): without a prior, a model that won or lost every "
    "battle, a model without battles, or groups of models that never met have no finite maximum-likelihood "
    "rating"
)


def _to_ratings(
    strengths: np.ndarray, scale: float, base: float, init_rating: float, anchor: int | None
) -> np.ndarray:
    ratings = init_rating + scale * strengths / math.log(base)
    if anchor is not None:
        ratings += init_rating - ratings[:, [anchor]]
    return ratings
