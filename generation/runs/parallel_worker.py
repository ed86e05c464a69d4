"""A gpu worker whose GPUs share one video: `torchrun --nproc-per-node N -m generation.runs.parallel_worker
[celery worker options]` (the README's "Several GPUs for one video").

Rank 0 is an ordinary Celery worker on the `gpu` queue with the solo pool, so its tasks run in the process
that holds the process group; a model with `backend_options: {"tensor_parallel": true}` (Step-Video-T2V)
then loads over every rank, and the other ranks follow rank 0's commands
(`generation.backends.stepvideo.parallel.follow`) without touching the database or the broker. Any other
model runs on rank 0's GPU alone. When the worker stops, rank 0 tells the others to exit.
"""

from __future__ import annotations

import os
import sys

import django


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    django.setup()
    import torch.distributed as dist

    from generation.backends.stepvideo.parallel import ControlChannel, finish, follow, init_from_env

    from .worker import generation_device

    init_from_env(generation_device().split(":")[0])
    channel = ControlChannel.shared()
    try:
        if not channel.leader:
            follow(channel)
            return 0
        from evalsite.celery import app

        try:
            app.worker_main(["worker", "-Q", "gpu", "--pool", "solo", "--concurrency", "1", *argv])
        finally:
            finish(channel)
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
