"""The workers' stall sweep queues a job whose worker died again, once per stall, whatever the number of
workers sweeping; a job that keeps stalling is failed after the attempt limit; live jobs are left alone."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from evalsite import jobs
from evalsite.jobs import StallSweep, execute, requeue_stalled_jobs
from evalsite.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch, settings):
    settings.EVALSITE_JOB_STALL_SECONDS = 60
    settings.EVALSITE_JOB_MAX_ATTEMPTS = 3
    messages: list[str] = []
    monkeypatch.setattr(jobs, "enqueue", lambda job: messages.append(str(job.pk)))
    return messages


def running(seconds_silent: float, attempts: int = 1) -> Job:
    return Job.objects.create(
        kind="test.kind",
        title="t",
        status=Job.Status.RUNNING,
        attempts=attempts,
        heartbeat_at=timezone.now() - timedelta(seconds=seconds_silent),
    )


def test_a_stalled_job_is_queued_again_once_and_a_live_one_is_left_alone(sent):
    stalled, live = running(120), running(5)
    assert [j.pk for j in requeue_stalled_jobs()] == [stalled.pk]
    assert requeue_stalled_jobs() == []  # a second sweep (or another worker's) finds nothing to do
    assert sent == [str(stalled.pk)]
    stalled.refresh_from_db()
    live.refresh_from_db()
    assert stalled.status == Job.Status.QUEUED and "stopped reporting" in stalled.message
    assert live.status == Job.Status.RUNNING
    execute(str(stalled.pk), lambda run: {"ok": True})  # the requeued message runs it to the end
    stalled.refresh_from_db()
    assert stalled.status == Job.Status.SUCCEEDED and stalled.attempts == 2


def test_two_sweeps_that_saw_the_same_stall_queue_it_once(sent):
    job = running(120)
    seen = list(Job.objects.filter(pk=job.pk))  # a second worker's view of the same stalled row
    assert len(requeue_stalled_jobs()) == 1
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)  # picked up again by a worker ...
    # ... and the late sweep, with the heartbeat it saw before, changes nothing.
    late = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at=seen[0].heartbeat_at)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    assert late.count() == 0 and requeue_stalled_jobs() == [] and len(sent) == 1


def test_a_job_that_keeps_stalling_is_failed_after_the_attempt_limit(sent):
    job = running(120, attempts=3)
    assert requeue_stalled_jobs() == [] and sent == []
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "3 attempts" in job.error and job.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_sweep_thread_runs_until_stopped(sent):
    job = running(120)
    sweep = StallSweep(0.1).start()
    try:
        deadline = time.monotonic() + 10
        while not sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweep.stop()
    assert sent == [str(job.pk)] and not sweep.thread.is_alive()
