"""The job life cycle, run in-process: progress, failure, cancel, retry and idempotent re-runs."""

import pytest

from evalsite.jobs import (
    JobCancelled,
    JobError,
    JobStateError,
    cancel_job,
    execute,
    job_task,
    retry_job,
    start_job,
)
from evalsite.models import Job

pytestmark = pytest.mark.django_db

calls: list[str] = []


def counting_handler(run):
    calls.append(str(run.job.pk))
    for i in range(3):
        run.progress(i, 3, f"step {i}")
    return {"answer": 42}


def failing_handler(run):
    run.progress(1, 4)
    raise JobError("the manifest names an unknown model")


def crashing_handler(run):
    raise RuntimeError("boom")


def self_cancelling_handler(run):
    Job.objects.filter(pk=run.job.pk).update(cancel_requested=True)
    run.progress(1, 2)
    raise AssertionError("progress() should have raised JobCancelled")


def make_job(**kwargs):
    return Job.objects.create(kind="test.kind", title="t", **kwargs)


def test_success_records_result_progress_and_attempt():
    job = make_job()
    execute(str(job.pk), counting_handler)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result == {"answer": 42}
    assert job.progress_total == 3 and job.progress_done == 3 and job.percent == 100
    assert job.attempts == 1 and job.started_at and job.finished_at and job.heartbeat_at


def test_a_finished_job_is_not_run_again_when_its_message_comes_back():
    job = make_job()
    calls.clear()
    execute(str(job.pk), counting_handler)
    execute(str(job.pk), counting_handler)
    assert calls == [str(job.pk)]
    job.refresh_from_db()
    assert job.attempts == 1


def test_job_error_is_shown_without_traceback_and_crash_keeps_traceback():
    job = make_job()
    execute(str(job.pk), failing_handler)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error == "the manifest names an unknown model"
    assert job.error_detail == "" and job.progress_done == 1
    other = make_job()
    execute(str(other.pk), crashing_handler)
    other.refresh_from_db()
    assert other.error == "RuntimeError: boom" and "Traceback" in other.error_detail


def test_cancel_takes_effect_at_the_next_progress_report():
    job = make_job()
    execute(str(job.pk), self_cancelling_handler)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED


def test_cancelling_a_queued_job_stops_it_before_it_runs():
    job = make_job()
    cancel_job(job)
    calls.clear()
    execute(str(job.pk), counting_handler)
    assert calls == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED
    with pytest.raises(JobStateError):
        cancel_job(job)


def test_retry_requeues_a_failed_job_which_then_runs_again(django_capture_on_commit_callbacks):
    job = make_job()
    execute(str(job.pk), failing_handler)
    with django_capture_on_commit_callbacks() as callbacks:
        retry_job(job)
    assert len(callbacks) == 1  # the message is sent once the transaction commits
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.error == ""
    execute(str(job.pk), counting_handler)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2


def test_retrying_a_running_job_is_refused():
    job = make_job(status=Job.Status.RUNNING)
    with pytest.raises(JobStateError, match="only failed, cancelled or stalled"):
        retry_job(job)


def test_a_stalled_running_job_can_be_retried(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.EVALSITE_JOB_STALL_SECONDS = 60
    job = make_job(status=Job.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=120))
    assert job.is_stalled
    assert retry_job(job).status == Job.Status.QUEUED


def test_job_task_rejects_unknown_queue():
    with pytest.raises(ValueError, match="unknown queue"):
        job_task(queue="tpu")


def test_start_job_runs_through_celery_when_eager(django_capture_on_commit_callbacks, celery_eager):
    task = job_task(queue="cpu", name="tests.counting")(counting_handler)
    with django_capture_on_commit_callbacks(execute=True):
        job = start_job(task.name, title="count", params={"n": 3})
    job.refresh_from_db()
    assert job.queue == "cpu" and job.kind == "tests.counting" and job.status == Job.Status.SUCCEEDED


def test_progress_raises_once_cancel_is_requested():
    job = make_job()
    from evalsite.jobs import JobRun

    run = JobRun(job)
    run.progress(1, 5)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    with pytest.raises(JobCancelled):
        run.progress(2)


def test_a_second_delivery_waits_while_the_first_worker_beats_and_takes_over_once_it_is_silent(settings):
    from datetime import timedelta

    from django.utils import timezone

    from evalsite.jobs import JobBusyElsewhere

    settings.EVALSITE_JOB_STALL_SECONDS = 60
    job = make_job(status=Job.Status.RUNNING, attempts=1, heartbeat_at=timezone.now() - timedelta(seconds=5))
    calls.clear()
    with pytest.raises(JobBusyElsewhere):
        execute(str(job.pk), counting_handler)
    assert calls == []
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    execute(str(job.pk), counting_handler)
    job.refresh_from_db()
    assert calls == [str(job.pk)] and job.status == Job.Status.SUCCEEDED and job.attempts == 2


def test_start_job_refuses_a_name_that_is_no_job_task():
    with pytest.raises(LookupError, match="no job task is named 'metrics.tasks.no_such_job'"):
        start_job("metrics.tasks.no_such_job", title="nothing")
    assert not Job.objects.exists()
