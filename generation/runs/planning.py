"""Generation runs: plan (validate and count before anything is queued), start (one row per planned video,
fanned out to gpu-queue jobs in batches), cancel, retry the failed videos, and the progress every page and
the API show.

Settings are validated here through the backend's `Capabilities`, read from the checkpoint's config files
by the backend class (`capabilities_for`), never by loading weights in the web process. A backend class
without that reader is validated on the worker instead, and the plan says so.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from evalsite.job_titles import job_title

from ..models import Benchmark, GenerationItem, GenerationRun, Prompt, Video, VideoModel
from ..services import GenerationError

if TYPE_CHECKING:  # the backends (and torch) are imported only when a run is checked, not at start-up
    from ..backends import Capabilities

GENERATE_BATCH_TASK = "generation.tasks.generate_batch"
MAX_SEEDS_PER_PROMPT = 64
MAX_GRID_POINTS = 64
MAX_VIDEOS_PER_RUN = 20_000
MAX_BATCH_SIZE = 64
STEP_SETTINGS = ("steps", "num_inference_steps")


@dataclass
class RunSpec:
    """What a manager asks for. Prompts: every prompt of the benchmark, those of some categories, or an
    explicit list of positions. Variants: explicit seeds, k seeds per prompt (0..k-1), or shared noise:
    explicit noise seeds (the same for every prompt), explicit noise ids, or k noise seeds per prompt
    (drawn from the prompt, the same for every model, so an A/B pair shares them). Settings: one set, or a
    grid (the cartesian product of its lists) over it, both on top of the model's default settings."""

    model: VideoModel
    benchmark: Benchmark
    categories: Sequence[str] = ()
    prompt_positions: Sequence[int] = ()
    seeds: Sequence[int] = ()
    seeds_per_prompt: int = 0
    noise_seeds: Sequence[int] = ()
    noise_ids: Sequence[str] = ()
    noise_per_prompt: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    batch_size: int = 4
    skip_existing_variants: bool = False  # leave out a (prompt, seed/noise) the model already has a video for

    def as_json(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "prompt_positions": list(self.prompt_positions),
            "seeds": list(self.seeds),
            "seeds_per_prompt": self.seeds_per_prompt,
            "noise_seeds": list(self.noise_seeds),
            "noise_ids": list(self.noise_ids),
            "noise_per_prompt": self.noise_per_prompt,
            "settings": dict(self.settings),
            "grid": {name: list(values) for name, values in self.grid.items()},
            "skip_existing_variants": self.skip_existing_variants,
        }


@dataclass
class PlannedVideo:
    prompt: Prompt
    seed: int
    shared_noise: bool
    noise_id: str  # known when the backend's capabilities give the latent shape; else set by the worker
    settings: dict[str, Any]
    settings_hash: str


@dataclass
class RunPlan:
    spec: RunSpec
    backend: str
    checkpoint: str
    adapter: str
    prompts: list[Prompt]
    settings_points: list[dict[str, Any]]
    videos: list[PlannedVideo]
    already_planned: int
    validated_by: str
    seconds_per_step: float | None

    @property
    def total_steps(self) -> int | None:
        steps = [steps_of(video.settings) for video in self.videos]
        return None if any(s is None for s in steps) else sum(s for s in steps if s is not None)

    @property
    def estimate_seconds(self) -> float | None:
        total = self.total_steps
        if total is None or self.seconds_per_step is None:
            return None
        return total * self.seconds_per_step

    @property
    def batches(self) -> int:
        return -(-len(self.videos) // self.spec.batch_size)

    def report(self) -> dict[str, Any]:
        return {
            "model": self.spec.model.pk,
            "benchmark": self.spec.benchmark.slug,
            "backend": self.backend,
            "checkpoint": self.checkpoint,
            "adapter": self.adapter,
            "prompts": len(self.prompts),
            "variants_per_prompt": len(variants_of(self.spec, self.prompts[0])) if self.prompts else 0,
            "settings_points": self.settings_points,
            "videos": len(self.videos),
            "already_planned": self.already_planned,
            "batches": self.batches,
            "total_steps": self.total_steps,
            "seconds_per_step": self.seconds_per_step,
            "estimate_seconds": self.estimate_seconds,
            "validated_by": self.validated_by,
        }


# ---------------------------------------------------------------- settings


def settings_hash(resolved: Mapping[str, Any]) -> str:
    """The one hash of a video's resolved settings (keys sorted, compact JSON)."""
    text = json.dumps(dict(resolved), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def steps_of(settings: Mapping[str, Any]) -> int | None:
    for name in STEP_SETTINGS:
        if isinstance(settings.get(name), int):
            return settings[name]
    return None


def grid_points(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values on top of `base` (one point when the grid is empty)."""
    for name, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise GenerationError(f"grid: {name} needs a non-empty list of values")
    names = list(grid)
    points = [
        {**base, **dict(zip(names, combo, strict=True))}
        for combo in itertools.product(*(list(grid[name]) for name in names))
    ]
    if len(points) > MAX_GRID_POINTS:
        raise GenerationError(f"grid: {len(points)} combinations; at most {MAX_GRID_POINTS}")
    return points


def resolve_settings(capabilities: Capabilities | None, point: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every value checked by the backend's capabilities (as given without them).
    `negative_prompt` is kept beside the backend's own settings when it does not list it."""
    from ..backends import BackendError

    point = dict(point)
    negative = point.pop("negative_prompt", None)
    if capabilities is None:
        resolved = point
    else:
        try:
            if negative is not None and any(s.name == "negative_prompt" for s in capabilities.settings):
                point["negative_prompt"], negative = negative, None
            resolved = capabilities.validate(point)
        except BackendError as exc:
            raise GenerationError(f"settings: {exc}") from exc
    if negative is not None:
        resolved["negative_prompt"] = str(negative)
    return resolved


# ---------------------------------------------------------------- checkpoints and backends


def checkpoint_of(model: VideoModel) -> tuple[str, str]:
    """(checkpoint folder, adapter folder) a model is loaded from: a tuned model with only an adapter uses
    its base model's checkpoint."""
    checkpoint = model.checkpoint
    if not checkpoint and model.adapter and model.base_model is not None:
        checkpoint = model.base_model.checkpoint
    return checkpoint, model.adapter


def check_model(model: VideoModel) -> tuple[str, str, Capabilities | None]:
    """Check that a model can be generated here, cheaply (no weights are loaded): a known backend, an
    existing checkpoint folder (and adapter) and, where the backend reads it from config files, its
    capabilities. Raises GenerationError with what is wrong."""
    from ..backends import BackendError, backend_class

    if not model.backend:
        raise GenerationError(f"{model} has no generation backend; set one on its page")
    try:
        cls = backend_class(model.backend)
    except BackendError as exc:
        raise GenerationError(str(exc)) from exc
    except ImportError as exc:
        raise GenerationError(f"the {model.backend!r} backend is not installed here: {exc}") from exc
    checkpoint, adapter = checkpoint_of(model)
    if not checkpoint:
        raise GenerationError(f"{model} has no checkpoint folder")
    if not Path(checkpoint).is_dir():
        raise GenerationError(f"checkpoint folder {checkpoint} does not exist or is not a folder")
    if adapter and not Path(adapter).exists():
        raise GenerationError(f"adapter {adapter} does not exist")
    reader = getattr(cls, "capabilities_for", None)
    if reader is None:
        # Without a config reader, at least the backend module's folder check (diffusers' reads
        # model_index.json and lists the components' files; no weights) runs before anything is queued.
        folder_check = getattr(sys.modules[cls.__module__], "check_checkpoint_folder", None)
        if folder_check is not None:
            try:
                folder_check(Path(checkpoint))
            except BackendError as exc:
                raise GenerationError(str(exc)) from exc
        return checkpoint, adapter, recorded_capabilities(model)
    try:
        capabilities = reader(
            Path(checkpoint), adapter=Path(adapter) if adapter else None, options=model.backend_options or {}
        )
    except BackendError as exc:
        raise GenerationError(f"checkpoint {checkpoint}: {exc}") from exc
    except OSError as exc:
        raise GenerationError(f"checkpoint {checkpoint}: {exc}") from exc
    return checkpoint, adapter, capabilities


def capabilities_key(model: VideoModel) -> str:
    """What a model's capabilities depend on: backend, checkpoint, adapter and backend options."""
    checkpoint, adapter = checkpoint_of(model)
    return json.dumps([model.backend, checkpoint, adapter, model.backend_options or {}], sort_keys=True)


def capabilities_from_description(description: Mapping[str, Any]) -> Capabilities:
    """The `Capabilities` whose `describe()` this is (a family's own latent-frame mapping aside, so such a
    record checks settings but does not name shared noise)."""
    from ..backends import Capabilities, FrameRule, SettingSpec

    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    multiple, _, offset = str(description["frame_rule"]).partition("k")
    return Capabilities(
        family=description["family"],
        frame_rule=FrameRule(int(multiple), int(offset.lstrip("+") or 0)),
        resolution_multiple=int(description["resolution_multiple"]),
        latent_channels=int(description["latent_channels"]),
        spatial_compression=int(description["spatial_compression"]),
        temporal_compression=int(description["temporal_compression"]),
        sampler=str(description["sampler"]),
        settings=tuple(
            SettingSpec(
                name=spec["name"],
                kind=kinds[spec["type"]],
                default=spec["default"],
                minimum=spec["minimum"],
                maximum=spec["maximum"],
                choices=tuple(spec["choices"]) if spec["choices"] is not None else None,
                help=spec.get("help", ""),
            )
            for spec in description["settings"]
        ),
        supports_negative_prompt=bool(description.get("supports_negative_prompt", True)),
        max_batch_size=int(description.get("max_batch_size", 1)),
    )


def recorded_capabilities(model: VideoModel) -> Capabilities | None:
    """The capabilities a worker recorded when it last loaded this model as it is configured now."""
    record = model.capabilities_record or {}
    if record.get("key") != capabilities_key(model) or not record.get("capabilities"):
        return None
    return capabilities_from_description(record["capabilities"])


def record_capabilities(model: VideoModel, capabilities: Capabilities) -> None:
    """Called by a worker after loading a model: later runs of it are checked in the web process."""
    record = {"key": capabilities_key(model), "capabilities": capabilities.describe()}
    if model.capabilities_record != record:
        VideoModel.objects.filter(pk=model.pk).update(capabilities_record=record)
        model.capabilities_record = record


def checked_by(model: VideoModel) -> str:
    from ..backends import backend_class

    if getattr(backend_class(model.backend), "capabilities_for", None) is not None:
        return "backend capabilities"
    if recorded_capabilities(model) is not None:
        return "capabilities recorded by a worker"
    return "worker"


# ---------------------------------------------------------------- planning


def prompts_of(spec: RunSpec) -> list[Prompt]:
    prompts = Prompt.objects.filter(benchmark=spec.benchmark).select_related("category").order_by("position")
    if spec.categories and spec.prompt_positions:
        raise GenerationError("choose categories or a list of prompts, not both")
    if spec.categories:
        known = set(spec.benchmark.categories.values_list("name", flat=True))
        unknown = sorted(set(spec.categories) - known)
        if unknown:
            raise GenerationError(
                f"{spec.benchmark.slug} has no categor{'ies' if len(unknown) > 1 else 'y'} {unknown}"
            )
        prompts = prompts.filter(category__name__in=list(spec.categories))
    if spec.prompt_positions:
        positions = [int(p) for p in spec.prompt_positions]
        prompts = prompts.filter(position__in=positions)
        missing = sorted(set(positions) - {p.position for p in prompts})
        if missing:
            raise GenerationError(f"{spec.benchmark.slug} has no prompt at position(s) {missing}")
    prompts_list = list(prompts)
    if not prompts_list:
        raise GenerationError("no prompts to generate for")
    return prompts_list


def prompt_noise_seed(prompt: Prompt, index: int) -> int:
    """The i-th shared-noise seed of a prompt (k noise seeds per prompt): the same for every model."""
    key = f"{prompt.benchmark.slug}/{prompt.position}/{index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") >> 1


def _noise_seed_of(noise_id: str) -> int:
    from ..backends import BackendError
    from ..backends.noise import parse_noise_id

    try:
        return parse_noise_id(noise_id)[0]
    except BackendError as exc:
        raise GenerationError(str(exc)) from exc


def _check_variants(spec: RunSpec) -> None:
    given = [
        bool(spec.seeds),
        spec.seeds_per_prompt > 0,
        bool(spec.noise_seeds),
        bool(spec.noise_ids),
        spec.noise_per_prompt > 0,
    ]
    if sum(given) != 1:
        raise GenerationError(
            "give exactly one of: seeds, seeds per prompt, noise seeds, noise ids, noise ids per prompt"
        )
    for k, what in (
        (spec.seeds_per_prompt, "seeds per prompt"),
        (spec.noise_per_prompt, "noise ids per prompt"),
    ):
        if k < 0 or k > MAX_SEEDS_PER_PROMPT:
            raise GenerationError(f"{what} must be between 1 and {MAX_SEEDS_PER_PROMPT}")
    for listed in (spec.seeds, spec.noise_seeds, spec.noise_ids):
        if len(listed) > MAX_SEEDS_PER_PROMPT:
            raise GenerationError(f"at most {MAX_SEEDS_PER_PROMPT} seeds or noise ids per prompt")
        if len(set(listed)) != len(listed):
            raise GenerationError("a seed or noise id is listed twice")
    for seed in [*spec.seeds, *spec.noise_seeds]:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise GenerationError(f"seed {seed!r} is not an integer between 0 and 2^63-1")
    for noise_id in spec.noise_ids:
        if not isinstance(noise_id, str):
            raise GenerationError(f"noise id {noise_id!r} is not text")
        _noise_seed_of(noise_id)
    if not 1 <= spec.batch_size <= MAX_BATCH_SIZE:
        raise GenerationError(f"batch size must be between 1 and {MAX_BATCH_SIZE}")


def variants_of(spec: RunSpec, prompt: Prompt) -> list[tuple[int, bool, str]]:
    """(seed, shared noise?, the noise id asked for) of each video a prompt gets."""
    if spec.seeds:
        return [(int(seed), False, "") for seed in spec.seeds]
    if spec.seeds_per_prompt:
        return [(seed, False, "") for seed in range(spec.seeds_per_prompt)]
    if spec.noise_seeds:
        return [(int(seed), True, "") for seed in spec.noise_seeds]
    if spec.noise_ids:
        return [(_noise_seed_of(noise_id), True, noise_id) for noise_id in spec.noise_ids]
    return [(prompt_noise_seed(prompt, i), True, "") for i in range(spec.noise_per_prompt)]


def noise_id_for(capabilities: Capabilities, seed: int, settings: Mapping[str, Any], asked: str = "") -> str:
    """The noise id of a seed's initial latents at these settings; a noise id asked for must be it."""
    from ..backends.noise import noise_id

    shape = capabilities.latent_shape(
        height=settings["height"], width=settings["width"], frames=settings["frames"]
    )
    value = noise_id(seed, shape)
    if asked and asked != value:
        raise GenerationError(
            f"noise id {asked} does not fit this model and size: its latents would be {value}"
        )
    return value


def seconds_per_step(model: VideoModel) -> float | None:
    """Median seconds per denoising step of this model's last finished videos (load time included)."""
    done = (
        GenerationItem.objects.filter(
            model=model, status=GenerationItem.Status.DONE, started_at__isnull=False, steps_total__gt=0
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at", "steps_total")[:50]
    )
    rates = [(end - start).total_seconds() / steps for start, end, steps in done if end and steps]
    return statistics.median(rates) if rates else None


def plan_run(spec: RunSpec) -> RunPlan:
    """Validate a run and list the videos it would make, without writing anything. Raises GenerationError."""
    checkpoint, adapter, capabilities = check_model(spec.model)
    validated_by = checked_by(spec.model)
    names_noise = validated_by == "backend capabilities"  # a record lacks a family's own latent-frame rule
    _check_variants(spec)
    prompts = prompts_of(spec)
    base = {**(spec.model.default_settings or {}), **dict(spec.settings)}
    points = [resolve_settings(capabilities, point) for point in grid_points(base, spec.grid)]
    hashes = [settings_hash(point) for point in points]
    if len(set(hashes)) != len(hashes):
        raise GenerationError("two grid points resolve to the same settings")
    wanted: list[PlannedVideo] = [
        PlannedVideo(
            prompt,
            seed,
            shared,
            noise_id_for(capabilities, seed, point, asked) if shared and names_noise else asked,
            point,
            digest,
        )
        for point, digest in zip(points, hashes, strict=True)
        for prompt in prompts
        for seed, shared, asked in variants_of(spec, prompt)
    ]
    if len(wanted) > MAX_VIDEOS_PER_RUN:
        raise GenerationError(f"{len(wanted)} videos; a run makes at most {MAX_VIDEOS_PER_RUN}")
    planned = set(
        GenerationItem.objects.filter(
            model=spec.model, prompt__in=prompts, settings_hash__in=hashes
        ).values_list("prompt_id", "seed", "settings_hash")
    )
    if spec.skip_existing_variants:
        made = Video.objects.filter(model=spec.model, prompt__in=prompts, seed__isnull=False)
        for prompt_id, seed in made.values_list("prompt_id", "seed"):
            planned.update((prompt_id, seed, digest) for digest in hashes)
    videos = [v for v in wanted if (v.prompt.pk, v.seed, v.settings_hash) not in planned]
    return RunPlan(
        spec=spec,
        backend=spec.model.backend,
        checkpoint=checkpoint,
        adapter=adapter,
        prompts=prompts,
        settings_points=points,
        videos=videos,
        already_planned=len(wanted) - len(videos),
        validated_by=validated_by,
        seconds_per_step=seconds_per_step(spec.model),
    )


# ---------------------------------------------------------------- starting, cancelling, retrying


def _queue_batches(run: GenerationRun, items: list[GenerationItem], *, user=None) -> int:
    """Fan items out to gpu-queue jobs of `run.batch_size` videos (grouped by settings). The one place a
    generation job is started."""
    from evalsite.jobs import start_job

    ordered = sorted(items, key=lambda i: (i.settings_hash, i.prompt.position, i.seed))
    batches = [ordered[i : i + run.batch_size] for i in range(0, len(ordered), run.batch_size)]
    for number, batch in enumerate(batches, start=1):
        job = start_job(
            GENERATE_BATCH_TASK,
            title=job_title(
                "generation_batch", run=run.pk, number=number, batches=len(batches), videos=len(batch)
            ),
            params={"run_id": run.pk, "item_ids": [item.pk for item in batch]},
            created_by=user,
        )
        GenerationItem.objects.filter(pk__in=[item.pk for item in batch]).update(job=job)
    return len(batches)


def start_run(spec: RunSpec, *, user=None) -> GenerationRun:
    """Plan, then store the run and one row per video and queue its batches, all or nothing."""
    plan = plan_run(spec)
    if not plan.videos:
        raise GenerationError(
            f"nothing to generate: all {plan.already_planned} videos are already planned or made"
        )
    try:
        with transaction.atomic():
            run = GenerationRun.objects.create(
                model=spec.model,
                benchmark=spec.benchmark,
                spec=spec.as_json(),
                backend=plan.backend,
                checkpoint=plan.checkpoint,
                adapter=plan.adapter,
                batch_size=spec.batch_size,
                created_by=user if user is not None and user.is_authenticated else None,
            )
            items = GenerationItem.objects.bulk_create(
                GenerationItem(
                    run=run,
                    model=spec.model,
                    prompt=video.prompt,
                    seed=video.seed,
                    shared_noise=video.shared_noise,
                    noise_id=video.noise_id,
                    settings=video.settings,
                    settings_hash=video.settings_hash,
                    steps_total=steps_of(video.settings),
                )
                for video in plan.videos
            )
            if not all(item.pk for item in items):
                items = list(run.items.select_related("prompt"))
            _queue_batches(run, items, user=user)
    except IntegrityError as exc:
        raise GenerationError(
            "another run was started for some of these videos at the same time; plan again"
        ) from exc
    return run


def _cancel_jobs(job_ids: set) -> None:
    from evalsite.jobs import JobStateError, cancel_job
    from evalsite.models import Job

    for job in Job.objects.filter(pk__in=job_ids).exclude(status__in=Job.FINISHED):
        try:
            cancel_job(job)
        except JobStateError:
            pass  # it finished meanwhile


def cancel_run(run: GenerationRun) -> GenerationRun:
    """Stop a run: queued videos are cancelled at once, a video being generated stops at its next step."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(pk=run.pk)
        open_items = run.items.filter(
            status__in=[GenerationItem.Status.QUEUED, GenerationItem.Status.RUNNING]
        )
        if not open_items.exists():
            raise GenerationError(f"run {run.pk} has nothing left to cancel")
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        job_ids = set(open_items.exclude(job=None).values_list("job_id", flat=True))
        run.items.filter(status=GenerationItem.Status.QUEUED).update(
            status=GenerationItem.Status.CANCELLED, finished_at=timezone.now()
        )
        _cancel_jobs(job_ids)
    return refresh_run_status(run)


def retry_failed(run: GenerationRun, *, user=None) -> GenerationRun:
    """Queue the run's failed videos again (and only those)."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(pk=run.pk)
        failed = list(run.items.filter(status=GenerationItem.Status.FAILED).select_related("prompt"))
        if not failed:
            raise GenerationError(f"run {run.pk} has no failed videos to retry")
        if run.items.filter(status=GenerationItem.Status.RUNNING).exists() and run.cancel_requested:
            raise GenerationError("the run is still stopping; retry once its last video has stopped")
        check_model(run.model)
        GenerationItem.objects.filter(pk__in=[i.pk for i in failed]).update(
            status=GenerationItem.Status.QUEUED,
            error="",
            oom_hint="",
            attempts=0,
            steps_done=0,
            started_at=None,
            finished_at=None,
        )
        run.cancel_requested = False
        run.finished_at = None
        run.save(update_fields=["cancel_requested", "finished_at"])
        _queue_batches(run, failed, user=user)
    return refresh_run_status(run)


# ---------------------------------------------------------------- status and progress


def status_counts(run: GenerationRun) -> dict[str, int]:
    counts = dict(run.items.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {status: counts.get(status, 0) for status in GenerationItem.Status.values}


def run_progress(run: GenerationRun) -> dict[str, Any]:
    """The one progress figure of a run: finished videos, plus the finished share of the steps of each
    video being generated, over all videos."""
    counts = status_counts(run)
    total = sum(counts.values())
    finished = sum(counts[s] for s in GenerationItem.FINISHED)
    running = run.items.filter(status=GenerationItem.Status.RUNNING, steps_total__gt=0).values_list(
        "steps_done", "steps_total"
    )
    partial = sum(min(done, steps) / steps for done, steps in running)
    return {
        "videos": total,
        "finished": finished,
        "done": counts[GenerationItem.Status.DONE],
        "counts": counts,
        "percent": round(100 * (finished + partial) / total, 1) if total else 100.0,
    }


def refresh_run_status(run: GenerationRun) -> GenerationRun:
    """Derive the run's status from its videos (called after every video and every action)."""
    counts = status_counts(run)
    S = GenerationItem.Status
    if counts[S.RUNNING] or (counts[S.QUEUED] and counts[S.DONE] + counts[S.FAILED] + counts[S.REFUSED]):
        status = GenerationRun.Status.RUNNING
    elif counts[S.QUEUED]:
        status = GenerationRun.Status.QUEUED
    elif counts[S.CANCELLED]:
        status = GenerationRun.Status.CANCELLED
    elif counts[S.FAILED] or counts[S.REFUSED]:
        status = GenerationRun.Status.DONE_WITH_PROBLEMS
    else:
        status = GenerationRun.Status.DONE
    finished_at = (
        None if status in (GenerationRun.Status.QUEUED, GenerationRun.Status.RUNNING) else timezone.now()
    )
    GenerationRun.objects.filter(pk=run.pk).exclude(status=status).update(
        status=status, finished_at=finished_at
    )
    run.refresh_from_db()
    return run
