"""Quality control of a campaign's annotators: gold accuracy, self-consistency on repeats, agreement with
the other annotators, position bias, time per item, and contradictions between an annotator's pairwise
answers and their own rubric scores.

The numbers the results also report are computed by the same functions, on the same judgments: which side
won (`annotation.outcomes`), which judgments count (`annotation.left_out`, through
`metrics.human.judgments.load_campaign`), the majority (`metrics.stats.pairwise.majority`), agreement and
position bias (`metrics.human.agreement`). The campaign's agreement here is the results' "Overall" row.

What this page measures that the results do not, and says so:
- an excluded annotator's figures are computed on their judgments as if they counted (under every other
  left-out rule), to show why they were excluded; the others' figures never include them;
- gold accuracy: the annotator's first showings of items with a gold answer (repeats measure consistency);
- self-consistency: each repeat judgment against the same annotator's first judgment of that item. Paired
  kinds agree when the canonical answer is the same; rubric repeats agree when no score of any video
  differs from the first showing's by more than one point;
- agreement with the majority of the others: on each unit the annotator answered (a pair of videos of one
  prompt, as in the results), the majority of the other, not excluded annotators' answers; the pooled
  pairwise share is raw agreement (`pairwise_agreement`) pooled over the annotator's common units with
  each other not-excluded annotator;
- time: `Judgment.duration_ms` where recorded (imported judgments have none);
- answers: every answer of the annotator in the campaign (first showings, repeats, imported, left out).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

from django.contrib.auth import get_user_model

from metrics.human.agreement import OVERALL, paired_labels, position_bias_by_annotator
from metrics.human.agreement import campaign_agreement as overall_agreement
from metrics.human.judgments import load_campaign
from metrics.stats.agreement import PositionBias, pairwise_agreement, position_bias
from metrics.stats.pairwise import majority

from .models import RUBRIC_DIMENSIONS, Campaign, CampaignModel, Item, ItemVideo, Judgment, RubricScore
from .outcomes import CANONICAL_OUTCOME_FOR_A, LEFT, canonical_preference, preferred

CONTRADICTION_GAP = 1  # rubric points between the two videos' mean scores
REPEAT_SCORE_TOLERANCE = 1  # rubric points a repeat's score may move and still agree


@dataclass(frozen=True)
class AnnotatorQuality:
    annotator_id: int
    username: str
    excluded: bool
    exclusion_reason: str
    judgments: int  # answers in this campaign: first showings, repeats and imported
    gold_correct: int
    gold_n: int
    repeat_agreeing: int
    repeat_n: int
    majority_agreeing: int
    majority_n: int
    pairwise_same: int
    pairwise_n: int
    left_share: float | None
    tie_share: float | None
    right_share: float | None
    position_n: int
    position_p_value: float
    median_duration_ms: float | None
    contradictions: int
    contradiction_n: int

    @staticmethod
    def _share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def gold_accuracy(self) -> float | None:
        return self._share(self.gold_correct, self.gold_n)

    @property
    def self_consistency(self) -> float | None:
        return self._share(self.repeat_agreeing, self.repeat_n)

    @property
    def majority_agreement(self) -> float | None:
        return self._share(self.majority_agreeing, self.majority_n)

    @property
    def pairwise_share(self) -> float | None:
        return self._share(self.pairwise_same, self.pairwise_n)

    @property
    def contradiction_share(self) -> float | None:
        return self._share(self.contradictions, self.contradiction_n)


@dataclass(frozen=True)
class Contradiction:
    """A decisive pairwise answer that prefers a video whose mean rubric score, by the same annotator, is
    at least CONTRADICTION_GAP below the other video's."""

    annotator_id: int
    username: str
    judgment_id: int
    campaign_id: int  # the campaign of the pairwise judgment
    prompt_id: int
    prompt_position: int
    preferred: str  # model label of the preferred side
    other: str
    preferred_mean: float
    other_mean: float
    matched_by: str  # "videos" or "models"


@dataclass(frozen=True)
class DimensionAgreement:
    dimension: str
    alpha: float | None
    units: int


@dataclass(frozen=True)
class CampaignAgreement:
    """The campaign's agreement as the results report it ("Overall"), over the judgments that count: for
    paired kinds nominal alpha on the canonical preference over units = (prompt, pair of videos); for
    rubric campaigns ordinal alpha per dimension (`by_dimension`; `alpha` is then None, as there is no
    single figure)."""

    alpha: float | None
    annotators: int
    units: int
    by_dimension: tuple[DimensionAgreement, ...] = ()


@dataclass
class _Answer:
    id: int
    annotator_id: int
    item_id: int | None
    prompt_id: int
    is_repeat: bool
    source: str
    choice: str
    left_model_id: int | None
    right_model_id: int | None
    left_video_id: int | None
    right_video_id: int | None
    duration_ms: int | None
    label: str | None = None  # canonical answer, paired kinds
    scores: dict[object, tuple[int, ...]] = field(default_factory=dict)  # rubric: video (or model) -> scores


_ANSWER_FIELDS = (
    "id",
    "annotator_id",
    "item_id",
    "prompt_id",
    "is_repeat",
    "source",
    "choice",
    "left_model_id",
    "right_model_id",
    "left_video_id",
    "right_video_id",
    "duration_ms",
)


def _load_answers(campaign: Campaign) -> list[_Answer]:
    answers = [
        _Answer(**row)
        for row in Judgment.objects.filter(campaign=campaign)
        .order_by("created_at", "id")
        .values(*_ANSWER_FIELDS)
    ]
    if campaign.is_paired:
        model_ids = list(
            CampaignModel.objects.filter(campaign=campaign)
            .order_by("position")
            .values_list("model_id", flat=True)
        )
        for answer in answers:
            answer.label = canonical_preference(
                answer.choice,
                answer.left_model_id,
                answer.right_model_id,
                answer.left_video_id,
                answer.right_video_id,
                model_ids,
            )
    else:
        by_id = {answer.id: answer for answer in answers}
        for row in RubricScore.objects.filter(judgment__campaign=campaign).values(
            "judgment_id", "model_id", "video_id", *RUBRIC_DIMENSIONS
        ):
            key = row["video_id"] or ("model", row["model_id"])
            by_id[row["judgment_id"]].scores[key] = tuple(row[d] for d in RUBRIC_DIMENSIONS)
    return answers


def gold_preferences(campaign: Campaign) -> dict[int, str]:
    """Item id -> its gold answer as a canonical preference ("a" / "tie" / "b"). A gold answer names the
    slot of the better video; the resolver places that video as if an annotator had chosen it."""
    model_ids = list(
        CampaignModel.objects.filter(campaign=campaign)
        .order_by("position")
        .values_list("model_id", flat=True)
    )
    slots: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    for item_id, slot, video_id, model_id in ItemVideo.objects.filter(
        item__campaign=campaign, item__gold_answer__gt=""
    ).values_list("item_id", "slot", "video_id", "video__model_id"):
        slots[item_id][slot] = (model_id, video_id)
    found = {}
    for item_id, gold in campaign.items.exclude(gold_answer="").values_list("id", "gold_answer"):
        if gold == Item.GoldAnswer.TIE:
            found[item_id] = "tie"
            continue
        better, other = (0, 1) if gold == Item.GoldAnswer.SLOT_0 else (1, 0)
        if better not in slots[item_id] or other not in slots[item_id]:
            continue
        (left_model, left_video), (right_model, right_video) = slots[item_id][better], slots[item_id][other]
        label = canonical_preference(LEFT, left_model, right_model, left_video, right_video, model_ids)
        if label is not None:
            found[item_id] = label
    return found


def _repeats_agree(first: _Answer, repeat: _Answer, paired: bool) -> bool | None:
    if paired:
        if first.label is None or repeat.label is None:
            return None
        return first.label == repeat.label
    common = first.scores.keys() & repeat.scores.keys()
    if not common:
        return None
    return all(
        abs(a - b) <= REPEAT_SCORE_TOLERANCE
        for key in common
        for a, b in zip(first.scores[key], repeat.scores[key], strict=True)
    )


def _paired_figures(
    campaign: Campaign, excluded_usernames: set[str]
) -> tuple[dict[str, PositionBias], dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Per username, from the judgments that count in the results (an excluded annotator's as if they
    counted): position bias, (agreeing, compared) with the majority of the others not excluded, and
    (same, common) answers pooled over each other not-excluded annotator."""
    data = load_campaign(campaign, keep_excluded_annotators=True)
    bias = position_bias_by_annotator(data.paired)
    labels = paired_labels(data.paired)[OVERALL]
    on_unit: dict[object, dict[str, str]] = defaultdict(dict)
    for username, by_unit in labels.items():
        if username not in excluded_usernames:
            for unit, label in by_unit.items():
                on_unit[unit][username] = label
    majority_counts: dict[str, tuple[int, int]] = {}
    for username, by_unit in labels.items():
        agreeing = compared = 0
        for unit, label in by_unit.items():
            others = [
                CANONICAL_OUTCOME_FOR_A[lab] for other, lab in on_unit[unit].items() if other != username
            ]
            if others:
                compared += 1
                agreeing += majority(others) == CANONICAL_OUTCOME_FOR_A[label]
        majority_counts[username] = (agreeing, compared)
    pooled: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (first, second), agreement in pairwise_agreement(labels).items():
        if agreement.share is None:
            continue
        same = round(agreement.share * agreement.n_common)
        for me, other in ((first, second), (second, first)):
            if other not in excluded_usernames:
                pooled[me][0] += same
                pooled[me][1] += agreement.n_common
    return bias, majority_counts, {name: (same, n) for name, (same, n) in pooled.items()}


def annotator_quality(campaign: Campaign) -> list[AnnotatorQuality]:
    """Quality figures of every annotator of the campaign and everyone with a judgment in it, by username."""
    paired = campaign.is_paired
    answers = _load_answers(campaign)
    exclusions = {e.annotator_id: e.reason for e in campaign.annotator_exclusions.all()}
    gold = gold_preferences(campaign) if paired else {}
    by_annotator: dict[int, list[_Answer]] = defaultdict(list)
    for answer in answers:
        by_annotator[answer.annotator_id].append(answer)
    first_showing: dict[tuple[int, int], _Answer] = {}
    for answer in answers:
        if answer.item_id is not None and answer.source == Judgment.Source.SITE and not answer.is_repeat:
            first_showing.setdefault((answer.annotator_id, answer.item_id), answer)
    contradiction_counts = _contradiction_counts(campaign)

    user_ids = set(by_annotator) | set(campaign.annotators.values_list("pk", flat=True))
    users = list(get_user_model().objects.filter(pk__in=user_ids).order_by("username"))
    excluded_usernames = {u.get_username() for u in users if u.pk in exclusions}
    bias, majority_counts, pooled = _paired_figures(campaign, excluded_usernames) if paired else ({}, {}, {})
    no_bias = position_bias(())
    figures = []
    for user in users:
        username = user.get_username()
        own = by_annotator.get(user.pk, [])
        site = [a for a in own if a.source == Judgment.Source.SITE and a.item_id is not None]
        gold_checked = [a for a in site if not a.is_repeat and a.item_id in gold and a.label is not None]
        repeat_results = [
            _repeats_agree(first_showing[(user.pk, a.item_id)], a, paired)
            for a in site
            if a.is_repeat and (user.pk, a.item_id) in first_showing
        ]
        repeat_results = [r for r in repeat_results if r is not None]
        majority_agreeing, majority_n = majority_counts.get(username, (0, 0))
        same, common = pooled.get(username, (0, 0))
        shown = bias.get(username, no_bias)
        durations = [a.duration_ms for a in own if a.duration_ms is not None]
        contradicting, compared = contradiction_counts.get(user.pk, (0, 0))
        figures.append(
            AnnotatorQuality(
                annotator_id=user.pk,
                username=username,
                excluded=user.pk in exclusions,
                exclusion_reason=exclusions.get(user.pk, ""),
                judgments=len(own),
                gold_correct=sum(a.label == gold[a.item_id] for a in gold_checked),
                gold_n=len(gold_checked),
                repeat_agreeing=sum(repeat_results),
                repeat_n=len(repeat_results),
                majority_agreeing=majority_agreeing,
                majority_n=majority_n,
                pairwise_same=same,
                pairwise_n=common,
                left_share=shown.left_share,
                tie_share=shown.tie_share,
                right_share=shown.right_share,
                position_n=shown.n,
                position_p_value=shown.p_value,
                median_duration_ms=float(statistics.median(durations)) if durations else None,
                contradictions=contradicting,
                contradiction_n=compared,
            )
        )
    return figures


def campaign_agreement(campaign: Campaign) -> CampaignAgreement:
    """The results' overall agreement (`metrics.human.agreement`), on the judgments that count."""
    found = overall_agreement(load_campaign(campaign))
    if campaign.is_paired:
        agreement = found[""]
        return CampaignAgreement(
            alpha=agreement.alpha, annotators=agreement.annotators, units=agreement.units
        )
    return CampaignAgreement(
        alpha=None,
        annotators=max((a.annotators for a in found.values()), default=0),
        units=max((a.units for a in found.values()), default=0),
        by_dimension=tuple(
            DimensionAgreement(dimension=dimension, alpha=a.alpha, units=a.units)
            for dimension, a in found.items()
        ),
    )


def contradictions(campaign: Campaign) -> list[Contradiction]:
    """Contradictions between pairwise answers and the same annotator's rubric scores that involve this
    campaign, on its benchmark.

    The two sides of the comparison:
    - decisive pairwise answers (left or right; ties contradict nothing, repeats count like any answer)
      from paired campaigns (pairwise, seed preference, A/B) on the benchmark;
    - rubric scores from rubric campaigns on the same benchmark, site and imported alike.
    For a paired campaign its own answers are checked against every rubric campaign on the benchmark; for
    a rubric campaign its own scores against every paired campaign's answers.

    A pairwise answer of annotator U on prompt P prefers side X (video and model) over side Y. The mean
    rubric score of a side is the mean of all four dimensions over every score row U gave it on P: by
    video when both sides' videos are known and U scored both videos; otherwise by model when both models
    are known, differ, and U scored both models on P. The answer is a contradiction when the mean of Y
    exceeds the mean of X by CONTRADICTION_GAP (1 point) or more. Answers without rubric scores for both
    sides are not compared.
    """
    found, _ = _contradictions(campaign)
    return found


def _contradiction_counts(campaign: Campaign) -> dict[int, tuple[int, int]]:
    found, compared = _contradictions(campaign)
    counts = Counter(c.annotator_id for c in found)
    return {annotator_id: (counts[annotator_id], n) for annotator_id, n in compared.items()}


def _contradictions(campaign: Campaign) -> tuple[list[Contradiction], Counter[int]]:
    on_benchmark = Judgment.objects.filter(campaign__benchmark_id=campaign.benchmark_id)
    if campaign.is_paired:
        pairwise = Judgment.objects.filter(campaign=campaign)
        scores = RubricScore.objects.filter(
            judgment__in=on_benchmark.filter(campaign__kind=Campaign.Kind.RUBRIC)
        )
    else:
        pairwise = on_benchmark.filter(campaign__kind__in=Campaign.PAIRED_KINDS)
        scores = RubricScore.objects.filter(judgment__campaign=campaign)
    by_video: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    by_model: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for row in scores.values(
        "judgment__annotator_id", "judgment__prompt_id", "model_id", "video_id", *RUBRIC_DIMENSIONS
    ):
        annotator_id, prompt_id = row["judgment__annotator_id"], row["judgment__prompt_id"]
        values = [row[d] for d in RUBRIC_DIMENSIONS]
        if row["video_id"]:
            by_video[(annotator_id, prompt_id, row["video_id"])].extend(values)
        by_model[(annotator_id, prompt_id, row["model_id"])].extend(values)
    found: list[Contradiction] = []
    compared: Counter[int] = Counter()
    if not by_model:
        return found, compared
    decisive = (
        pairwise.filter(
            choice__in=[Judgment.Choice.LEFT, Judgment.Choice.RIGHT],
            annotator_id__in={annotator_id for annotator_id, _, _ in by_model},
        )
        .select_related("annotator", "prompt", "left_model", "right_model")
        .order_by("id")
    )
    for judgment in decisive:
        left = (judgment.left_video_id, judgment.left_model_id, judgment.left_model)
        right = (judgment.right_video_id, judgment.right_model_id, judgment.right_model)
        chosen = preferred(judgment.choice, left, right)
        (pv, pm, preferred_model), (ov, om, other_model) = (chosen, right if chosen is left else left)
        user, prompt = judgment.annotator_id, judgment.prompt_id
        if pv and ov and (user, prompt, pv) in by_video and (user, prompt, ov) in by_video:
            preferred_scores, other_scores, matched_by = (
                by_video[(user, prompt, pv)],
                by_video[(user, prompt, ov)],
                "videos",
            )
        elif pm and om and pm != om and (user, prompt, pm) in by_model and (user, prompt, om) in by_model:
            preferred_scores, other_scores, matched_by = (
                by_model[(user, prompt, pm)],
                by_model[(user, prompt, om)],
                "models",
            )
        else:
            continue
        compared[user] += 1
        # exact fractions: a gap of exactly one point must not fall just short through rounding
        preferred_mean = Fraction(sum(preferred_scores), len(preferred_scores))
        other_mean = Fraction(sum(other_scores), len(other_scores))
        if other_mean - preferred_mean >= CONTRADICTION_GAP:
            found.append(
                Contradiction(
                    annotator_id=user,
                    username=judgment.annotator.get_username(),
                    judgment_id=judgment.pk,
                    campaign_id=judgment.campaign_id,
                    prompt_id=prompt,
                    prompt_position=judgment.prompt.position,
                    preferred=str(preferred_model),
                    other=str(other_model),
                    preferred_mean=float(preferred_mean),
                    other_mean=float(other_mean),
                    matched_by=matched_by,
                )
            )
    return found, compared
