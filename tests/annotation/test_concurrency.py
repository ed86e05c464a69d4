"""Many annotators at once, each in two browser tabs: threads with their own database connections claim
and answer concurrently. Meant for PostgreSQL (row locks); on SQLite, IMMEDIATE transactions serialise
the writers and the same test runs too, more slowly."""

import hashlib
import threading
import time
from array import array
from collections import Counter

import pytest
from django.db import connection, transaction
from django.db.models import Count

from annotation.assignment import annotator_done_and_total, claim_work
from annotation.judging import AnswerError, report_problem, submit_answer
from annotation.models import Assignment, Judgment

ANNOTATORS = 12
THREADS_PER_ANNOTATOR = 2
REQUIRED = 3

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _fraction(token: str, salt: str) -> float:
    return int(hashlib.sha256(f"{salt}:{token}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def annotate_until_done(campaign, annotator, failures: list, start: threading.Barrier) -> None:
    """One tab: ask for work and answer it until nothing is left. Both tabs of an annotator see the same
    item; each answer is a function of the token, so the second tab's copy is an exact double submit."""
    try:
        start.wait()
        for _ in range(2000):
            current = claim_work(campaign, annotator).current
            if current is None:
                done, total = annotator_done_and_total(campaign, annotator)
                if done >= total:
                    return
                time.sleep(0.02)  # others hold the last items; one may report a problem and free it
                continue
            try:
                if _fraction(current.token, "problem") < 0.05:
                    report_problem(token=current.token, annotator=annotator, kind="video_broken")
                else:
                    choice = ("left", "tie", "right")[int(_fraction(current.token, "choice") * 2.999)]
                    submit_answer(token=current.token, annotator=annotator, payload={"choice": choice})
            except AnswerError as refused:
                # The other tab finished this item first and the claim ahead came on screen, or it
                # reported a problem: both are answers a real page gets and moves on from.
                if refused.status != 409:
                    raise
        failures.append(f"{annotator} never ran out of work")
    except Exception as exc:  # reported to the main thread, which fails the test
        failures.append(f"{annotator}: {exc!r}")
    finally:
        connection.close()


def test_concurrent_annotators_never_overfill_an_item_and_finish_every_item(campaign_factory):
    campaign = campaign_factory(
        n_prompts=20, n_annotators=ANNOTATORS, judgments_per_item=REQUIRED, repeat_fraction=0.2
    )
    people = list(campaign.annotators.all())
    failures: list[str] = []
    start = threading.Barrier(ANNOTATORS * THREADS_PER_ANNOTATOR)
    threads = [
        threading.Thread(target=annotate_until_done, args=(campaign, person, failures, start))
        for person in people
        for _ in range(THREADS_PER_ANNOTATOR)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert failures == []

    first_showings = Judgment.objects.filter(campaign=campaign, is_repeat=False)
    per_item = dict(first_showings.values_list("item").annotate(n=Count("pk")).values_list("item", "n"))
    assert set(per_item) == set(campaign.items.values_list("pk", flat=True))
    assert set(per_item.values()) == {REQUIRED}  # never more, and every item got all it needed
    for is_repeat in (False, True):
        per_annotator_item = Counter(
            Judgment.objects.filter(campaign=campaign, is_repeat=is_repeat).values_list("annotator", "item")
        )
        assert max(per_annotator_item.values(), default=1) == 1
    assert not Assignment.objects.filter(campaign=campaign, status="claimed").exists()
    answered = Assignment.objects.filter(campaign=campaign, status="done").count()
    assert answered == Judgment.objects.filter(campaign=campaign).count()
    assert Judgment.objects.filter(campaign=campaign, is_repeat=True).exists()


def _finishes_while_an_answer_is_open(claim, meanwhile) -> bool:
    """Answer `claim` in a transaction held open on another thread, run `meanwhile` on a third, and say
    whether it finished (within 10 s) before the answer's transaction ended."""
    holding, release = threading.Event(), threading.Event()

    def hold_an_answer_open():
        try:
            with transaction.atomic():
                submit_answer(token=claim.token, annotator=claim.annotator, payload={"choice": "left"})
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def run_meanwhile():
        try:
            meanwhile()
        finally:
            connection.close()

    blocker = threading.Thread(target=hold_an_answer_open)
    blocker.start()
    assert holding.wait(timeout=30)
    worker = threading.Thread(target=run_meanwhile)
    worker.start()
    worker.join(timeout=10)
    finished = not worker.is_alive()
    release.set()
    blocker.join(timeout=30)
    worker.join(timeout=30)
    return finished


def test_an_annotator_in_the_middle_of_a_write_does_not_hold_up_another(campaign_factory):
    """Locks are per annotator and per item: one annotator's open transaction (a slow request) must not
    lock the campaign's row and with it everybody else's work."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers by design; row locks are a PostgreSQL matter")
    campaign = campaign_factory(n_prompts=4, n_annotators=2)
    slow, quick = campaign.annotators.order_by("pk")
    slow_claim = claim_work(campaign, slow, lookahead=False).current

    def meanwhile():
        claim = claim_work(campaign, quick).current
        submit_answer(token=claim.token, annotator=quick, payload={"choice": "right"})

    # Holds slow's membership row, assignment and answered item's row, having written a judgment.
    finished_while_held = _finishes_while_an_answer_is_open(slow_claim, meanwhile)
    assert finished_while_held, "the second annotator waited for the first one's transaction"
    assert Judgment.objects.filter(campaign=campaign).count() == 2


def test_a_claim_passes_over_an_item_someone_is_answering_while_another_is_free(
    campaign_factory, monkeypatch
):
    """An answer counts itself on its item's row (Item.answered), so its transaction holds that item's
    lock: another annotator whose walk comes to that item first takes the next free one instead of
    waiting for the answer to finish, and waits for it only when nothing else is free."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers by design; row locks are a PostgreSQL matter")
    import annotation.assignment

    campaign = campaign_factory(n_prompts=2, n_annotators=2, judgments_per_item=2)
    slow, quick = campaign.annotators.order_by("pk")
    slow_claim = claim_work(campaign, slow, lookahead=False).current
    other = campaign.items.exclude(pk=slow_claim.item_id).get()
    walk = array("q", [slow_claim.item_id, other.pk])  # the item being answered comes first for quick
    monkeypatch.setattr(annotation.assignment, "annotator_order", lambda campaign, annotator_id: walk)
    claimed: list = []
    finished_while_held = _finishes_while_an_answer_is_open(
        slow_claim, lambda: claimed.append(claim_work(campaign, quick, lookahead=False).current.item_id)
    )
    assert finished_while_held, "the claim waited for an item another annotator was answering"
    assert claimed == [other.pk]
    # With the other item taken, the answered item is the only one with room: the next claim gets it.
    assert claim_work(campaign, quick).upcoming.item_id == slow_claim.item_id
