"""Celery jobs of the annotation app: thin shells around its services."""

from __future__ import annotations

from evalsite.jobs import JobError, JobRun, job_task

from .campaigns import CampaignError
from .models import Campaign
from .renditions import normalise_campaign_media


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
