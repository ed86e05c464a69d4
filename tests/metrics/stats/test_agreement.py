"""Krippendorff's alpha, Fleiss' kappa, pairwise agreement and position bias (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.stats.agreement import (
    PairAgreement,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_agreement,
    position_bias,
)
from metrics.stats.pairwise import sign_test

NAN = math.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers, 12 units, missing
# values; published alphas: nominal 0.743, ordinal 0.815.
KRIPPENDORFF_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]

TWO_ANNOTATORS = [["left", "left", "right", "tie"], ["left", "right", "right", "tie"]]


def test_krippendorff_published_example():
    assert krippendorff_alpha(KRIPPENDORFF_EXAMPLE, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPPENDORFF_EXAMPLE, "ordinal") == pytest.approx(0.815, abs=5e-4)


def test_krippendorff_labels_with_their_order_give_the_numeric_result():
    names = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    labelled = [[None if math.isnan(v) else names[int(v)] for v in row] for row in KRIPPENDORFF_EXAMPLE]
    order = ["one", "two", "three", "four", "five"]
    assert krippendorff_alpha(labelled, "ordinal", categories=order) == pytest.approx(0.8154, abs=5e-5)
    assert krippendorff_alpha(labelled, "nominal") == pytest.approx(0.7434, abs=5e-5)
    shuffled = ["three", "one", "five", "two", "four"]
    assert krippendorff_alpha(labelled, "ordinal", categories=shuffled) != pytest.approx(0.8154, abs=1e-3)


def test_krippendorff_nominal_by_hand():
    # Pairable values: L L | L R | R R | T T -> coincidences o_LR = o_RL = 1, n = 8, n_L = n_R = 3, n_T = 2.
    # alpha = 1 - (n - 1) * sum(o_ck, c != k) / sum(n_c n_k, c != k) = 1 - 7 * 2 / (64 - 9 - 9 - 4) = 2/3.
    assert krippendorff_alpha(TWO_ANNOTATORS, "nominal") == pytest.approx(1 - 7 * 2 / (64 - 22))


def test_krippendorff_ordinal_by_hand_in_left_tie_right_order():
    # Ordinal distance: d(c, k) = (sum of n_g from c to k - (n_c + n_k) / 2) ** 2 with order L < T < R:
    # d(L, R) = (8 - 3)^2 = 25, d(L, T) = d(T, R) = (5 - 2.5)^2 = 6.25.
    observed = 2 * 25
    expected = 2 * (3 * 2 * 6.25 + 3 * 3 * 25 + 2 * 3 * 6.25)
    assert krippendorff_alpha(TWO_ANNOTATORS, "ordinal") == pytest.approx(1 - 7 * observed / expected)


def test_krippendorff_undefined_cases():
    assert krippendorff_alpha([["left", "left"], ["left", "left"]]) is None  # no variation
    assert krippendorff_alpha([["left", None], [None, "right"]]) is None  # no unit rated twice
    assert krippendorff_alpha([[1, 1, NAN], [1, 1, NAN], [NAN, NAN, 2]]) is None  # 2 is not pairable
    assert krippendorff_alpha(np.array([[1.0, 2.0], [1.0, 2.0]])) == 1.0


def test_krippendorff_rejects_bad_input():
    with pytest.raises(ValueError):
        krippendorff_alpha([["a", "b"], ["b"]])
    with pytest.raises(ValueError, match="categories"):
        krippendorff_alpha([["good", "bad"], ["good", "good"]], "ordinal")
    with pytest.raises(ValueError, match="categories"):
        krippendorff_alpha([["good", "meh"], ["good", "good"]], "nominal", categories=["good", "bad"])
    with pytest.raises(ValueError):
        krippendorff_alpha(TWO_ANNOTATORS, "interval")  # type: ignore[arg-type]


# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories; kappa 0.210.
WIKIPEDIA_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_example():
    assert fleiss_kappa(WIKIPEDIA_TABLE) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_by_hand():
    # P_i = 1, 1, 0 -> mean 2/3; category shares 1/2, 1/2 -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3.
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1]]) == pytest.approx(1 / 3)
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0], [0, 0, 3]]) == pytest.approx(1.0)


def test_fleiss_kappa_undefined_and_errors():
    assert fleiss_kappa([[3, 0], [3, 0]]) is None
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([[2, 1], [1, 1]])
    with pytest.raises(ValueError):
        fleiss_kappa([[1, 0], [0, 1]])  # one rater per unit
    with pytest.raises(ValueError):
        fleiss_kappa([[1.5, 0.5]])
    with pytest.raises(ValueError):
        fleiss_kappa([])


def test_pairwise_agreement_by_hand():
    labels = {
        "ann": {"u1": "left", "u2": "tie", "u3": "right", "u4": "left"},
        "bob": {"u1": "left", "u2": "right", "u3": "right"},
        "cy": {"u9": "left"},
    }
    result = pairwise_agreement(labels)
    assert result == {
        ("ann", "bob"): PairAgreement(share=2 / 3, n_common=3),
        ("ann", "cy"): PairAgreement(share=None, n_common=0),
        ("bob", "cy"): PairAgreement(share=None, n_common=0),
    }
    share, n_common = result[("ann", "bob")]
    assert n_common == 3


def test_position_bias_by_hand():
    result = position_bias(["left"] * 7 + ["right"] * 3 + ["tie"] * 2)
    assert (result.left_share, result.right_share, result.tie_share, result.n) == (7 / 12, 3 / 12, 2 / 12, 12)
    assert result.p_value == pytest.approx(2 * sum(math.comb(10, k) for k in range(7, 11)) / 2**10)
    assert result.p_value == sign_test(7, 3)


def test_position_bias_without_choices_and_with_bad_labels():
    empty = position_bias([])
    assert (empty.left_share, empty.n, empty.p_value) == (None, 0, 1.0)
    with pytest.raises(ValueError):
        position_bias(["left", "a"])
