"""Celery jobs of the generation app: thin shells around services and importing."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from evalsite.jobs import JobError, JobRun, job_task

from .importing import extract_archive, plan_import, run_import
from .models import Benchmark, Video
from .services import GenerationError, process_video


@job_task(queue="cpu", name="generation.tasks.transcode_video")
def transcode_video(run: JobRun) -> dict:
    video = Video.objects.get(pk=run.params["video_id"])
    run.progress(0, 1, "transcoding")
    video = process_video(video)
    if video.status == Video.Status.FAILED:
        raise JobError(video.error)
    return {"video_id": video.pk, "status": video.status}


def archive_folder(job_id: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "tmp" / "imports" / str(job_id)


@job_task(queue="cpu", name="generation.tasks.import_videos")
def import_videos(run: JobRun) -> dict:
    """Params: root (folder) or archive (a stored zip), manifest, benchmark (slug), model, create_models, dry_run."""
    params = run.params
    benchmark = (
        Benchmark.objects.filter(slug=params["benchmark"]).first() if params.get("benchmark") else None
    )
    if params.get("benchmark") and benchmark is None:
        raise JobError(f"unknown benchmark {params['benchmark']!r}")
    try:
        if params.get("archive"):
            root = extract_archive(
                Path(params["archive"]), archive_folder(run.job.pk), shown_name=params.get("archive_name")
            )
            allowed = None  # extracted by us, under MEDIA_ROOT
        else:
            root = Path(params["root"])
            allowed = None if params.get("trusted_path") else settings.EVALSITE_IMPORT_ROOTS
        plan = plan_import(
            root,
            manifest=params.get("manifest") or None,
            benchmark=benchmark,
            model_name=params.get("model") or None,
            create_models=bool(params.get("create_models")),
            allowed_roots=allowed,
            progress=run.progress,
        )
        run.save_result(plan=plan.report())
        if plan.errors:
            raise JobError(f"{len(plan.errors)} problem(s) found; nothing imported (see the report)")
        if params.get("dry_run"):
            return {"dry_run": True}
        summary = run_import(plan, progress=run.progress)
    except GenerationError as exc:
        raise JobError(str(exc)) from exc
    finally:
        # The unpacked copy and the uploaded archive go once the job ends, whether it imported, was a dry run
        # or failed (its content will not change; a fixed archive is uploaded again). A killed worker never
        # gets here, so a redelivered or retried job finds both and resumes.
        if params.get("archive"):
            shutil.rmtree(archive_folder(run.job.pk), ignore_errors=True)
            Path(params["archive"]).unlink(missing_ok=True)
    return summary


@job_task(queue="gpu")
def generate_batch(run: JobRun) -> dict:
    """Params: run_id, item_ids. Generates the batch's videos (see generation/runs/worker.py)."""
    from .runs.worker import run_batch  # torch and the backends load on the worker only

    return run_batch(run)
