"""Which side won a paired judgment: the one resolver that the results, the quality page, the leaderboard,
the judgments API and the preference exports call. Plain values in, plain values out (no Django), so the
pure preference library can use it too.

A paired judgment stores what the annotator saw: the left and right model and video, and the choice
"left", "tie" or "right". From it:
- `preferred_side` is the side chosen ("left" or "right"), None for a tie;
- `outcome_for` is "win", "tie" or "loss" for one model, None when that model is on neither side;
- `canonical_preference` is "a" (model A, position 0 of the campaign, is better), "tie" or "b". Sides are
  randomised per annotator, so only the canonical preference compares across annotators. A seed-preference
  campaign compares two videos of one model; there "a" is the video with the lower id.

Rubric judgments have no winner: they are scores, compared by their own rules (Metric-2).
"""

from __future__ import annotations

from typing import TypeVar

LEFT, TIE, RIGHT = "left", "tie", "right"
PAIRED_CHOICES = (LEFT, TIE, RIGHT)
CANONICAL_PREFERENCES = ("a", "tie", "b")
CANONICAL_OUTCOME_FOR_A = {"a": "win", "tie": "tie", "b": "loss"}

T = TypeVar("T")


def preferred_side(choice: str) -> str | None:
    """ "left" or "right" for a decisive answer, None for a tie; anything else is a ValueError."""
    if choice not in PAIRED_CHOICES:
        raise ValueError(f"a paired choice is 'left', 'tie' or 'right', got {choice!r}")
    return None if choice == TIE else choice


def preferred(choice: str, left: T, right: T) -> T | None:
    """What the annotator preferred of the two sides (a model, a video, a label); None for a tie."""
    side = preferred_side(choice)
    if side is None:
        return None
    return left if side == LEFT else right


def outcome_for(choice: str, left_model: object, right_model: object, model: object) -> str | None:
    """'win', 'tie' or 'loss' of `model` in this answer; None if it is on neither side, or if both sides
    show it (two seeds of one model: no battle)."""
    if choice not in PAIRED_CHOICES or model not in (left_model, right_model) or left_model == right_model:
        return None
    winner = preferred(choice, left_model, right_model)
    if winner is None:
        return "tie"
    return "win" if winner == model else "loss"


def canonical_preference(
    choice: str,
    left_model: int | None,
    right_model: int | None,
    left_video: int | None,
    right_video: int | None,
    model_ids: list[int],
) -> str | None:
    """ "a" / "tie" / "b" for a left / tie / right answer; None when it is no paired answer or its sides are
    not the campaign's models (`model_ids` in campaign position order)."""
    if choice not in PAIRED_CHOICES or left_model not in model_ids or right_model not in model_ids:
        return None
    side = preferred_side(choice)
    if side is None:
        return "tie"
    if left_model != right_model:
        a_on_left = left_model == model_ids[0]
    else:  # two videos of one model (seed preference): "a" is the older video
        a_on_left = (left_video or 0) <= (right_video or 0)
    return "a" if (side == LEFT) == a_on_left else "b"
