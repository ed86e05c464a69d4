"""Jobs through a real Celery worker and Redis: a job runs end to end, and a worker killed mid-import
loses nothing — a new worker takes the job over and no video is duplicated."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.db import connection

from evalsite.celery import app
from evalsite.jobs import start_job
from evalsite.models import Job
from generation.models import Video, VideoModel
from generation.tasks import import_videos

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def broker():
    url = app.conf.broker_url
    if not url.startswith("redis://"):
        pytest.fail(
            "worker tests need Redis: run them through scripts/test.sh or set CELERY_BROKER_URL=redis://..."
        )
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def launch_worker(tmp_path, settings):
    """Start a real Celery worker process on the test database; `env` adds to (None removes from) its
    environment. Every worker started is killed at the end of the test."""
    procs = []

    def start(name: str, env: dict[str, str | None]) -> subprocess.Popen:
        environment = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "EVALSITE_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "EVALSITE_IMPORT_ROOTS": ",".join(map(str, settings.EVALSITE_IMPORT_ROOTS)),
            **env,
        }
        log = open(tmp_path / f"{name}.log", "w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "evalsite",
                "worker",
                "-Q",
                "cpu,gpu",
                "-c",
                "1",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env={key: value for key, value in environment.items() if value is not None},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def worker_factory(broker, launch_worker):
    """Workers on Redis that lose a dead worker's message for 2 s only and call a job stalled after 3 s."""
    return lambda name: launch_worker(
        name,
        {
            "CELERY_BROKER_URL": broker,
            "EVALSITE_TASK_VISIBILITY_TIMEOUT": "2",
            "EVALSITE_TASK_RESTORE_INTERVAL": "1",
            "EVALSITE_JOB_STALL_SECONDS": "3",
        },
    )


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def folder_of_videos(make_video, make_benchmark, settings):
    make_benchmark([f"prompt number {i}" for i in range(1, 31)], slug="bench")
    VideoModel.objects.create(name="Alpha")
    root = settings.EVALSITE_IMPORT_ROOTS[0]
    for i in range(1, 31):
        make_video(root / "Alpha" / f"{i}_seed{i}.mp4", frames=48, width=192, height=128, seed=i)
    return root


def test_a_job_runs_in_a_real_worker(worker_factory, folder_of_videos):
    worker_factory("w1")
    job = start_job(
        import_videos.name,
        title="import",
        params={"root": str(folder_of_videos), "benchmark": "bench", "dry_run": True},
    )
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).first(), 60, "the dry run")
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["plan"]["would_import"] == 30 and Video.objects.count() == 0


def test_a_job_runs_in_a_worker_on_the_embedded_default_broker(tmp_path, folder_of_videos, launch_worker):
    """What `make serve` runs: no Redis, the filesystem broker under EVALSITE_DATA_DIR."""
    data_dir = tmp_path / "data"
    launch_worker("fs", {"CELERY_BROKER_URL": None, "EVALSITE_DATA_DIR": str(data_dir)})
    job = Job.objects.create(
        kind=import_videos.name,
        queue="cpu",
        title="dry run",
        params={"root": str(folder_of_videos), "benchmark": "bench", "dry_run": True},
    )
    queue_dir = data_dir / "broker" / "queue"
    wait_for(queue_dir.is_dir, 60, "the worker to create its broker folder")
    options = {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "processed_folder": str(data_dir / "broker" / "processed"),
        "control_folder": str(data_dir / "broker" / "control"),
    }
    with app.connection_for_write("filesystem://", transport_options=options) as connection:
        app.send_task(import_videos.name, args=[str(job.pk)], queue="cpu", connection=connection)
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).first(), 90, "the job")
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["plan"]["would_import"] == 30


def test_worker_killed_mid_import_loses_nothing_and_duplicates_nothing(
    worker_factory, folder_of_videos, settings
):
    first = worker_factory("w1")
    job = start_job(
        import_videos.name, title="import", params={"root": str(folder_of_videos), "benchmark": "bench"}
    )
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, message__startswith="importing", progress_done__gte=4).exists(),
        90,
        "the import to be under way",
    )
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker, as when its machine dies
    first.wait()
    killed = Job.objects.get(pk=job.pk)
    assert killed.status == Job.Status.RUNNING and 4 <= Video.objects.count() < 30

    worker_factory("w2")
    job = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).first(), 120, "the job to finish"
    )
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2
    videos = list(Video.objects.all())
    assert len(videos) == 30 and all(v.status == Video.Status.READY for v in videos)
    assert sorted(v.seed for v in videos) == list(range(1, 31))
    media = Path(settings.MEDIA_ROOT)
    for folder in ("originals", "videos", "posters"):
        files = [p for p in (media / folder).rglob("*") if p.is_file()]
        assert len(files) == 30, folder
        assert not [p for p in files if p.name.startswith(".")], "a partial file was left behind"
