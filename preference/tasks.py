"""The export job (cpu queue): a thin shell around `services.build_export`.

Re-running it is safe: a finished export is left as it is, and an unfinished one is built again from
scratch into a fresh hidden folder (files appear only when complete)."""

from __future__ import annotations

from typing import Any

from evalsite.jobs import JobCancelled, JobError, JobRun, job_task

from .models import PreferenceExport
from .services import build_export, mark_export


def _result(export: PreferenceExport) -> dict[str, Any]:
    return {
        "export_id": export.pk,
        "name": export.name,
        "version": export.version,
        "manifest": export.manifest,
    }


@job_task(queue="cpu", name="preference.tasks.build_preference_export")
def build_preference_export(run: JobRun) -> dict[str, Any]:
    """Params: export_id."""
    export = PreferenceExport.objects.filter(pk=run.params.get("export_id")).first()
    if export is None:
        raise JobError("this export no longer exists")
    if export.is_ready:
        return _result(export)
    mark_export(export, PreferenceExport.Status.BUILDING)
    try:
        build_export(export, progress=lambda done, total, message: run.progress(done, total, message))
    except JobCancelled:
        mark_export(export, PreferenceExport.Status.CANCELLED)
        raise
    except Exception:
        mark_export(export, PreferenceExport.Status.FAILED)
        raise
    return _result(export)


@job_task(queue="gpu")
def train_preference_model(run: JobRun) -> dict[str, Any]:
    """Params: training_run_id. Resumable: latents are reused and Video-DPO continues from its checkpoint."""
    from .models import TrainingRun
    from .training_runs import execute_training_run

    training_run = (
        TrainingRun.objects.select_related("export", "base_model")
        .filter(pk=run.params.get("training_run_id"))
        .first()
    )
    if training_run is None:
        raise JobError("this training run no longer exists")
    return execute_training_run(training_run, run)


@job_task(queue="gpu")
def apply_reward_model(run: JobRun) -> dict[str, Any]:
    """Params: training_run_id, model_id, benchmark_id, min_gap, export_id (optional, on-policy pairs)."""
    from .training_runs import apply_reward_model as apply

    return apply(run)
