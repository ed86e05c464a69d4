"""Handing out work: which item an annotator sees next, and in which left-to-right order.

- Each annotator walks the campaign's items in an order of their own, a permutation seeded by a hash of
  the campaign's `shuffle_seed` and the annotator (so it survives restarts and differs between
  annotators).
- An item is given to at most `required_judgments` annotators at once (live claims and answers count;
  repeats, released claims and problem reports do not). With `overlap=every_annotator` every listed
  annotator does every item once instead.
- The display order (`Assignment.presentation`, canonical slots left to right) is random per annotator
  and item, balanced so that canonical slot 0 (model A of a pairwise or A/B campaign) is shown first in
  half of each annotator's items, within one.
- An annotator holds at most two claims: the item on screen and the next one, claimed ahead so that the
  page can preload its videos. The one on screen is the older; `claimed_at` of the next one is reset when
  it comes on screen (see `promote_upcoming`), so it always means "shown to the annotator at".
- A claim not answered within `claim_timeout_s` is released together with the annotator's claim ahead,
  lazily whenever anyone asks for work in the campaign, or by `release_expired_claims` from a cron job.
- A share `repeat_fraction` of the items an annotator answered comes back to them once more, mirrored,
  after at least `REPEAT_MIN_GAP` other items (or at the end, when fewer remain), to measure how
  consistent they are. Which answers come back is fixed by the same kind of hash, spread evenly: of every
  run of about 1/fraction answers, one comes back.

Writers take row locks in one order — the annotator's campaign membership, then assignments, then
items — and never wait for a lock while holding an item's: a full item's lock is given back by
rolling back its savepoint before the next is tried, a claim skips items locked by others while another
candidate is free (and the claim ahead always skips them), releasing others' expired claims skips rows
that are locked, and an answer counts itself on its item's row (Item.answered) last. So concurrent
requests never deadlock, and one slow request holds up only those who want the very item it holds.
On SQLite, transactions are IMMEDIATE (see settings), which serialises writers anyway.

The order of items is computed once per process and annotator (`annotator_order`); capacity is then
checked only for the first few open items of that order, so claiming costs about the same in a
campaign of 100 items as in one of 10,000."""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from math import ceil, floor

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from .models import AnnotatorExclusion, Assignment, Campaign, Item, ItemVideo

REPEAT_MIN_GAP = 5  # other items shown between an answer and its repeat
CANDIDATES_PER_CLAIM = 20  # open items tried, in the annotator's order, before giving up for now
FIRST_WINDOW = 32  # items of the annotator's walk checked for capacity at once (then 4x, 16x, ...)
MAX_LIVE_CLAIMS = 2  # the item on screen and the one preloaded behind it

LIVE = Assignment.Status.CLAIMED
FINISHED = (Assignment.Status.DONE, Assignment.Status.PROBLEM)
HOLDS_CAPACITY = (Assignment.Status.CLAIMED, Assignment.Status.DONE)


class AssignmentError(Exception):
    """Work cannot be handed out; `message` is for the annotator, `status` the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()[:8], "big")


@functools.lru_cache(maxsize=64)
def _item_ids(campaign_id: int, shuffle_seed: str, last_item_id: int) -> np.ndarray:
    """The campaign's item ids in ascending order, read once per process for all its annotators
    (`last_item_id`, the largest, changes when items are added; `shuffle_seed`, drawn per campaign,
    keeps a campaign whose id a rolled-back one had used from being served that one's ids)."""
    ids = Item.objects.filter(campaign_id=campaign_id).order_by("pk").values_list("pk", flat=True)
    return np.fromiter(ids, dtype=np.int64)


@functools.lru_cache(maxsize=256)
def _walk(campaign_id: int, shuffle_seed: str, annotator_id: int, last_item_id: int) -> array:
    """The annotator's order of the campaign's item ids: a permutation drawn by NumPy's generator from
    a seed hashed from the campaign's `shuffle_seed` and the annotator, so the same on every process and
    after restarts; computed once per process and annotator."""
    rng = np.random.default_rng(_hash(shuffle_seed, "order", annotator_id))
    return array("q", rng.permutation(_item_ids(campaign_id, shuffle_seed, last_item_id)).tobytes())


def annotator_order(campaign: Campaign, annotator_id: int) -> array:
    """Every item id of the campaign in the order this annotator walks through them.

    A campaign's items are made together, in the transaction that makes it (`create_campaign`), and
    never one by one afterwards; an item added later gets a larger id. So the largest id, one step down
    an index, tells whether the walk computed before is still the campaign's: counting the items
    instead would read all of them on every request."""
    last = campaign.items.order_by("-pk").values_list("pk", flat=True).first()
    return _walk(campaign.pk, campaign.shuffle_seed, annotator_id, last or 0)


def check_can_work(
    campaign: Campaign, annotator: AbstractBaseUser, *, lock: bool = False, media: bool = False
) -> None:
    """Raise AssignmentError unless the campaign is active and the annotator is one of its annotators
    (and, with `media`, the campaign's own renditions are made: until then its videos have nothing to be
    shown as). With `lock`, hold the annotator's membership row until the transaction ends: every write
    to their work in this campaign takes it first, so one annotator's requests (two tabs, a double click)
    run one after the other. One query."""
    rows = Campaign.annotators.through.objects.filter(campaign_id=campaign.pk, user_id=annotator.pk)
    if lock:
        rows = rows.select_for_update(no_key=True, of=("self",))
    excluded = AnnotatorExclusion.objects.filter(campaign_id=campaign.pk, annotator_id=annotator.pk)
    # The status is read afresh: a manager may have paused the campaign since the caller loaded it.
    # The row's own id is selected too, or PostgreSQL's FOR ... OF would have no table to name and
    # lock the campaign's row as well, making every annotator wait for every other.
    row = (
        rows.annotate(excluded=Exists(excluded))
        .values_list("pk", "campaign__status", "excluded", "campaign__media_ready")
        .first()
    )
    if row is None:
        raise AssignmentError("you are not an annotator of this campaign", status=403)
    _, status, is_excluded, media_ready = row
    if status != Campaign.Status.ACTIVE:
        raise AssignmentError(f"this campaign is {status}; no work is handed out", status=409)
    if is_excluded:
        # Their judgments are left out of results, so new ones would only take other annotators' places.
        raise AssignmentError("a manager has paused your work in this task", status=403)
    if media and not media_ready:
        raise AssignmentError("this task's videos are still being prepared; try again in a few minutes")


RELEASE_BATCH = 500  # ids per UPDATE, so that a backlog after a long outage stays within SQL limits


def _release_expired(claims: QuerySet[Assignment], now: datetime) -> int:
    """Release expired claims, and with each the same annotator's claim ahead in that campaign (which
    was never shown, and whose `claimed_at` would otherwise not say when it came on screen).

    A claim ahead was made while the claim on screen was live, so before that one expired; a claim made
    after it expired was made after it was released. Hence "claimed before an expired live claim of the
    same annotator expires", checked in the same statement as the expiry, releases exactly the claims
    ahead: an annotator's fresh claims, made by a request that released the expired ones just before
    this statement, stay theirs."""
    expired_on_screen = Assignment.objects.filter(
        campaign_id=OuterRef("campaign_id"),
        annotator_id=OuterRef("annotator_id"),
        status=LIVE,
        expires_at__lte=now,
        expires_at__gt=OuterRef("claimed_at"),
    )
    # The usual answer is "none": asked first, of the index of live claims by expiry, it costs one step
    # down that index, where the statement below would read every claim of the campaign.
    expired = claims.filter(status=LIVE, expires_at__lte=now).order_by()
    annotators = set(expired.values_list("annotator_id", flat=True))
    if not annotators:
        return 0
    due = claims.filter(
        Q(expires_at__lte=now) | Exists(expired_on_screen), status=LIVE, annotator_id__in=annotators
    )
    # skip_locked: a claim that another transaction is answering right now is not ours to release.
    ids = list(due.select_for_update(skip_locked=True, of=("self",)).order_by().values_list("pk", flat=True))
    released = 0
    for start in range(0, len(ids), RELEASE_BATCH):
        released += Assignment.objects.filter(pk__in=ids[start : start + RELEASE_BATCH], status=LIVE).update(
            status=Assignment.Status.RELEASED, finished_at=now
        )
    return released


def release_expired_claims(now: datetime | None = None) -> int:
    """Release every abandoned claim in every campaign; returns how many. For a cron job or management
    command: `next_assignment` releases a campaign's expired claims by itself."""
    now = now or timezone.now()
    with transaction.atomic():
        return _release_expired(Assignment.objects.all(), now)


def live_claims(campaign: Campaign, annotator: AbstractBaseUser) -> list[Assignment]:
    """The annotator's unanswered claims, the one on screen first (with their items and prompts; their
    campaign is `campaign`, not read again)."""
    claims = list(
        Assignment.objects.filter(campaign=campaign, annotator=annotator, status=LIVE)
        .select_related("item__prompt")
        .order_by("claimed_at", "pk")
    )
    for claim in claims:
        claim.campaign = campaign
    return claims


def on_screen_id() -> Subquery:
    """The id of the claim on screen (the first of `live_claims`) of the annotator of the outer
    assignment, in its campaign: to read beside that assignment (see judging._lock)."""
    return Subquery(
        Assignment.objects.filter(
            campaign_id=OuterRef("campaign_id"), annotator_id=OuterRef("annotator_id"), status=LIVE
        )
        .order_by("claimed_at", "pk")
        .values("pk")[:1]
    )


def promote_upcoming(campaign: Campaign, annotator: AbstractBaseUser, now: datetime) -> None:
    """The claim ahead comes on screen: its clock starts now. Call inside the transaction that finishes
    the annotator's current item, holding their membership lock."""
    timeout = timedelta(seconds=campaign.claim_timeout_s)
    Assignment.objects.filter(campaign=campaign, annotator=annotator, status=LIVE).update(
        claimed_at=now, expires_at=now + timeout
    )


# --- repeats ---------------------------------------------------------------------------------------


def _repeat_share(campaign: Campaign) -> Fraction:
    return Fraction(campaign.repeat_fraction).limit_denominator(1000)


def _repeat_chosen_index(campaign: Campaign, annotator_id: int, group: int, share: Fraction) -> int:
    # Answers n with floor(n * share) == group form one run; one answer of each run comes back.
    start = ceil(group / share)
    end = ceil((group + 1) / share)
    return start + _hash(campaign.shuffle_seed, "repeat", annotator_id, group) % (end - start)


def repeats_planned(campaign: Campaign, annotator_id: int, answered: int) -> list[int]:
    """Indexes (0-based, in answer order) among the annotator's first `answered` answers that come back
    as repeats: `floor(answered * repeat_fraction)` of them, or one more."""
    share = _repeat_share(campaign)
    if share <= 0 or answered <= 0:
        return []
    chosen = []
    for group in range(floor((answered - 1) * share) + 1):
        index = _repeat_chosen_index(campaign, annotator_id, group, share)
        if index < answered:
            chosen.append(index)
    return chosen


def _answered_first_showings(campaign: Campaign, annotator: AbstractBaseUser) -> list[Assignment]:
    return list(
        Assignment.objects.filter(
            campaign=campaign, annotator=annotator, is_repeat=False, status=Assignment.Status.DONE
        ).order_by("finished_at", "pk")
    )


def _pending_repeats(campaign: Campaign, annotator: AbstractBaseUser) -> list[Assignment]:
    """First showings whose repeat is planned and not yet handed out, oldest first."""
    if _repeat_share(campaign) <= 0:
        return []
    answered = _answered_first_showings(campaign, annotator)
    planned = [answered[i] for i in repeats_planned(campaign, annotator.pk, len(answered))]
    if not planned:
        return []
    repeated = set(
        Assignment.objects.filter(campaign=campaign, annotator=annotator, is_repeat=True)
        .exclude(status=Assignment.Status.RELEASED)
        .values_list("item_id", flat=True)
    )
    return [a for a in planned if a.item_id not in repeated]


def _claim_repeat(
    campaign: Campaign,
    annotator: AbstractBaseUser,
    pending: list[Assignment],
    now: datetime,
    *,
    any_gap: bool,
) -> Assignment | None:
    if not pending:
        return None
    shown = Assignment.objects.filter(campaign=campaign, annotator=annotator).exclude(
        status=Assignment.Status.RELEASED
    )
    for original in pending:
        if any_gap or shown.filter(pk__gt=original.pk).count() >= REPEAT_MIN_GAP:
            mirrored = list(reversed(original.presentation))
            try:
                with transaction.atomic():
                    return _create(campaign, annotator, original.item, mirrored, now, is_repeat=True)
            except IntegrityError:
                return None
    return None


# --- first showings ----------------------------------------------------------------------------------


def _seen_item_ids(campaign: Campaign, annotator: AbstractBaseUser) -> QuerySet:
    """The items the annotator has been shown, is being shown or answered (first showings)."""
    return (
        Assignment.objects.filter(campaign=campaign, annotator=annotator, is_repeat=False)
        .exclude(status=Assignment.Status.RELEASED)
        .order_by()  # no ordering: the model's would join the campaign table
        .values("item_id")
    )


def _first_showings(campaign: Campaign, annotator: AbstractBaseUser) -> list[tuple[int, list[int]]]:
    """(item id, presentation) of the annotator's first showings that were not released."""
    return list(_seen_item_ids(campaign, annotator).values_list("item_id", "presentation"))


def _open_candidates(
    campaign: Campaign, annotator: AbstractBaseUser, seen: set[int]
) -> Iterator[tuple[int, int]]:
    """(item id, required judgments) of the items the annotator may claim, in their order: not shown to
    them yet and, unless every annotator does every item, held by fewer live claims and answers than
    they require. Capacity is checked on growing windows of the walk, so the usual case (the next few
    items are open) costs one small query whatever the campaign's size."""
    unseen = (item_id for item_id in annotator_order(campaign, annotator.pk) if item_id not in seen)
    every = campaign.overlap == Campaign.Overlap.EVERY_ANNOTATOR
    size = FIRST_WINDOW
    while window := list(itertools.islice(unseen, size)):
        rows = Item.objects.filter(pk__in=window).order_by()
        if not every:
            held = Count(
                "assignments", filter=Q(assignments__is_repeat=False, assignments__status__in=HOLDS_CAPACITY)
            )
            rows = rows.alias(held=held).filter(held__lt=F("required_judgments"))
        required = dict(rows.values_list("pk", "required_judgments"))
        for item_id in window:
            if item_id in required:
                yield item_id, required[item_id]
        size *= 4


def balanced_presentation(
    campaign: Campaign,
    annotator: AbstractBaseUser,
    item: Item,
    slots: int,
    shown: list[list[int]],
) -> list[int]:
    """Canonical slots in display order (`shown`: the presentations of the annotator's first showings,
    see `_first_showings`). Slot 0 goes where this annotator has seen it least often so far
    (for two videos: left when it was more often right, and the other way round), at random among the
    least-used places; the other slots are shuffled. Deterministic per campaign, annotator and item."""
    rng = random.Random(_hash(campaign.shuffle_seed, "present", annotator.pk, item.pk))
    if slots <= 1:
        return list(range(slots))
    seen = Counter(
        presentation.index(0) for presentation in shown if len(presentation) == slots and 0 in presentation
    )
    fewest = min(seen[position] for position in range(slots))
    where = rng.choice([position for position in range(slots) if seen[position] == fewest])
    others = list(range(1, slots))
    rng.shuffle(others)
    others.insert(where, 0)
    return others


def _create(
    campaign: Campaign,
    annotator: AbstractBaseUser,
    item: Item,
    presentation: list[int],
    now: datetime,
    *,
    is_repeat: bool,
) -> Assignment:
    """Call inside a savepoint: the unique constraint may refuse the row."""
    return Assignment.objects.create(
        campaign=campaign,
        item=item,
        annotator=annotator,
        presentation=presentation,
        is_repeat=is_repeat,
        claimed_at=now,
        expires_at=now + timedelta(seconds=campaign.claim_timeout_s),
    )


# How many videos an item shows, read with the item (a scalar subquery: allowed beside FOR UPDATE).
_SLOTS = Subquery(
    ItemVideo.objects.filter(item_id=OuterRef("pk"))
    .order_by()
    .values("item_id")
    .annotate(n=Count("pk"))
    .values("n")
)


class _ItemFull(Exception):
    """Raised inside a savepoint to roll it back, which releases the lock on a full item."""


def _claim_if_open(
    campaign: Campaign,
    annotator: AbstractBaseUser,
    item_id: int,
    required: int,
    now: datetime,
    *,
    wait: bool,
    shown: list[list[int]],
    busy: list[tuple[int, int]] | None = None,
) -> Assignment | None:
    """Claim the item if it has room. With `wait`, wait for another transaction that holds the item's
    lock (a claim or an answer of it), then count again; without, skip the item and, if `busy` is given,
    add (item_id, required) to it."""
    every = campaign.overlap == Campaign.Overlap.EVERY_ANNOTATOR
    try:
        with transaction.atomic():
            items = Item.objects.annotate(slots=_SLOTS)
            if every:  # no capacity to guard; the unique constraint keeps it to one per annotator
                item = items.get(pk=item_id)
            else:
                locked = items.select_for_update(no_key=True, skip_locked=not wait, of=("self",))
                item = locked.filter(pk=item_id).order_by().first()  # no ordering join: lock the item only
                if item is None:
                    if busy is not None:
                        busy.append((item_id, required))
                    raise _ItemFull
                held = Assignment.objects.filter(item_id=item_id, is_repeat=False, status__in=HOLDS_CAPACITY)
                if held.count() >= required:
                    raise _ItemFull
            presentation = balanced_presentation(campaign, annotator, item, item.slots, shown)
            return _create(campaign, annotator, item, presentation, now, is_repeat=False)
    except (_ItemFull, IntegrityError):  # full, or the constraint saw a claim this query did not
        return None


class _Walk:
    """The annotator's first showings and the open items ahead of them in their walk, read once per
    `claim_work` transaction: its second claim goes on where the first stopped instead of reading both
    again (each claim still checks its item's room under the item's lock)."""

    def __init__(self, campaign: Campaign, annotator: AbstractBaseUser):
        self.campaign, self.annotator = campaign, annotator
        self.shown: list[list[int]] = []
        self.candidates: Iterator[tuple[int, int]] | None = None

    def read(self) -> Iterator[tuple[int, int]]:
        """The open candidates (reading the first showings on the first call)."""
        if self.candidates is None:
            first_showings = _first_showings(self.campaign, self.annotator)
            self.shown = [presentation for _, presentation in first_showings]
            seen = {item_id for item_id, _ in first_showings}
            self.candidates = _open_candidates(self.campaign, self.annotator, seen)
        return self.candidates


def _claim_first_showing(
    campaign: Campaign, annotator: AbstractBaseUser, now: datetime, walk: _Walk, *, wait: bool
) -> Assignment | None:
    # A candidate may fill up between the capacity query and its lock (another annotator claimed it):
    # try the next few, then give up for now; the page asks again.
    # Items another transaction is claiming or answering right now are skipped while others are free,
    # so that one slow request holds up nobody else's work.
    busy: list[tuple[int, int]] = []
    claim = None
    for item_id, required in itertools.islice(walk.read(), CANDIDATES_PER_CLAIM):
        claim = _claim_if_open(
            campaign, annotator, item_id, required, now, wait=False, shown=walk.shown, busy=busy
        )
        if claim is not None:
            break
    # Only busy items had room: wait for the first to be written, then count again — unless this
    # transaction already holds an item it claimed (waiting then could deadlock).
    if claim is None and wait and busy:
        item_id, required = busy[0]
        claim = _claim_if_open(campaign, annotator, item_id, required, now, wait=True, shown=walk.shown)
    if claim is not None:
        walk.shown.append(claim.presentation)
    return claim


def _claim_one(
    campaign: Campaign, annotator: AbstractBaseUser, now: datetime, walk: _Walk, *, wait: bool
) -> Assignment | None:
    pending = _pending_repeats(campaign, annotator)
    return (
        _claim_repeat(campaign, annotator, pending, now, any_gap=False)
        or _claim_first_showing(campaign, annotator, now, walk, wait=wait)
        or _claim_repeat(campaign, annotator, pending, now, any_gap=True)
    )


# --- the public entry points -------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    current: Assignment | None
    upcoming: Assignment | None


def claim_work(
    campaign: Campaign, annotator: AbstractBaseUser, *, now: datetime | None = None, lookahead: bool = True
) -> Work:
    """The annotator's item on screen and (with `lookahead`) the one behind it, claiming what is missing,
    in one transaction. Raises AssignmentError when the annotator may not work in this campaign."""
    now = now or timezone.now()
    wanted = MAX_LIVE_CLAIMS if lookahead else 1
    with transaction.atomic():
        check_can_work(campaign, annotator, lock=True, media=True)
        _release_expired(Assignment.objects.filter(campaign=campaign), now)
        claims = live_claims(campaign, annotator)
        holds_an_item = False
        walk = _Walk(campaign, annotator)
        while len(claims) < wanted:
            # Only the first claim of this transaction may wait for an item's lock: once it holds an
            # item, waiting for another could deadlock with an annotator doing the same the other way.
            claim = _claim_one(campaign, annotator, now, walk, wait=not holds_an_item)
            if claim is None:
                break
            claims.append(claim)
            holds_an_item = True
    return Work(current=claims[0] if claims else None, upcoming=claims[1] if len(claims) > 1 else None)


def next_assignment(
    campaign: Campaign, annotator: AbstractBaseUser, *, now: datetime | None = None
) -> Assignment | None:
    """The annotator's item on screen: their live claim if they have one (so logging out and in again
    resumes it), else a newly claimed item; None when nothing is left for them right now."""
    return claim_work(campaign, annotator, now=now, lookahead=False).current


def upcoming_assignment(
    campaign: Campaign, annotator: AbstractBaseUser, *, now: datetime | None = None
) -> Assignment | None:
    """The item claimed behind the one on screen (claiming it if needed), for the page to preload; None
    when there is no item on screen or nothing more to claim."""
    return claim_work(campaign, annotator, now=now, lookahead=True).upcoming


def annotator_done_and_total(campaign: Campaign, annotator: AbstractBaseUser) -> tuple[int, int]:
    """(done, total): items finished (answered or reported, repeats included) and that plus what the
    annotator may still get — their live claims, items not yet full, and the repeats that will come
    back. Items other annotators are answering count as possible until they are answered."""
    statuses = Counter(
        Assignment.objects.filter(campaign=campaign, annotator=annotator)
        .exclude(status=Assignment.Status.RELEASED)
        .order_by()
        .values_list("status", "is_repeat")
    )
    done = sum(n for (status, _), n in statuses.items() if status in FINISHED)
    live = sum(n for (status, _), n in statuses.items() if status == LIVE)
    seen = sum(n for (status, repeat), n in statuses.items() if not repeat)
    items = len(annotator_order(campaign, annotator.pk))  # the campaign's items, without counting them
    if campaign.overlap == Campaign.Overlap.EVERY_ANNOTATOR:
        available = items - seen
    else:
        # Each item counts its answers as they are given (Item.answered), and an index holds the items
        # answered enough: grouping the campaign's answers here would cost what the answers so far do,
        # on every request.
        answered_enough = Item.objects.filter(campaign=campaign, answered__gte=F("required_judgments"))
        available = items - seen - answered_enough.exclude(pk__in=_seen_item_ids(campaign, annotator)).count()
    answered_first = statuses.get((Assignment.Status.DONE, False), 0)
    live_first = statuses.get((LIVE, False), 0)
    repeats_shown = sum(n for (status, repeat), n in statuses.items() if repeat)
    repeats_to_come = max(
        0,
        len(repeats_planned(campaign, annotator.pk, answered_first + live_first + available)) - repeats_shown,
    )
    return done, done + live + available + repeats_to_come
