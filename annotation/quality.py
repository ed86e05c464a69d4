"""Quality control of a campaign's annotators: gold accuracy, self-consistency on repeats, agreement with
the other annotators, position bias, time per item, and contradictions between an annotator's pairwise
answers and their own rubric scores.

Paired answers are compared in canonical terms: a judgment stores what the annotator saw (left video,
right video, choice); un-mirrored, it says which of the item's slots holds the preferred video ("slot0",
"slot1") or "tie". Comparing the preferred *video* rather than the side makes a mirrored repeat
comparable with the first showing, and works for seed-preference items whose two videos share a model.

Which judgments count:
- gold accuracy: the annotator's first showings of items with a gold answer (repeats measure consistency);
- self-consistency: each repeat judgment against the same annotator's first judgment of that item. Paired
  kinds agree when the canonical answer is the same; rubric repeats agree when no score of any video
  differs from the first showing's by more than one point;
- agreement with the others: first showings only. For an item, the majority of the others is the label
  most of the *other, not excluded* annotators gave, when one label leads strictly (a tie between labels is
  no majority and the item is skipped). The pairwise share is raw agreement (`pairwise_agreement`) pooled
  over the annotator's common items with each other not-excluded annotator;
- position bias: every answer with a choice (site and imported), as left/tie/right as shown;
- time: `Judgment.duration_ms` where recorded (imported judgments have none).
Excluded annotators still get their figures (to decide whether to include them again).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

from django.contrib.auth import get_user_model

from metrics.stats.agreement import krippendorff_alpha, pairwise_agreement, position_bias

from .models import RUBRIC_DIMENSIONS, Campaign, ItemVideo, Judgment, RubricScore

CANONICAL_LABELS = ("slot0", "tie", "slot1")
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
class CampaignAgreement:
    """Krippendorff's alpha (ordinal) over the not-excluded annotators' first showings: canonical answers
    slot0 < tie < slot1 for paired kinds; each (item, video, dimension) score for rubric campaigns."""

    alpha: float | None
    annotators: int
    units: int


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


def canonical_answer(
    answer: _Answer,
    slot_of_video: dict[tuple[int, int], int],
    slots_of_model: dict[tuple[int, int], list[int]],
) -> str | None:
    """'slot0', 'slot1' or 'tie' for a paired answer on an item; None when it cannot be placed. The
    preferred video decides; when it is unknown, the preferred model, if it fills exactly one slot."""
    if answer.choice == Judgment.Choice.TIE:
        return "tie"
    if answer.item_id is None or answer.choice not in (Judgment.Choice.LEFT, Judgment.Choice.RIGHT):
        return None
    left = answer.choice == Judgment.Choice.LEFT
    video_id = answer.left_video_id if left else answer.right_video_id
    slot = slot_of_video.get((answer.item_id, video_id)) if video_id else None
    if slot is None:
        model_id = answer.left_model_id if left else answer.right_model_id
        candidates = slots_of_model.get((answer.item_id, model_id), []) if model_id else []
        slot = candidates[0] if len(candidates) == 1 else None
    return None if slot is None else f"slot{slot}"


def _load_answers(campaign: Campaign) -> list[_Answer]:
    answers = [
        _Answer(**row)
        for row in Judgment.objects.filter(campaign=campaign)
        .order_by("created_at", "id")
        .values(*_ANSWER_FIELDS)
    ]
    if campaign.is_paired:
        slot_of_video: dict[tuple[int, int], int] = {}
        slots_of_model: dict[tuple[int, int], list[int]] = defaultdict(list)
        for item_id, video_id, model_id, slot in ItemVideo.objects.filter(
            item__campaign=campaign
        ).values_list("item_id", "video_id", "video__model_id", "slot"):
            slot_of_video[(item_id, video_id)] = slot
            slots_of_model[(item_id, model_id)].append(slot)
        for answer in answers:
            answer.label = canonical_answer(answer, slot_of_video, slots_of_model)
    else:
        by_id = {answer.id: answer for answer in answers}
        for row in RubricScore.objects.filter(judgment__campaign=campaign).values(
            "judgment_id", "model_id", "video_id", *RUBRIC_DIMENSIONS
        ):
            key = row["video_id"] or ("model", row["model_id"])
            by_id[row["judgment_id"]].scores[key] = tuple(row[d] for d in RUBRIC_DIMENSIONS)
    return answers


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


def strict_majority(labels: list[str]) -> str | None:
    """The label given most often, when it leads strictly; None for no labels or a tie between labels."""
    ranked = Counter(labels).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def annotator_quality(campaign: Campaign) -> list[AnnotatorQuality]:
    """Quality figures of every annotator of the campaign and everyone with a judgment in it, by username."""
    paired = campaign.is_paired
    answers = _load_answers(campaign)
    exclusions = {e.annotator_id: e.reason for e in campaign.annotator_exclusions.all()}
    gold = dict(campaign.items.exclude(gold_answer="").values_list("id", "gold_answer"))
    by_annotator: dict[int, list[_Answer]] = defaultdict(list)
    for answer in answers:
        by_annotator[answer.annotator_id].append(answer)
    first_showing: dict[tuple[int, int], _Answer] = {}
    for answer in answers:
        if answer.item_id is not None and answer.source == Judgment.Source.SITE and not answer.is_repeat:
            first_showing.setdefault((answer.annotator_id, answer.item_id), answer)
    labels_by_annotator: dict[int, dict[int, str]] = defaultdict(dict)
    if paired:
        for (annotator_id, item_id), answer in first_showing.items():
            if answer.label is not None:
                labels_by_annotator[annotator_id][item_id] = answer.label
    pair_shares = pairwise_agreement(labels_by_annotator)
    trusted_labels_on_item: dict[int, dict[int, str]] = defaultdict(dict)
    for annotator_id, labels in labels_by_annotator.items():
        if annotator_id not in exclusions:
            for item_id, label in labels.items():
                trusted_labels_on_item[item_id][annotator_id] = label
    contradiction_counts = _contradiction_counts(campaign)

    user_ids = set(by_annotator) | set(campaign.annotators.values_list("pk", flat=True))
    users = get_user_model().objects.filter(pk__in=user_ids).order_by("username")
    figures = []
    for user in users:
        own = by_annotator.get(user.pk, [])
        site = [a for a in own if a.source == Judgment.Source.SITE and a.item_id is not None]
        gold_checked = [a for a in site if not a.is_repeat and a.item_id in gold and a.label is not None]
        repeat_results = [
            _repeats_agree(first_showing[(user.pk, a.item_id)], a, paired)
            for a in site
            if a.is_repeat and (user.pk, a.item_id) in first_showing
        ]
        repeat_results = [r for r in repeat_results if r is not None]
        majority_results = []
        for item_id, label in labels_by_annotator.get(user.pk, {}).items():
            others = [lab for other, lab in trusted_labels_on_item[item_id].items() if other != user.pk]
            majority = strict_majority(others)
            if majority is not None:
                majority_results.append(label == majority)
        same = common = 0
        for (first, second), agreement in pair_shares.items():
            other = second if first == user.pk else first if second == user.pk else None
            if other is None or other in exclusions or agreement.share is None:
                continue
            same += round(agreement.share * agreement.n_common)
            common += agreement.n_common
        bias = position_bias(a.choice for a in own if a.choice)
        durations = [a.duration_ms for a in own if a.duration_ms is not None]
        contradicting, compared = contradiction_counts.get(user.pk, (0, 0))
        figures.append(
            AnnotatorQuality(
                annotator_id=user.pk,
                username=user.get_username(),
                excluded=user.pk in exclusions,
                exclusion_reason=exclusions.get(user.pk, ""),
                judgments=len(own),
                gold_correct=sum(a.label == gold[a.item_id] for a in gold_checked),
                gold_n=len(gold_checked),
                repeat_agreeing=sum(repeat_results),
                repeat_n=len(repeat_results),
                majority_agreeing=sum(majority_results),
                majority_n=len(majority_results),
                pairwise_same=same,
                pairwise_n=common,
                left_share=bias.left_share,
                tie_share=bias.tie_share,
                right_share=bias.right_share,
                position_n=bias.n,
                position_p_value=bias.p_value,
                median_duration_ms=float(statistics.median(durations)) if durations else None,
                contradictions=contradicting,
                contradiction_n=compared,
            )
        )
    return figures


def campaign_agreement(campaign: Campaign) -> CampaignAgreement:
    answers = _load_answers(campaign)
    excluded = set(campaign.annotator_exclusions.values_list("annotator_id", flat=True))
    ratings: dict[int, dict[object, object]] = defaultdict(dict)
    for answer in answers:
        if answer.item_id is None or answer.is_repeat or answer.annotator_id in excluded:
            continue
        if campaign.is_paired:
            if answer.label is not None:
                ratings[answer.annotator_id].setdefault(answer.item_id, answer.label)
        else:
            for key, scores in answer.scores.items():
                for dimension, score in zip(RUBRIC_DIMENSIONS, scores, strict=True):
                    ratings[answer.annotator_id].setdefault((answer.item_id, key, dimension), score)
    units = sorted({unit for per_annotator in ratings.values() for unit in per_annotator}, key=repr)
    if not units:
        return CampaignAgreement(alpha=None, annotators=len(ratings), units=0)
    matrix = [[ratings[annotator].get(unit) for unit in units] for annotator in sorted(ratings)]
    categories = CANONICAL_LABELS if campaign.is_paired else (1, 2, 3, 4, 5)
    alpha = krippendorff_alpha(matrix, "ordinal", categories=categories)
    return CampaignAgreement(alpha=alpha, annotators=len(ratings), units=len(units))


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
        left = judgment.choice == Judgment.Choice.LEFT
        sides = [
            (judgment.left_video_id, judgment.left_model_id, judgment.left_model),
            (judgment.right_video_id, judgment.right_model_id, judgment.right_model),
        ]
        (pv, pm, preferred_model), (ov, om, other_model) = sides if left else sides[::-1]
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
