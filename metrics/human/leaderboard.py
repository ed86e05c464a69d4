"""The leaderboard across all models and campaigns: Bradley-Terry ratings from every pairwise judgment
(pairwise and A/B campaigns), 95% bootstrap intervals, an interval-respecting rank, battle counts, mean
Metric-2 scores from the rubric campaigns, and the automatic metrics where they exist.

The method (Chatbot Arena's):
- each analysed paired judgment is one battle between its left and right model; a tie counts as half a win
  for each side;
- ratings are the maximum-likelihood Bradley-Terry fit, base 10, scale 400, mean 1000
  (`metrics.stats.ratings`);
- the 95% interval is the percentile interval over `rounds` (>= 1000 on the page) bootstrap rounds that
  resample the battles with replacement;
- rank = 1 + the number of models whose lower bound is above this model's upper bound, so models whose
  intervals overlap share a rank;
- only models with a finite rating on a common scale are rated (`metrics.stats.ratings.rating_status`): a
  model that won (or lost) every battle against the rated models is "unbounded", and models with no chain of
  battles to the largest connected group are "not comparable". Neither gets a rating, an interval or a
  rank; each row says which (`status`, `status_label`), and the rated models are fitted on the battles
  among themselves.

The judgments are counted in the database (one GROUP BY over (left model, right model, choice)); only those
counts reach Python. The fit is cached under a digest of the counts themselves, so any change to the
judgments gives a new key and a cached fit is never stale.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.utils.translation import gettext_noop

from annotation.models import RUBRIC_DIMENSIONS, Campaign
from annotation.outcomes import LEFT, RIGHT, outcome_for
from annotation.outcomes import TIE as TIE_CHOICE
from evalsite.phrases import Phrasebook, fill
from generation.models import Benchmark, Category, VideoModel
from metrics.automatic.selectors import model_metric_means
from metrics.human.judgments import (
    BattleCount,
    JudgmentFilters,
    JudgmentScope,
    battle_counts,
    judgment_scope,
    judgments_fingerprint,
    rubric_means,
)
from metrics.human.results import DIMENSION_LABELS, Column, Table, parse_id, plot
from metrics.stats.pairwise import OUTCOME_INDEX
from metrics.stats.ratings import (
    A_WINS,
    B_WINS,
    NO_BATTLES,
    NOT_COMPARABLE,
    RATED,
    TIE,
    UNBOUNDED_HIGH,
    UNBOUNDED_LOW,
    BattleRows,
    bootstrap_ratings,
    rank_with_intervals,
    rating_status,
    unbounded_models,
)

DEFAULT_ROUNDS = 1000
PAIRED_KINDS_RATED = (Campaign.Kind.PAIRWISE, Campaign.Kind.AB_SHARED_NOISE)
ALL_POOL = "all"
OUTCOME_CODES = {LEFT: A_WINS, TIE_CHOICE: TIE, RIGHT: B_WINS}  # battle rows: A is the left model
TIES_NOTE = gettext_noop(
    "Ties count as half a win for each side (as Chatbot Arena counts them). Ratings: maximum-likelihood "
    "Bradley-Terry, base 10, scale 400, mean 1000; 95%% intervals from %(rounds)s bootstrap rounds over "
    "battles; a rank counts the models whose interval lies wholly above this model's, so overlapping models "
    "share a rank."
)
STATUS_ORDER = (RATED, UNBOUNDED_HIGH, UNBOUNDED_LOW, NOT_COMPARABLE, NO_BATTLES)
STATUS_NOTES = {
    UNBOUNDED_HIGH: gettext_noop(
        "%(models)s: unbounded, no loss against the rated models (a model that won every battle has no finite "
        "rating), so no rating, interval or rank."
    ),
    UNBOUNDED_LOW: gettext_noop(
        "%(models)s: unbounded, no win against the rated models (a model that lost every battle has no finite "
        "rating), so no rating, interval or rank."
    ),
    NOT_COMPARABLE: gettext_noop(
        "%(models)s: not comparable, no chain of battles links them to the rated models, so no rating on their "
        "scale, no interval and no rank."
    ),
    NO_BATTLES: gettext_noop("%(models)s: no pairwise battle (rubric scores only)."),
}
STATUS_LABELS = {
    (UNBOUNDED_HIGH, True): gettext_noop("unbounded: won every battle"),
    (UNBOUNDED_HIGH, False): gettext_noop("unbounded: no loss to a rated model"),
    (UNBOUNDED_LOW, True): gettext_noop("unbounded: lost every battle"),
    (UNBOUNDED_LOW, False): gettext_noop("unbounded: no win over a rated model"),
    NOT_COMPARABLE: gettext_noop("not comparable: no chain of battles to the rated models"),
    RATED: gettext_noop("rated"),
    NO_BATTLES: gettext_noop("no pairwise battle"),
}
MEAN_OF = gettext_noop("%(dimension)s (mean)")  # a rubric dimension's column


class LeaderboardError(ValueError):
    """A filter that names nothing; the message is for the person who sent it."""


def parse_filters(params: Mapping[str, str]) -> JudgmentFilters:
    """Filters from a query string: benchmark (slug), category (id), pool (a group name, or "all") and
    campaign (id or name). Raises LeaderboardError naming the bad value."""
    benchmark_id = category_id = campaign_id = None
    pool: str | None = None
    slug = (params.get("benchmark") or "").strip()
    if slug:
        benchmark_id = Benchmark.objects.filter(slug=slug).values_list("pk", flat=True).first()
        if benchmark_id is None:
            raise LeaderboardError(f"no benchmark with the slug {slug!r}")
    category = (params.get("category") or "").strip()
    if category:
        category_pk = parse_id(category)
        if category_pk is None:
            raise LeaderboardError(f"category must be a category id, got {category!r}")
        found = Category.objects.filter(pk=category_pk).values_list("pk", "benchmark_id").first()
        if found is None:
            raise LeaderboardError(f"no category with the id {category}")
        if benchmark_id is not None and found[1] != benchmark_id:
            raise LeaderboardError(f"category {category} is not in the benchmark {slug!r}")
        category_id = found[0]
    pool_name = (params.get("pool") or "").strip()
    if pool_name and pool_name != ALL_POOL:
        if not Group.objects.filter(name=pool_name).exists():
            raise LeaderboardError(f"no annotator pool (group) named {pool_name!r}")
        pool = pool_name
    campaign = (params.get("campaign") or "").strip()
    if campaign:
        campaign_pk = parse_id(campaign)
        query = (
            Campaign.objects.filter(pk=campaign_pk)
            if campaign_pk is not None
            else Campaign.objects.filter(name=campaign)
        )
        campaign_id = query.values_list("pk", flat=True).first()
        if campaign_id is None:
            raise LeaderboardError(f"no campaign with the id or name {campaign!r}")
    return JudgmentFilters(
        benchmark_id=benchmark_id, category_id=category_id, pool=pool, campaign_id=campaign_id
    )


def leaderboard_filter_options() -> dict[str, list[dict[str, Any]]]:
    """What the leaderboard's filters can choose from (four queries)."""
    return {
        "benchmarks": list(Benchmark.objects.order_by("name").values("slug", "name")),
        "categories": list(
            Category.objects.select_related("benchmark")
            .order_by("benchmark__name", "position")
            .values("pk", "name", "benchmark__name")
        ),
        "pools": list(Group.objects.order_by("name").values_list("name", flat=True)),
        "campaigns": list(
            Campaign.objects.filter(kind__in=[*PAIRED_KINDS_RATED, Campaign.Kind.RUBRIC])
            .order_by("-created_at", "-id")
            .values("pk", "name")
        ),
    }


def battle_rows(counts: list[BattleCount], index: dict[int, int]) -> BattleRows:
    """The database's counts as the unique (model A, model B, outcome) rows the rating code fits."""
    triples: dict[tuple[int, int, int], int] = defaultdict(int)
    for row in counts:
        triples[(index[row.left_model_id], index[row.right_model_id], OUTCOME_CODES[row.choice])] += row.n
    keys = sorted(triples)
    array = np.array(keys, dtype=np.int64).reshape(-1, 3)
    return BattleRows(
        model_a=array[:, 0],
        model_b=array[:, 1],
        outcome=array[:, 2],
        count=np.array([triples[k] for k in keys], dtype=np.int64),
    )


def cached_battle_counts(scope: JudgmentScope) -> list[BattleCount]:
    """`battle_counts`, cached under what defines them: the filters, the campaigns, what is left out, the
    prompts of the category and the members of the pool filtered on (as they are now: a prompt moved into
    the category or an annotator added to the pool changes the key), and the judgments' fingerprint (count,
    newest id, revisions), so a new, changed or deleted judgment is never missed."""
    key_source = repr(
        (
            scope.filters,
            scope.paired_campaign_ids,
            str(scope.left_out),
            scope.category_prompt_ids,
            scope.pool_annotator_ids,
            judgments_fingerprint(),
        )
    )
    key = f"metrics:battles:{hashlib.sha256(key_source.encode()).hexdigest()}"
    counts = cache.get(key)
    if counts is None:
        counts = battle_counts(scope)
        cache.set(key, counts, timeout=24 * 3600)
    return counts


def fitted_ratings(rows: BattleRows, n_models: int, *, rounds: int, seed: int) -> dict[str, list[float]]:
    """Ratings with their intervals, cached under a digest of the battle counts (which are the data)."""
    digest = hashlib.sha256()
    for array in (rows.model_a, rows.model_b, rows.outcome, rows.count):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    key = f"metrics:bt:{digest.hexdigest()}:{n_models}:{rounds}:{seed}"
    fit = cache.get(key)
    if fit is None:
        result = bootstrap_ratings(rows, n_models, rounds=rounds, seed=seed)
        fit = {
            "ratings": result.ratings.tolist(),
            "lower": result.lower.tolist(),
            "upper": result.upper.tolist(),
        }
        cache.set(key, fit, timeout=24 * 3600)
    return fit


def _status_label(code: str, won_or_lost_every_battle: bool) -> str:
    if code in (UNBOUNDED_HIGH, UNBOUNDED_LOW):
        return STATUS_LABELS[(code, won_or_lost_every_battle)]
    return STATUS_LABELS[code]


def leaderboard(filters: JudgmentFilters, *, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> dict[str, Any]:
    """The leaderboard as a JSON-ready dict: {filters, battles, rounds, note, tables: [leaderboard],
    plots: [ratings]}. About ten queries, whatever the number of judgments."""
    scope = judgment_scope(filters)
    counts = cached_battle_counts(scope)
    means = rubric_means(scope)
    battled_ids = sorted({c.left_model_id for c in counts} | {c.right_model_id for c in counts})
    model_ids = sorted(set(battled_ids) | set(means))
    models = VideoModel.objects.in_bulk(model_ids)
    auto_columns, auto_means = (
        model_metric_means(model_ids, benchmark_id=filters.benchmark_id, category_id=filters.category_id)
        if model_ids
        else ([], {})
    )

    record: dict[int, list[int]] = {model_id: [0, 0, 0] for model_id in model_ids}  # wins, ties, losses
    for row in counts:
        for model_id in (row.left_model_id, row.right_model_id):
            outcome = outcome_for(row.choice, row.left_model_id, row.right_model_id, model_id)
            record[model_id][OUTCOME_INDEX[outcome]] += row.n

    status = {model_id: NO_BATTLES for model_id in model_ids}
    won_or_lost_all: dict[int, bool] = {}
    if battled_ids:
        every_battle = battle_rows(counts, {model_id: i for i, model_id in enumerate(battled_ids)})
        status.update(zip(battled_ids, rating_status(every_battle, len(battled_ids)), strict=True))
        won_or_lost_all.update(
            zip(battled_ids, unbounded_models(every_battle, len(battled_ids)), strict=True)
        )
    rated_ids = [model_id for model_id in battled_ids if status[model_id] == RATED]
    fit: dict[str, list[float]] = {}
    ranks: list[int] = []
    if len(rated_ids) >= 2:
        index = {model_id: i for i, model_id in enumerate(rated_ids)}
        among_rated = [c for c in counts if c.left_model_id in index and c.right_model_id in index]
        fit = fitted_ratings(battle_rows(among_rated, index), len(rated_ids), rounds=rounds, seed=seed)
        ranks = rank_with_intervals(fit["lower"], fit["upper"])
    position = {model_id: i for i, model_id in enumerate(rated_ids)} if fit else {}

    rows = []
    for model_id in model_ids:
        wins, ties, losses = record[model_id]
        row: dict[str, Any] = {
            "rank": None,
            "model_id": model_id,
            "model": models[model_id].label,
            "status": status[model_id],
            "status_label": _status_label(status[model_id], won_or_lost_all.get(model_id, False)),
            "rating": None,
            "ci_low": None,
            "ci_high": None,
            "battles": wins + ties + losses,
            "wins": wins,
            "ties": ties,
            "losses": losses,
        }
        if model_id in position:
            i = position[model_id]
            row.update(
                rank=ranks[i], rating=fit["ratings"][i], ci_low=fit["lower"][i], ci_high=fit["upper"][i]
            )
        rubric = means.get(model_id, {})
        for dim in RUBRIC_DIMENSIONS:
            row[dim] = rubric.get(dim)
        row["rubric_scores"] = rubric.get("n")
        for column in auto_columns:
            mean = auto_means.get((model_id, column["metric"]))
            row[column["metric"]] = mean[0] if mean else None
        rows.append(row)
    rows.sort(key=lambda r: (STATUS_ORDER.index(r["status"]), -(r["rating"] or 0.0), r["model"]))
    rating_notes = [
        fill(STATUS_NOTES[code], models=", ".join(r["model"] for r in rows if r["status"] == code))
        for code in STATUS_ORDER
        if code != RATED and any(r["status"] == code for r in rows)
    ]

    table = Table(
        "leaderboard",
        gettext_noop("Leaderboard"),
        [
            Column("rank", gettext_noop("Rank"), "int"),
            Column("model", gettext_noop("Model")),
            Column("rating", gettext_noop("Rating"), "rating"),
            Column("ci_low", gettext_noop("95% CI low"), "rating"),
            Column("ci_high", gettext_noop("95% CI high"), "rating"),
            Column("status_label", gettext_noop("Rating status")),
            Column("battles", gettext_noop("Battles"), "int"),
            Column("wins", gettext_noop("Wins"), "int"),
            Column("ties", gettext_noop("Ties"), "int"),
            Column("losses", gettext_noop("Losses"), "int"),
            *[
                Column(dim, fill(MEAN_OF, dimension=DIMENSION_LABELS[dim]), "mean")
                for dim in RUBRIC_DIMENSIONS
            ],
            Column("rubric_scores", gettext_noop("Rubric scores"), "int"),
            *[Column(c["metric"], c["label"], "float") for c in auto_columns],
        ],
        rows,
        note=" ".join([fill(TIES_NOTE, rounds=rounds), *rating_notes]),
    )
    rated = [r for r in rows if r["rating"] is not None]
    figure = plot(
        "ratings",
        gettext_noop("Bradley-Terry ratings and their intervals (95%)"),
        [
            {
                "type": "scatter",
                "mode": "markers",
                "x": [r["model"] for r in rated],
                "y": [r["rating"] for r in rated],
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [r["ci_high"] - r["rating"] for r in rated],
                    "arrayminus": [r["rating"] - r["ci_low"] for r in rated],
                },
            }
        ],
        yaxis={"title": {"text": gettext_noop("rating")}},
    )
    return {
        "filters": filters.as_dict(),
        "battles": sum(c.n for c in counts),
        "rounds": rounds,
        "seed": seed,
        "note": fill(TIES_NOTE, rounds=rounds),
        "rating_notes": rating_notes,
        "unrated": {
            code: [r["model"] for r in rows if r["status"] == code] for code in STATUS_ORDER if code != RATED
        },
        "auto_metric_settings": auto_columns,
        "tables": [table.as_dict()],
        "plots": [figure] if rated else [],
    }


# What metrics.human.display recognises in the leaderboard: its notes with blanks and its status words.
PHRASES = Phrasebook(TIES_NOTE, *STATUS_NOTES.values())
CELL_WORDS = Phrasebook(*STATUS_LABELS.values())
