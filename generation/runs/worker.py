"""What a gpu worker does with one batch of a generation run: load the model once per process, generate
each planned video with its seed or shared noise, report denoising steps, stop between steps when the run
or job is cancelled, and put each finished video into the library through the same path as an import
(`add_video` + `process_video`: transcode, poster, random ids, no metadata).

Safe to run again for the same batch (a redelivered message after a worker died): finished videos are
skipped, a video already in the library is linked rather than made twice, and a video whose worker died
while generating it is redone once, then reported as failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
from importlib import metadata
from typing import Any

import torch
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from evalsite.jobs import JobCancelled, JobError, JobRun
from evalsite.models import Job

from ..backends import (
    Backend,
    BackendError,
    CheckpointError,
    GeneratedVideo,
    GenerationCancelled,
    GenerationRequest,
    OutOfMemory,
    PromptRejected,
    load_backend,
)
from ..models import GenerationItem, GenerationRun, Refusal, Video
from ..services import GenerationError, add_video, mark_refused, media_path, process_video
from ..videofiles import encode_frames
from .planning import checkpoint_of, record_capabilities, refresh_run_status, settings_hash

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a video whose worker died mid-generation is redone once
LIBRARIES = ("torch", "diffusers", "transformers", "peft", "accelerate", "numpy", "av")
OOM_HINT = "lower frames, height and width, or the batch size"

_loaded: dict[str, Any] = {"key": None, "backend": None}


def generation_device() -> str:
    """The device named by EVALSITE_GENERATION_DEVICE; "auto" is CUDA when this worker has it, else the CPU
    (one worker per GPU: pick the GPU with CUDA_VISIBLE_DEVICES)."""
    wanted = (settings.EVALSITE_GENERATION_DEVICE or "auto").strip()
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def generation_dtype(device: str) -> torch.dtype:
    wanted = (settings.EVALSITE_GENERATION_DTYPE or "auto").strip()
    if wanted == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        dtype = getattr(torch, wanted)
    except AttributeError:
        raise JobError(f"EVALSITE_GENERATION_DTYPE={wanted!r} is not a torch dtype") from None
    if not isinstance(dtype, torch.dtype):
        raise JobError(f"EVALSITE_GENERATION_DTYPE={wanted!r} is not a torch dtype")
    return dtype


def worker_name() -> str:
    """The Celery node that made the video (several gpu workers share a run), or this host."""
    from celery import current_task

    hostname = getattr(getattr(current_task, "request", None), "hostname", None)
    return str(hostname or socket.gethostname())


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def loaded_backend(run: GenerationRun) -> Backend:
    """The run's model, loaded once per worker process and kept until a run needs another one."""
    device = generation_device()
    dtype = generation_dtype(device)
    options = run.model.backend_options or {}
    key = json.dumps([run.backend, run.checkpoint, run.adapter, options, device, str(dtype)], sort_keys=True)
    if _loaded["key"] != key:
        if _loaded["backend"] is not None:
            _loaded["backend"].close()
            _loaded["key"] = _loaded["backend"] = None
        backend = load_backend(
            run.backend,
            run.checkpoint,
            device=device,
            dtype=dtype,
            adapter=run.adapter or None,
            options=options,
        )
        _loaded["key"], _loaded["backend"] = key, backend
        model = run.model
        if (model.backend, *checkpoint_of(model)) == (run.backend, run.checkpoint, run.adapter):
            record_capabilities(model, backend.capabilities)
    return _loaded["backend"]


def frames_sha256(video: GeneratedVideo) -> str:
    return hashlib.sha256(video.frames.tobytes()).hexdigest()


def latents_sha256(latents: torch.Tensor | None) -> str | None:
    """None where the backend drew its own noise out of sight (a command without {latents})."""
    if latents is None:
        return None
    return hashlib.sha256(
        latents.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    ).hexdigest()


def noise_store():
    """Shared noise lives under MEDIA_ROOT/noise, beside the videos every worker already shares."""
    from ..backends.noise import NoiseStore

    return NoiseStore(media_path("noise"))


def _open_items(item_ids: list[int]) -> list[GenerationItem]:
    return list(
        GenerationItem.objects.filter(pk__in=item_ids).select_related("prompt", "model").order_by("id")
    )


def _finish(item: GenerationItem, status: str, **fields: Any) -> None:
    GenerationItem.objects.filter(pk=item.pk).update(status=status, finished_at=timezone.now(), **fields)


def _existing_video(item: GenerationItem) -> Video | None:
    return Video.objects.filter(
        model=item.model,
        prompt=item.prompt,
        seed=item.seed,
        settings_hash=item.settings_hash,
        source=Video.Source.GENERATION,
    ).first()


def run_batch(job_run: JobRun) -> dict[str, Any]:
    run = GenerationRun.objects.select_related("model").get(pk=job_run.params["run_id"])
    items = _open_items(job_run.params["item_ids"])
    total = len(items)
    backend: Backend | None = None
    made = 0
    try:
        for index, item in enumerate(items):
            job_run.progress(index, total, f"video {index + 1} of {total}")
            item.refresh_from_db()
            if item.status in GenerationItem.FINISHED:
                continue
            existing = item.video or _existing_video(item)
            if existing is not None:  # made before the worker died, not yet recorded on the row
                _finish(item, GenerationItem.Status.DONE, video=existing, steps_done=item.steps_total or 0)
                continue
            refusal = Refusal.objects.filter(model=item.model, prompt=item.prompt).first()
            if refusal is not None:
                _finish(
                    item,
                    GenerationItem.Status.REFUSED,
                    error=f"refused: {refusal.reason or 'marked refused'}",
                )
                continue
            if item.status == GenerationItem.Status.RUNNING and item.attempts >= MAX_ATTEMPTS:
                _finish(
                    item,
                    GenerationItem.Status.FAILED,
                    error=f"the worker stopped while generating this video {item.attempts} times",
                )
                continue
            if backend is None:
                try:
                    backend = loaded_backend(run)
                except (CheckpointError, BackendError, OSError) as exc:
                    message = f"could not load {run.backend} from {run.checkpoint}: {exc}"
                    GenerationItem.objects.filter(
                        pk__in=[i.pk for i in items[index:]], status__in=_OPEN
                    ).update(status=GenerationItem.Status.FAILED, error=message, finished_at=timezone.now())
                    raise JobError(message) from exc
            made += generate_item(job_run, run, item, backend)
            refresh_run_status(run)
    except JobCancelled:
        GenerationItem.objects.filter(pk__in=[i.pk for i in items], status__in=_OPEN).update(
            status=GenerationItem.Status.CANCELLED, finished_at=timezone.now()
        )
        raise
    finally:
        refresh_run_status(run)
    job_run.progress(total, total, "done")
    return {"videos_made": made}


_OPEN = [GenerationItem.Status.QUEUED, GenerationItem.Status.RUNNING]


def _request(item: GenerationItem, backend: Backend) -> tuple[GenerationRequest, dict[str, Any]]:
    """The backend request of one item and the settings recorded on its video. Shared noise is stored (or
    read back) under its noise id, which the item and video then carry."""
    from .planning import noise_id_for

    wanted = dict(item.settings)
    negative = None
    if not any(spec.name == "negative_prompt" for spec in backend.capabilities.settings):
        negative = wanted.pop("negative_prompt", None)
    resolved = backend.capabilities.validate(wanted)
    recorded = {**resolved, **({"negative_prompt": negative} if negative is not None else {})}
    prompt = item.prompt.text
    if not item.shared_noise:
        return GenerationRequest([prompt], resolved, seeds=[item.seed], negative_prompt=negative), recorded
    try:
        value = noise_id_for(backend.capabilities, item.seed, resolved, item.noise_id)
    except GenerationError as exc:
        raise BackendError(str(exc)) from exc
    store = noise_store()
    store.create(
        item.seed,
        backend.capabilities.latent_shape(
            height=resolved["height"], width=resolved["width"], frames=resolved["frames"]
        ),
    )
    if item.noise_id != value:
        GenerationItem.objects.filter(pk=item.pk).update(noise_id=value)
        item.noise_id = value
    latents = store.load(value)
    return GenerationRequest([prompt], resolved, latents=[latents], negative_prompt=negative), recorded


def _same_settings_hash(item: GenerationItem, recorded: dict[str, Any]) -> bool:
    """A run checked on the worker only was planned with its settings as given; once resolved here they
    may name a video that another row already plans (defaults written out, say). Keep one row per video."""
    digest = settings_hash(json.loads(json.dumps(recorded, default=str)))
    if digest == item.settings_hash:
        return True
    try:
        with transaction.atomic():
            GenerationItem.objects.filter(pk=item.pk).update(settings=recorded, settings_hash=digest)
    except IntegrityError:
        other = GenerationItem.objects.filter(
            model=item.model, prompt=item.prompt, seed=item.seed, settings_hash=digest
        ).first()
        where = f" (run {other.run_id})" if other is not None else ""
        _finish(item, GenerationItem.Status.FAILED, error=f"the same video is already planned{where}")
        return False
    item.settings, item.settings_hash = recorded, digest
    return True


def generate_item(job_run: JobRun, run: GenerationRun, item: GenerationItem, backend: Backend) -> int:
    """Generate one video and store it; record a failure or refusal on its row instead. 1 if made."""
    claimed = GenerationItem.objects.filter(pk=item.pk, status__in=_OPEN).update(
        status=GenerationItem.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=timezone.now(),
        steps_done=0,
        error="",
        oom_hint="",
    )
    if not claimed:
        return 0
    job_id = job_run.job.pk

    def progress(done: int, total: int) -> None:
        GenerationItem.objects.filter(pk=item.pk).update(steps_done=min(done, total), steps_total=total)

    def should_stop() -> bool:
        return (
            Job.objects.filter(pk=job_id, cancel_requested=True).exists()
            or GenerationRun.objects.filter(pk=run.pk, cancel_requested=True).exists()
        )

    started = time.monotonic()
    try:
        request, recorded = _request(item, backend)
    except BackendError as exc:
        _finish(item, GenerationItem.Status.FAILED, error=f"settings: {exc}")
        return 0
    if not _same_settings_hash(item, recorded):
        return 0
    try:
        [output] = backend.generate(request, progress=progress, should_stop=should_stop)
    except GenerationCancelled:
        _finish(item, GenerationItem.Status.CANCELLED, error="cancelled between denoising steps")
        raise JobCancelled() from None
    except PromptRejected as exc:
        try:
            mark_refused(model=item.model, prompt=item.prompt, reason=f"rejected by the backend: {exc}"[:500])
        except GenerationError:
            pass  # the model already has a video for this prompt: record the refusal on the row only
        _finish(item, GenerationItem.Status.REFUSED, error=str(exc))
        return 0
    except OutOfMemory as exc:
        _finish(item, GenerationItem.Status.FAILED, error=str(exc), oom_hint=exc.hint[:300])
        return 0
    except torch.OutOfMemoryError as exc:
        _finish(item, GenerationItem.Status.FAILED, error=f"out of memory: {exc}"[:2000], oom_hint=OOM_HINT)
        return 0
    except BackendError as exc:
        _finish(item, GenerationItem.Status.FAILED, error=str(exc))
        return 0
    except Exception as exc:  # one video's failure loses only that video
        log.exception("generation of item %s failed", item.pk)
        _finish(item, GenerationItem.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return 0
    seconds = time.monotonic() - started
    record = {
        "run": run.pk,
        "item": item.pk,
        "backend": run.backend,
        "checkpoint": run.checkpoint,
        "adapter": run.adapter,
        "seed": item.seed,
        "noise_id": item.noise_id,
        "worker": worker_name(),
        "device": str(generation_device()),
        "dtype": str(generation_dtype(generation_device())),
        "versions": library_versions(),
        "frames_sha256": frames_sha256(output),
        "latents_sha256": latents_sha256(output.initial_latents),
        "fps": output.fps,
        "seconds": round(seconds, 3),
        "backend_info": output.info,
    }
    try:
        video = store_generated(item, output, recorded=recorded, record=record)
    except GenerationError as exc:
        _finish(item, GenerationItem.Status.FAILED, error=f"could not store the video: {exc}")
        return 0
    if video.status != Video.Status.READY:
        _finish(item, GenerationItem.Status.FAILED, error=video.error, video=video)
        return 0
    GenerationItem.objects.filter(pk=item.pk).update(
        status=GenerationItem.Status.DONE,
        video=video,
        finished_at=timezone.now(),
        steps_done=Coalesce(F("steps_total"), F("steps_done")),
    )
    return 1


def store_generated(
    item: GenerationItem,
    output: GeneratedVideo,
    *,
    recorded: dict[str, Any],
    record: dict[str, Any],
) -> Video:
    """Into the library through the import path: the original is written, brought in and transcoded."""
    original = media_path("tmp/generated") / f"item-{item.pk}.mp4"
    original.parent.mkdir(parents=True, exist_ok=True)
    try:
        encode_frames(output.frames, output.fps, original)
        video, _created = add_video(
            model=item.model,
            prompt=item.prompt,
            source_path=original,
            original_name=f"generated-{item.pk}.mp4",
            source=Video.Source.GENERATION,
            seed=item.seed,
            noise_id=item.noise_id,
            generation_settings=json.loads(json.dumps(recorded, default=str)),
            settings_hash=item.settings_hash,
            generation_record=json.loads(json.dumps(record, default=str)),
        )
    finally:
        original.unlink(missing_ok=True)
    return process_video(video)
