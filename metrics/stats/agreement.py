"""Agreement between annotators, and position bias of pairwise judgments.

Assumptions:
- `krippendorff_alpha` is the `krippendorff` package's implementation (coincidence matrices, any number of
  annotators, missing ratings allowed). Labels are mapped to integer codes first: for "nominal" any labels
  work; for "ordinal" the order comes from `categories`, or is left < tie < right for pairwise choices.
  Alpha is None where it is undefined: no unit rated by two annotators, or a single value in all pairable
  ratings (no variation to agree on).
- `fleiss_kappa` is the 10-line formula (Fleiss 1971), written here rather than taken from statsmodels,
  which would bring pandas and patsy along for one function. Fleiss' kappa assumes the same number of raters
  on every unit; a table with unequal counts is a ValueError (use `krippendorff_alpha`, which handles missing
  ratings, or pass only the units with the full number of ratings). Kappa is None when every rating falls in
  one category (chance agreement is 1).
- `pairwise_agreement` is raw percent agreement, not chance-corrected: for each pair of annotators, the share
  of the units both labelled on which they gave the same label.
- `position_bias` counts which side was chosen regardless of the models shown. Shares are fractions of all
  choices; the p-value is a two-sided exact binomial test of left against right with ties dropped (1.0 with
  no decisive choice). With sides randomised, a small p-value means annotators favour a side.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal, NamedTuple, TypeVar

import krippendorff
import numpy as np

from metrics.stats.pairwise import sign_test

PAIRWISE_CHOICES = ("left", "tie", "right")

AnnotatorT = TypeVar("AnnotatorT", bound=Hashable)


class PairAgreement(NamedTuple):
    share: float | None  # None when the two annotators have no unit in common
    n_common: int


@dataclass(frozen=True)
class PositionBias:
    left_share: float | None  # None for no choices
    right_share: float | None
    tie_share: float | None
    n: int
    p_value: float


def krippendorff_alpha(
    reliability_data: Sequence[Sequence[object]] | np.ndarray,
    level: Literal["nominal", "ordinal"] = "nominal",
    *,
    categories: Sequence[Hashable] | None = None,
) -> float | None:
    """Krippendorff's alpha of an annotators x units matrix; None or NaN marks a missing rating.

    Values are labels (e.g. "left"/"tie"/"right") or numbers. For "ordinal", labels need their order:
    `categories`, or the left < tie < right order for pairwise choices; numbers are ordered as numbers.
    """
    if level not in ("nominal", "ordinal"):
        raise ValueError(f"level must be 'nominal' or 'ordinal', got {level!r}")
    rows = [list(row) for row in reliability_data]
    if not rows or len({len(row) for row in rows}) != 1:
        raise ValueError(
            "reliability_data must be a non-empty annotators x units matrix with equal-length rows"
        )
    values = [value for row in rows for value in row if not _is_missing(value)]
    codes, domain = _codes(values, level, categories)
    lookup = dict(zip(values, codes, strict=True))
    matrix = np.array(
        [[math.nan if _is_missing(value) else lookup[value] for value in row] for row in rows],
        dtype=np.float64,
    )
    rated = ~np.isnan(matrix)
    pairable = rated.sum(axis=0) >= 2
    if not pairable.any() or np.unique(matrix[:, pairable][rated[:, pairable]]).size < 2:
        return None
    return float(krippendorff.alpha(matrix, value_domain=domain, level_of_measurement=level))


def fleiss_kappa(table: Sequence[Sequence[int]] | np.ndarray) -> float | None:
    """Fleiss' kappa of a units x categories table of rating counts (the same number of raters per unit)."""
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] == 0 or counts.shape[1] == 0:
        raise ValueError("fleiss_kappa takes a non-empty units x categories table of counts")
    if (counts < 0).any() or not np.array_equal(counts, np.round(counts)):
        raise ValueError("the table must hold non-negative whole counts")
    raters = counts.sum(axis=1)
    if not np.all(raters == raters[0]):
        raise ValueError(
            "Fleiss' kappa needs the same number of raters on every unit, got "
            f"{sorted({int(n) for n in raters})}; use krippendorff_alpha for unequal numbers of ratings"
        )
    n = raters[0]
    if n < 2:
        raise ValueError("Fleiss' kappa needs at least two raters per unit")
    agreement_per_unit = ((counts * counts).sum(axis=1) - n) / (n * (n - 1))
    observed = agreement_per_unit.mean()
    category_shares = counts.sum(axis=0) / counts.sum()
    chance = float((category_shares * category_shares).sum())
    if math.isclose(chance, 1.0):
        return None
    return float((observed - chance) / (1.0 - chance))


def pairwise_agreement(
    labels_by_annotator: Mapping[AnnotatorT, Mapping[Hashable, Hashable]],
) -> dict[tuple[AnnotatorT, AnnotatorT], PairAgreement]:
    """For every pair of annotators (keyed in the mapping's order), the share of their common units on which
    they gave the same label, and the number of common units."""
    result: dict[tuple[AnnotatorT, AnnotatorT], PairAgreement] = {}
    for first, second in combinations(labels_by_annotator, 2):
        labels_first = labels_by_annotator[first]
        labels_second = labels_by_annotator[second]
        common = labels_first.keys() & labels_second.keys()
        same = sum(labels_first[unit] == labels_second[unit] for unit in common)
        result[(first, second)] = PairAgreement(
            share=same / len(common) if common else None, n_common=len(common)
        )
    return result


def position_bias(choices: Iterable[str]) -> PositionBias:
    """Shares of "left" / "tie" / "right" choices and a two-sided binomial test of left against right."""
    tally = dict.fromkeys(PAIRWISE_CHOICES, 0)
    for choice in choices:
        if choice not in tally:
            raise ValueError(f"choices must be 'left', 'tie' or 'right', got {choice!r}")
        tally[choice] += 1
    n = sum(tally.values())
    left, tie, right = tally["left"], tally["tie"], tally["right"]
    return PositionBias(
        left_share=left / n if n else None,
        right_share=right / n if n else None,
        tie_share=tie / n if n else None,
        n=n,
        p_value=sign_test(left, right),
    )


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _codes(
    values: list[object], level: str, categories: Sequence[Hashable] | None
) -> tuple[list[float], list[float] | None]:
    """Integer codes of the labels (numbers stay numbers), and the value domain handed to `krippendorff`."""
    if categories is not None:
        order = {label: code for code, label in enumerate(categories)}
        unknown = {value for value in values if value not in order}
        if unknown:
            raise ValueError(f"labels not among the categories: {sorted(map(repr, unknown))}")
        return [float(order[value]) for value in values], [float(code) for code in order.values()]
    numbers = [
        float(value)
        for value in values
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    ]
    if len(numbers) == len(values):
        return numbers, None
    if set(values) <= set(PAIRWISE_CHOICES):
        return _codes(values, level, PAIRWISE_CHOICES)
    if level == "ordinal":
        raise ValueError("ordinal alpha of labels needs `categories` in their order")
    order = {label: code for code, label in enumerate(dict.fromkeys(values))}
    return [float(order[value]) for value in values], [float(code) for code in order.values()]
