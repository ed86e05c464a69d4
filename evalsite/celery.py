"""The Celery app. Workers consume the `cpu` queue (imports, transcodes, exports) and/or the `gpu` queue
(generation, video metrics, training); see the README for starting each on its own machine."""

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")

app = Celery("evalsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# metrics/ holds two parts; the automatic video metrics' jobs live in their own package.
app.autodiscover_tasks(["metrics.automatic"])

_stall_sweep = None


@worker_ready.connect
def start_stall_sweep(**_kwargs) -> None:
    """Every worker sweeps for jobs whose worker died (evalsite.jobs.requeue_stalled_jobs): on the
    filesystem broker nothing else would ever run them again."""
    global _stall_sweep
    from django.conf import settings

    from .jobs import StallSweep

    if settings.EVALSITE_JOB_SWEEP_SECONDS > 0:
        _stall_sweep = StallSweep(settings.EVALSITE_JOB_SWEEP_SECONDS).start()


@worker_shutdown.connect
def stop_stall_sweep(**_kwargs) -> None:
    if _stall_sweep is not None:
        _stall_sweep.stop()
