"""Writes for benchmarks, video models, refusals and the video library. Views, the API, commands and
jobs all go through these functions, which own validation and transactions."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from .loaders import ParsedBenchmark, parse_benchmark_file
from .models import Benchmark, Category, Prompt, Refusal, Tag, Video, VideoModel
from .videofiles import ProbedVideo, VideoRejected, probe, temporary_beside, transcode_for_browser


class GenerationError(ValueError):
    """Bad input for a generation-app write; the message is for the person who sent it."""


# ---------------------------------------------------------------- benchmarks

BENCHMARK_KINDS = {
    "step-video": (Benchmark.Kind.STEP_VIDEO_EVAL, "step-video-t2v-eval", "Step-Video-T2V-Eval"),
    "moviegen": (Benchmark.Kind.MOVIEGEN, "moviegen-video-bench", "Movie Gen Video Bench"),
}


@dataclass(frozen=True)
class BenchmarkLoadResult:
    benchmark: Benchmark
    created: bool
    prompt_count: int


def _prompt_signature(parsed: ParsedBenchmark) -> list[tuple]:
    return [
        (p.position, p.text, p.language, p.category, tuple(sorted(p.tags)), p.motion_level)
        for p in parsed.prompts
    ]


def _stored_signature(benchmark: Benchmark) -> list[tuple]:
    prompts = benchmark.prompts.select_related("category").prefetch_related("tags").order_by("position")
    return [
        (
            p.position,
            p.text,
            p.language,
            p.category.name if p.category else "",
            tuple(sorted(t.name for t in p.tags.all())),
            p.motion_level,
        )
        for p in prompts
    ]


def load_benchmark(
    path: Path, *, fmt: str | None = None, slug: str | None = None, name: str | None = None
) -> BenchmarkLoadResult:
    """Load a prompt file as a benchmark. Loading the same file again changes nothing; loading different
    prompts under an existing slug is refused rather than silently mixing two versions."""
    parsed = parse_benchmark_file(Path(path), fmt)
    kind, default_slug, default_name = BENCHMARK_KINDS.get(
        parsed.format,
        (Benchmark.Kind.GENERIC, slugify(Path(path).stem)[:100] or "benchmark", Path(path).stem),
    )
    slug = slug or default_slug
    with transaction.atomic():
        existing = Benchmark.objects.select_for_update().filter(slug=slug).first()
        if existing is not None:
            if _stored_signature(existing) != _prompt_signature(parsed):
                raise GenerationError(
                    f"benchmark {slug!r} is already loaded with different prompts; "
                    "load this file under another slug (--slug) to keep both"
                )
            return BenchmarkLoadResult(existing, False, len(parsed.prompts))
        benchmark = Benchmark.objects.create(
            slug=slug, name=name or default_name, kind=kind, source=str(path)
        )
        categories = {
            category_name: Category.objects.create(benchmark=benchmark, name=category_name, position=i)
            for i, category_name in enumerate(parsed.categories, start=1)
        }
        all_tags = sorted({t for p in parsed.prompts for t in p.tags})
        tags = {
            tag_name: Tag.objects.create(
                benchmark=benchmark, name=tag_name, group=parsed.tag_groups.get(tag_name, "")
            )
            for tag_name in all_tags
        }
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(
                    benchmark=benchmark,
                    position=p.position,
                    text=p.text,
                    language=p.language,
                    category=categories.get(p.category),
                    motion_level=p.motion_level,
                )
                for p in parsed.prompts
            ]
        )
        if not all(prompt.pk for prompt in prompts):  # databases that do not return ids from bulk inserts
            prompts = list(benchmark.prompts.order_by("position"))
        through = Prompt.tags.through
        through.objects.bulk_create(
            [
                through(prompt_id=prompt.pk, tag_id=tags[tag].pk)
                for prompt, parsed_prompt in zip(prompts, parsed.prompts, strict=True)
                for tag in parsed_prompt.tags
            ]
        )
    return BenchmarkLoadResult(benchmark, True, len(parsed.prompts))


# ---------------------------------------------------------------- models and refusals


def create_video_model(
    *,
    name: str,
    version: str = "",
    kind: str = VideoModel.Kind.CHECKPOINT,
    description: str = "",
    checkpoint: str = "",
    base_model: VideoModel | None = None,
    backend: str = "",
    adapter: str = "",
    backend_options: dict | None = None,
    default_settings: dict | None = None,
) -> VideoModel:
    """A model row. With a backend it can be generated here: the checkpoint folder (or, for a tuned model
    with only an adapter, its base model's) is checked when a run is planned."""
    from .backends import BACKENDS

    name, version = name.strip(), version.strip()
    if not name:
        raise GenerationError("a video model needs a name")
    backend, adapter = (backend or "").strip(), (adapter or "").strip()
    if backend and backend not in BACKENDS:
        raise GenerationError(f"unknown backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    for label, value in (("backend options", backend_options), ("default settings", default_settings)):
        if value is not None and not isinstance(value, dict):
            raise GenerationError(f"{label} must be a JSON object")
    if adapter and not (checkpoint or (base_model and base_model.checkpoint)):
        raise GenerationError(
            "a model with an adapter needs a checkpoint folder or a base model that has one"
        )
    if VideoModel.objects.filter(name=name, version=version).exists():
        raise GenerationError(f"a model named {name!r} with version {version!r} already exists")
    return VideoModel.objects.create(
        name=name,
        version=version,
        kind=kind,
        description=description,
        checkpoint=checkpoint,
        base_model=base_model,
        backend=backend,
        adapter=adapter,
        backend_options=backend_options or {},
        default_settings=default_settings or {},
    )


def mark_refused(*, model: VideoModel, prompt: Prompt, reason: str = "") -> Refusal:
    if Video.objects.filter(model=model, prompt=prompt).exists():
        raise GenerationError(
            f"{model} already has a video for prompt {prompt.position}; delete it before marking a refusal"
        )
    refusal, _ = Refusal.objects.get_or_create(model=model, prompt=prompt, defaults={"reason": reason[:500]})
    return refusal


# ---------------------------------------------------------------- the video library


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def _shard(public_id: str) -> str:
    return public_id[:2]


def original_relpath(public_id: str, suffix: str) -> str:
    suffix = suffix.lower() if suffix and len(suffix) <= 6 and suffix[1:].isalnum() else ".bin"
    return f"originals/{_shard(public_id)}/{public_id}{suffix}"


def playable_relpath(public_id: str) -> str:
    return f"videos/{_shard(public_id)}/{public_id}.mp4"


def poster_relpath(public_id: str) -> str:
    return f"posters/{_shard(public_id)}/{public_id}.jpg"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_atomically(src: Path, dst: Path) -> None:
    """Copy so that `dst` is either absent or complete, whatever happens mid-copy."""
    tmp = temporary_beside(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_video_file(path: Path) -> ProbedVideo:
    """Decode the file once; raise GenerationError naming the problem if it is not a usable video."""
    try:
        return probe(path, max_bytes=settings.EVALSITE_MAX_VIDEO_BYTES)
    except VideoRejected as exc:
        raise GenerationError(str(exc)) from exc


class ProvenanceConflict(GenerationError):
    """The file is already in the library for this model and prompt, recorded as made differently."""


def provenance_conflict(
    existing: Video, *, seed: int | None, noise_id: str, generation_settings: dict | None
) -> str | None:
    """What a new record of a file the library holds says differently (given values only), or None."""
    differences = []
    if seed is not None and seed != existing.seed:
        differences.append(f"seed {existing.seed}, not {seed}")
    if noise_id and noise_id != existing.noise_id:
        differences.append(f"noise id {existing.noise_id!r}, not {noise_id!r}")
    if generation_settings and generation_settings != existing.generation_settings:
        differences.append("other generation settings")
    if not differences:
        return None
    return (
        f"this file is already in the library as video {existing.pk} ({existing.model}, prompt "
        f"{existing.prompt.position}) with {'; '.join(differences)}; the same file cannot have two "
        "provenances — correct the existing video or upload the file that was made this way"
    )


def add_video(
    *,
    model: VideoModel,
    prompt: Prompt,
    source_path: Path,
    original_name: str,
    source: str,
    seed: int | None = None,
    noise_id: str = "",
    generation_settings: dict | None = None,
    content_sha256: str | None = None,
    settings_hash: str = "",
    generation_record: dict | None = None,
) -> tuple[Video, bool]:
    """Bring one file into the library (not yet transcoded). Idempotent: the same file for the same model
    and prompt returns the existing video, and a run interrupted after the row was written finishes the copy.
    Returns (video, created)."""
    source_path = Path(source_path)
    sha = content_sha256 or file_sha256(source_path)
    existing = Video.objects.filter(model=model, prompt=prompt, content_sha256=sha).first()
    if existing is not None:
        conflict = provenance_conflict(
            existing, seed=seed, noise_id=noise_id, generation_settings=generation_settings
        )
        if conflict:
            raise ProvenanceConflict(conflict)
        if not media_path(existing.original_file).exists():
            copy_atomically(source_path, media_path(existing.original_file))
        return existing, False
    if Refusal.objects.filter(model=model, prompt=prompt).exists():
        raise GenerationError(
            f"{model} is marked as having refused prompt {prompt.position}; remove the refusal first"
        )
    same_seed = Video.objects.filter(model=model, prompt=prompt, seed=seed, settings_hash=settings_hash)
    if seed is not None and same_seed.exists():
        raise GenerationError(
            f"{model} already has a different video for prompt {prompt.position} with seed {seed}"
        )
    info = check_video_file(source_path)
    video = Video(
        width=info.width,
        height=info.height,
        fps=info.fps,
        frame_count=info.frame_count,
        duration_s=info.duration_s,
        size_bytes=info.size_bytes,
        source_codec=info.codec,
        model=model,
        prompt=prompt,
        seed=seed,
        noise_id=noise_id or "",
        generation_settings=generation_settings or {},
        settings_hash=settings_hash,
        generation_record=generation_record or {},
        source=source,
        original_name=original_name[:500],
        content_sha256=sha,
    )
    video.original_file = original_relpath(video.public_id, Path(original_name).suffix)
    try:
        with transaction.atomic():
            video.save()
    except IntegrityError as exc:
        raise GenerationError(
            f"{model} already has this video (or this seed) for prompt {prompt.position}"
        ) from exc
    try:
        copy_atomically(source_path, media_path(video.original_file))
    except BaseException:
        video.delete()
        raise
    return video, True


def process_video(video: Video) -> Video:
    """Transcode the original to a browser-playable MP4 and a poster. Safe to run again: outputs are
    written atomically, and a ready video is left as it is. The recorded size, rate and length are the
    original's (measured when it was brought in); the playable copy may add a pixel of padding."""
    if video.status == Video.Status.READY:
        return video
    playable, poster = playable_relpath(video.public_id), poster_relpath(video.public_id)
    try:
        transcode_for_browser(media_path(video.original_file), media_path(playable), media_path(poster))
    except VideoRejected as exc:
        Video.objects.filter(pk=video.pk).update(status=Video.Status.FAILED, error=str(exc))
        video.refresh_from_db()
        return video
    video.playable_file, video.poster_file = playable, poster
    video.status, video.error = Video.Status.READY, ""
    video.save(update_fields=["playable_file", "poster_file", "status", "error"])
    return video


def delete_video(video: Video) -> None:
    paths = [video.original_file, video.playable_file, video.poster_file]
    video.delete()
    for relative in paths:
        if relative:
            media_path(relative).unlink(missing_ok=True)
