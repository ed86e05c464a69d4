"""Agreement between annotators and position bias of one campaign: computed once, here, from the rows of
`metrics.human.judgments.load_campaign`, for the results (page, API, downloads, `results` command) and
the quality page.

- Paired kinds: Krippendorff's alpha is nominal on the canonical preference (A better / tie / B better),
  never the side chosen (sides are randomised per annotator); a unit is a pair of videos for one prompt.
- Rubric campaigns: alpha is ordinal for each dimension, with units = (prompt, video).
- Fleiss' kappa needs the same number of raters on every unit, so it uses the units with the most common
  number (>= 2) of raters.
- Position bias is the share of answers that chose the left video, as shown, per annotator and over all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_noop

from annotation.models import RUBRIC_DIMENSIONS
from metrics.human.judgments import CampaignJudgments, PairedJudgment, RubricRow
from metrics.stats.agreement import PositionBias, fleiss_kappa, krippendorff_alpha, position_bias

OVERALL = gettext_noop("Overall")  # the scope of all categories (English; a page shows it translated)
ALL_ANNOTATORS = gettext_noop("All annotators")
CANONICAL_CATEGORIES = ("a", "tie", "b")
SCORE_CATEGORIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Agreement:
    """Agreement of the analysed annotators over one scope (the campaign, or one category)."""

    alpha: float | None
    units: int
    annotators: int
    kappa: float | None
    kappa_units: int
    raters: int  # raters per unit in kappa


def categories_in_order(prompts: Iterable[Any]) -> list[str]:
    """Category names in benchmark order."""
    seen = {(p.category_position, p.category) for p in prompts}
    return [name for _, name in sorted(seen)]


def agreement_of(
    labels_by_annotator: dict[str, dict[Any, Any]], level: str, categories: Sequence[Any]
) -> Agreement:
    """Alpha and kappa of annotator -> unit -> label."""
    units = sorted({unit for labels in labels_by_annotator.values() for unit in labels}, key=repr)
    alpha = None
    if len(labels_by_annotator) >= 2 and units:
        matrix = [[labels.get(unit) for unit in units] for labels in labels_by_annotator.values()]
        alpha = krippendorff_alpha(matrix, level, categories=categories)  # type: ignore[arg-type]
    by_unit: dict[Any, list[Any]] = defaultdict(list)
    for labels in labels_by_annotator.values():
        for unit, label in labels.items():
            by_unit[unit].append(label)
    kappa, kappa_units, raters = _fleiss(by_unit, categories)
    return Agreement(
        alpha=alpha,
        units=len(units),
        annotators=len(labels_by_annotator),
        kappa=kappa,
        kappa_units=kappa_units,
        raters=raters,
    )


def _fleiss(units: dict[Any, list[Any]], categories: Sequence[Any]) -> tuple[float | None, int, int]:
    """Fleiss' kappa on the units with the most common number (>= 2) of raters: (kappa, units, raters)."""
    sizes = Counter(len(labels) for labels in units.values() if len(labels) >= 2)
    if not sizes:
        return None, 0, 0
    raters = max(sizes, key=lambda size: (sizes[size], size))
    table = [
        [labels.count(category) for category in categories]
        for labels in units.values()
        if len(labels) == raters
    ]
    return fleiss_kappa(table), len(table), raters


def paired_labels(judgments: Iterable[PairedJudgment]) -> dict[str, dict[str, dict[Any, str]]]:
    """scope (OVERALL or a category) -> annotator -> unit -> canonical preference."""
    by_scope: dict[str, dict[str, dict[Any, str]]] = defaultdict(lambda: defaultdict(dict))
    for judgment in judgments:
        for scope in (OVERALL, judgment.prompt.category):
            by_scope[scope][judgment.annotator][judgment.unit] = judgment.canonical
    return by_scope


def paired_agreement(judgments: list[PairedJudgment]) -> dict[str, Agreement]:
    """Agreement on the canonical preference, overall and per category (in benchmark order)."""
    labels = paired_labels(judgments)
    scopes = [OVERALL, *categories_in_order(j.prompt for j in judgments)]
    return {scope: agreement_of(labels[scope], "nominal", CANONICAL_CATEGORIES) for scope in scopes}


def rubric_labels(rows: Iterable[RubricRow]) -> dict[str, list[dict[str, dict[Any, int]]]]:
    """scope -> dimension index -> annotator -> unit -> score."""
    by_scope: dict[str, list[dict[str, dict[Any, int]]]] = defaultdict(
        lambda: [defaultdict(dict) for _ in RUBRIC_DIMENSIONS]
    )
    for row in rows:
        for d, value in enumerate(row.scores):
            for scope in (OVERALL, row.prompt.category):
                by_scope[scope][d][row.annotator][row.unit] = value
    return by_scope


def rubric_agreement(rows: list[RubricRow]) -> dict[tuple[str, str], Agreement]:
    """(scope, dimension) -> ordinal agreement on the scores, overall and per category."""
    labels = rubric_labels(rows)
    scopes = [OVERALL, *categories_in_order(r.prompt for r in rows)]
    return {
        (scope, dimension): agreement_of(labels[scope][d], "ordinal", SCORE_CATEGORIES)
        for scope in scopes
        for d, dimension in enumerate(RUBRIC_DIMENSIONS)
    }


def campaign_agreement(data: CampaignJudgments) -> dict[str, Agreement]:
    """The campaign's overall agreement: {"": paired} for paired kinds, {dimension: ...} for rubric ones."""
    if data.campaign.is_paired:
        return {"": paired_agreement(data.paired)[OVERALL]}
    found = rubric_agreement(data.rubric)
    return {dimension: found[(OVERALL, dimension)] for dimension in RUBRIC_DIMENSIONS}


def position_bias_by_annotator(judgments: list[PairedJudgment]) -> dict[str, PositionBias]:
    """Each annotator's position bias over these answers, and ALL_ANNOTATORS' over all of them."""
    people = sorted({j.annotator for j in judgments})
    shown: dict[str, list[str]] = defaultdict(list)
    for judgment in judgments:
        shown[judgment.annotator].append(judgment.shown_choice)
    found = {person: position_bias(shown[person]) for person in people}
    found[ALL_ANNOTATORS] = position_bias(j.shown_choice for j in judgments)
    return found
