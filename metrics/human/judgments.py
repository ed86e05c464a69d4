"""Judgments of human evaluations, loaded for analysis as plain rows.

What is left out, and why, follows the rules of `annotation.left_out`, shared with the quality page and the
preference exports: repeats, judgments of excluded annotators, every judgment of a prompt the campaign left
out, of a prompt with a problem report on any of its items, and of a prompt that a compared model refused.
Every analysis page lists them.

Paired judgments are resolved from what the annotator saw (left / tie / right) to the canonical preference
"a" / "tie" / "b" by `annotation.outcomes.canonical_preference`, the one resolver of who won.

Two kinds of reads live here: `load_campaign` (one campaign's rows, for its results page) and the
leaderboard's aggregates (`battle_counts`, `rubric_means`), which group in the database and never bring the
judgments themselves into Python.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Avg, Case, Count, F, IntegerField, Max, Q, QuerySet, Value, When
from django.utils.translation import gettext_noop

from annotation.left_out import (
    EXCLUDED_ANNOTATOR,
    PROBLEM_PROMPT,
    PROMPT_NOT_IN_CAMPAIGN,
    REASON_LABELS,
    REFUSED_PROMPT,
    LeftOutRules,
    left_out_rules,
)
from annotation.models import (
    RUBRIC_DIMENSIONS,
    Campaign,
    CampaignModel,
    ExcludedPrompt,
    Judgment,
    RubricScore,
)
from annotation.outcomes import CANONICAL_OUTCOME_FOR_A, PAIRED_CHOICES, canonical_preference
from evalsite.text import untranslated
from generation.models import Prompt, VideoModel

NO_CATEGORY = gettext_noop("(no category)")  # a page shows it translated (metrics.human.display)

SKIP_FOREIGN_MODELS = gettext_noop("models not compared in the campaign")


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
    problem_prompts: list[dict[str, Any]] = field(default_factory=list)
    refused_prompts: list[dict[str, Any]] = field(default_factory=list)
    prompts_not_in_campaign: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "judgments_skipped": dict(self.counts),
            "excluded_annotators": self.excluded_annotators,
            "problem_prompts": self.problem_prompts,
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


def load_campaign(campaign: Campaign, *, keep_excluded_annotators: bool = False) -> CampaignJudgments:
    """Every analysable judgment of the campaign as plain rows, and what was skipped and why (eight
    queries, however many judgments there are). With `keep_excluded_annotators`, the judgments of excluded
    annotators are kept under the other rules, as if they counted: only the quality page asks for that, to
    show why someone was excluded; every result leaves them out."""
    models = [
        entry.model
        for entry in CampaignModel.objects.filter(campaign=campaign)
        .select_related("model")
        .order_by("position")
    ]
    model_ids = [model.pk for model in models]
    labels = {model.pk: model.label for model in models}
    skipped = SkippedJudgments()
    rules = left_out_rules([campaign.pk])

    judgment_fields = (
        "id",
        "annotator_id",
        "annotator__username",
        "prompt_id",
        "prompt__position",
        "prompt__text",
        "prompt__category__name",
        "prompt__category__position",
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
    skipped_by_prompt: Counter[tuple[str, int]] = Counter()
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
            is_repeat,
        ) = row[:9]
        reason = rules.reason(
            campaign_id=campaign.pk,
            annotator_id=annotator_id,
            prompt_id=prompt_id,
            is_repeat=is_repeat,
            keep_excluded_annotators=keep_excluded_annotators,
        )
        if reason:
            skip_counts[REASON_LABELS[reason]] += 1
            if reason == EXCLUDED_ANNOTATOR:
                skipped_by_annotator[annotator_id] += 1
            skipped_by_prompt[(reason, prompt_id)] += 1
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
        kept[judgment_id] = (prompt, username, row[9:14])

    paired: list[PairedJudgment] = []
    rubric: list[RubricRow] = []
    if campaign.is_paired:
        for judgment_id, (
            prompt,
            username,
            (choice, left_model, right_model, left_video, right_video),
        ) in kept.items():
            canonical = canonical_preference(
                choice, left_model, right_model, left_video, right_video, model_ids
            )
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
            "annotator": e.annotator,
            "reason": e.reason,
            "judgments_skipped": skipped_by_annotator[e.annotator_id],
        }
        for e in rules.exclusions
    ]
    skipped.problem_prompts = _problem_prompts(rules, skipped_by_prompt)
    skipped.refused_prompts = [
        {
            "prompt": r.prompt_position,
            "text": r.prompt_text,
            "refused_by": labels[r.model_id],
            "reason": r.reason,
            "judgments_skipped": skipped_by_prompt[(REFUSED_PROMPT, r.prompt_id)],
        }
        for r in rules.refusals
    ]
    skipped.prompts_not_in_campaign = [
        {
            "prompt": e.prompt_position,
            "model": labels.get(e.model_id, "") if e.model_id else "",
            # the results are one JSON document for every language (cached, API, command): English
            "reason": untranslated(ExcludedPrompt.Reason(e.reason).label),
            # every judgment of the prompt, listed once (under its first entry): none is counted
            "judgments_skipped": skipped_by_prompt[(PROMPT_NOT_IN_CAMPAIGN, e.prompt_id)] if first else 0,
        }
        for e, first in _first_per_prompt(rules.prompts_not_in_campaign)
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
                keep_excluded_annotators,
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


def _first_per_prompt(entries: Iterable[Any]) -> list[tuple[Any, bool]]:
    """The entries, each with whether it is the first of its prompt."""
    seen: set[int] = set()
    marked = []
    for entry in entries:
        marked.append((entry, entry.prompt_id not in seen))
        seen.add(entry.prompt_id)
    return marked


def _problem_prompts(
    rules: LeftOutRules, skipped_by_prompt: Counter[tuple[str, int]]
) -> list[dict[str, Any]]:
    """The prompts left out for problem reports, in prompt order, each with its reports."""
    by_prompt: dict[int, dict[str, Any]] = {}
    for p in rules.problems:
        entry = by_prompt.setdefault(
            p.prompt_id,
            {
                "prompt": p.prompt_position,
                "text": p.prompt_text,
                "reason": REASON_LABELS[PROBLEM_PROMPT],
                "reports": [],
                "judgments_skipped": skipped_by_prompt[(PROBLEM_PROMPT, p.prompt_id)],
            },
        )
        entry["reports"].append({"item": p.item_position, "problem": p.kind, "note": p.note})
    return sorted(by_prompt.values(), key=lambda entry: entry["prompt"])


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
    """A condition matching the judgments of these campaigns that analyses leave out (the rules of
    `annotation.left_out`), with no subquery per row. Four small queries."""
    return left_out_rules(campaign_ids).condition()


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
        rows.append((left, right, PAIRED_CHOICES[choice], n))
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
