"""The tensor-parallel gpu worker for real: `torchrun --nproc-per-node 2 -m generation.runs.parallel_worker`
on the CPU (gloo) with Redis, a run of a tiny Step-Video-T2V model with `tensor_parallel`, its videos in
the library; then rank 0 stops like a Celery worker does and rank 1 exits with it."""

import os
import signal
import subprocess
import sys

import pytest

from generation.backends.stepvideo.tiny import write_tiny_checkpoint
from generation.models import GenerationItem, Video, VideoModel
from generation.runs.planning import RunSpec, start_run
from tests.evalsite.test_worker import ROOT, broker, database_url, wait_for  # noqa: F401  (broker: a fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SETTINGS = {"height": 16, "width": 32, "frames": 17, "steps": 2, "fps": 8}


def ranks_of(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the processes torchrun started (its children, RANK in their environment)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(launcher.pid)], capture_output=True, text=True)
    ranks = {}
    for pid in map(int, out.stdout.split()):
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        rank = next(int(v.split(b"=", 1)[1]) for v in environ if v.startswith(b"RANK="))
        ranks[rank] = pid
    return ranks


def test_a_run_goes_through_a_tensor_parallel_worker(
    broker,  # noqa: F811
    tmp_path,
    settings,
    media_root,
    make_benchmark,
    django_capture_on_commit_callbacks,
):
    checkpoint = write_tiny_checkpoint(tmp_path / "stepvideo")
    model = VideoModel.objects.create(
        name="tiny tp",
        backend="stepvideo",
        checkpoint=str(checkpoint),
        backend_options={"tensor_parallel": True},
        default_settings=SETTINGS,
    )
    bench = make_benchmark(["a cat runs on the grass", "a red car in the city"], slug="tp")
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "EVALSITE_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": broker,
        "EVALSITE_GENERATION_DEVICE": "cpu",
    }
    log = open(tmp_path / "worker.log", "w")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        + ["-m", "generation.runs.parallel_worker", "--without-gossip", "--without-mingle", "-n", "tp@%h"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = start_run(RunSpec(model=model, benchmark=bench, seeds=[1], batch_size=2))
        items = wait_for(
            lambda: (
                list(run.items.all())
                if not run.items.exclude(
                    status__in=[GenerationItem.Status.DONE, GenerationItem.Status.FAILED]
                )
                else None
            ),
            180,
            "the run's videos",
        )
        assert all(i.status == GenerationItem.Status.DONE for i in items), [
            (i.status, i.error) for i in items
        ]
        assert Video.objects.filter(model=model, status=Video.Status.READY).count() == 2

        ranks = ranks_of(launcher)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[0], signal.SIGTERM)  # a Celery warm shutdown; rank 0 then tells rank 1 to exit
        launcher.wait(timeout=60)
        assert launcher.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
