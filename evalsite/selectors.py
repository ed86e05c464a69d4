from django.db.models import QuerySet

from .models import Job


def jobs_queryset(
    *, status: str | None = None, kind: str | None = None, active: bool = False
) -> QuerySet[Job]:
    jobs = Job.objects.select_related("created_by").order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    if kind:
        jobs = jobs.filter(kind=kind)
    if active:
        jobs = jobs.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    return jobs
