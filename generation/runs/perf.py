"""Timing one video through the whole worker path, for perf/generation.py: a generation run planned and
started as the site does, its gpu job executed by the job machinery (here inline, as EVALSITE_JOBS_EAGER
does), the batch handler's library call, the original written, brought into the library and transcoded.

Outside a configured site it sets one up on a scratch SQLite database and media folder in a temporary
directory. The model load is not timed: a first video loads it into the worker's cache, the second is
timed, as consecutive batches of one run on a worker are.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _scratch_site() -> None:
    """Django on a scratch database, unless the caller already configured one."""
    import django
    from django.conf import settings

    if not settings.configured and "DJANGO_SETTINGS_MODULE" not in os.environ:
        data = Path(tempfile.mkdtemp(prefix="evalsite-perf-"))
        os.environ.update(
            {
                "EVALSITE_DATA_DIR": str(data),
                "DATABASE_URL": f"sqlite:///{data / 'perf.sqlite3'}",
                "CELERY_BROKER_URL": "memory://",
                "EVALSITE_JOBS_EAGER": "1",
                "DJANGO_SETTINGS_MODULE": "evalsite.settings",
            }
        )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def time_one_video(
    *,
    checkpoint: Path,
    settings: dict[str, Any],
    prompt: str,
    negative_prompt: str | None = None,
    latents: torch.Tensor | None = None,
) -> float:
    """Seconds for one video through the worker path (start of the run to the transcoded video in the
    library). `latents` are not passed on (a run draws them from a seed, of the same shape and cost)."""
    _scratch_site()
    from celery import current_app
    from django.db import transaction

    from generation.models import GenerationRun, Video, VideoModel
    from generation.runs.planning import RunSpec, start_run
    from generation.services import load_benchmark

    current_app.conf.task_always_eager = True
    folder = Path(tempfile.mkdtemp(prefix="perf-prompts-"))
    (folder / "perf.txt").write_text(prompt.replace("\n", " ") + "\n", encoding="utf-8")
    benchmark = load_benchmark(folder / "perf.txt", fmt="lines", slug=f"perf-{time.time_ns()}").benchmark
    wanted = {**settings, **({"negative_prompt": negative_prompt} if negative_prompt is not None else {})}
    model = VideoModel.objects.create(
        name=f"perf {time.time_ns()}",
        backend="diffusers",
        checkpoint=str(checkpoint),
        default_settings=wanted,
    )
    seconds = 0.0
    for seed in (0, 1):  # the first loads the model
        started = time.perf_counter()
        with transaction.atomic():
            run = start_run(RunSpec(model=model, benchmark=benchmark, seeds=[seed], batch_size=1))
        seconds = time.perf_counter() - started
        run = GenerationRun.objects.get(pk=run.pk)
        item = run.items.get()
        if run.status != GenerationRun.Status.DONE or item.video is None:
            raise RuntimeError(f"the worker path did not make the video: {item.status} {item.error}")
        assert item.video.status == Video.Status.READY
    return seconds
