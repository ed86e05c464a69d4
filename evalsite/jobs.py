"""The job machinery every long task shares: start, run, progress, cancel, retry.

A job handler is a plain function `handler(run: JobRun) -> dict | None` decorated with
`@job_task(queue=..., name=...)`, in its app's `tasks.py`. Services start a job by that name
(`start_job("app.tasks.handler", ...)`) and never import the tasks module, which imports the services.
A handler must be idempotent: a worker killed mid-task gets the same message again (tasks are acknowledged late
and rejected when the worker is lost), and the handler then skips what it already finished. While a
handler runs, a thread records a heartbeat; a message delivered again while the first worker still beats
waits, and one whose worker went silent (stalled) takes the job over. Handlers call
`run.progress(done, total)` often; it raises `JobCancelled` when a manager cancelled the job, so
cancelling takes effect at the next progress report.

A worker that dies mid-job on the filesystem broker (`make serve`) leaves no message to deliver again, so
every worker also sweeps for stalled jobs (`requeue_stalled_jobs`, every `EVALSITE_JOB_SWEEP_SECONDS`) and
queues each one again, once per stall; after `EVALSITE_JOB_MAX_ATTEMPTS` starts it is failed instead, for a
manager to look at. On Redis the message comes back as well: the second delivery finds the job running
(or finished) and waits (or does nothing), so a job never runs twice at once.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import current_app, shared_task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import Job

log = logging.getLogger(__name__)

QUEUES = ("cpu", "gpu")


class JobCancelled(Exception):
    """Raised inside a handler when its job was cancelled."""


class JobError(Exception):
    """A failure whose message is meant for the person who started the job (no traceback shown)."""


class JobStateError(Exception):
    """An action that the job's current status does not allow (retrying a running job, say)."""


class JobBusyElsewhere(Exception):
    """The job is running in another live worker: this delivery of its message must wait."""


class JobRun:
    """What a handler sees of its job: its parameters, progress reporting and cancellation."""

    def __init__(self, job: Job):
        self.job = job

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        fields: dict[str, Any] = {"progress_done": done, "heartbeat_at": timezone.now()}
        if total is not None:
            fields["progress_total"] = total
        if message is not None:
            fields["message"] = message[:500]
        Job.objects.filter(pk=self.job.pk).update(**fields)
        for name, value in fields.items():
            setattr(self.job, name, value)
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise JobCancelled()

    def save_result(self, **result: Any) -> None:
        """Record partial results as they come, so a failed or cancelled job still shows them."""
        self.job.result = {**self.job.result, **result}
        Job.objects.filter(pk=self.job.pk).update(result=self.job.result, heartbeat_at=timezone.now())


Handler = Callable[[JobRun], "dict[str, Any] | None"]


def job_task(*, queue: str = "cpu", name: str | None = None) -> Callable[[Handler], Any]:
    """Turn a handler into a Celery task that runs one Job row through its life cycle."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; use one of {QUEUES}")

    def decorate(handler: Handler) -> Any:
        task_name = name or f"{handler.__module__}.{handler.__name__}"

        @shared_task(
            bind=True, name=task_name, acks_late=True, reject_on_worker_lost=True, ignore_result=True
        )
        def run_job_task(self, job_id: str) -> None:
            try:
                execute(job_id, handler)
            except JobBusyElsewhere:
                # A message delivered again while its first worker still reports: look again once that
                # worker would count as stalled, and take over only then.
                raise self.retry(countdown=settings.EVALSITE_JOB_STALL_SECONDS, max_retries=None) from None

        run_job_task.job_queue = queue
        run_job_task.handler = handler
        return run_job_task

    return decorate


def job_task_named(name: str) -> Any:
    """The job task registered under `name`. Task modules are imported on first need (the web process
    does not import them at start), so a service starts a job by name without importing its tasks."""
    task = current_app.tasks.get(name)
    if task is None:
        current_app.loader.import_default_modules()
        task = current_app.tasks.get(name)
    if task is None or not hasattr(task, "job_queue"):
        raise LookupError(f"no job task is named {name!r}")
    return task


def start_job(task_name: str, *, title: str, params: dict[str, Any] | None = None, created_by=None) -> Job:
    """Create the job row for the task named `task_name` and queue it once the surrounding transaction
    commits. Raises LookupError, creating nothing, when no job task has that name."""
    task = job_task_named(task_name)
    job = Job.objects.create(
        kind=task.name,
        queue=task.job_queue,
        title=title[:300],
        params=params or {},
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    transaction.on_commit(lambda: enqueue(job))
    return job


def enqueue(job: Job) -> None:
    task = current_app.tasks.get(job.kind)
    if task is None:  # a task this process does not import (a GPU-only app, say): send it by name
        current_app.send_task(job.kind, args=[str(job.pk)], queue=job.queue)
    else:
        task.apply_async(args=[str(job.pk)], queue=job.queue)


def execute(job_id: str, handler: Handler) -> None:
    """Run one job in this process. Safe to call again for the same job: finished jobs are skipped."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            log.warning("job %s no longer exists; message dropped", job_id)
            return
        if job.is_finished:
            log.info("job %s already %s; nothing to do", job_id, job.status)
            return
        now = timezone.now()
        if job.cancel_requested:
            job.status, job.finished_at = Job.Status.CANCELLED, now
            job.save(update_fields=["status", "finished_at"])
            return
        if job.status == Job.Status.RUNNING and job.heartbeat_at is not None and not job.is_stalled:
            raise JobBusyElsewhere(job_id)
        job.status = Job.Status.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at"])

    run = JobRun(job)
    try:
        with heartbeat(job):
            result = handler(run)
    except JobCancelled:
        _finish(job, Job.Status.CANCELLED, message="cancelled")
    except JobError as exc:
        _finish(job, Job.Status.FAILED, error=str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _finish(job, Job.Status.FAILED, error=f"{type(exc).__name__}: {exc}", detail=traceback.format_exc())
    else:
        if result:
            job.result = {**job.result, **result}
        _finish(job, Job.Status.SUCCEEDED, message="done")


@contextmanager
def heartbeat(job: Job) -> Iterator[None]:
    """Record that this worker is alive while the handler runs, even through long steps without progress,
    so that only a dead worker's job ever looks stalled."""
    stop = threading.Event()
    interval = max(1.0, settings.EVALSITE_JOB_STALL_SECONDS / 4)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _finish(
    job: Job,
    status: Any,  # a Job.Status (its members read as (value, label) tuples to mypy without Django's plugin)
    *,
    message: str | None = None,
    error: str = "",
    detail: str = "",
) -> None:
    job.status = status
    job.finished_at = timezone.now()
    job.error = error
    job.error_detail = detail
    fields = ["status", "finished_at", "error", "error_detail", "result"]
    if status == Job.Status.SUCCEEDED and job.progress_total is not None:
        job.progress_done = job.progress_total
        fields.append("progress_done")
    if message is not None:
        job.message = message
        fields.append("message")
    job.save(update_fields=fields)


def cancel_job(job: Job) -> Job:
    """Cancel a queued job at once; ask a running one to stop at its next progress report."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise JobStateError(f"job is already {job.status}")
        job.cancel_requested = True
        fields = ["cancel_requested"]
        if job.status == Job.Status.QUEUED:
            job.status, job.finished_at, job.message = Job.Status.CANCELLED, timezone.now(), "cancelled"
            fields += ["status", "finished_at", "message"]
        job.save(update_fields=fields)
    return job


def requeue_stalled_jobs() -> list[Job]:
    """Queue again every running job whose worker went silent, each exactly once however many workers
    sweep at the same moment (a conditional update on the heartbeat it was seen with); a job already
    started `EVALSITE_JOB_MAX_ATTEMPTS` times is failed instead. Returns the jobs queued again."""
    cutoff = timezone.now() - timedelta(seconds=settings.EVALSITE_JOB_STALL_SECONDS)
    requeued = []
    stalled = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff)
    for job in stalled.only("pk", "heartbeat_at", "attempts", "kind", "queue"):
        still_stalled = Job.objects.filter(
            pk=job.pk, status=Job.Status.RUNNING, heartbeat_at=job.heartbeat_at
        )
        if job.attempts >= settings.EVALSITE_JOB_MAX_ATTEMPTS:
            error = f"its worker stopped reporting on each of {job.attempts} attempts; retry it by hand"
            still_stalled.update(status=Job.Status.FAILED, finished_at=timezone.now(), error=error)
            continue
        if still_stalled.update(
            status=Job.Status.QUEUED, message="queued again: its worker stopped reporting"
        ):
            log.warning("job %s stalled (attempt %s); queued again", job.pk, job.attempts)
            enqueue(job)
            requeued.append(job)
    return requeued


class StallSweep:
    """A worker's timer thread that calls `requeue_stalled_jobs` every `interval` seconds until stopped."""

    def __init__(self, interval: float):
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="stall-sweep", daemon=True)

    def start(self) -> StallSweep:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.interval + 5)

    def _loop(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    requeue_stalled_jobs()
                except Exception:  # the database away for a moment: try again at the next tick
                    log.exception("stall sweep failed")
                    connection.close()
        finally:
            connection.close()


def retry_job(job: Job) -> Job:
    """Queue a failed, cancelled or stalled job again; its handler resumes where it stopped."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not (job.status in (Job.Status.FAILED, Job.Status.CANCELLED) or job.is_stalled):
            raise JobStateError(
                f"only failed, cancelled or stalled jobs can be retried (this one is {job.status})"
            )
        job.status = Job.Status.QUEUED
        job.cancel_requested = False
        job.error = job.error_detail = ""
        job.finished_at = None
        job.message = "queued again"
        job.save(
            update_fields=["status", "cancel_requested", "error", "error_detail", "finished_at", "message"]
        )
        transaction.on_commit(lambda: enqueue(job))
    return job
