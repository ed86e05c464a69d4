"""Writes on an existing campaign other than creating it (`campaigns.create_campaign`): its status, its
annotators, gold answers and excluded annotators. Each function validates first, raises `CampaignError`
with a message for the manager, and changes nothing when it refuses."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction

from .campaigns import CampaignError
from .models import AnnotatorExclusion, Assignment, Campaign, Item, Judgment

ALLOWED_STATUS_CHANGES = {
    Campaign.Status.ACTIVE: {Campaign.Status.PAUSED, Campaign.Status.CLOSED},
    Campaign.Status.PAUSED: {Campaign.Status.ACTIVE, Campaign.Status.CLOSED},
    Campaign.Status.CLOSED: set(),
}


def set_campaign_status(campaign: Campaign, status: str) -> Campaign:
    """Pause (no new work is handed out), resume, or close (final: a closed campaign is not reopened)."""
    if status not in Campaign.Status.values:
        raise CampaignError(f"unknown status {status!r}; expected one of {', '.join(Campaign.Status.values)}")
    with transaction.atomic():
        locked = Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
        if locked.status == status:
            raise CampaignError(f"the campaign is already {status}")
        if status not in ALLOWED_STATUS_CHANGES[Campaign.Status(locked.status)]:
            raise CampaignError(f"a {locked.status} campaign cannot be made {status}")
        locked.status = status
        locked.save(update_fields=["status"])
    campaign.status = status
    return campaign


def add_annotators(campaign: Campaign, users: Iterable) -> list:
    """Add annotators to a campaign that is not closed; returns the users that were not in it already.
    With 'every annotator does every item' overlap, every item then requires one judgment per annotator."""
    users = list(users)
    user_model = get_user_model()
    for user in users:
        if not isinstance(user, user_model) or not user.is_active:
            raise CampaignError(f"{user} is not an active user")
    with transaction.atomic():
        locked = Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
        if locked.status == Campaign.Status.CLOSED:
            raise CampaignError("the campaign is closed")
        present = set(locked.annotators.values_list("pk", flat=True))
        new = [user for user in dict.fromkeys(users) if user.pk not in present]
        if not new:
            raise CampaignError("no new annotator: everyone chosen is already in the campaign")
        locked.annotators.add(*new)
        if locked.overlap == Campaign.Overlap.EVERY_ANNOTATOR:
            everyone = len(present) + len(new)
            locked.judgments_per_item = everyone
            locked.save(update_fields=["judgments_per_item"])
            Item.objects.filter(campaign=locked).update(required_judgments=everyone)
            campaign.judgments_per_item = everyone
    return new


def set_gold_answer(item: Item, answer: str) -> Item:
    """Mark a paired item as gold with its known answer in canonical terms (slot0 / tie / slot1), or
    clear the mark with an empty answer."""
    if answer and answer not in Item.GoldAnswer.values:
        raise CampaignError(
            f"unknown gold answer {answer!r}; expected one of {', '.join(Item.GoldAnswer.values)} or empty"
        )
    if not item.campaign.is_paired:
        raise CampaignError("gold answers are for pairwise and A/B items; this campaign scores videos")
    if item.item_videos.count() != 2:
        raise CampaignError("a gold answer needs an item with two videos")
    Item.objects.filter(pk=item.pk).update(gold_answer=answer)
    item.gold_answer = answer
    return item


def _has_worked_on(campaign: Campaign, annotator) -> bool:
    return (
        campaign.annotators.filter(pk=annotator.pk).exists()
        or Judgment.objects.filter(campaign=campaign, annotator=annotator).exists()
        or Assignment.objects.filter(campaign=campaign, annotator=annotator).exists()
    )


def exclude_annotator(campaign: Campaign, annotator, *, reason: str = "", by=None) -> AnnotatorExclusion:
    """Leave an annotator's judgments in the campaign out of results. Their rows stay in the database."""
    reason = reason.strip()
    if len(reason) > AnnotatorExclusion._meta.get_field("reason").max_length:
        raise CampaignError("the reason is too long (500 characters at most)")
    if not _has_worked_on(campaign, annotator):
        raise CampaignError(f"{annotator} is not an annotator of this campaign and has no judgments in it")
    with transaction.atomic():
        Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
        if AnnotatorExclusion.objects.filter(campaign=campaign, annotator=annotator).exists():
            raise CampaignError(f"{annotator} is already excluded from this campaign")
        return AnnotatorExclusion.objects.create(
            campaign=campaign, annotator=annotator, reason=reason, created_by=by
        )


def include_annotator(campaign: Campaign, annotator) -> None:
    """Undo an exclusion: the annotator's judgments count in results again."""
    deleted, _ = AnnotatorExclusion.objects.filter(campaign=campaign, annotator=annotator).delete()
    if not deleted:
        raise CampaignError(f"{annotator} is not excluded from this campaign")
