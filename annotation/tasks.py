"""Celery jobs of the annotation app: thin shells around its services."""

from __future__ import annotations

from evalsite.jobs import JobError, JobRun, job_task

from .campaigns import CampaignError
from .models import Campaign
from .renditions import normalise_campaign_media, normalising_pending, prepare_campaign_media


@job_task(queue="cpu", name="annotation.tasks.normalise_media")
def normalise_media(run: JobRun) -> dict:
    """Params: campaign_id; resume (make the campaign active again when done: the starter paused it)."""
    campaign = Campaign.objects.filter(pk=run.params["campaign_id"]).first()
    if campaign is None:
        raise JobError("the campaign no longer exists")
    try:
        return normalise_campaign_media(
            campaign, progress=run.progress, resume=bool(run.params.get("resume"))
        )
    except CampaignError as exc:
        raise JobError(str(exc)) from exc


@job_task(queue="cpu", name="annotation.tasks.prepare_media")
def prepare_media(run: JobRun) -> dict:
    """Params: campaign_id. Gives the campaign its own renditions; work is handed out once it is done."""
    campaign = Campaign.objects.filter(pk=run.params["campaign_id"]).first()
    if campaign is None:
        raise JobError("the campaign no longer exists")
    if normalising_pending(campaign):
        # The normalise job makes every rendition (in the common format) and marks the media ready.
        return {"skipped": "the campaign's media is being normalised"}
    try:
        return prepare_campaign_media(campaign, progress=run.progress)
    except CampaignError as exc:
        raise JobError(str(exc)) from exc
