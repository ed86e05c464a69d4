"""Judgments of human evaluations, loaded for analysis as plain rows.

What is left out, and why (every analysis page lists what was left out):
- repeat judgments (`is_repeat=True`): they measure an annotator's self-consistency, they are not results;
- judgments of annotators a manager excluded from the campaign (`AnnotatorExclusion`);
- judgments of items that have a problem report (a broken video or an unreadable prompt taints every answer
  on that item, not only the reporter's);
- judgments on prompts that any model compared in the campaign refused (`Refusal`): a refused prompt has no
  fair comparison, so it is dropped for every model of the campaign, not only for the one that refused.

Paired judgments are resolved from what the annotator saw (left / tie / right) to the canonical preference
"a" (model A, position 0 of the campaign, is better) / "tie" / "b": sides are randomised per annotator, so
only the canonical preference can be compared across annotators. A seed-preference campaign compares two
videos of one model; there "a" is the video with the lower id.

Two kinds of reads live here: `load_campaign` (one campaign's rows, for its results page) and the
leaderboard's aggregates (`battle_counts`, `rubric_means`), which group in the database and never bring the
judgments themselves into Python.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Avg, Case, Count, F, IntegerField, Max, Q, QuerySet, Value, When

from annotation.models import (
    RUBRIC_DIMENSIONS,
    AnnotatorExclusion,
    Campaign,
    CampaignModel,
    ExcludedPrompt,
    Judgment,
    ProblemReport,
    RubricScore,
)
from generation.models import Prompt, Refusal, VideoModel

NO_CATEGORY = "(no category)"
PAIRED_CHOICES = (Judgment.Choice.LEFT, Judgment.Choice.TIE, Judgment.Choice.RIGHT)
CANONICAL_OUTCOME_FOR_A = {"a": "win", "tie": "tie", "b": "loss"}

SKIP_REPEAT = "repeat"
SKIP_EXCLUDED_ANNOTATOR = "excluded annotator"
SKIP_PROBLEM_ITEM = "problem report on the item"
SKIP_REFUSED_PROMPT = "prompt refused by a compared model"
SKIP_FOREIGN_MODELS = "models not compared in the campaign"


@dataclass(frozen=True)
class PromptInfo:
    prompt_id: int
    position: int
    text: str
    category: str
    category_position: int


@dataclass(frozen=True)
class PairedJudgment:
    """One pairwise answer, resolved to the canonical preference between A and B."""

    judgment_id: int
    prompt: PromptInfo
    annotator: str
    unit: tuple[int, int, int]  # (prompt id, lower video id, higher video id): what several annotators judged
    canonical: str  # "a", "tie" or "b"
    shown_choice: str  # "left", "tie" or "right", as the annotator saw it

    @property
    def outcome_for_a(self) -> str:
        return CANONICAL_OUTCOME_FOR_A[self.canonical]


@dataclass(frozen=True)
class RubricRow:
    """The four 1-5 scores one annotator gave one model's video for one prompt."""

    judgment_id: int
    prompt: PromptInfo
    annotator: str
    model_id: int
    video_id: int | None
    scores: tuple[int, ...]  # in RUBRIC_DIMENSIONS order

    @property
    def unit(self) -> tuple[int, int, int]:
        return (self.prompt.prompt_id, self.model_id, self.video_id or 0)


@dataclass
class SkippedJudgments:
    """What `load_campaign` left out, listed for the page (each judgment counted under its first reason)."""

    counts: dict[str, int] = field(default_factory=dict)
    excluded_annotators: list[dict[str, Any]] = field(default_factory=list)
    problem_items: list[dict[str, Any]] = field(default_factory=list)
    refused_prompts: list[dict[str, Any]] = field(default_factory=list)
    prompts_not_in_campaign: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "judgments_skipped": dict(self.counts),
            "excluded_annotators": self.excluded_annotators,
            "problem_items": self.problem_items,
            "refused_prompts": self.refused_prompts,
            "prompts_not_in_campaign": self.prompts_not_in_campaign,
        }


@dataclass
class CampaignJudgments:
    campaign: Campaign
    models: list[VideoModel]  # in campaign position order: models[0] is model A
    paired: list[PairedJudgment]
    rubric: list[RubricRow]
    annotators: list[str]  # every annotator with an analysed judgment, sorted
    skipped: SkippedJudgments
    fingerprint: str  # a digest of everything loaded: equal digests, equal results


def load_campaign(campaign: Campaign) -> CampaignJudgments:
    """Every analysable judgment of the campaign as plain rows, and what was skipped and why (eight
    queries, however many judgments there are)."""
    models = [
        entry.model
        for entry in CampaignModel.objects.filter(campaign=campaign)
        .select_related("model")
        .order_by("position")
    ]
    model_ids = [model.pk for model in models]
    labels = {model.pk: model.label for model in models}
    skipped = SkippedJudgments()

    exclusions = list(
        AnnotatorExclusion.objects.filter(campaign=campaign)
        .select_related("annotator")
        .order_by("annotator__username")
    )
    excluded_annotator_ids = {e.annotator_id for e in exclusions}

    problems = list(
        ProblemReport.objects.filter(assignment__campaign=campaign)
        .values(
            "assignment__item_id",
            "assignment__item__position",
            "assignment__item__prompt__position",
            "kind",
            "note",
        )
        .order_by("assignment__item__position", "created_at")
    )
    problem_item_ids = {p["assignment__item_id"] for p in problems}

    refusals = list(
        Refusal.objects.filter(model_id__in=model_ids, prompt__benchmark_id=campaign.benchmark_id)
        .values("prompt_id", "prompt__position", "prompt__text", "model_id", "reason")
        .order_by("prompt__position", "model_id")
    )
    refused_prompt_ids = {r["prompt_id"] for r in refusals}

    judgment_fields = (
        "id",
        "annotator_id",
        "annotator__username",
        "prompt_id",
        "prompt__position",
        "prompt__text",
        "prompt__category__name",
        "prompt__category__position",
        "item_id",
        "is_repeat",
        "choice",
        "left_model_id",
        "right_model_id",
        "left_video_id",
        "right_video_id",
        "revision",
        "updated_at",
    )
    raw_judgments = list(
        Judgment.objects.filter(campaign=campaign).order_by("id").values_list(*judgment_fields)
    )
    raw_scores: list[tuple] = []
    if campaign.kind == Campaign.Kind.RUBRIC:
        raw_scores = list(
            RubricScore.objects.filter(judgment__campaign=campaign)
            .order_by("judgment_id", "shown_position", "id")
            .values_list("judgment_id", "model_id", "video_id", *RUBRIC_DIMENSIONS)
        )

    skip_counts: Counter[str] = Counter()
    skipped_by_annotator: Counter[int] = Counter()
    skipped_by_item: Counter[int] = Counter()
    skipped_by_prompt: Counter[int] = Counter()
    kept: dict[int, tuple[PromptInfo, str, tuple]] = {}
    prompts: dict[int, PromptInfo] = {}
    for row in raw_judgments:
        (
            judgment_id,
            annotator_id,
            username,
            prompt_id,
            prompt_position,
            prompt_text,
            category_name,
            category_position,
            item_id,
            is_repeat,
        ) = row[:10]
        if is_repeat:
            skip_counts[SKIP_REPEAT] += 1
            continue
        if annotator_id in excluded_annotator_ids:
            skip_counts[SKIP_EXCLUDED_ANNOTATOR] += 1
            skipped_by_annotator[annotator_id] += 1
            continue
        if item_id is not None and item_id in problem_item_ids:
            skip_counts[SKIP_PROBLEM_ITEM] += 1
            skipped_by_item[item_id] += 1
            continue
        if prompt_id in refused_prompt_ids:
            skip_counts[SKIP_REFUSED_PROMPT] += 1
            skipped_by_prompt[prompt_id] += 1
            continue
        prompt = prompts.get(prompt_id)
        if prompt is None:
            prompt = prompts[prompt_id] = PromptInfo(
                prompt_id=prompt_id,
                position=prompt_position,
                text=prompt_text,
                category=category_name or NO_CATEGORY,
                category_position=category_position if category_position is not None else 10**9,
            )
        kept[judgment_id] = (prompt, username, row[10:15])

    paired: list[PairedJudgment] = []
    rubric: list[RubricRow] = []
    if campaign.is_paired:
        for judgment_id, (
            prompt,
            username,
            (choice, left_model, right_model, left_video, right_video),
        ) in kept.items():
            canonical = _canonical_choice(choice, left_model, right_model, left_video, right_video, model_ids)
            if canonical is None:
                skip_counts[SKIP_FOREIGN_MODELS] += 1
                continue
            low_video, high_video = sorted((left_video or 0, right_video or 0))
            paired.append(
                PairedJudgment(
                    judgment_id=judgment_id,
                    prompt=prompt,
                    annotator=username,
                    unit=(prompt.prompt_id, low_video, high_video),
                    canonical=canonical,
                    shown_choice=choice,
                )
            )
    else:
        for judgment_id, model_id, video_id, *scores in raw_scores:
            entry = kept.get(judgment_id)
            if entry is None:
                continue
            if model_id not in labels:
                skip_counts[SKIP_FOREIGN_MODELS] += 1
                continue
            prompt, username, _ = entry
            rubric.append(
                RubricRow(
                    judgment_id=judgment_id,
                    prompt=prompt,
                    annotator=username,
                    model_id=model_id,
                    video_id=video_id,
                    scores=tuple(scores),
                )
            )

    skipped.counts = dict(sorted(skip_counts.items()))
    skipped.excluded_annotators = [
        {
            "annotator": e.annotator.username,
            "reason": e.reason,
            "judgments_skipped": skipped_by_annotator[e.annotator_id],
        }
        for e in exclusions
    ]
    seen_items: set[int] = set()
    for p in problems:
        skipped.problem_items.append(
            {
                "item": p["assignment__item__position"],
                "prompt": p["assignment__item__prompt__position"],
                "problem": p["kind"],
                "note": p["note"],
                "judgments_skipped": 0
                if p["assignment__item_id"] in seen_items
                else skipped_by_item[p["assignment__item_id"]],
            }
        )
        seen_items.add(p["assignment__item_id"])
    skipped.refused_prompts = [
        {
            "prompt": r["prompt__position"],
            "text": r["prompt__text"],
            "refused_by": labels[r["model_id"]],
            "reason": r["reason"],
            "judgments_skipped": skipped_by_prompt[r["prompt_id"]],
        }
        for r in refusals
    ]
    skipped.prompts_not_in_campaign = [
        {
            "prompt": e["prompt__position"],
            "model": labels.get(e["model_id"], "") if e["model_id"] else "",
            "reason": ExcludedPrompt.Reason(e["reason"]).label,
        }
        for e in ExcludedPrompt.objects.filter(campaign=campaign)
        .values("prompt__position", "model_id", "reason")
        .order_by("prompt__position", "model_id")
    ]
    digest = hashlib.sha256(
        repr(
            (
                campaign.pk,
                campaign.name,
                campaign.kind,
                campaign.benchmark.slug,
                [(m.pk, m.label) for m in models],
                raw_judgments,
                raw_scores,
                skipped.as_dict(),
            )
        ).encode()
    ).hexdigest()
    annotators = sorted({j.annotator for j in paired} | {r.annotator for r in rubric})
    return CampaignJudgments(
        campaign=campaign,
        models=models,
        paired=paired,
        rubric=rubric,
        annotators=annotators,
        skipped=skipped,
        fingerprint=digest,
    )


def _canonical_choice(
    choice: str,
    left_model: int | None,
    right_model: int | None,
    left_video: int | None,
    right_video: int | None,
    model_ids: list[int],
) -> str | None:
    """ "a" / "tie" / "b" for a left / tie / right answer; None when the sides are not the campaign's models."""
    if choice not in PAIRED_CHOICES or left_model not in model_ids or right_model not in model_ids:
        return None
    if choice == Judgment.Choice.TIE:
        return "tie"
    if left_model != right_model:
        a_on_left = left_model == model_ids[0]
    else:  # two videos of one model (seed preference): "a" is the older video
        a_on_left = (left_video or 0) <= (right_video or 0)
    left_won = choice == Judgment.Choice.LEFT
    return "a" if left_won == a_on_left else "b"


def campaigns_with_judgment_counts() -> QuerySet[Campaign]:
    """Every campaign, newest first, with its number of judgments (repeats included) and its models."""
    return (
        Campaign.objects.select_related("benchmark")
        .prefetch_related("campaign_models__model")
        .annotate(judgment_count=Count("judgments"))
        .order_by("-created_at", "-id")
    )


# ------------------------------------------------------------------------------------- leaderboard reads


@dataclass(frozen=True)
class JudgmentFilters:
    """Which judgments a cross-campaign analysis reads. `pool` is a Django group name; None means everyone."""

    benchmark_id: int | None = None
    category_id: int | None = None
    pool: str | None = None
    campaign_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark_id,
            "category": self.category_id,
            "pool": self.pool,
            "campaign": self.campaign_id,
        }


@dataclass(frozen=True)
class BattleCount:
    left_model_id: int
    right_model_id: int
    choice: str
    n: int


@dataclass(frozen=True)
class JudgmentScope:
    """The campaigns a cross-campaign analysis reads, and the condition of the judgments it leaves out."""

    filters: JudgmentFilters
    paired_campaign_ids: list[int]
    rubric_campaign_ids: list[int]
    left_out: Q
    category_prompt_ids: list[int] | None  # None: every category
    pool_annotator_ids: list[int] | None  # None: every annotator

    @property
    def scan_paired_judgments(self) -> bool:
        """Whether to read the paired judgments in one sequential scan rather than through an index.

        Over all pairwise campaigns, SQLite would walk the campaign (or model) index and fetch each of up to
        a million rows at random: seconds. Columns wrapped in an expression (`column + 0`) cannot use an
        index, so it reads the table once, in order, instead (about three times faster at a million rows).
        One campaign is a small part of the table: there the index is the fast way. PostgreSQL's planner
        makes this choice itself."""
        return connection.vendor == "sqlite" and self.filters.campaign_id is None

    def judgments(self, campaign_ids: list[int], *, sequential: bool = False) -> QuerySet[Judgment] | None:
        """The analysed judgments of these campaigns under the filters. With `sequential`, the columns
        filtered on are also annotated as `scan_<column>` copies that no index can serve (see above)."""
        if not campaign_ids:
            return None
        judgments = Judgment.objects.all()
        if sequential:
            judgments = judgments.annotate(**{scan_column(name): F(name) + 0 for name in SCANNED_COLUMNS})

        def column(name: str) -> str:
            return scan_column(name) if sequential else name

        judgments = judgments.filter(**{f"{column('campaign_id')}__in": campaign_ids}).exclude(self.left_out)
        if self.category_prompt_ids is not None:
            judgments = judgments.filter(**{f"{column('prompt_id')}__in": self.category_prompt_ids})
        if self.pool_annotator_ids is not None:
            judgments = judgments.filter(**{f"{column('annotator_id')}__in": self.pool_annotator_ids})
        return judgments.order_by()


SCANNED_COLUMNS = ("campaign_id", "prompt_id", "annotator_id", "left_model_id", "right_model_id")


def scan_column(name: str) -> str:
    return f"scan_{name}"


def judgment_scope(filters: JudgmentFilters) -> JudgmentScope:
    """The campaigns matching the filters, what to leave out of their judgments, and the prompts of the
    category and the annotators of the pool filtered on (four to six small queries)."""
    campaigns = Campaign.objects.all()
    if filters.benchmark_id is not None:
        campaigns = campaigns.filter(benchmark_id=filters.benchmark_id)
    if filters.campaign_id is not None:
        campaigns = campaigns.filter(pk=filters.campaign_id)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for campaign_id, kind in campaigns.order_by("pk").values_list("pk", "kind"):
        by_kind[kind].append(campaign_id)
    paired = by_kind[Campaign.Kind.PAIRWISE] + by_kind[Campaign.Kind.AB_SHARED_NOISE]
    rubric = by_kind[Campaign.Kind.RUBRIC]
    category_prompt_ids = pool_annotator_ids = None
    if filters.category_id is not None:
        category_prompt_ids = list(
            Prompt.objects.filter(category_id=filters.category_id).order_by("pk").values_list("pk", flat=True)
        )
    if filters.pool is not None:
        pool = get_user_model().objects.filter(groups__name=filters.pool).order_by("pk")
        pool_annotator_ids = list(pool.values_list("pk", flat=True))
    return JudgmentScope(
        filters=filters,
        paired_campaign_ids=sorted(paired),
        rubric_campaign_ids=rubric,
        left_out=left_out(paired + rubric) if paired or rubric else Q(pk__in=[]),
        category_prompt_ids=category_prompt_ids,
        pool_annotator_ids=pool_annotator_ids,
    )


def left_out(campaign_ids: list[int]) -> Q:
    """A condition matching the judgments of these campaigns that analyses leave out (see the module's
    docstring). It is built from the (few) exclusions, refusals and problem reports, so the database checks
    plain column values on each judgment, with no subquery per row. Three small queries."""
    condition = Q(is_repeat=True)
    excluded: dict[int, list[int]] = defaultdict(list)
    for campaign_id, annotator_id in AnnotatorExclusion.objects.filter(
        campaign_id__in=campaign_ids
    ).values_list("campaign_id", "annotator_id"):
        excluded[campaign_id].append(annotator_id)
    for campaign_id, annotator_ids in sorted(excluded.items()):
        # Built with & to keep this order: the cheap equality first, so most rows fail it at once.
        condition |= Q(campaign_id=campaign_id) & Q(annotator_id__in=sorted(annotator_ids))
    problem_items = sorted(
        set(
            ProblemReport.objects.filter(assignment__campaign_id__in=campaign_ids).values_list(
                "assignment__item_id", flat=True
            )
        )
    )
    if problem_items:
        condition |= Q(item_id__in=problem_items)
    campaigns_by_prompt: dict[int, set[int]] = defaultdict(set)
    for campaign_id, prompt_id in Refusal.objects.filter(
        model__campaign_entries__campaign_id__in=campaign_ids
    ).values_list("model__campaign_entries__campaign_id", "prompt_id"):
        campaigns_by_prompt[prompt_id].add(campaign_id)
    # One clause per refused prompt (there are few), not per campaign: the database tests every row
    # against every clause, and with many campaigns sharing a refusing model this is the shorter list.
    for prompt_id, refusing_campaigns in sorted(campaigns_by_prompt.items()):
        condition |= Q(prompt_id=prompt_id) & Q(campaign_id__in=sorted(refusing_campaigns))
    return condition


def battle_counts(scope: JudgmentScope) -> list[BattleCount]:
    """Paired judgments (pairwise and A/B campaigns) counted per (left model, right model, choice), grouped
    in the database. Seed-preference judgments compare a model with itself and are no battle."""
    sequential = scope.scan_paired_judgments
    judgments = scope.judgments(scope.paired_campaign_ids, sequential=sequential)
    if judgments is None:
        return []
    judgments = judgments.filter(choice__in=PAIRED_CHOICES)
    if sequential:
        rows = _counts_by_packed_key(judgments)
    else:
        rows = judgments.values_list("left_model_id", "right_model_id", "choice").annotate(n=Count("id"))
    return [BattleCount(left, right, choice, n) for left, right, choice, n in rows if left != right]


def _counts_by_packed_key(judgments: QuerySet[Judgment]) -> list[tuple[int, int, str, int]]:
    """The counts grouped on one integer, (left * base + right) * 3 + choice code. SQLite groups by sorting
    every row; one integer per row sorts about a third faster than two ids and a text. The packed key is
    unpacked here, exactly (base = the largest model id + 1, and the key must fit in 63 bits)."""
    base = (VideoModel.objects.aggregate(largest=Max("id"))["largest"] or 0) + 1
    if base * base * 3 >= 2**62:
        return list(
            judgments.values_list(
                scan_column("left_model_id"), scan_column("right_model_id"), "choice"
            ).annotate(n=Count("id"))
        )
    code = Case(
        *[When(choice=choice, then=Value(i)) for i, choice in enumerate(PAIRED_CHOICES)],
        output_field=IntegerField(),
    )
    packed = (F("left_model_id") * base + F("right_model_id")) * len(PAIRED_CHOICES) + code
    rows = []
    for key, n in judgments.annotate(battle_key=packed).values_list("battle_key").annotate(n=Count("id")):
        pair, choice = divmod(key, len(PAIRED_CHOICES))
        left, right = divmod(pair, base)
        rows.append((left, right, PAIRED_CHOICES[choice].value, n))
    return rows


def judgments_fingerprint() -> tuple[int, int | None, Any]:
    """(number of judgments, newest id, latest change) of the whole table: every write through the
    annotation services moves one of them (a new answer adds a row, a changed answer moves `updated_at`, a
    deleted one removes a row). Three index lookups, not a scan (SQLite answers COUNT(*) from the smallest
    index, and MAX of an indexed column from its end, but only one MAX per query), so it can key a cache of
    the counts; exclusions, refusals and problem reports are in `JudgmentScope`."""
    table = Judgment.objects.order_by()
    return (
        table.count(),
        table.aggregate(newest=Max("id"))["newest"],
        table.aggregate(changed=Max("updated_at"))["changed"],
    )


def rubric_means(scope: JudgmentScope) -> dict[int, dict[str, Any]]:
    """Per model: the mean of each rubric dimension over the analysed scores, and how many scores there are
    (averaged in the database)."""
    judgments = scope.judgments(scope.rubric_campaign_ids)
    if judgments is None:
        return {}
    rows = (
        RubricScore.objects.filter(judgment__in=judgments.values("id"))
        .order_by()
        .values("model_id")
        .annotate(n=Count("id"), **{dim: Avg(dim) for dim in RUBRIC_DIMENSIONS})
    )
    return {row.pop("model_id"): row for row in rows}
