"""Answering: what is stored, validation that changes nothing, idempotency, revisions, full playback,
playback and problem reports."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.assignment import next_assignment, upcoming_assignment
from annotation.judging import (
    AnswerError,
    recent_answers,
    record_playback,
    report_problem,
    submit_answer,
)
from annotation.models import (
    RUBRIC_DIMENSIONS,
    Assignment,
    Campaign,
    Judgment,
    PlaybackEvent,
    ProblemReport,
    RubricScore,
)

pytestmark = pytest.mark.django_db


def scores(count, value=3, **override):
    return {
        "scores": [
            {"position": p, **dict.fromkeys(RUBRIC_DIMENSIONS, value), **override} for p in range(count)
        ]
    }


def snapshot():
    """Everything an answer may write: a refused request must leave all of it as it was."""
    return (
        list(Judgment.objects.order_by("pk").values_list("pk", "choice", "revision", "updated_at")),
        list(RubricScore.objects.order_by("pk").values_list(*RUBRIC_DIMENSIONS)),
        list(Assignment.objects.order_by("pk").values_list("pk", "status", "claimed_at", "finished_at")),
        PlaybackEvent.objects.count(),
        ProblemReport.objects.count(),
    )


def video_of(assignment, position):
    slot = assignment.presentation[position]
    return assignment.item.item_videos.get(slot=slot).video


def test_a_pairwise_answer_is_stored_as_seen_and_resolves_to_the_right_model(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=1)
    person = campaign.annotators.get()
    start = timezone.now()
    assignment = next_assignment(campaign, person, now=start)
    result = submit_answer(
        token=assignment.token,
        annotator=person,
        payload={"choice": "right"},
        now=start + timedelta(seconds=7),
    )
    judgment = result.judgment
    assert result.created and not result.revised
    left, right = video_of(assignment, 0), video_of(assignment, 1)
    assert (judgment.left_video, judgment.right_video) == (left, right)
    assert (judgment.left_model, judgment.right_model) == (left.model, right.model)
    assert judgment.choice == "right" and judgment.outcome_for(right.model_id) == "win"
    assert judgment.duration_ms == 7000
    assert (judgment.item, judgment.prompt, judgment.campaign) == (
        assignment.item,
        assignment.item.prompt,
        campaign,
    )
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.DONE


def test_a_rubric_answer_stores_one_score_row_per_shown_video(campaign_factory):
    campaign = campaign_factory(
        "rubric", n_prompts=1, n_annotators=1, model_names=("M1", "M2", "M3"), rubric_layout="together"
    )
    person = campaign.annotators.get()
    assignment = next_assignment(campaign, person)
    payload = scores(3)
    for position, entry in enumerate(payload["scores"]):
        entry["aesthetic_appeal"] = position + 1
    judgment = submit_answer(token=assignment.token, annotator=person, payload=payload).judgment
    assert judgment.choice == "" and judgment.left_model is None
    rows = list(judgment.scores.order_by("shown_position"))
    assert [r.shown_position for r in rows] == [0, 1, 2]
    for position, row in enumerate(rows):
        assert row.video == video_of(assignment, position) and row.model == row.video.model
        assert row.aesthetic_appeal == position + 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"choice": "middle"}, "'choice' must be one of left, tie, right"),
        ({}, "'choice' is missing"),
        ({"choice": "left", "confidence": 3}, "unexpected field 'confidence'"),
        (scores(2), "asks for a choice"),
        (["left"], "must be a JSON object"),
    ],
)
def test_a_malformed_choice_is_refused_naming_the_field_and_changes_nothing(
    campaign_factory, payload, message
):
    campaign = campaign_factory(n_prompts=1, n_annotators=1)
    person = campaign.annotators.get()
    assignment = next_assignment(campaign, person)
    before = snapshot()
    with pytest.raises(AnswerError, match=message) as refused:
        submit_answer(token=assignment.token, annotator=person, payload=payload)
    assert refused.value.status == 400
    assert snapshot() == before


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (scores(2, value=6), r"scores\[0\].instruction_following must be an integer from 1 to 5"),
        (scores(2, motion_smoothness=0), r"scores\[0\].motion_smoothness must be an integer from 1 to 5"),
        (scores(2, aesthetic_appeal=2.5), r"scores\[0\].aesthetic_appeal must be an integer"),
        (scores(2, physical_plausibility=True), r"scores\[0\].physical_plausibility must be an integer"),
        ({"scores": [scores(1)["scores"][0]]}, "scores for position 1 are missing"),
        (
            {"scores": [{k: v for k, v in scores(1)["scores"][0].items() if k != "motion_smoothness"}] * 2},
            r"scores\[0\].motion_smoothness is missing",
        ),
        ({"scores": [scores(1)["scores"][0]] * 2}, r"scores\[1\].position 0 is scored twice"),
        ({"scores": [{**scores(1)["scores"][0], "position": 2}]}, r"scores\[0\].position must be an integer"),
        ({"scores": "all fives"}, "'scores' must be a list"),
        ({"choice": "left"}, "asks for scores, not a choice"),
    ],
)
def test_malformed_scores_are_refused_naming_the_field_and_change_nothing(campaign_factory, payload, message):
    campaign = campaign_factory("rubric", n_prompts=1, n_annotators=1, rubric_layout="together")
    person = campaign.annotators.get()
    assignment = next_assignment(campaign, person)
    before = snapshot()
    with pytest.raises(AnswerError, match=message) as refused:
        submit_answer(token=assignment.token, annotator=person, payload=payload)
    assert refused.value.status == 400
    assert snapshot() == before


def test_an_unknown_token_and_another_annotators_token_are_both_not_found(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=2, judgments_per_item=2)
    owner, other = campaign.annotators.order_by("pk")
    assignment = next_assignment(campaign, owner)
    before = snapshot()
    for token, person in [("0" * 24, owner), (assignment.token, other), (None, owner), ("x" * 300, owner)]:
        with pytest.raises(AnswerError, match="no such assignment") as refused:
            submit_answer(token=token, annotator=person, payload={"choice": "left"})
        assert refused.value.status == 404
        with pytest.raises(AnswerError, match="no such assignment"):
            record_playback(token=token, annotator=person, position=0, event="play")
        with pytest.raises(AnswerError, match="no such assignment"):
            report_problem(token=token, annotator=person, kind="other")
    assert snapshot() == before


def test_sending_the_same_answer_twice_stores_one_judgment(campaign_factory):
    campaign = campaign_factory(n_prompts=2, n_annotators=1)
    person = campaign.annotators.get()
    assignment = next_assignment(campaign, person)
    first = submit_answer(token=assignment.token, annotator=person, payload={"choice": "tie"})
    after_first = snapshot()
    again = submit_answer(token=assignment.token, annotator=person, payload={"choice": "tie"})
    assert again.judgment.pk == first.judgment.pk
    assert (again.created, again.revised) == (False, False)
    assert snapshot() == after_first
    assert Judgment.objects.count() == 1


def test_the_last_five_answers_can_be_revised_and_older_ones_cannot(campaign_factory):
    campaign = campaign_factory(n_prompts=7, n_annotators=1)
    person = campaign.annotators.get()
    start = timezone.now()
    answered = []
    for step in range(7):
        assignment = next_assignment(campaign, person, now=start + timedelta(seconds=step))
        submit_answer(
            token=assignment.token,
            annotator=person,
            payload={"choice": "left"},
            now=start + timedelta(seconds=step),
        )
        answered.append(assignment)
    assert [a.pk for a in recent_answers(campaign, person)] == [a.pk for a in reversed(answered[2:])]

    later = start + timedelta(minutes=5)
    revised = submit_answer(token=answered[2].token, annotator=person, payload={"choice": "right"}, now=later)
    assert revised.revised and not revised.created
    judgment = Judgment.objects.get(assignment=answered[2])
    assert (judgment.choice, judgment.revision, judgment.updated_at) == ("right", 1, later)
    assert judgment.left_model_id is not None  # the sides stay as they were shown
    twice = submit_answer(token=answered[2].token, annotator=person, payload={"choice": "tie"}, now=later)
    assert twice.judgment.revision == 2

    before = snapshot()
    with pytest.raises(AnswerError, match="only your last 5 answers can be changed") as refused:
        submit_answer(token=answered[1].token, annotator=person, payload={"choice": "right"})
    assert refused.value.status == 409
    assert snapshot() == before


def test_a_revision_of_rubric_scores_updates_the_rows(campaign_factory):
    campaign = campaign_factory("rubric", n_prompts=1, n_annotators=1, rubric_layout="together")
    person = campaign.annotators.get()
    assignment = next_assignment(campaign, person)
    submit_answer(token=assignment.token, annotator=person, payload=scores(2, value=2))
    result = submit_answer(token=assignment.token, annotator=person, payload=scores(2, value=4))
    assert result.revised and result.judgment.revision == 1
    assert set(RubricScore.objects.values_list("aesthetic_appeal", flat=True)) == {4}
    assert RubricScore.objects.count() == 2


def test_no_revision_once_the_campaign_is_paused(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=1)
    person = campaign.annotators.get()
    assignment = next_assignment(campaign, person)
    submit_answer(token=assignment.token, annotator=person, payload={"choice": "left"})
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    before = snapshot()
    with pytest.raises(AnswerError, match="campaign is paused") as refused:
        submit_answer(token=assignment.token, annotator=person, payload={"choice": "right"})
    assert refused.value.status == 409
    assert snapshot() == before


def test_an_answer_to_a_released_claim_is_refused(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=2, judgments_per_item=1, claim_timeout_s=60)
    a, b = campaign.annotators.order_by("pk")
    start = timezone.now()
    claim = next_assignment(campaign, a, now=start)
    late = start + timedelta(seconds=61)
    before = snapshot()
    with pytest.raises(AnswerError, match="this item was released, load the next one") as expired:
        submit_answer(token=claim.token, annotator=a, payload={"choice": "left"}, now=late)
    assert expired.value.status == 409
    assert snapshot() == before
    next_assignment(campaign, b, now=late)  # releases it, and b takes the item
    with pytest.raises(AnswerError, match="this item was released") as released:
        submit_answer(token=claim.token, annotator=a, payload={"choice": "left"}, now=late)
    assert released.value.status == 409
    assert Judgment.objects.count() == 0


def test_the_item_held_behind_the_one_on_screen_cannot_be_answered_first(campaign_factory):
    campaign = campaign_factory(n_prompts=2, n_annotators=1)
    person = campaign.annotators.get()
    upcoming = upcoming_assignment(campaign, person)
    before = snapshot()
    with pytest.raises(AnswerError, match="not the item on your screen") as refused:
        submit_answer(token=upcoming.token, annotator=person, payload={"choice": "left"})
    assert refused.value.status == 409
    assert snapshot() == before


def test_full_playback_is_required_from_events_that_arrive_late_enough(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=1, require_full_playback=True)
    person = campaign.annotators.get()
    start = timezone.now()
    assignment = next_assignment(campaign, person, now=start)
    duration = video_of(assignment, 0).duration_s
    assert duration and duration > 0.5

    def submit(at):
        return submit_answer(token=assignment.token, annotator=person, payload={"choice": "left"}, now=at)

    before = snapshot()
    with pytest.raises(AnswerError, match="the left video has not played to the end yet") as refused:
        submit(start + timedelta(seconds=60))
    assert refused.value.status == 409
    assert snapshot() == before

    # Forged: both 'ended' events sent right after the item came on screen.
    for position in (0, 1):
        record_playback(
            token=assignment.token,
            annotator=person,
            position=position,
            event="ended",
            media_time=duration,
            now=start + timedelta(seconds=0.1),
        )
    with pytest.raises(AnswerError, match="the left video has not played to the end yet"):
        submit(start + timedelta(seconds=60))

    record_playback(
        token=assignment.token,
        annotator=person,
        position=0,
        event="ended",
        media_time=duration,
        now=start + timedelta(seconds=duration),
    )
    with pytest.raises(AnswerError, match="the right video has not played to the end yet"):
        submit(start + timedelta(seconds=60))
    record_playback(
        token=assignment.token,
        annotator=person,
        position=1,
        event="ended",
        media_time=duration,
        now=start + timedelta(seconds=2 * duration),
    )
    assert submit(start + timedelta(seconds=60)).created
    # Recorded under the canonical slot shown at that position.
    left_ended = PlaybackEvent.objects.get(received_at=start + timedelta(seconds=duration))
    assert left_ended.slot == assignment.presentation[0]


@pytest.mark.parametrize(
    ("position", "event", "media_time", "message"),
    [
        (2, "play", None, "'position' must be an integer from 0 to 1"),
        ("0", "play", None, "'position' must be an integer"),
        (0, "paused", None, "'event' must be one of play, ended"),
        (0, "ended", -1, "'media_time' must be a number"),
        (0, "ended", "soon", "'media_time' must be a number"),
    ],
)
def test_bad_playback_reports_are_refused_and_change_nothing(
    campaign_factory, position, event, media_time, message
):
    campaign = campaign_factory(n_prompts=1, n_annotators=1)
    person = campaign.annotators.get()
    assignment = next_assignment(campaign, person)
    before = snapshot()
    with pytest.raises(AnswerError, match=message) as refused:
        record_playback(
            token=assignment.token, annotator=person, position=position, event=event, media_time=media_time
        )
    assert refused.value.status == 400
    assert snapshot() == before


def test_a_problem_report_is_stored_once_and_cannot_follow_an_answer(campaign_factory):
    campaign = campaign_factory(n_prompts=2, n_annotators=1)
    person = campaign.annotators.get()
    broken = next_assignment(campaign, person)
    report = report_problem(token=broken.token, annotator=person, kind="video_broken", note=" no picture ")
    assert report_problem(token=broken.token, annotator=person, kind="video_broken") == report
    assert ProblemReport.objects.get().note == "no picture"
    broken.refresh_from_db()
    assert broken.status == Assignment.Status.PROBLEM
    before = snapshot()
    with pytest.raises(AnswerError, match="reported a problem") as refused:
        submit_answer(token=broken.token, annotator=person, payload={"choice": "left"})
    assert refused.value.status == 409

    answered = next_assignment(campaign, person)
    assert answered.item_id != broken.item_id
    submit_answer(token=answered.token, annotator=person, payload={"choice": "left"})
    before = snapshot()
    with pytest.raises(AnswerError, match="already answered") as refused:
        report_problem(token=answered.token, annotator=person, kind="other")
    assert refused.value.status == 409
    with pytest.raises(AnswerError, match="'kind' must be one of") as bad_kind:
        report_problem(token=answered.token, annotator=person, kind="boring")
    assert bad_kind.value.status == 400
    assert snapshot() == before


def test_full_playback_accepts_a_video_watched_at_double_speed_but_not_faster(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=1, require_full_playback=True)
    person = campaign.annotators.get()
    start = timezone.now()
    assignment = next_assignment(campaign, person, now=start)
    duration = video_of(assignment, 0).duration_s

    def ended(position, after_share):
        record_playback(
            token=assignment.token,
            annotator=person,
            position=position,
            event="ended",
            media_time=duration,
            now=start + timedelta(seconds=after_share * duration),
        )

    ended(0, 0.46)  # the page's fastest speed is 2x: half the length, less a little
    ended(1, 0.3)  # faster than any speed the page offers
    with pytest.raises(AnswerError, match="the right video has not played to the end yet"):
        submit_answer(
            token=assignment.token,
            annotator=person,
            payload={"choice": "tie"},
            now=start + timedelta(seconds=5),
        )
    ended(1, 0.5)
    result = submit_answer(
        token=assignment.token, annotator=person, payload={"choice": "tie"}, now=start + timedelta(seconds=5)
    )
    assert result.created and result.judgment.choice == "tie"
