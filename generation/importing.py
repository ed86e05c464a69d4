"""Bulk import of videos from a folder, a manifest (CSV or JSONL) or a zip archive.

Import is two steps: `plan_import` reads and checks everything (manifest rows, models, prompts, paths,
and each file by decoding it) and `run_import` brings the planned files in. A plan with any problem
imports nothing; a dry run is the plan alone. `run_import` is idempotent, so a job killed half-way
resumes without duplicating a video.

Manifest columns (CSV header or JSONL keys): `path` (relative to the import folder), `model`, optional
`model_version`, `benchmark` (slug; or one for the whole import), `prompt_position` or `prompt` (exact text),
`seed`, `noise_id`, `settings` (a JSON object), `refused` (true/false) and `refusal_reason` (a refused row
has no path). Without a manifest, a folder is read as `<model>/<position>[_seed<N>].<ext>`, or
`<position>[_seed<N>].<ext>` when one model is named for the whole import.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction

from .loaders import FileFormatError, csv_records, jsonl_records
from .models import Benchmark, Prompt, Refusal, Video, VideoModel
from .services import (
    GenerationError,
    add_video,
    check_video_file,
    delete_video,
    file_sha256,
    process_video,
    provenance_conflict,
)

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v", ".mpg", ".mpeg"}
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
FOLDER_FILE_RE = re.compile(r"^(?P<position>\d+)(?:[_-]seed[_-]?(?P<seed>-?\d+))?$", re.IGNORECASE)
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "y"}, {"", "0", "false", "no", "n"}
ProgressFn = Callable[[int, int, str], None]


@dataclass
class PlannedVideo:
    where: str
    relative_path: str
    model: VideoModel
    prompt: Prompt
    seed: int | None
    noise_id: str
    settings: dict
    sha256: str = ""
    already_present: bool = False


@dataclass
class PlannedRefusal:
    where: str
    model: VideoModel
    prompt: Prompt
    reason: str


@dataclass
class ImportPlan:
    root: Path
    videos: list[PlannedVideo] = field(default_factory=list)
    refusals: list[PlannedRefusal] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def report(self) -> dict:
        new = [v for v in self.videos if not v.already_present]
        return {
            "would_import": len(new),
            "already_present": len(self.videos) - len(new),
            "refusals": len(self.refusals),
            "errors": self.errors,
            "videos": [
                {
                    "where": v.where,
                    "path": v.relative_path,
                    "model": str(v.model),
                    "prompt": v.prompt.position,
                    "seed": v.seed,
                    "already_present": v.already_present,
                }
                for v in self.videos[:500]
            ],
        }


def safe_path(root: Path, relative: str) -> Path:
    """Resolve `relative` inside `root`, refusing absolute paths, `..` and links that lead outside."""
    if not relative or relative.strip() != relative:
        raise GenerationError(f"path {relative!r} is empty or has surrounding spaces")
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", relative) or ".." in pure.parts:
        raise GenerationError(f"path {relative!r} escapes the import folder")
    resolved = (root / pure).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise GenerationError(f"path {relative!r} escapes the import folder (through a link)")
    return resolved


def check_import_root(root: Path, allowed_roots: list[Path] | None) -> Path:
    root = Path(root).resolve()
    if not root.is_dir():
        raise GenerationError(f"{root} is not a folder")
    if allowed_roots is not None and not any(root.is_relative_to(a) for a in allowed_roots):
        raise GenerationError(
            f"{root} is outside the folders this site imports from ({', '.join(map(str, allowed_roots))}); "
            "set EVALSITE_IMPORT_ROOTS"
        )
    return root


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may expand to (settings EVALSITE_ARCHIVE_MAX_MB, _MAX_MEMBERS, _MAX_RATIO)."""

    max_bytes: int
    max_members: int
    max_ratio: float

    @classmethod
    def from_settings(cls) -> ArchiveLimits:
        return cls(
            max_bytes=settings.EVALSITE_ARCHIVE_MAX_BYTES,
            max_members=settings.EVALSITE_ARCHIVE_MAX_MEMBERS,
            max_ratio=settings.EVALSITE_ARCHIVE_MAX_RATIO,
        )


RATIO_CHECKED_ABOVE = 1024 * 1024  # small members (a manifest) may compress far better than video


def check_archive(zf: zipfile.ZipFile, archive_bytes: int, limits: ArchiveLimits) -> None:
    """Refuse an archive by what its directory declares, before anything is unpacked. Unpacking then
    writes at most the declared sizes (zipfile stops reading a member at its declared size)."""
    members = [info for info in zf.infolist() if not info.is_dir()]
    if len(members) > limits.max_members:
        raise GenerationError(
            f"holds {len(members)} files, over the limit of {limits.max_members} (EVALSITE_ARCHIVE_MAX_MEMBERS)"
        )
    total = sum(info.file_size for info in members)
    if total > limits.max_bytes:
        raise GenerationError(
            f"unpacks to {total / 2**20:.0f} MiB, over the limit of {limits.max_bytes / 2**20:.0f} MiB "
            "(EVALSITE_ARCHIVE_MAX_MB)"
        )
    for info in members:
        if info.file_size > RATIO_CHECKED_ABOVE and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise GenerationError(
                f"member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f} times, "
                f"over the limit of {limits.max_ratio:g} (EVALSITE_ARCHIVE_MAX_RATIO)"
            )
    if total > RATIO_CHECKED_ABOVE and total > limits.max_ratio * max(archive_bytes, 1):
        raise GenerationError(
            f"expands {total / max(archive_bytes, 1):.0f} times, over the limit of {limits.max_ratio:g} "
            "(EVALSITE_ARCHIVE_MAX_RATIO)"
        )


def extract_archive(
    archive: Path, destination: Path, *, limits: ArchiveLimits | None = None, shown_name: str | None = None
) -> Path:
    """Unpack a zip into `destination`, refusing members that would land outside it, links and huge
    expansions (`limits`, default: the settings). Unpacks into a sibling folder first, so `destination`
    appears only when complete. Errors name the archive as `shown_name` (the uploaded file's name)."""
    if destination.exists():
        return destination
    limits = limits or ArchiveLimits.from_settings()
    name = shown_name or archive.name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise GenerationError(f"{name}: not a readable zip archive") from exc
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with zf:
            check_archive(zf, archive.stat().st_size, limits)
            for info in zf.infolist():
                if info.is_dir():
                    continue
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise GenerationError(
                        f"archive member {info.filename!r} is a symbolic link; links are refused"
                    )
                target = safe_path(staging, info.filename)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except GenerationError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GenerationError(f"{name}: {exc}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GenerationError(f"{name}: a damaged or unsupported zip member ({exc})") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.rename(destination)
    return destination


def _read_manifest(path: Path) -> list[tuple[str, dict]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GenerationError(f"{path.name}: not UTF-8 text") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            records = jsonl_records(text)
        elif suffix == ".csv":
            records = csv_records(text, required_any={"model"})
        else:
            raise GenerationError(f"{path.name}: a manifest must be .csv or .jsonl")
    except FileFormatError as exc:
        raise GenerationError(f"{path.name}, {exc}") from exc
    return [(f"{path.name}, line {line}", record) for line, record in records]


def _folder_rows(root: Path, model_name: str | None) -> list[tuple[str, dict]]:
    rows = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        parts = PurePosixPath(relative).parts
        record: dict = {"path": relative}
        if model_name is not None:
            if len(parts) != 1:
                continue
            record["model"] = model_name
        elif len(parts) == 2:
            record["model"] = parts[0]
        else:
            rows.append(
                (relative, {"path": relative, "_error": "expected <model>/<position>[_seed<N>].<ext>"})
            )
            continue
        match = FOLDER_FILE_RE.match(path.stem)
        if not match:
            rows.append((relative, {**record, "_error": "file name must be <position>[_seed<N>]"}))
            continue
        record["prompt_position"] = match["position"]
        record["seed"] = match["seed"] or ""
        rows.append((relative, record))
    if not rows:
        raise GenerationError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) found in {root}")
    return rows


def check_db_limits(model: type[models.Model], **values: object) -> None:
    """Refuse values the database cannot store in `model`'s fields, read from the fields themselves
    (max_length, the backend's integer range), so that a checked plan cannot fail when it is saved."""
    problems = []
    for name, value in values.items():
        if value is None or value == "":
            continue
        field = model._meta.get_field(name)
        try:
            field.run_validators(value)
        except ValidationError as exc:
            shown = f"{value[:40]}…" if isinstance(value, str) and len(value) > 40 else value
            problems.append(f"{name} {shown!r}: {' '.join(exc.messages)}")
    if problems:
        raise GenerationError("; ".join(problems))


def _as_int(value: object, what: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise GenerationError(f"{what} must be a whole number, got {value!r}") from None


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise GenerationError(f"refused must be true or false, got {value!r}")


class _Resolver:
    def __init__(self, default_benchmark: Benchmark | None, create_models: bool):
        self.default_benchmark = default_benchmark
        self.create_models = create_models
        self.models: dict[tuple[str, str], VideoModel] = {}

    def model(self, name: object, version: object) -> VideoModel:
        name, version = str(name or "").strip(), str(version or "").strip()
        if not name:
            raise GenerationError("no model named")
        key = (name, version)
        check_db_limits(VideoModel, name=name, version=version)
        if key not in self.models:
            found = VideoModel.objects.filter(name=name, version=version).first()
            if found is None:
                if not self.create_models:
                    raise GenerationError(
                        f"unknown model {name!r}{f' version {version!r}' if version else ''}"
                    )
                found = VideoModel(name=name, version=version)  # saved only when the import runs
            self.models[key] = found
        return self.models[key]

    def prompt(self, record: dict) -> Prompt:
        slug = str(record.get("benchmark") or "").strip()
        benchmark = self.default_benchmark
        if slug:
            benchmark = Benchmark.objects.filter(slug=slug).first()
            if benchmark is None:
                raise GenerationError(f"unknown benchmark {slug!r}")
        if benchmark is None:
            raise GenerationError("no benchmark given (a 'benchmark' column or one for the whole import)")
        position = _as_int(record.get("prompt_position"), "prompt_position")
        if position is not None:
            check_db_limits(Prompt, position=position)
            prompt = benchmark.prompts.filter(position=position).first()
            if prompt is None:
                raise GenerationError(f"{benchmark.slug} has no prompt at position {position}")
            return prompt
        text = str(record.get("prompt") or "").strip()
        if not text:
            raise GenerationError("no prompt given (prompt_position or prompt)")
        matches = list(benchmark.prompts.filter(text=text)[:2])
        if len(matches) != 1:
            raise GenerationError(
                f"{'no' if not matches else 'more than one'} prompt in {benchmark.slug} has this text"
            )
        return matches[0]


def plan_import(
    root: Path,
    *,
    manifest: str | None = None,
    benchmark: Benchmark | None = None,
    model_name: str | None = None,
    create_models: bool = False,
    allowed_roots: list[Path] | None = None,
    progress: ProgressFn | None = None,
) -> ImportPlan:
    """Check everything an import would do, decoding each file once. Nothing is written."""
    root = check_import_root(root, allowed_roots)
    plan = ImportPlan(root=root)
    if manifest is None:
        manifest = next((name for name in MANIFEST_NAMES if (root / name).is_file()), None)
    rows = _read_manifest(safe_path(root, manifest)) if manifest else _folder_rows(root, model_name)
    resolver = _Resolver(benchmark, create_models)
    seen_files: dict[str, str] = {}
    seen_keys: dict[tuple, str] = {}
    for index, (where, record) in enumerate(rows, start=1):
        if progress:
            progress(index - 1, len(rows), f"checking {where}")
        try:
            if "_error" in record:
                raise GenerationError(record["_error"])
            model = resolver.model(record.get("model"), record.get("model_version"))
            prompt = resolver.prompt(record)
            if _as_bool(record.get("refused")):
                if record.get("path"):
                    raise GenerationError("a refused row must not name a video path")
                reason = str(record.get("refusal_reason") or "")
                check_db_limits(Refusal, reason=reason)
                plan.refusals.append(PlannedRefusal(where, model, prompt, reason))
                continue
            relative = str(record.get("path") or "")
            source = safe_path(root, relative)
            if not source.is_file():
                raise GenerationError(f"file {relative!r} not found")
            seed = _as_int(record.get("seed"), "seed")
            settings_value = record.get("settings") or {}
            if isinstance(settings_value, str):
                try:
                    settings_value = json.loads(settings_value)
                except json.JSONDecodeError as exc:
                    raise GenerationError(f"settings is not valid JSON ({exc.msg})") from None
            if not isinstance(settings_value, dict):
                raise GenerationError("settings must be a JSON object")
            noise_id = str(record.get("noise_id") or "")
            check_db_limits(Video, seed=seed, noise_id=noise_id, original_name=PurePosixPath(relative).name)
            if relative in seen_files:
                raise GenerationError(f"{relative!r} is listed twice (also at {seen_files[relative]})")
            seen_files[relative] = where
            if seed is not None:
                key = (str(model), prompt.pk, seed)
                if key in seen_keys:
                    raise GenerationError(
                        f"{model}, prompt {prompt.position}, seed {seed} appears twice (also at {seen_keys[key]})"
                    )
                seen_keys[key] = where
            planned = PlannedVideo(
                where,
                relative,
                model,
                prompt,
                seed,
                noise_id,
                settings_value,
                sha256=file_sha256(source),
            )
            present = (
                Video.objects.filter(model=model, prompt=prompt, content_sha256=planned.sha256)
                .select_related("model", "prompt")
                .first()
                if model.pk
                else None
            )
            planned.already_present = present is not None
            if present is not None:
                conflict = provenance_conflict(
                    present, seed=seed, noise_id=noise_id, generation_settings=settings_value
                )
                if conflict:
                    raise GenerationError(conflict)
            if not planned.already_present:
                if model.pk and Refusal.objects.filter(model=model, prompt=prompt).exists():
                    raise GenerationError(f"{model} is marked as having refused prompt {prompt.position}")
                if (
                    model.pk
                    and seed is not None
                    and Video.objects.filter(model=model, prompt=prompt, seed=seed, settings_hash="").exists()
                ):
                    raise GenerationError(
                        f"{model} already has a different video for prompt {prompt.position}, seed {seed}"
                    )
                check_video_file(source)
            plan.videos.append(planned)
        except GenerationError as exc:
            plan.errors.append(f"{where}: {exc}")
    if progress:
        progress(len(rows), len(rows), "checked")
    return plan


def run_import(
    plan: ImportPlan, *, source: str = Video.Source.IMPORT, progress: ProgressFn | None = None
) -> dict:
    """Bring in every planned video and refusal. Refuses a plan with errors. Safe to run again (a killed
    run resumes). All or nothing: when a video fails, what this run added (models, refusals, videos and
    their files) is removed again and the error raised."""
    if plan.errors:
        raise GenerationError(f"{len(plan.errors)} problem(s) found; nothing imported")
    added = _Added()
    try:
        return _run_import(plan, source=source, progress=progress, added=added)
    except BaseException:
        added.undo()
        raise


@dataclass
class _Added:
    models: list[VideoModel] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)

    def undo(self) -> None:
        for video in self.videos:
            delete_video(video)
        with transaction.atomic():
            Refusal.objects.filter(pk__in=[r.pk for r in self.refusals]).delete()
            for model in self.models:
                if not model.videos.exists():
                    model.delete()


def _run_import(plan: ImportPlan, *, source: str, progress: ProgressFn | None, added: _Added) -> dict:
    with transaction.atomic():
        for model in {id(p.model): p.model for p in [*plan.videos, *plan.refusals]}.values():
            if model.pk is None:
                existing = VideoModel.objects.filter(name=model.name, version=model.version).first()
                if existing is not None:
                    model.pk = existing.pk
                else:
                    model.save()
                    added.models.append(model)
        for refusal in plan.refusals:
            row, created = Refusal.objects.get_or_create(
                model=refusal.model, prompt=refusal.prompt, defaults={"reason": refusal.reason}
            )
            if created:
                added.refusals.append(row)
    imported = skipped = 0
    total = len(plan.videos)
    for index, planned in enumerate(plan.videos):
        if progress:
            progress(index, total, f"importing {planned.relative_path}")
        video, created = add_video(
            model=planned.model,
            prompt=planned.prompt,
            source_path=safe_path(plan.root, planned.relative_path),
            original_name=PurePosixPath(planned.relative_path).name,
            source=source,
            seed=planned.seed,
            noise_id=planned.noise_id,
            generation_settings=planned.settings,
            content_sha256=planned.sha256,
        )
        if created:
            added.videos.append(video)
        was_ready = video.status == Video.Status.READY
        video = process_video(video)
        if video.status == Video.Status.FAILED:
            raise GenerationError(f"{planned.where}: {video.error}")
        if created or not was_ready:
            imported += 1
        else:
            skipped += 1
    if progress:
        progress(total, total, "imported")
    return {"imported": imported, "already_present": skipped, "refusals": len(plan.refusals)}
