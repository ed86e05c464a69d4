"""Generate what a campaign set-up needs: the generation runs that fill the prompts a compared model lacks,
so that the campaign can then be created without those prompts being left out. Pairwise and rubric
campaigns need one video per model and prompt, seed preference k seeds of its model, and A/B with shared
noise k shared-noise videos of both models (the same noise ids, which the runs derive from the prompt, so
baseline and tuned start from identical latents when they share a family and size)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from generation.models import GenerationRun, Prompt, Refusal, Video, VideoModel
from generation.runs.planning import RunPlan, RunSpec, plan_run, start_run
from generation.services import GenerationError

from .campaigns import CampaignSpec
from .models import Campaign


def _prompts(spec: CampaignSpec) -> list[Prompt]:
    prompts = spec.benchmark.prompts.order_by("position")
    if spec.categories:
        prompts = prompts.filter(category__in=list(spec.categories))
    return list(prompts)


def needed_runs(
    spec: CampaignSpec, *, count: int = 1, settings: Mapping[str, Any] | None = None, batch_size: int = 4
) -> list[RunSpec]:
    """One run per model that lacks videos, over exactly the prompts it lacks them for (refused prompts
    aside). `count` is k seeds (seed preference) or k shared-noise ids (A/B) per prompt."""
    kinds = Campaign.Kind
    if spec.kind not in kinds.values:
        raise GenerationError(f"unknown campaign kind {spec.kind!r}")
    if not spec.models:
        raise GenerationError("choose the campaign's models first")
    if not 1 <= count <= 16:
        raise GenerationError("videos per prompt must be between 1 and 16")
    if spec.kind == kinds.SEED_PREFERENCE and count < 2:
        raise GenerationError("a seed-preference campaign needs at least 2 seeds per prompt")
    prompts = _prompts(spec)
    models: list[VideoModel] = list(spec.models)
    refused = set(
        Refusal.objects.filter(model__in=models, prompt__in=prompts).values_list("model_id", "prompt_id")
    )
    videos: dict[tuple[int, int], list[Video]] = defaultdict(list)
    for video in Video.objects.filter(model__in=models, prompt__in=prompts).exclude(
        status=Video.Status.FAILED
    ):
        videos[(video.model_id, video.prompt_id)].append(video)

    def lacking(model: VideoModel, enough) -> list[int]:
        return [
            p.position
            for p in prompts
            if (model.pk, p.pk) not in refused and not enough(videos[(model.pk, p.pk)], p)
        ]

    common = {"benchmark": spec.benchmark, "settings": dict(settings or {}), "batch_size": batch_size}
    runs: list[RunSpec] = []
    if spec.kind == kinds.AB_SHARED_NOISE:
        baseline, tuned = models[0], models[1]

        def has_pair(_videos, prompt) -> bool:
            ids = [{v.noise_id for v in videos[(m.pk, prompt.pk)] if v.noise_id} for m in (baseline, tuned)]
            return bool(ids[0] & ids[1])

        positions = sorted(set(lacking(baseline, has_pair)) & set(lacking(tuned, has_pair)))
        if positions:
            runs = [
                RunSpec(
                    model=m,
                    prompt_positions=positions,
                    noise_per_prompt=count,
                    skip_existing_variants=True,
                    **common,
                )
                for m in (baseline, tuned)
            ]
    elif spec.kind == kinds.SEED_PREFERENCE:
        positions = lacking(models[0], lambda vs, _p: len(vs) >= count)
        if positions:
            runs = [
                RunSpec(
                    model=models[0],
                    prompt_positions=positions,
                    seeds_per_prompt=count,
                    skip_existing_variants=True,
                    **common,
                )
            ]
    else:
        for model in models:
            positions = lacking(model, lambda vs, _p: bool(vs))
            if positions:
                runs.append(
                    RunSpec(model=model, prompt_positions=positions, seeds=list(range(count)), **common)
                )
    return runs


def plan_campaign_generation(spec: CampaignSpec, **options: Any) -> list[RunPlan]:
    return [plan_run(run) for run in needed_runs(spec, **options)]


def start_campaign_generation(spec: CampaignSpec, *, user=None, **options: Any) -> list[GenerationRun]:
    """Start every needed run, all or nothing. Raises GenerationError when nothing is missing."""
    plans = plan_campaign_generation(spec, **options)
    plans = [plan for plan in plans if plan.videos]
    if not plans:
        raise GenerationError("every compared model already has the videos this campaign needs")
    with transaction.atomic():
        return [start_run(plan.spec, user=user) for plan in plans]
