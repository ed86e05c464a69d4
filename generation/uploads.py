"""Bringing files in over HTTP: one video upload, or an archive/folder import started as a job."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from evalsite.job_titles import job_title
from evalsite.jobs import start_job
from evalsite.models import Job

from .importing import check_db_limits, check_import_root
from .models import Prompt, Video, VideoModel
from .services import GenerationError, add_video

IMPORT_VIDEOS_JOB = "generation.tasks.import_videos"


class UploadError(ValueError):
    pass


def _spool(uploaded: UploadedFile, suffix: str) -> Path:
    """Write an upload to a private temporary file under MEDIA_ROOT/tmp (same disk as its destination)."""
    if uploaded.size is not None and uploaded.size > settings.EVALSITE_MAX_VIDEO_BYTES:
        raise UploadError(
            f"{uploaded.name}: file is {uploaded.size / 2**20:.1f} MiB, over the limit of "
            f"{settings.EVALSITE_MAX_VIDEO_BYTES / 2**20:.0f} MiB (EVALSITE_MAX_UPLOAD_MB)"
        )
    tmp_dir = Path(settings.MEDIA_ROOT) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def check_generation_settings(value: object) -> dict:
    """The generation settings of an upload (sampler, steps, guidance...): a JSON object, or nothing.
    The one check for the web form, the API and `upload_video`."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise UploadError("generation_settings must be a JSON object")
    return value


def upload_video(
    *,
    uploaded: UploadedFile,
    model: VideoModel,
    prompt: Prompt,
    seed: int | None = None,
    noise_id: str = "",
    generation_settings: dict | None = None,
    user=None,
) -> tuple[Video, Job | None]:
    """Check the upload by decoding it, store it, and queue its transcode. A rejected file leaves nothing."""
    generation_settings = check_generation_settings(generation_settings)
    check_db_limits(Video, seed=seed, noise_id=noise_id, original_name=uploaded.name or "")
    suffix = Path(uploaded.name or "").suffix[:6]
    spooled = _spool(uploaded, suffix)
    try:
        with transaction.atomic():
            video, created = add_video(
                model=model,
                prompt=prompt,
                source_path=spooled,
                original_name=uploaded.name or "upload",
                source=Video.Source.UPLOAD,
                seed=seed,
                noise_id=noise_id,
                generation_settings=generation_settings,
            )
            job = None
            if video.status != Video.Status.READY:
                job = start_job(
                    "generation.tasks.transcode_video",
                    title=job_title("transcode", video=video.pk),
                    params={"video_id": video.pk},
                    created_by=user,
                )
    finally:
        spooled.unlink(missing_ok=True)
    return video, job


@transaction.atomic
def start_import(*, archive: UploadedFile | None, root: str | None, options: dict, user=None) -> Job:
    """Start an import job from an uploaded zip or a server folder (exactly one of them)."""
    if bool(archive) == bool(root):
        raise UploadError("give either an archive or a folder, not both")
    if archive:
        return start_archive_import(archive, options, user=user)
    return start_folder_import(Path(root or ""), options, user=user)


def start_archive_import(archive: UploadedFile, options: dict, *, user=None) -> Job:
    if not (archive.name or "").lower().endswith(".zip"):
        raise UploadError(f"{archive.name}: only .zip archives are accepted")
    spooled = _spool(archive, ".zip")
    stored = Path(settings.MEDIA_ROOT) / "tmp" / "archives" / spooled.name
    stored.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(spooled, stored)
    try:
        job = start_job(
            IMPORT_VIDEOS_JOB,
            title=job_title(
                "check_archive" if options.get("dry_run") else "import_archive", name=archive.name
            ),
            params={**options, "archive": str(stored), "archive_name": archive.name},
            created_by=user,
        )
    except BaseException:
        stored.unlink(missing_ok=True)
        raise
    return job


def start_folder_import(root: Path, options: dict, *, user=None) -> Job:
    try:
        root = check_import_root(root, settings.EVALSITE_IMPORT_ROOTS)
    except GenerationError as exc:
        raise UploadError(str(exc)) from exc
    return start_job(
        IMPORT_VIDEOS_JOB,
        title=job_title("check_folder" if options.get("dry_run") else "import_folder", name=root.name),
        params={**options, "root": str(root)},
        created_by=user,
    )
