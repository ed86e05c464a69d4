"""Creating a campaign: validate the set-up, build its items from the video library, and record the
prompts left out (a compared model has no video, refused, or lacks the seeds or shared noise the kind
needs). Everything happens in one transaction: a rejected set-up leaves nothing behind."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from generation.models import Benchmark, Category, Prompt, Refusal, Video, VideoModel

from .models import Campaign, CampaignMedia, CampaignModel, ExcludedPrompt, Item, ItemVideo


class CampaignError(ValueError):
    """Bad campaign input; the message is for the person who sent it."""


# The bounds of a campaign's set-up, declared once: the service checks them, the form and the API show them.
MAX_JUDGMENTS_PER_ITEM = 100
MAX_REPEAT_FRACTION = 0.5
MIN_CLAIM_TIMEOUT_S = 30
MAX_CLAIM_TIMEOUT_S = 7 * 24 * 3600  # a week; the column holds far more, a claim should not

MAX_SEED_PAIRS_PER_PROMPT = 6  # 4 seeds give 6 pairs; more seeds are paired with their neighbours only


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    kind: str
    benchmark: Benchmark
    models: Sequence[VideoModel]
    categories: Sequence[Category] = ()
    annotators: Sequence = ()
    overlap: str = Campaign.Overlap.K_PER_ITEM
    judgments_per_item: int = 3
    rubric_layout: str = Campaign.RubricLayout.SINGLE
    require_full_playback: bool = False
    repeat_fraction: float = 0.0
    claim_timeout_s: int = 900
    description: str = ""


def _check(spec: CampaignSpec) -> None:
    kinds = Campaign.Kind
    if spec.kind not in kinds.values:
        raise CampaignError(f"unknown campaign kind {spec.kind!r}; expected one of {', '.join(kinds.values)}")
    if not spec.name.strip():
        raise CampaignError("a campaign needs a name")
    if Campaign.objects.filter(name=spec.name.strip()).exists():
        raise CampaignError(f"a campaign named {spec.name.strip()!r} already exists")
    model_ids = [m.pk for m in spec.models]
    if len(set(model_ids)) != len(model_ids):
        raise CampaignError("a model is listed twice")
    wanted = {
        kinds.PAIRWISE: (2, 2, "two models"),
        kinds.AB_SHARED_NOISE: (2, 2, "two models (baseline, then tuned)"),
        kinds.SEED_PREFERENCE: (1, 1, "one model"),
        kinds.RUBRIC: (1, 20, "one to twenty models"),
    }[spec.kind]
    if not wanted[0] <= len(model_ids) <= wanted[1]:
        raise CampaignError(f"a {spec.kind} campaign compares {wanted[2]}; got {len(model_ids)}")
    for category in spec.categories:
        if category.benchmark_id != spec.benchmark.pk:
            raise CampaignError(f"category {category.name!r} is not in benchmark {spec.benchmark.slug!r}")
    if spec.overlap not in Campaign.Overlap.values:
        raise CampaignError(f"unknown overlap {spec.overlap!r}")
    # checked for every overlap: the value is stored either way
    if not 1 <= spec.judgments_per_item <= MAX_JUDGMENTS_PER_ITEM:
        raise CampaignError(f"judgments per item must be between 1 and {MAX_JUDGMENTS_PER_ITEM}")
    if spec.rubric_layout not in Campaign.RubricLayout.values:
        raise CampaignError(f"unknown rubric layout {spec.rubric_layout!r}")
    if not 0 <= spec.repeat_fraction <= MAX_REPEAT_FRACTION:
        raise CampaignError(f"the repeated share of items must be between 0 and {MAX_REPEAT_FRACTION}")
    if not MIN_CLAIM_TIMEOUT_S <= spec.claim_timeout_s <= MAX_CLAIM_TIMEOUT_S:
        raise CampaignError(
            f"the claim timeout must be between {MIN_CLAIM_TIMEOUT_S} and {MAX_CLAIM_TIMEOUT_S} seconds"
        )
    shown_text = spec.description.casefold()
    for model in spec.models:
        for word in {model.name, str(model)}:
            if word.strip() and word.strip().casefold() in shown_text:
                raise CampaignError(
                    f"the instructions name a compared model ({word!r}); annotators must not learn which "
                    "model made a video"
                )
    user_model = get_user_model()
    for annotator in spec.annotators:
        if not isinstance(annotator, user_model) or not annotator.is_active:
            raise CampaignError(f"{annotator} is not an active user")


def _ready_videos(
    models: Iterable[VideoModel], prompts: Iterable[Prompt]
) -> dict[tuple[int, int], list[Video]]:
    by_key: dict[tuple[int, int], list[Video]] = defaultdict(list)
    videos = Video.objects.filter(
        model__in=list(models), prompt__in=list(prompts), status=Video.Status.READY
    ).order_by("seed", "id")
    for video in videos:
        by_key[(video.model_id, video.prompt_id)].append(video)
    return by_key


def _seed_pairs(videos: list[Video]) -> list[tuple[Video, Video]]:
    pairs = list(itertools.combinations(videos, 2))
    if len(pairs) > MAX_SEED_PAIRS_PER_PROMPT:
        pairs = list(itertools.pairwise(videos))
    return pairs


def _noise_pairs(baseline: list[Video], tuned: list[Video]) -> list[tuple[Video, Video]]:
    tuned_by_noise = {v.noise_id: v for v in tuned if v.noise_id}
    return [(b, tuned_by_noise[b.noise_id]) for b in baseline if b.noise_id and b.noise_id in tuned_by_noise]


def plan_items(
    kind: str, models: Sequence[VideoModel], prompts: Sequence[Prompt], rubric_layout: str
) -> tuple[list[tuple[Prompt, list[Video]]], list[tuple[Prompt, VideoModel | None, str]]]:
    """Items (prompt, videos in canonical slot order) and exclusions (prompt, model, reason)."""
    refused = set(
        Refusal.objects.filter(model__in=list(models), prompt__in=list(prompts)).values_list(
            "model_id", "prompt_id"
        )
    )
    videos = _ready_videos(models, prompts)
    items: list[tuple[Prompt, list[Video]]] = []
    excluded: list[tuple[Prompt, VideoModel | None, str]] = []
    reasons = ExcludedPrompt.Reason
    for prompt in prompts:
        missing = []
        for model in models:
            if (model.pk, prompt.pk) in refused:
                missing.append((prompt, model, reasons.REFUSED))
            elif not videos.get((model.pk, prompt.pk)):
                missing.append((prompt, model, reasons.NO_VIDEO))
        if missing:
            excluded.extend(missing)
            continue
        per_model = [videos[(m.pk, prompt.pk)] for m in models]
        if kind == Campaign.Kind.PAIRWISE:
            items.append((prompt, [per_model[0][0], per_model[1][0]]))
        elif kind == Campaign.Kind.RUBRIC:
            if rubric_layout == Campaign.RubricLayout.TOGETHER:
                items.append((prompt, [vs[0] for vs in per_model]))
            else:
                items.extend((prompt, [vs[0]]) for vs in per_model)
        elif kind == Campaign.Kind.SEED_PREFERENCE:
            pairs = _seed_pairs(per_model[0])
            if not pairs:
                excluded.append((prompt, models[0], reasons.TOO_FEW_SEEDS))
            items.extend((prompt, [a, b]) for a, b in pairs)
        elif kind == Campaign.Kind.AB_SHARED_NOISE:
            pairs = _noise_pairs(per_model[0], per_model[1])
            if not pairs:
                excluded.append((prompt, None, reasons.NO_SHARED_NOISE))
            items.extend((prompt, [a, b]) for a, b in pairs)
    return items, excluded


def create_campaign(spec: CampaignSpec, *, created_by=None) -> Campaign:
    """Create a campaign with its items, and queue the job that makes its own renditions of its videos
    (annotators get work once they are ready: see annotation.renditions). Raises CampaignError (and stores nothing) when the set-up is
    invalid or leaves no item to annotate."""
    _check(spec)
    prompts = list(spec.benchmark.prompts.select_related("category").order_by("position"))
    if spec.categories:
        category_ids = {c.pk for c in spec.categories}
        prompts = [p for p in prompts if p.category_id in category_ids]
    if not prompts:
        raise CampaignError("the chosen benchmark and categories have no prompts")
    items, excluded = plan_items(spec.kind, list(spec.models), prompts, spec.rubric_layout)
    if not items:
        raise CampaignError(
            f"no prompt has the videos this campaign needs ({len(excluded)} exclusions); "
            "add or import videos first"
        )
    every = spec.overlap == Campaign.Overlap.EVERY_ANNOTATOR
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=spec.name.strip(),
            kind=spec.kind,
            description=spec.description,
            benchmark=spec.benchmark,
            overlap=spec.overlap,
            judgments_per_item=spec.judgments_per_item if not every else max(1, len(spec.annotators)),
            rubric_layout=spec.rubric_layout,
            require_full_playback=spec.require_full_playback,
            repeat_fraction=spec.repeat_fraction,
            claim_timeout_s=spec.claim_timeout_s,
            created_by=created_by,
        )
        campaign.categories.set(spec.categories)
        campaign.annotators.set(spec.annotators)
        CampaignModel.objects.bulk_create(
            CampaignModel(campaign=campaign, model=model, position=i) for i, model in enumerate(spec.models)
        )
        required = campaign.judgments_per_item
        created = Item.objects.bulk_create(
            Item(campaign=campaign, prompt=prompt, position=i + 1, required_judgments=required)
            for i, (prompt, _) in enumerate(items)
        )
        ItemVideo.objects.bulk_create(
            ItemVideo(item=item, video=video, slot=slot)
            for item, (_, videos) in zip(created, items, strict=True)
            for slot, video in enumerate(videos)
        )
        # Each video gets an id of this campaign's own for annotators' URLs (see CampaignMedia).
        shown = dict.fromkeys(video.pk for _, videos in items for video in videos)
        CampaignMedia.objects.bulk_create(CampaignMedia(campaign=campaign, video_id=pk) for pk in shown)
        ExcludedPrompt.objects.bulk_create(
            ExcludedPrompt(campaign=campaign, prompt=prompt, model=model, reason=reason)
            for prompt, model, reason in excluded
        )
        # Its own renditions of every video are made by a job; no work is handed out before.
        from .renditions import start_prepare_media

        start_prepare_media(campaign, created_by=created_by)
    return campaign
