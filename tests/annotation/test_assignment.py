"""Handing out work: per-annotator order, balanced left/right, capacity, expiry, lookahead, repeats."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.assignment import (
    REPEAT_MIN_GAP,
    AssignmentError,
    annotator_done_and_total,
    next_assignment,
    release_expired_claims,
    repeats_planned,
    upcoming_assignment,
)
from annotation.judging import report_problem, submit_answer
from annotation.models import Assignment, Campaign, Item, ItemVideo, Judgment

pytestmark = pytest.mark.django_db


def answer(assignment, now=None, choice="left"):
    payload = (
        {"choice": choice}
        if assignment.campaign.is_paired
        else {
            "scores": [
                {
                    "position": p,
                    "instruction_following": 3,
                    "motion_smoothness": 3,
                    "physical_plausibility": 3,
                    "aesthetic_appeal": 3,
                }
                for p in range(len(assignment.presentation))
            ]
        }
    )
    return submit_answer(token=assignment.token, annotator=assignment.annotator, payload=payload, now=now)


def work_through(campaign, annotator, now=None):
    """Answer everything the annotator is handed; returns their assignments in the order shown."""
    shown = []
    while (assignment := next_assignment(campaign, annotator, now=now)) is not None:
        shown.append(assignment)
        answer(assignment, now=now)
    return shown


def slot0_left_minus_right(campaign, annotator) -> int:
    presentations = Assignment.objects.filter(
        campaign=campaign, annotator=annotator, is_repeat=False
    ).values_list("presentation", flat=True)
    return sum(1 if p[0] == 0 else -1 for p in presentations)


@pytest.mark.parametrize("kind", ["pairwise", "ab_shared_noise", "seed_preference"])
def test_slot_0_is_on_the_left_in_half_of_each_annotators_items_within_one(campaign_factory, kind):
    campaign = campaign_factory(kind, n_prompts=10, n_annotators=3, overlap="every_annotator", seeds=2)
    people = list(campaign.annotators.order_by("pk"))
    assert campaign.items.count() >= 10
    sides = Counter()
    # Interleaved, as real annotators work: each one's balance must hold at every step, not only at the end.
    while True:
        handed = [next_assignment(campaign, person) for person in people]
        if not any(handed):
            break
        for person, assignment in zip(people, handed, strict=True):
            if assignment is None:
                continue
            assert sorted(assignment.presentation) == [0, 1]
            sides[assignment.presentation[0] == 0] += 1
            answer(assignment)
            assert abs(slot0_left_minus_right(campaign, person)) <= 1
    assert sum(sides.values()) == 3 * campaign.items.count()
    assert sides[True] > 0 and sides[False] > 0


def test_rubric_together_spreads_slot_0_over_the_places_within_one(campaign_factory):
    campaign = campaign_factory(
        "rubric", n_prompts=9, n_annotators=1, model_names=("M1", "M2", "M3"), rubric_layout="together"
    )
    (person,) = campaign.annotators.all()
    shown = work_through(campaign, person)
    assert len(shown) == 9 and all(sorted(a.presentation) == [0, 1, 2] for a in shown)
    places = Counter(a.presentation.index(0) for a in shown)
    assert max(places.values()) - min(places[p] for p in range(3)) <= 1
    assert len({tuple(a.presentation) for a in shown}) > 1


def test_each_annotator_has_an_own_order_that_a_restart_does_not_change(campaign_factory):
    campaign = campaign_factory(n_prompts=12, n_annotators=2, overlap="every_annotator")
    first, second = campaign.annotators.order_by("pk")
    start = timezone.now()
    claim = next_assignment(campaign, first, now=start)
    assert next_assignment(campaign, first, now=start) == claim  # asking again hands out nothing new
    # The claim is abandoned and released; the same item comes first again.
    later = start + timedelta(seconds=campaign.claim_timeout_s + 1)
    again = next_assignment(campaign, first, now=later)
    assert again.pk != claim.pk and again.item_id == claim.item_id
    assert Assignment.objects.get(pk=claim.pk).status == Assignment.Status.RELEASED

    order_first = [a.item_id for a in work_through(campaign, first, now=later)]
    order_second = [a.item_id for a in work_through(campaign, second, now=later)]
    assert sorted(order_first) == sorted(order_second) == sorted(campaign.items.values_list("pk", flat=True))
    assert order_first != order_second
    assert order_first != sorted(order_first)


def test_an_item_goes_to_at_most_its_required_number_of_annotators(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=3, judgments_per_item=2)
    a, b, c = campaign.annotators.order_by("pk")
    claim_a, claim_b = next_assignment(campaign, a), next_assignment(campaign, b)
    assert claim_a.item_id == claim_b.item_id
    assert next_assignment(campaign, c) is None
    answer(claim_a)
    assert next_assignment(campaign, a) is None  # never the same item twice
    assert next_assignment(campaign, c) is None  # one answer and one live claim still fill it
    assert annotator_done_and_total(campaign, c) == (0, 1)  # but it may still come to c
    answer(claim_b)
    assert annotator_done_and_total(campaign, c) == (0, 0)


def test_an_abandoned_claim_is_released_and_claimed_by_another_annotator(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=2, judgments_per_item=1, claim_timeout_s=60)
    a, b = campaign.annotators.order_by("pk")
    start = timezone.now()
    abandoned = next_assignment(campaign, a, now=start)
    assert next_assignment(campaign, b, now=start + timedelta(seconds=59)) is None
    taken = next_assignment(campaign, b, now=start + timedelta(seconds=61))
    assert taken.item_id == abandoned.item_id
    abandoned.refresh_from_db()
    assert abandoned.status == Assignment.Status.RELEASED
    answer(taken, now=start + timedelta(seconds=70))
    assert Judgment.objects.get().annotator == b


def test_release_expired_claims_releases_claims_in_every_campaign(campaign_factory):
    one = campaign_factory(n_prompts=2, n_annotators=1, claim_timeout_s=60)
    two = campaign_factory(n_prompts=2, n_annotators=1, claim_timeout_s=120)
    start = timezone.now()
    for campaign in (one, two):
        upcoming_assignment(campaign, campaign.annotators.get(), now=start)
    assert Assignment.objects.filter(status="claimed").count() == 4
    assert release_expired_claims(now=start + timedelta(seconds=30)) == 0
    # The first campaign's item on screen expired: the claim held behind it goes back with it.
    assert release_expired_claims(now=start + timedelta(seconds=90)) == 2
    assert set(Assignment.objects.filter(status="claimed").values_list("campaign", flat=True)) == {two.pk}
    assert release_expired_claims(now=start + timedelta(seconds=200)) == 2
    assert release_expired_claims(now=start + timedelta(seconds=300)) == 0


def test_releasing_an_expired_claim_spares_the_annotators_claims_made_after_it_expired(campaign_factory):
    """A release that finds an annotator's expired claim takes the claim held behind it too, but not a
    claim the annotator got after the expiry: a request of theirs may have released the expired pair
    and claimed afresh while the release was under way (or the expired pair is locked by another
    releaser), and their answer to the fresh claim must not be refused."""
    campaign = campaign_factory(n_prompts=4, n_annotators=2, judgments_per_item=2, claim_timeout_s=60)
    person, other = campaign.annotators.order_by("pk")
    start = timezone.now()
    on_screen = next_assignment(campaign, person, now=start)
    ahead = upcoming_assignment(campaign, person, now=start + timedelta(seconds=10))
    assert {on_screen.pk, ahead.pk} == set(
        Assignment.objects.filter(status="claimed").values_list("pk", flat=True)
    )
    seen = {on_screen.item_id, ahead.item_id}
    fresh_item = campaign.items.exclude(pk__in=seen).order_by("position").first()
    claimed_at = start + timedelta(seconds=61)  # after the claim on screen expired
    fresh = Assignment.objects.create(
        campaign=campaign,
        item=fresh_item,
        annotator=person,
        presentation=[0, 1],
        claimed_at=claimed_at,
        expires_at=claimed_at + timedelta(seconds=60),
    )

    assert release_expired_claims(now=start + timedelta(seconds=65)) == 2
    statuses = dict(Assignment.objects.values_list("pk", "status"))
    assert statuses == {on_screen.pk: "released", ahead.pk: "released", fresh.pk: "claimed"}
    answer(fresh, now=start + timedelta(seconds=70))
    assert Judgment.objects.get().assignment == fresh

    # The same when another annotator's request releases the campaign's expired claims.
    current = next_assignment(campaign, person, now=start + timedelta(seconds=70))
    behind = upcoming_assignment(campaign, person, now=start + timedelta(seconds=70))
    later = start + timedelta(seconds=131)
    fresh_again = Assignment.objects.create(
        campaign=campaign,
        item=campaign.items.exclude(pk__in={fresh_item.pk, current.item_id, behind.item_id}).get(),
        annotator=person,
        presentation=[1, 0],
        claimed_at=later,
        expires_at=later + timedelta(seconds=60),
    )
    next_assignment(campaign, other, now=later)
    current.refresh_from_db()
    behind.refresh_from_db()
    assert (current.status, behind.status) == ("released", "released")
    assert set(Assignment.objects.filter(annotator=person, status="claimed")) == {fresh_again}


def test_only_listed_annotators_of_an_active_campaign_get_work(campaign_factory, django_user_model):
    campaign = campaign_factory(n_prompts=1, n_annotators=1)
    stranger = django_user_model.objects.create(username="stranger")
    with pytest.raises(AssignmentError, match="not an annotator of this campaign") as refused:
        next_assignment(campaign, stranger)
    assert refused.value.status == 403
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    with pytest.raises(AssignmentError, match="campaign is paused") as paused:
        next_assignment(campaign, campaign.annotators.get())
    assert paused.value.status == 409
    assert Assignment.objects.count() == 0


def test_lookahead_holds_the_next_item_and_starts_its_clock_when_it_comes_on_screen(campaign_factory):
    campaign = campaign_factory(n_prompts=3, n_annotators=1)
    person = campaign.annotators.get()
    start = timezone.now()
    assert upcoming_assignment(campaign, person, now=start) is not None  # claims the current one too
    current = next_assignment(campaign, person, now=start)
    upcoming = upcoming_assignment(campaign, person, now=start + timedelta(seconds=1))
    assert upcoming.item_id != current.item_id
    assert upcoming_assignment(campaign, person, now=start + timedelta(seconds=2)) == upcoming
    assert Assignment.objects.filter(status="claimed").count() == 2

    answered_at = start + timedelta(seconds=40)
    answer(current, now=answered_at)
    promoted = next_assignment(campaign, person, now=answered_at)
    assert promoted == upcoming
    assert promoted.claimed_at == answered_at
    assert promoted.expires_at == answered_at + timedelta(seconds=campaign.claim_timeout_s)
    third = upcoming_assignment(campaign, person, now=answered_at)
    answer(promoted, now=answered_at + timedelta(seconds=5))
    assert next_assignment(campaign, person, now=answered_at + timedelta(seconds=5)) == third
    assert upcoming_assignment(campaign, person, now=answered_at + timedelta(seconds=5)) is None


def test_every_annotator_overlap_gives_every_listed_annotator_every_item(campaign_factory):
    campaign = campaign_factory(n_prompts=4, n_annotators=5, overlap="every_annotator")
    for person in campaign.annotators.all():
        assert sorted(a.item_id for a in work_through(campaign, person)) == sorted(
            campaign.items.values_list("pk", flat=True)
        )
    assert Judgment.objects.count() == 20


def test_repeats_come_back_mirrored_after_five_other_items(campaign_factory):
    campaign = campaign_factory(n_prompts=12, n_annotators=1, overlap="every_annotator", repeat_fraction=0.5)
    person = campaign.annotators.get()
    assert annotator_done_and_total(campaign, person) == (0, 18)  # 12 items and 6 planned repeats
    shown = work_through(campaign, person)
    assert annotator_done_and_total(campaign, person) == (18, 18)
    repeats = [a for a in shown if a.is_repeat]
    assert len(repeats) == 6 == len(repeats_planned(campaign, person.pk, 12))
    assert len({a.item_id for a in repeats}) == 6
    for repeat in repeats:
        original = next(a for a in shown if a.item_id == repeat.item_id and not a.is_repeat)
        assert repeat.presentation == list(reversed(original.presentation))
        between = shown.index(repeat) - shown.index(original) - 1
        first_showings_after = [a for a in shown[shown.index(repeat) :] if not a.is_repeat]
        assert between >= REPEAT_MIN_GAP or not first_showings_after  # only at the end may it come sooner
    judgments = Judgment.objects.filter(is_repeat=True)
    assert judgments.count() == 6
    for judgment in judgments:
        first = Judgment.objects.get(item=judgment.item, is_repeat=False)
        assert (judgment.left_model, judgment.right_model) == (first.right_model, first.left_model)


def test_repeat_plan_is_the_fraction_of_answers_within_one():
    campaign = Campaign(shuffle_seed="fixed", repeat_fraction=0.3)
    for answered in range(0, 40):
        planned = repeats_planned(campaign, 7, answered)
        assert abs(len(planned) - 0.3 * answered) <= 1
        assert all(0 <= index < answered for index in planned)
        assert planned == repeats_planned(campaign, 7, answered)
    assert repeats_planned(campaign, 7, 40) != repeats_planned(campaign, 8, 40)
    assert repeats_planned(Campaign(shuffle_seed="x", repeat_fraction=0.0), 7, 40) == []


def test_repeats_do_not_count_towards_the_required_judgments(campaign_factory):
    campaign = campaign_factory(n_prompts=6, n_annotators=2, judgments_per_item=2, repeat_fraction=0.5)
    first, second = campaign.annotators.order_by("pk")
    shown_first = work_through(campaign, first)
    assert sum(a.is_repeat for a in shown_first) == 3
    # Each item now has one answer and, for three of them, a repeat: the second annotator still gets all.
    shown_second = work_through(campaign, second)
    assert sorted({a.item_id for a in shown_second}) == sorted(campaign.items.values_list("pk", flat=True))
    for item in campaign.items.all():
        assert item.judgments.filter(is_repeat=False).count() == 2


def test_a_problem_report_counts_as_done_and_frees_the_item_for_another(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=2, judgments_per_item=1)
    a, b = campaign.annotators.order_by("pk")
    claim = next_assignment(campaign, a)
    assert next_assignment(campaign, b) is None
    report_problem(token=claim.token, annotator=a, kind="video_broken", note="black screen")
    assert next_assignment(campaign, a) is None
    assert annotator_done_and_total(campaign, a) == (1, 1)
    taken = next_assignment(campaign, b)
    assert taken.item_id == claim.item_id


def test_open_items_far_along_an_annotators_walk_are_found(campaign_factory, monkeypatch):
    import annotation.assignment

    monkeypatch.setattr(annotation.assignment, "FIRST_WINDOW", 2)  # capacity is checked in small windows
    campaign = campaign_factory(n_prompts=12, n_annotators=2, judgments_per_item=1)
    first, second = campaign.annotators.order_by("pk")
    taken = []
    for _ in range(10):
        assignment = next_assignment(campaign, first)
        answer(assignment)
        taken.append(assignment.item_id)
    left = set(campaign.items.values_list("pk", flat=True)) - set(taken)
    assert len(left) == 2
    assert {a.item_id for a in work_through(campaign, second)} == left
    assert next_assignment(campaign, first) is None


def test_an_excluded_annotator_gets_no_new_work_and_others_take_the_items(campaign_factory, admin_user):
    from annotation.services import exclude_annotator, include_annotator

    campaign = campaign_factory(n_prompts=2, n_annotators=2, judgments_per_item=1)
    excluded, other = campaign.annotators.order_by("username")
    exclude_annotator(campaign, excluded, reason="fails gold items", by=admin_user)
    with pytest.raises(AssignmentError, match="paused your work") as refused:
        next_assignment(campaign, excluded)
    assert refused.value.status == 403
    assert not Assignment.objects.filter(annotator=excluded).exists()
    assert next_assignment(campaign, other) is not None
    include_annotator(campaign, excluded)
    assert next_assignment(campaign, excluded) is not None


def test_release_expired_claims_command_reports_what_it_released(campaign_factory):
    import io

    from django.core.management import call_command

    campaign = campaign_factory(n_prompts=2, n_annotators=1, claim_timeout_s=60)
    upcoming_assignment(campaign, campaign.annotators.get(), now=timezone.now() - timedelta(seconds=120))
    out = io.StringIO()
    call_command("release_expired_claims", stdout=out)
    assert out.getvalue().strip() == "Released 2 expired claims."
    assert not Assignment.objects.filter(status="claimed").exists()


def test_each_item_counts_its_answered_first_showings_and_progress_follows_the_count(campaign_factory):
    """Item.answered, which every annotator's progress reads instead of grouping the campaign's answers,
    is the item's answered first showings: repeats and problem reports are not counted."""
    campaign = campaign_factory(n_prompts=6, n_annotators=2, judgments_per_item=1, repeat_fraction=0.5)
    first, second = campaign.annotators.order_by("pk")
    reported = next_assignment(campaign, first)
    report_problem(token=reported.token, annotator=first, kind="video_broken", note="")
    shown = work_through(campaign, first)
    assert any(a.is_repeat for a in shown)
    for item in campaign.items.all():
        first_answers = Assignment.objects.filter(item=item, is_repeat=False, status=Assignment.Status.DONE)
        assert item.answered == first_answers.count() == (0 if item.pk == reported.item_id else 1)
    # Every other item has its one answer: the reported one (and maybe its repeat) is all the second
    # annotator can still get.
    assert annotator_done_and_total(campaign, second) == (0, 1 + len(repeats_planned(campaign, second.pk, 1)))
    assert next_assignment(campaign, second).item_id == reported.item_id


def test_an_item_added_after_an_annotator_started_is_walked_and_counted(campaign_factory):
    """An annotator's walk is kept per process while the campaign's largest item id stays the same; an
    item added later (a larger id) joins the walk and the progress total."""
    campaign = campaign_factory(n_prompts=3, n_annotators=1, judgments_per_item=1)
    annotator = campaign.annotators.get()
    work_through(campaign, annotator)
    assert annotator_done_and_total(campaign, annotator) == (3, 3)
    model = campaign.items.order_by("pk").first()
    added = Item.objects.create(campaign=campaign, prompt=model.prompt, position=4, required_judgments=1)
    ItemVideo.objects.bulk_create(
        ItemVideo(item=added, video=row.video, slot=row.slot) for row in model.item_videos.all()
    )
    assert annotator_done_and_total(campaign, annotator) == (3, 4)
    assert next_assignment(campaign, annotator).item_id == added.pk
