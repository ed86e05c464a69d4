"""Answers: a choice for paired kinds, four 1-5 scores per video for rubric items, playback reports and
problem reports. Every function takes the assignment's token and the person sending it; a token that is
unknown or belongs to someone else is "not found" either way, so tokens reveal nothing. Bad input raises
AnswerError before anything is written, and each write is one transaction.

`Judgment.duration_ms` runs from `Assignment.claimed_at` — when the item came on screen (a claim made
ahead for preloading has its clock reset when it comes on screen) — to the answer's arrival. The same
clock backs `require_full_playback`: a video counts as watched only when its `ended` event arrived at
least 90% of its length after the item came on screen, so an event forged right away does not pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .assignment import AssignmentError, check_can_work, on_screen_id, promote_upcoming
from .models import (
    RUBRIC_DIMENSIONS,
    Assignment,
    Campaign,
    Item,
    Judgment,
    PlaybackEvent,
    ProblemReport,
    RubricScore,
)
from .presentation import displayed_videos, shown_durations

REVISABLE_ANSWERS = 5  # an annotator may change their last few answers, no older ones
FULL_PLAYBACK_SHARE = 0.9  # of a video's length that must pass on the server before its `ended` counts
FASTEST_PLAYBACK_RATE = (
    2.0  # the page's fastest speed: a video watched at 2x legitimately ends in half its length
)
MAX_PLAYBACK_EVENTS = 200  # per assignment: a runaway player cannot fill the table
MAX_NOTE_CHARS = 2000
CHOICES = tuple(Judgment.Choice.values)

RELEASED_MESSAGE = "this item was released, load the next one"


class AnswerError(Exception):
    """A refused answer; `message` is for the annotator, `status` the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SubmitResult:
    judgment: Judgment
    created: bool
    revised: bool


def _own_assignment(token: Any, annotator: AbstractBaseUser, *, related: bool = True) -> Assignment:
    """The annotator's assignment with this token (with its campaign and item, unless `related` is off:
    a playback report needs neither)."""
    if not isinstance(token, str) or not token or len(token) > 24:
        raise AnswerError("no such assignment", status=404)
    rows = Assignment.objects.filter(token=token, annotator_id=annotator.pk).order_by()
    assignment = (rows.select_related("campaign", "item") if related else rows).first()
    if assignment is None:
        raise AnswerError("no such assignment", status=404)
    return assignment


def _lock(assignment: Assignment, annotator: AbstractBaseUser) -> Assignment:
    """Inside a transaction: check the annotator may still work here, take their membership lock (the
    same first lock as claiming work), then the assignment's row; returns it fresh (with `on_screen_id`,
    the id of the annotator's claim on screen, read in the same statement), with the campaign
    and item `assignment` was read with (the campaign's status was just read afresh; an item's videos
    and prompt never change)."""
    try:
        check_can_work(assignment.campaign, annotator, lock=True)
    except AssignmentError as exc:
        raise AnswerError(exc.message, status=exc.status) from exc
    rows = Assignment.objects.select_for_update(no_key=True, of=("self",)).annotate(
        on_screen_id=on_screen_id()
    )
    locked = rows.order_by().get(pk=assignment.pk)
    locked.campaign, locked.item = assignment.campaign, assignment.item
    return locked


def _check_live_and_on_screen(assignment: Assignment, now: datetime) -> None:
    if assignment.status == Assignment.Status.RELEASED or (
        assignment.status == Assignment.Status.CLAIMED and assignment.expires_at <= now
    ):
        raise AnswerError(RELEASED_MESSAGE, status=409)
    if assignment.status == Assignment.Status.PROBLEM:
        raise AnswerError("you reported a problem with this item; load the next one", status=409)
    if assignment.status == Assignment.Status.CLAIMED and assignment.on_screen_id != assignment.pk:
        raise AnswerError("this is not the item on your screen; load the next one", status=409)


def _position_name(position: int, count: int) -> str:
    if count == 1:
        return "the video"
    if count == 2:
        return "the left video" if position == 0 else "the right video"
    return f"video {position + 1}"


# --- payloads ------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_choice(payload: Any) -> str:
    if not isinstance(payload, dict):
        raise AnswerError("the answer must be a JSON object")
    if "scores" in payload:
        raise AnswerError("this item asks for a choice (left, tie or right), not scores")
    unexpected = sorted(set(payload) - {"choice"})
    if unexpected:
        raise AnswerError(f"unexpected field {unexpected[0]!r}; send only 'choice'")
    if "choice" not in payload:
        raise AnswerError("'choice' is missing: send left, tie or right")
    if payload["choice"] not in CHOICES:
        raise AnswerError(f"'choice' must be one of {', '.join(CHOICES)}")
    return payload["choice"]


def parse_scores(payload: Any, video_count: int) -> dict[int, dict[str, int]]:
    """{display position: {dimension: score}} for every displayed video."""
    if not isinstance(payload, dict):
        raise AnswerError("the answer must be a JSON object")
    if "choice" in payload:
        raise AnswerError("this item asks for scores, not a choice")
    unexpected = sorted(set(payload) - {"scores"})
    if unexpected:
        raise AnswerError(f"unexpected field {unexpected[0]!r}; send only 'scores'")
    entries = payload.get("scores")
    if not isinstance(entries, list):
        raise AnswerError("'scores' must be a list with one entry per video")
    scores: dict[int, dict[str, int]] = {}
    for index, entry in enumerate(entries):
        where = f"scores[{index}]"
        if not isinstance(entry, dict):
            raise AnswerError(f"{where} must be an object with 'position' and the four scores")
        unexpected = sorted(set(entry) - {"position", *RUBRIC_DIMENSIONS})
        if unexpected:
            raise AnswerError(f"{where} has an unexpected field {unexpected[0]!r}")
        position = entry.get("position")
        if not _is_int(position) or not 0 <= position < video_count:
            raise AnswerError(f"{where}.position must be an integer from 0 to {video_count - 1}")
        if position in scores:
            raise AnswerError(f"{where}.position {position} is scored twice")
        values = {}
        for dim in RUBRIC_DIMENSIONS:
            if dim not in entry:
                raise AnswerError(f"{where}.{dim} is missing")
            if not _is_int(entry[dim]) or not 1 <= entry[dim] <= 5:
                raise AnswerError(f"{where}.{dim} must be an integer from 1 to 5")
            values[dim] = entry[dim]
        scores[position] = values
    missing = [p for p in range(video_count) if p not in scores]
    if missing:
        raise AnswerError(f"scores for position {missing[0]} are missing: score every video")
    return scores


def _parse(assignment: Assignment, payload: Any) -> str | dict[int, dict[str, int]]:
    if assignment.campaign.kind == Campaign.Kind.RUBRIC:
        return parse_scores(payload, len(assignment.presentation))
    return parse_choice(payload)


# --- answering -----------------------------------------------------------------------------------------


def recent_answers(
    campaign: Campaign, annotator: AbstractBaseUser, limit: int = REVISABLE_ANSWERS
) -> list[Assignment]:
    """The annotator's latest answered assignments in the campaign, newest first (for the revise list)."""
    return list(
        Assignment.objects.filter(
            campaign=campaign, annotator=annotator, status=Assignment.Status.DONE, judgment__isnull=False
        )
        .select_related("campaign", "item__prompt", "judgment")
        .order_by("-finished_at", "-pk")[:limit]
    )


def _same_answer(judgment: Judgment, answer: str | dict[int, dict[str, int]]) -> bool:
    if isinstance(answer, str):
        return judgment.choice == answer
    stored = {
        score.shown_position: {dim: getattr(score, dim) for dim in RUBRIC_DIMENSIONS}
        for score in judgment.scores.all()
    }
    return stored == answer


def _check_full_playback(assignment: Assignment, now: datetime) -> None:
    durations = shown_durations(assignment)
    events = list(
        PlaybackEvent.objects.filter(assignment=assignment, kind=PlaybackEvent.Kind.ENDED).values_list(
            "slot", "received_at"
        )
    )
    for position, (slot, duration) in enumerate(zip(assignment.presentation, durations, strict=True)):
        shortest_watch = FULL_PLAYBACK_SHARE * (duration or 0) / FASTEST_PLAYBACK_RATE
        earliest = assignment.claimed_at + timedelta(seconds=shortest_watch)
        if not any(s == slot and earliest <= received <= now for s, received in events):
            name = _position_name(position, len(assignment.presentation))
            raise AnswerError(f"{name} has not played to the end yet", status=409)


def _store(assignment: Assignment, answer: str | dict[int, dict[str, int]], now: datetime) -> Judgment:
    shown = displayed_videos(assignment)
    elapsed_ms = int((now - assignment.claimed_at).total_seconds() * 1000)
    fields: dict[str, Any] = {
        "campaign": assignment.campaign,
        "item": assignment.item,
        "assignment": assignment,
        "annotator_id": assignment.annotator_id,
        "prompt_id": assignment.item.prompt_id,
        "is_repeat": assignment.is_repeat,
        "duration_ms": min(max(elapsed_ms, 0), 2**31 - 1),
        "created_at": now,
        "updated_at": now,
    }
    if isinstance(answer, str):
        left, right = shown
        judgment = Judgment.objects.create(
            **fields,
            choice=answer,
            left_model_id=left.model_id,
            right_model_id=right.model_id,
            left_video=left,
            right_video=right,
        )
    else:
        judgment = Judgment.objects.create(**fields)
        RubricScore.objects.bulk_create(
            RubricScore(
                judgment=judgment,
                model_id=shown[position].model_id,
                video=shown[position],
                shown_position=position,
                **values,
            )
            for position, values in sorted(answer.items())
        )
    return judgment


def _revise(judgment: Judgment, answer: str | dict[int, dict[str, int]], now: datetime) -> Judgment:
    judgment.revision += 1
    judgment.updated_at = now
    if isinstance(answer, str):
        judgment.choice = answer
        judgment.save(update_fields=["choice", "revision", "updated_at"])
        return judgment
    judgment.save(update_fields=["revision", "updated_at"])
    for score in judgment.scores.all():
        for dim, value in answer[score.shown_position].items():
            setattr(score, dim, value)
        score.save(update_fields=list(RUBRIC_DIMENSIONS))
    return judgment


def submit_answer(
    *, token: str, annotator: AbstractBaseUser, payload: dict, now: datetime | None = None
) -> SubmitResult:
    """Store the annotator's answer to the item on their screen, or revise one of their last
    `REVISABLE_ANSWERS` answers. Sending the same answer again changes nothing (created=False,
    revised=False). Raises AnswerError: 404 unknown token, 400 malformed answer, 403 not an annotator
    of the campaign, 409 released claim / paused campaign / playback incomplete / answer too old."""
    now = now or timezone.now()
    assignment = _own_assignment(token, annotator)
    answer = _parse(assignment, payload)
    with transaction.atomic():
        assignment = _lock(assignment, annotator)
        if assignment.status == Assignment.Status.DONE:
            judgment = Judgment.objects.get(assignment=assignment)
            if _same_answer(judgment, answer):
                return SubmitResult(judgment, created=False, revised=False)
            revisable = {a.pk for a in recent_answers(assignment.campaign, annotator)}
            if assignment.pk not in revisable:
                raise AnswerError(
                    f"only your last {REVISABLE_ANSWERS} answers can be changed; this one is older",
                    status=409,
                )
            return SubmitResult(_revise(judgment, answer, now), created=False, revised=True)
        _check_live_and_on_screen(assignment, now)
        if assignment.campaign.require_full_playback:
            _check_full_playback(assignment, now)
        judgment = _store(assignment, answer, now)
        assignment.status, assignment.finished_at = Assignment.Status.DONE, now
        assignment.save(update_fields=["status", "finished_at"])
        promote_upcoming(assignment.campaign, annotator, now)
        if not assignment.is_repeat:  # the item's row last, as every writer locks them (see assignment)
            Item.objects.filter(pk=assignment.item_id).update(answered=F("answered") + 1)
    return SubmitResult(judgment, created=True, revised=False)


def record_playback(
    *,
    token: str,
    annotator: AbstractBaseUser,
    position: Any,
    event: Any,
    media_time: Any = None,
    now: datetime | None = None,
) -> PlaybackEvent:
    """Record what the player reported for the video at display `position` ('play' or 'ended'); the
    time that counts is the server's arrival time, not anything the browser says."""
    now = now or timezone.now()
    assignment = _own_assignment(token, annotator, related=False)
    count = len(assignment.presentation)
    if not _is_int(position) or not 0 <= position < count:
        raise AnswerError(f"'position' must be an integer from 0 to {count - 1}")
    if event not in PlaybackEvent.Kind.values:
        raise AnswerError(f"'event' must be one of {', '.join(PlaybackEvent.Kind.values)}")
    if media_time is not None and (
        not isinstance(media_time, int | float)
        or isinstance(media_time, bool)
        or not math.isfinite(media_time)
        or media_time < 0
    ):
        raise AnswerError("'media_time' must be a number of seconds, 0 or more")
    if assignment.status != Assignment.Status.CLAIMED or assignment.expires_at <= now:
        raise AnswerError(
            RELEASED_MESSAGE if assignment.status != Assignment.Status.DONE else "this item is answered",
            status=409,
        )
    if PlaybackEvent.objects.filter(assignment=assignment).count() >= MAX_PLAYBACK_EVENTS:
        raise AnswerError("too many playback reports for this item", status=409)
    return PlaybackEvent.objects.create(
        assignment=assignment,
        slot=assignment.presentation[position],
        kind=event,
        media_time=float(media_time) if media_time is not None else None,
        received_at=now,
    )


def report_problem(
    *, token: str, annotator: AbstractBaseUser, kind: Any, note: Any = "", now: datetime | None = None
) -> ProblemReport:
    """Report that the item on screen cannot be judged. It counts as done for this annotator and frees
    its place for another annotator. Reporting the same assignment again returns the first report."""
    now = now or timezone.now()
    assignment = _own_assignment(token, annotator)
    if kind not in ProblemReport.Kind.values:
        raise AnswerError(f"'kind' must be one of {', '.join(ProblemReport.Kind.values)}")
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise AnswerError(f"'note' must be text of at most {MAX_NOTE_CHARS} characters")
    with transaction.atomic():
        assignment = _lock(assignment, annotator)
        if assignment.status == Assignment.Status.PROBLEM:
            return ProblemReport.objects.get(assignment=assignment)
        if assignment.status == Assignment.Status.DONE:
            raise AnswerError("this item is already answered; change the answer instead", status=409)
        _check_live_and_on_screen(assignment, now)
        assignment.status, assignment.finished_at = Assignment.Status.PROBLEM, now
        assignment.save(update_fields=["status", "finished_at"])
        report = ProblemReport.objects.create(
            assignment=assignment, kind=kind, note=note.strip(), created_at=now
        )
        promote_upcoming(assignment.campaign, annotator, now)
    return report
