"""Reads shared by the pages and the API."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet
from django.urls import reverse

from .models import Benchmark, Category, GenerationItem, GenerationRun, Prompt, Refusal, Video, VideoModel


def benchmarks_with_counts() -> QuerySet[Benchmark]:
    categories = Category.objects.annotate(prompt_count=Count("prompts")).order_by("position")
    return Benchmark.objects.annotate(prompt_count=Count("prompts", distinct=True)).prefetch_related(
        Prefetch("categories", queryset=categories, to_attr="category_rows")
    )


def prompts_for(
    benchmark: Benchmark, *, category: str | None = None, tag: str | None = None
) -> QuerySet[Prompt]:
    prompts = (
        benchmark.prompts.select_related("category", "benchmark")
        .prefetch_related("tags")
        .order_by("position")
    )
    if category:
        prompts = prompts.filter(category__name=category)
    if tag:
        prompts = prompts.filter(Q(tags__name=tag) | Q(tags__group=tag)).distinct()
    return prompts


def prompts_queryset(*, benchmark: str | None = None, category: str | None = None, tag: str | None = None):
    prompts = (
        Prompt.objects.select_related("category", "benchmark")
        .prefetch_related("tags")
        .order_by("benchmark", "position")
    )
    if benchmark:
        prompts = prompts.filter(benchmark__slug=benchmark)
    if category:
        prompts = prompts.filter(category__name=category)
    if tag:
        prompts = prompts.filter(Q(tags__name=tag) | Q(tags__group=tag)).distinct()
    return prompts


def tag_groups(benchmark: Benchmark) -> list[dict]:
    """Report-style tag groups with the number of prompts in each (a prompt counts in each of its groups)."""
    rows = (
        Prompt.objects.filter(benchmark=benchmark, tags__group__gt="")
        .values("tags__group")
        .annotate(prompt_count=Count("id", distinct=True))
        .order_by("tags__group")
    )
    return [{"group": r["tags__group"], "prompt_count": r["prompt_count"]} for r in rows]


def video_models_with_counts() -> QuerySet[VideoModel]:
    return VideoModel.objects.annotate(video_count=Count("videos")).order_by("name", "version")


def videos_queryset(*, model=None, benchmark=None, prompt=None, status=None) -> QuerySet[Video]:
    videos = Video.objects.select_related("model", "prompt", "prompt__benchmark").order_by(
        "-created_at", "-id"
    )
    if model:
        videos = videos.filter(model_id=model)
    if benchmark:
        videos = videos.filter(prompt__benchmark__slug=benchmark)
    if prompt:
        videos = videos.filter(prompt_id=prompt)
    if status:
        videos = videos.filter(status=status)
    return videos


def refusals_for(benchmark: Benchmark) -> QuerySet[Refusal]:
    return Refusal.objects.filter(prompt__benchmark=benchmark).select_related("model", "prompt")


def playable_url(video: Video) -> str | None:
    if video.status != Video.Status.READY:
        return None
    return reverse("media-video", kwargs={"public_id": video.public_id})


def poster_url(video: Video) -> str | None:
    if not video.poster_file:
        return None
    return reverse("media-poster", kwargs={"public_id": video.public_id})


def runs_with_counts() -> QuerySet[GenerationRun]:
    done, problems = GenerationItem.Status.DONE, [GenerationItem.Status.FAILED, GenerationItem.Status.REFUSED]
    return (
        GenerationRun.objects.select_related("model", "benchmark", "created_by")
        .annotate(
            video_count=Count("items"),
            done_count=Count("items", filter=Q(items__status=done)),
            problem_count=Count("items", filter=Q(items__status__in=problems)),
        )
        .order_by("-created_at", "-id")
    )
