"""Reads for the managers' pages and API: campaigns with their progress, progress per annotator and per
item, time per item, exclusions and problem reports, and the judgments list. Managers are not blind:
these reads name models freely, and nothing here is for annotators."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from evalsite.accounts import ANNOTATORS_GROUP

from .models import (
    AnnotatorExclusion,
    Assignment,
    Campaign,
    CampaignModel,
    ExcludedPrompt,
    Item,
    ItemVideo,
    Judgment,
    ProblemReport,
    RubricScore,
)


def campaigns_with_progress() -> QuerySet[Campaign]:
    """Campaigns with `item_count`, `required_total` (judgments wanted in all) and `done_total` (first
    showings answered, at most the required number per item, so extra answers do not overfill the bar)."""
    done_on_item = (
        Judgment.objects.filter(item=OuterRef("pk"), is_repeat=False)
        .values("item")
        .annotate(n=Count("id"))
        .values("n")
    )
    capped_done = (
        Item.objects.filter(campaign=OuterRef("pk"))
        .annotate(done=Coalesce(Subquery(done_on_item, output_field=IntegerField()), Value(0)))
        .annotate(capped=Least("done", "required_judgments", output_field=IntegerField()))
        .values("campaign")
        .annotate(total=Sum("capped", output_field=IntegerField()))
        .values("total")
    )
    required = (
        Item.objects.filter(campaign=OuterRef("pk"))
        .values("campaign")
        .annotate(total=Sum("required_judgments", output_field=IntegerField()))
        .values("total")
    )
    item_count = (
        Item.objects.filter(campaign=OuterRef("pk")).values("campaign").annotate(n=Count("id")).values("n")
    )
    return (
        Campaign.objects.select_related("benchmark", "created_by")
        .prefetch_related(Prefetch("campaign_models", CampaignModel.objects.select_related("model")))
        .annotate(
            item_count=Coalesce(Subquery(item_count, output_field=IntegerField()), Value(0)),
            required_total=Coalesce(Subquery(required, output_field=IntegerField()), Value(0)),
            done_total=Coalesce(Subquery(capped_done, output_field=IntegerField()), Value(0)),
        )
        .order_by("-created_at", "-id")
    )


def campaign_models(campaign: Campaign) -> list:
    """The compared models in campaign order (model A first)."""
    return [entry.model for entry in campaign.campaign_models.select_related("model").order_by("position")]


def annotator_group_members() -> QuerySet:
    """Active users in the 'annotators' group."""
    return get_user_model().objects.filter(groups__name=ANNOTATORS_GROUP, is_active=True).order_by("username")


def campaign_people(campaign: Campaign) -> QuerySet:
    """Everyone who belongs to the campaign or has answered in it (imported annotators included)."""
    judged = Judgment.objects.filter(campaign=campaign, annotator=OuterRef("pk"))
    return (
        get_user_model()
        .objects.filter(Q(campaigns=campaign) | Exists(judged))
        .distinct()
        .order_by("username")
    )


def exclusions_by_annotator(campaign: Campaign) -> dict[int, AnnotatorExclusion]:
    return {e.annotator_id: e for e in campaign.annotator_exclusions.select_related("created_by")}


@dataclass(frozen=True)
class AnnotatorProgress:
    annotator_id: int
    username: str
    in_campaign: bool  # listed among the campaign's annotators; imported annotators are not
    done: int  # first showings answered on the site
    repeats_done: int
    imported: int
    claimed: int  # live claims now
    total: int  # items in the campaign: an annotator answers each item at most once (repeats aside)
    problems: int
    median_duration_ms: float | None
    last_active: datetime | None
    excluded: bool
    exclusion_reason: str

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def progress_per_annotator(campaign: Campaign) -> list[AnnotatorProgress]:
    """Progress of every annotator of the campaign and of everyone with a judgment in it, by username."""
    now = timezone.now()
    listed = set(campaign.annotators.values_list("pk", flat=True))
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    durations: dict[int, list[int]] = defaultdict(list)
    last_active: dict[int, datetime] = {}

    def touch(user_id: int, when: datetime | None) -> None:
        if when and (user_id not in last_active or when > last_active[user_id]):
            last_active[user_id] = when

    rows = Judgment.objects.filter(campaign=campaign).values_list(
        "annotator_id", "source", "is_repeat", "duration_ms", "updated_at"
    )
    for user_id, source, is_repeat, duration_ms, updated_at in rows:
        if source == Judgment.Source.IMPORT:
            counts[user_id]["imported"] += 1
            continue
        counts[user_id]["repeats_done" if is_repeat else "done"] += 1
        if duration_ms is not None:
            durations[user_id].append(duration_ms)
        touch(user_id, updated_at)
    for user_id, claimed_at, status, expires_at in Assignment.objects.filter(campaign=campaign).values_list(
        "annotator_id", "claimed_at", "status", "expires_at"
    ):
        touch(user_id, claimed_at)
        if status == Assignment.Status.CLAIMED and expires_at > now:
            counts[user_id]["claimed"] += 1
    for user_id, n in (
        ProblemReport.objects.filter(assignment__campaign=campaign)
        .values("assignment__annotator_id")
        .annotate(n=Count("id"))
        .values_list("assignment__annotator_id", "n")
    ):
        counts[user_id]["problems"] = n
    exclusions = exclusions_by_annotator(campaign)
    users = get_user_model().objects.filter(pk__in=listed | set(counts)).order_by("username")
    total = campaign.items.count()
    return [
        AnnotatorProgress(
            annotator_id=user.pk,
            username=user.get_username(),
            in_campaign=user.pk in listed,
            done=counts[user.pk]["done"],
            repeats_done=counts[user.pk]["repeats_done"],
            imported=counts[user.pk]["imported"],
            claimed=counts[user.pk]["claimed"],
            total=total,
            problems=counts[user.pk]["problems"],
            median_duration_ms=statistics.median(durations[user.pk]) if durations[user.pk] else None,
            last_active=last_active.get(user.pk),
            excluded=user.pk in exclusions,
            exclusion_reason=exclusions[user.pk].reason if user.pk in exclusions else "",
        )
        for user in users
    ]


def item_progress(campaign: Campaign) -> QuerySet[Item]:
    """Items in canonical order with `judgments_done` (first showings), `repeats_done`, `live_claims` and
    `problems`, their prompt and their videos (with models) in slot order."""
    now = timezone.now()
    return (
        campaign.items.select_related("prompt", "prompt__category")
        .prefetch_related(
            Prefetch(
                "item_videos", ItemVideo.objects.select_related("video", "video__model").order_by("slot")
            )
        )
        .annotate(
            judgments_done=Count("judgments", filter=Q(judgments__is_repeat=False), distinct=True),
            repeats_done=Count("judgments", filter=Q(judgments__is_repeat=True), distinct=True),
            live_claims=Count(
                "assignments",
                filter=Q(assignments__status=Assignment.Status.CLAIMED, assignments__expires_at__gt=now),
                distinct=True,
            ),
            problems=Count("assignments__problem", distinct=True),
        )
        .order_by("position")
    )


def median_duration_by_item(item_ids: Iterable[int]) -> dict[int, float]:
    """Median answer time (ms) of each item's judgments, for the items that have any."""
    durations: dict[int, list[int]] = defaultdict(list)
    for item_id, duration_ms in Judgment.objects.filter(
        item_id__in=list(item_ids), duration_ms__isnull=False
    ).values_list("item_id", "duration_ms"):
        durations[item_id].append(duration_ms)
    return {item_id: statistics.median(values) for item_id, values in durations.items()}


@dataclass(frozen=True)
class TimeSummary:
    """Time from an item being shown to its answer, over the campaign's site judgments."""

    n: int
    median_ms: float | None
    p10_ms: float | None
    p90_ms: float | None
    mean_ms: float | None


def time_per_item(campaign: Campaign) -> TimeSummary:
    values = sorted(
        Judgment.objects.filter(campaign=campaign, duration_ms__isnull=False).values_list(
            "duration_ms", flat=True
        )
    )
    if not values:
        return TimeSummary(0, None, None, None, None)
    if len(values) == 1:
        p10 = p90 = float(values[0])
    else:
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    return TimeSummary(
        n=len(values),
        median_ms=float(statistics.median(values)),
        p10_ms=p10,
        p90_ms=p90,
        mean_ms=statistics.fmean(values),
    )


def excluded_prompts(campaign: Campaign) -> QuerySet[ExcludedPrompt]:
    return campaign.excluded_prompts.select_related("prompt", "model").order_by("prompt__position", "model")


def problem_reports(campaign: Campaign) -> QuerySet[ProblemReport]:
    return (
        ProblemReport.objects.filter(assignment__campaign=campaign)
        .select_related("assignment__annotator", "assignment__item__prompt")
        .order_by("-created_at", "-id")
    )


def judgments_queryset(
    *, campaign: int | None = None, annotator: str | None = None, source: str | None = None
) -> QuerySet[Judgment]:
    """Every judgment with its models, videos and rubric scores, and `excluded`: whether its annotator is
    excluded from its campaign. Filters: campaign id, annotator username, source (site / import)."""
    excluded = AnnotatorExclusion.objects.filter(
        campaign=OuterRef("campaign"), annotator=OuterRef("annotator")
    )
    judgments = (
        Judgment.objects.select_related(
            "campaign", "annotator", "prompt", "left_model", "right_model", "left_video", "right_video"
        )
        .prefetch_related(Prefetch("scores", RubricScore.objects.select_related("model", "video")))
        .annotate(excluded=Exists(excluded))
        .order_by("id")
    )
    if campaign is not None:
        # campaign__pk, not campaign_id: an id beyond the database's integers then matches nothing
        # rather than failing
        judgments = judgments.filter(campaign__pk=campaign)
    if annotator:
        judgments = judgments.filter(annotator__username=annotator)
    if source:
        judgments = judgments.filter(source=source)
    return judgments


def model_roles(campaign: Campaign) -> list[tuple[str, object]]:
    """(role, model) in campaign order: A and B for pairwise, baseline and tuned for A/B, the only model
    of a seed-preference campaign, numbered models for rubric scoring."""
    models = campaign_models(campaign)
    if campaign.kind == Campaign.Kind.PAIRWISE:
        roles = ["A", "B"]
    elif campaign.kind == Campaign.Kind.AB_SHARED_NOISE:
        roles = ["baseline", "tuned"]
    elif campaign.kind == Campaign.Kind.SEED_PREFERENCE:
        roles = ["model"]
    else:
        roles = [str(i) for i in range(1, len(models) + 1)]
    return list(zip(roles, models, strict=False))


def campaigns_with_demo_judgments(campaigns: QuerySet[Campaign] | None = None) -> QuerySet[Campaign]:
    """The campaigns (of `campaigns`, default all) that compare a demo model and have judgments: their
    numbers come from the demo setup's made-up answers, and pages that show them say so."""
    from generation.models import VideoModel

    chosen = Campaign.objects.all() if campaigns is None else campaigns
    return chosen.filter(
        campaign_models__model__kind=VideoModel.Kind.DEMO, judgments__isnull=False
    ).distinct()
