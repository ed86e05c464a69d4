"""Reads of the automatic video metrics shared by their pages, the API and the leaderboard's columns."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Avg, Count, QuerySet

from generation.models import Benchmark, Video, VideoModel

from .models import AutoScore, AutoScoreRun, ScoreSettings, VaeEvaluation, VaeEvaluationVideo

# ---------------------------------------------------------------- VAE reconstruction


def vae_evaluations() -> QuerySet[VaeEvaluation]:
    return VaeEvaluation.objects.select_related(
        "test_model", "benchmark", "reconstruction_model", "job", "created_by"
    ).order_by("-created_at", "-id")


def vae_evaluation_videos(evaluation: VaeEvaluation) -> QuerySet[VaeEvaluationVideo]:
    return (
        evaluation.video_results.select_related("video", "video__prompt", "video__prompt__benchmark")
        .defer("truth_features", "reconstruction_features")
        .order_by("video__prompt__position", "video__seed", "video_id")
    )


@dataclass
class VaeComparison:
    """Evaluations on one test set (a model's ready videos, optionally on one benchmark), side by side as in
    the Step-Video-T2V report's Table 13, with the best finished figure of each column."""

    test_model: VideoModel
    benchmark: Benchmark | None
    evaluations: list[VaeEvaluation] = field(default_factory=list)
    best_ssim: float | None = None
    best_psnr: float | None = None
    best_rfvd: float | None = None


def vae_comparisons() -> list[VaeComparison]:
    groups: dict[tuple[int, int | None], VaeComparison] = {}
    for evaluation in vae_evaluations().order_by("created_at", "id"):
        key = (evaluation.test_model_id, evaluation.benchmark_id)
        group = groups.setdefault(key, VaeComparison(evaluation.test_model, evaluation.benchmark))
        group.evaluations.append(evaluation)
    for group in groups.values():
        done = [e for e in group.evaluations if e.is_complete]
        group.best_ssim = max((e.ssim for e in done if e.ssim is not None), default=None)
        group.best_psnr = max((e.psnr for e in done if e.psnr is not None), default=None)
        group.best_rfvd = min((e.rfvd for e in done if e.rfvd is not None), default=None)
    return sorted(groups.values(), key=lambda g: (str(g.test_model), str(g.benchmark or "")))


# ---------------------------------------------------------------- automatic scores

METRIC_ORDER = [m.value for m in AutoScore.Metric]


@dataclass(frozen=True)
class ScoreColumn:
    """One metric computed with one set of settings: a column of the leaderboard."""

    metric: str
    metric_label: str
    settings: ScoreSettings

    @property
    def id(self) -> str:
        return f"{self.metric}:{self.settings.key[:12]}"


@dataclass
class ScoreCell:
    mean: float
    count: int


@dataclass
class ScoreRow:
    model: VideoModel
    cells: list[ScoreCell | None]
    category: str = ""

    def by_column(self, columns: list[ScoreColumn]) -> dict[str, dict[str, Any]]:
        return {
            column.id: {"mean": cell.mean, "count": cell.count}
            for column, cell in zip(columns, self.cells, strict=True)
            if cell is not None
        }


@dataclass
class ScoreSummary:
    benchmark: Benchmark
    columns: list[ScoreColumn]
    models: list[ScoreRow]
    categories: list[ScoreRow]


def scored_benchmarks() -> QuerySet[Benchmark]:
    return Benchmark.objects.filter(prompts__videos__auto_scores__isnull=False).distinct().order_by("name")


def _scores(benchmark: Benchmark) -> QuerySet[AutoScore]:
    return AutoScore.objects.filter(
        video__prompt__benchmark=benchmark, video__status=Video.Status.READY
    ).order_by()  # no default ordering: it would split the groups and the distinct rows below


def score_columns(benchmark: Benchmark) -> list[ScoreColumn]:
    pairs = _scores(benchmark).values_list("metric", "settings").distinct()
    settings = ScoreSettings.objects.in_bulk({settings_id for _, settings_id in pairs})
    labels = dict(AutoScore.Metric.choices)
    columns = [ScoreColumn(metric, labels[metric], settings[settings_id]) for metric, settings_id in pairs]
    return sorted(columns, key=lambda c: (METRIC_ORDER.index(c.metric), c.settings.created_at, c.settings.pk))


def auto_score_summary(benchmark: Benchmark) -> ScoreSummary:
    """Mean of each metric over each model's scored videos on the benchmark, overall and per category."""
    columns = score_columns(benchmark)
    index = {(c.metric, c.settings.pk): i for i, c in enumerate(columns)}
    models = VideoModel.objects.in_bulk(
        set(_scores(benchmark).values_list("video__model", flat=True).distinct())
    )

    per_model: dict[int, list[ScoreCell | None]] = {}
    for row in (
        _scores(benchmark)
        .values("video__model", "metric", "settings")
        .annotate(mean=Avg("value"), count=Count("id"))
    ):
        cells = per_model.setdefault(row["video__model"], [None] * len(columns))
        cells[index[(row["metric"], row["settings"])]] = ScoreCell(row["mean"], row["count"])

    per_category: dict[tuple[int, str, int], list[ScoreCell | None]] = {}
    for row in (
        _scores(benchmark)
        .values(
            "video__prompt__category__position",
            "video__prompt__category__name",
            "video__model",
            "metric",
            "settings",
        )
        .annotate(mean=Avg("value"), count=Count("id"))
    ):
        key = (
            row["video__prompt__category__position"] or 0,
            row["video__prompt__category__name"] or "",
            row["video__model"],
        )
        cells = per_category.setdefault(key, [None] * len(columns))
        cells[index[(row["metric"], row["settings"])]] = ScoreCell(row["mean"], row["count"])

    model_rows = sorted(
        (ScoreRow(models[pk], cells) for pk, cells in per_model.items()), key=lambda r: str(r.model)
    )
    category_rows = [
        ScoreRow(models[model_pk], per_category[(position, name, model_pk)], category=name or "(none)")
        for position, name, model_pk in sorted(per_category, key=lambda k: (k[0], k[1], str(models[k[2]])))
    ]
    return ScoreSummary(benchmark, columns, model_rows, category_rows)


def auto_score_runs() -> QuerySet[AutoScoreRun]:
    return AutoScoreRun.objects.select_related(
        "model", "benchmark", "job", "clip_settings", "motion_settings"
    ).order_by("-created_at", "-id")


# ---------------------------------------------------------------- the leaderboard's automatic columns

LEADERBOARD_METRICS = (
    AutoScore.Metric.CLIP_SCORE,
    AutoScore.Metric.MOTION_MEAN,
    AutoScore.Metric.REWARD_SCORE,
)


def model_metric_means(
    model_ids: list[int], *, benchmark_id: int | None = None, category_id: int | None = None
) -> tuple[list[dict[str, Any]], dict]:
    """Per automatic metric, the settings with the most scores among these models, and each model's mean
    with those settings: ([{metric, label, settings}], {(model id, metric): (mean, count)}). Two queries."""
    scores = AutoScore.objects.filter(
        video__model_id__in=model_ids, video__status=Video.Status.READY, metric__in=LEADERBOARD_METRICS
    )
    if benchmark_id is not None:
        scores = scores.filter(video__prompt__benchmark_id=benchmark_id)
    if category_id is not None:
        scores = scores.filter(video__prompt__category_id=category_id)
    groups = list(
        scores.order_by()
        .values_list("video__model_id", "metric", "settings_id")
        .annotate(mean=Avg("value"), n=Count("id"))
    )
    totals: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for _, metric, settings_id, _, n in groups:
        totals[metric][settings_id] += n
    chosen = {
        metric: max(per_settings, key=lambda s: (per_settings[s], s))
        for metric, per_settings in totals.items()
    }
    settings = ScoreSettings.objects.in_bulk(set(chosen.values())) if chosen else {}
    labels = dict(AutoScore.Metric.choices)
    columns = [
        {"metric": metric, "label": labels[metric], "settings": settings[chosen[metric]].label}
        for metric in LEADERBOARD_METRICS
        if metric in chosen
    ]
    means = {
        (model_id, metric): (mean, n)
        for model_id, metric, settings_id, mean, n in groups
        if chosen.get(metric) == settings_id
    }
    return columns, means
