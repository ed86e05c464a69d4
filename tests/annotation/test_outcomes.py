"""The one resolver of who won a paired judgment."""

import pytest

from annotation.outcomes import canonical_preference, outcome_for, preferred, preferred_side

A, B = 1, 2  # model ids, A at position 0


@pytest.mark.parametrize(
    ("choice", "left", "right", "expected"),
    [
        ("left", A, B, "a"),
        ("right", A, B, "b"),
        ("left", B, A, "b"),
        ("right", B, A, "a"),
        ("tie", B, A, "tie"),
        ("left", A, 3, None),  # a model the campaign does not compare
        ("", A, B, None),  # a rubric answer
    ],
)
def test_canonical_preference_of_two_models(choice, left, right, expected):
    assert canonical_preference(choice, left, right, 10, 20, [A, B]) == expected


def test_canonical_preference_of_two_seeds_prefers_by_video():
    assert canonical_preference("left", A, A, 10, 20, [A]) == "a"  # the older video is "a"
    assert canonical_preference("left", A, A, 20, 10, [A]) == "b"


def test_outcome_for_each_side_and_no_battle_between_seeds():
    assert [outcome_for("left", A, B, m) for m in (A, B, 3)] == ["win", "loss", None]
    assert [outcome_for("right", A, B, m) for m in (A, B)] == ["loss", "win"]
    assert [outcome_for("tie", A, B, m) for m in (A, B)] == ["tie", "tie"]
    assert outcome_for("left", A, A, A) is None


def test_preferred_side_and_value():
    assert (preferred_side("left"), preferred_side("tie"), preferred_side("right")) == ("left", None, "right")
    assert (preferred("left", "x", "y"), preferred("right", "x", "y"), preferred("tie", "x", "y")) == (
        "x",
        "y",
        None,
    )
    with pytest.raises(ValueError, match="paired choice"):
        preferred_side("A")
