"""The plumbing of runs through real Celery workers on Redis, with the test-only plumbing backend (each
step sleeps): cancel stops a run between steps, and a worker killed mid-video loses only that video,
which the next worker redoes once without duplicating anything."""

import os
import signal

import pytest

from evalsite.models import Job
from generation.backends import BACKENDS, register
from generation.models import GenerationItem, GenerationRun, Video, VideoModel
from generation.runs.planning import RunSpec, cancel_run, start_run
from tests.evalsite.test_worker import broker, launch_worker, wait_for  # noqa: F401  (fixtures)

from .plumbing_backend import TARGET, make_checkpoint

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def plumbing_worker(broker, launch_worker):  # noqa: F811
    register("plumbing", TARGET)
    yield lambda name: launch_worker(
        name,
        {
            "CELERY_BROKER_URL": broker,
            "EVALSITE_TASK_VISIBILITY_TIMEOUT": "2",
            "EVALSITE_TASK_RESTORE_INTERVAL": "1",
            "EVALSITE_JOB_STALL_SECONDS": "3",
            "EVALSITE_GENERATION_BACKENDS": f"plumbing={TARGET}",
        },
    )
    BACKENDS.pop("plumbing", None)


@pytest.fixture
def slow_model(tmp_path, make_benchmark):
    bench = make_benchmark(["a cat on grass", "a red car at night"])
    model = VideoModel.objects.create(
        name="Slow",
        backend="plumbing",
        checkpoint=str(make_checkpoint(tmp_path / "ckpt", step_seconds=0.25)),
    )
    return model, bench


def running_item(min_steps: int):
    return lambda: GenerationItem.objects.filter(
        status=GenerationItem.Status.RUNNING, steps_done__gte=min_steps
    ).first()


def test_cancel_stops_a_run_between_steps(plumbing_worker, slow_model):
    model, bench = slow_model
    plumbing_worker("w1")
    run = start_run(RunSpec(model=model, benchmark=bench, seeds=[1], settings={"steps": 200}, batch_size=1))
    item = wait_for(running_item(2), 90, "the first video to be under way")
    cancel_run(run)
    run = wait_for(
        lambda: GenerationRun.objects.filter(pk=run.pk, status=GenerationRun.Status.CANCELLED).first(),
        30,
        "the run to stop",
    )
    stopped = GenerationItem.objects.get(pk=item.pk)
    assert stopped.status == GenerationItem.Status.CANCELLED and 2 <= stopped.steps_done < 200
    assert stopped.error == "cancelled between denoising steps"
    assert set(run.items.values_list("status", flat=True)) == {GenerationItem.Status.CANCELLED}
    assert not Video.objects.exists()
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.CANCELLED}


def test_a_killed_workers_video_is_redone_once_and_not_duplicated(plumbing_worker, slow_model):
    model, bench = slow_model
    first = plumbing_worker("w1")
    run = start_run(RunSpec(model=model, benchmark=bench, seeds=[1, 2], settings={"steps": 8}, batch_size=4))
    wait_for(lambda: GenerationItem.objects.filter(status=GenerationItem.Status.DONE).exists(), 90, "a video")
    killed_item = wait_for(running_item(2), 30, "the next video to be under way")
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker, as when its machine dies
    first.wait()
    done_before = set(
        GenerationItem.objects.filter(status=GenerationItem.Status.DONE).values_list("pk", "video_id")
    )

    plumbing_worker("w2")
    run = wait_for(
        lambda: GenerationRun.objects.filter(pk=run.pk, status=GenerationRun.Status.DONE).first(),
        120,
        "the run to finish on the second worker",
    )
    items = list(run.items.all())
    assert len(items) == 4 and all(i.status == GenerationItem.Status.DONE for i in items)
    redone = GenerationItem.objects.get(pk=killed_item.pk)
    assert redone.attempts == 2 and redone.steps_done == 8
    assert done_before <= {(i.pk, i.video_id) for i in items}  # finished videos were kept, not made again
    assert all(i.attempts == 1 for i in items if i.pk != killed_item.pk and (i.pk, i.video_id) in done_before)
    assert Video.objects.count() == 4 and len({i.video_id for i in items}) == 4
    workers = {v.generation_record["worker"].split("@")[0] for v in Video.objects.all()}
    assert "w2" in workers and workers <= {"w1", "w2"}
    assert Job.objects.get().attempts == 2
