"""Training runs (reward model, Video-DPO) from a published export: create, run (the gpu job's body),
register the tuned model, evaluate it against its base, and score or pair videos with a reward model.

The job (`tasks.train_preference_model`) is a thin shell around `execute_training_run`, which is safe to
run again: pair latents are written once per (export, base model, encode settings) into a folder that
appears only when complete, and a Video-DPO run resumes from its latest checkpoint. The numbers come from
`preference/training/` (pure torch); this module only loads rows and files and stores figures.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import get_language, gettext, gettext_lazy

from evalsite.job_titles import job_title
from evalsite.jobs import JobCancelled, JobError, JobRun, cancel_job, retry_job
from generation.models import Video, VideoModel

from .export import MANIFEST_NAME, file_name, read_jsonl, read_parquet
from .models import PreferenceExport, TrainingRun, TrainingStep

DPO_FIGURES = (
    "loss",
    "implicit_accuracy",
    "margin",
    "policy_chosen_error",
    "policy_rejected_error",
    "reference_chosen_error",
    "reference_rejected_error",
    "grad_norm",
    "learning_rate",
)
# How exported videos become latents: the size they are resized to, and the text length.
ENCODE_DEFAULTS: dict[str, Any] = {"height": 480, "width": 832, "frames": 81, "max_sequence_length": 226}
# What a reward-model run adds to the trainer's settings: whether it is evaluated on the export's
# validation split (it then needs one), and how close two mean rubric scores count as a tie.
REWARD_RUN_DEFAULTS: dict[str, Any] = {"evaluate": True, "score_tie_margin": 0.0}
# The reward model's evaluation table: the methods in the order the page shows them.
REWARD_METHODS: tuple[tuple[str, str], ...] = (
    ("reward_model", gettext_lazy("Reward model")),
    ("clip_score", gettext_lazy("CLIP score alone")),
    ("motion_score", gettext_lazy("Motion score alone")),
    ("chance", gettext_lazy("Chance")),
)
REWARD_SCORE_METRIC = "reward_score"
TRAIN_TASK = "preference.tasks.train_preference_model"


class TrainingRunError(ValueError):
    """A request a training run cannot carry out; the message is for the person who asked."""


# --------------------------------------------------------------------------------------------- creation


def manifest_sha256(export: PreferenceExport) -> str:
    path = Path(settings.MEDIA_ROOT) / export.folder / MANIFEST_NAME
    if not path.is_file():
        raise TrainingRunError(f"export {export} has no {MANIFEST_NAME} on disk")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resolve_settings(kind: str, given: Mapping[str, Any]) -> dict[str, Any]:
    from .training.reward_model import RewardConfig
    from .training.video_dpo import DPOConfig

    if not isinstance(given, Mapping):
        raise TrainingRunError("settings must be a JSON object")
    config_class: Any = DPOConfig if kind == TrainingRun.Kind.VIDEO_DPO else RewardConfig
    extra = dict(ENCODE_DEFAULTS if kind == TrainingRun.Kind.VIDEO_DPO else REWARD_RUN_DEFAULTS)
    known = {f.name: f for f in fields(config_class)} | {name: None for name in extra}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TrainingRunError(f"unknown settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    trainer_values = {}
    for name, value in given.items():
        default = getattr(config_class(), name, None) if name not in extra else extra[name]
        expected = type(default)
        if expected is bool:
            if not isinstance(value, bool):
                raise TrainingRunError(f"{name} must be true or false")
        elif expected in (int, float):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (expected is int and value != int(value))
            ):
                raise TrainingRunError(f"{name} must be {'an integer' if expected is int else 'a number'}")
            value = expected(value)
        elif not isinstance(value, expected):
            raise TrainingRunError(f"{name} must be a {expected.__name__}")
        if name in extra:
            if expected is int and value < 1:
                raise TrainingRunError(f"{name} must be at least 1")
            if expected is float and value < 0:
                raise TrainingRunError(f"{name} must be at least 0")
            extra[name] = value
        else:
            trainer_values[name] = value
    try:
        config = config_class(**trainer_values)
    except (ValueError, TypeError) as exc:
        raise TrainingRunError(str(exc)) from None
    return {**config.to_dict(), **extra}


def create_training_run(
    *,
    kind: str,
    export: PreferenceExport,
    base_model: VideoModel,
    settings_given: Mapping[str, Any] | None = None,
    user=None,
) -> TrainingRun:
    """Record a run and queue its gpu job. Raises TrainingRunError, storing nothing, on bad input."""
    from evalsite.jobs import start_job

    if kind not in TrainingRun.Kind.values:
        raise TrainingRunError(f"unknown kind {kind!r}; use one of {', '.join(TrainingRun.Kind.values)}")
    if not isinstance(export, PreferenceExport) or not export.is_ready:
        raise TrainingRunError("a training run starts from a published (ready) export version")
    if not isinstance(base_model, VideoModel):
        raise TrainingRunError("choose a base model")
    if kind == TrainingRun.Kind.VIDEO_DPO:
        from generation.runs.planning import checkpoint_of

        checkpoint, _ = checkpoint_of(base_model)
        if base_model.backend != "diffusers" or not checkpoint or not Path(checkpoint).is_dir():
            raise TrainingRunError(
                f"Video-DPO tunes a diffusers checkpoint folder; {base_model} has "
                f"{'backend ' + repr(base_model.backend) if base_model.backend else 'no backend'} "
                f"and checkpoint {checkpoint or '(none)'}"
            )
        if base_model.adapter:
            raise TrainingRunError(f"{base_model} already carries an adapter; tune its base model instead")
    resolved = _resolve_settings(kind, settings_given or {})
    if kind == TrainingRun.Kind.REWARD_MODEL and resolved["evaluate"]:
        check_validation_split(export)
    sha = manifest_sha256(export)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            kind=kind,
            export=export,
            export_sha256=sha,
            base_model=base_model,
            config=resolved,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        run.folder = f"training/run-{run.pk}"
        run.job = start_job(
            TRAIN_TASK,
            title=job_title(f"{run.kind}_run", run=run.pk, export=export),
            params={"training_run_id": run.pk},
            created_by=user,
        )
        run.save(update_fields=["folder", "job"])
    return run


def check_validation_split(export: PreferenceExport) -> None:
    """An evaluated run needs validation records: refuse an export whose validation split is empty."""
    counts = (export.manifest or {}).get("counts", {})
    validation = counts.get("records", {}).get("validation", 0) + counts.get("scored_videos", {}).get(
        "validation", 0
    )
    if not validation:
        fraction = (export.options or {}).get("validation_fraction", "?")
        raise TrainingRunError(
            f"export {export} has an empty validation split (validation fraction {fraction}), and the run "
            "is evaluated on it: publish an export with a larger validation fraction, or set evaluate to "
            "false to train without an evaluation"
        )


def cancel_training_run(run: TrainingRun) -> TrainingRun:
    if run.job is None:
        raise TrainingRunError("this run has no job")
    cancel_job(run.job)
    run.refresh_from_db()
    return run


def retry_training_run(run: TrainingRun) -> TrainingRun:
    """Queue a failed or cancelled run again; a Video-DPO run resumes from its latest checkpoint."""
    if run.job is None:
        raise TrainingRunError("this run has no job")
    retry_job(run.job)
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.QUEUED, finished_at=None)
    run.refresh_from_db()
    return run


# ------------------------------------------------------------------------------------------- the figures


def record_step(run: TrainingRun, step: int, values: Mapping[str, float], split: str = "train") -> None:
    """Store one step's figures; a step logged again (after a resume) replaces the earlier line."""
    TrainingStep.objects.update_or_create(
        run=run, step=step, split=split, defaults={"values": {k: float(v) for k, v in values.items()}}
    )


def run_warnings(run: TrainingRun) -> list[dict[str, Any]]:
    """The trainer's warnings stored on the run ([{"step": n, "message": ...}], by step)."""
    stored = TrainingRun.objects.filter(pk=run.pk).values_list("figures", flat=True).first() or {}
    return list(stored.get("warnings", []))


def record_warning(run: TrainingRun, step: int, message: str) -> None:
    """Keep a trainer warning (say, the chosen error rising with the rejected one) on the run, while it
    trains, for the run's page; a step warned again after a resume replaces its earlier warning."""
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        warnings = [w for w in locked.figures.get("warnings", []) if w.get("step") != step]
        warnings = sorted([*warnings, {"step": int(step), "message": str(message)}], key=lambda w: w["step"])
        locked.figures = {**locked.figures, "warnings": warnings}
        locked.save(update_fields=["figures"])
    run.figures = locked.figures


def curves(run: TrainingRun) -> dict[str, Any]:
    """{"train": {figure: [[step, value], ...]}, "validation": {...}}: what the page plots and the API serves."""
    out: dict[str, dict[str, list[list[float]]]] = {"train": {}, "validation": {}}
    for row in run.steps.order_by("split", "step"):
        for name, value in row.values.items():
            out.setdefault(row.split, {}).setdefault(name, []).append([row.step, value])
    return out


# ------------------------------------------------------------------------------------------ the job body


def _mark(run: TrainingRun, status: str, **fields_: Any) -> None:
    values = {"status": status, **fields_}
    if status in (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED):
        values["finished_at"] = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(**values)
    for name, value in values.items():
        setattr(run, name, value)


def execute_training_run(run: TrainingRun, job: JobRun) -> dict[str, Any]:
    if run.status == TrainingRun.Status.SUCCEEDED:
        return {"training_run_id": run.pk, "figures": run.figures}
    if manifest_sha256(run.export) != run.export_sha256:
        raise JobError(f"export {run.export}'s manifest changed since the run was created")
    _mark(run, TrainingRun.Status.RUNNING)
    try:
        if run.kind == TrainingRun.Kind.VIDEO_DPO:
            figures = _run_video_dpo(run, job)
        else:
            figures = _run_reward_model(run, job)
    except JobCancelled:
        _mark(run, TrainingRun.Status.CANCELLED)
        raise
    except Exception:
        _mark(run, TrainingRun.Status.FAILED)
        raise
    figures = _json_safe(figures)
    _mark(run, TrainingRun.Status.SUCCEEDED, figures=figures)
    return {"training_run_id": run.pk, "figures": figures}


def _media(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def export_records(
    export: PreferenceExport, dataset: str, split: str, *, missing_ok: bool = False
) -> list[dict[str, Any]]:
    """One dataset's records of one split, from whichever format the export wrote (with `missing_ok`,
    none when the export has no such file, as an on-policy export has no `scores`)."""
    folder = _media(export.folder)
    for fmt, reader in (("jsonl", read_jsonl), ("parquet", lambda p: read_parquet(p, dataset))):
        path = folder / file_name(dataset, split, fmt)
        if path.is_file():
            return list(reader(path))
    if missing_ok:
        return []
    raise JobError(f"export {export} has no {dataset} file for the {split} split")


def _load_backend(model: VideoModel, *, adapter: str | None = None) -> Any:
    import torch

    from generation.backends.diffusers_backend import DiffusersBackend
    from generation.runs.planning import checkpoint_of

    checkpoint, _ = checkpoint_of(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return DiffusersBackend.load(
        Path(checkpoint),
        device=device,
        adapter=Path(adapter) if adapter else None,
        options=model.backend_options,
    )


def latents_folder(run: TrainingRun) -> Path:
    """Where the pair latents of (export, base model, encode settings) live: shared by runs that agree."""
    encode = {name: run.config[name] for name in ENCODE_DEFAULTS}
    key = hashlib.sha256(
        json.dumps(
            {"export": run.export_sha256, "model": run.base_model_id, **encode}, sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    return _media(f"training/latents/{run.export.name}/v{run.export.version}/{key}")


def prepare_pair_latents(run: TrainingRun, pipe: Any, progress: Callable[[int, int, str], None]) -> Path:
    """VAE latents of every exported pair's videos and their prompt's text embeddings, written once."""
    from metrics.video.decode import decode_video

    from .training.encode import encode_text, encode_video
    from .training.video_dpo import write_pair_latents

    final = latents_folder(run)
    if (final / "index.jsonl").is_file():
        return final
    records = [
        (split, r) for split in ("train", "validation") for r in export_records(run.export, "pairs", split)
    ]
    if not any(r["label"] == 1.0 for split, r in records if split == "train"):
        raise JobError(f"export {run.export} has no decided training pairs")
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    size = {"height": run.config["height"], "width": run.config["width"], "num_frames": run.config["frames"]}
    texts: dict[str, dict[str, Any]] = {}
    try:
        for done, (split, record) in enumerate(records):
            progress(done, len(records), f"encoding pair {done + 1} of {len(records)}")
            # The VAE takes the first `num_frames` frames (the last one repeated if short): decode only those.
            latents = [
                encode_video(
                    pipe,
                    decode_video(_media(record[side]["original_file"]), max_frames=size["num_frames"]),
                    **size,
                )
                for side in ("chosen", "rejected")
            ]
            prompt = record["prompt"]["text"]
            if prompt not in texts:
                texts[prompt] = encode_text(
                    pipe, prompt, max_sequence_length=run.config["max_sequence_length"]
                )
            write_pair_latents(
                staging,
                record_id=record["record_id"],
                prompt=prompt,
                split=split,
                chosen=latents[0],
                rejected=latents[1],
                conditioning=texts[prompt],
                label=float(record["label"]),
            )
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _run_video_dpo(run: TrainingRun, job: JobRun) -> dict[str, Any]:
    from .training.video_dpo import (
        DIFFUSERS_ADAPTER,
        DPOConfig,
        PairLatents,
        VideoDPOTrainer,
        latest_checkpoint,
    )

    config = DPOConfig(**{k: v for k, v in run.config.items() if k not in ENCODE_DEFAULTS})
    backend = _load_backend(run.base_model)
    folder = prepare_pair_latents(run, backend.pipe, lambda d, t, m: job.progress(0, config.max_steps, m))
    for component in ("text_encoder", "vae"):  # only the transformer trains: free the accelerator's memory
        if getattr(backend.pipe, component, None) is not None:
            getattr(backend.pipe, component).to("cpu")
    validation = PairLatents(folder, "validation")
    output = _media(run.folder)
    stop = {"asked": False}

    def on_step(metrics: dict[str, float]) -> None:
        step = int(metrics.get("step", 0))
        record_step(run, step, {k: v for k, v in metrics.items() if k != "step"})
        try:
            job.progress(step, config.max_steps, f"step {step} of {config.max_steps}")
        except JobCancelled:
            stop["asked"] = True

    def on_validation(row: dict[str, float]) -> None:
        record_step(run, int(row["step"]), {k: v for k, v in row.items() if k != "step"}, "validation")

    trainer = VideoDPOTrainer(
        backend.pipe.transformer,
        DIFFUSERS_ADAPTER,
        config,
        PairLatents(folder, "train"),
        output,
        validation_data=validation if len(validation) else None,
        on_step=on_step,
        on_validation=on_validation,
        on_warning=lambda step, message: record_warning(run, step, message),
        should_stop=lambda: stop["asked"],
    )
    checkpoint = latest_checkpoint(output)
    if checkpoint is not None:
        trainer.resume(checkpoint)
    result = trainer.fit()
    if result["stopped"]:
        raise JobCancelled()
    figures = {
        "last": result["last"],
        "validation": result["validation"][-1] if result["validation"] else {},
        "warnings": run_warnings(run),
    }
    adapter = Path(result["adapter"])
    register_tuned_model(run, adapter)
    return figures


def register_tuned_model(run: TrainingRun, adapter: Path) -> VideoModel:
    """The finished run's model: the base checkpoint plus the trained adapter (idempotent)."""
    from generation.services import create_video_model

    if run.tuned_model_id is not None:
        return run.tuned_model  # type: ignore[return-value]
    base = run.base_model
    existing = VideoModel.objects.filter(name=base.name, version=f"dpo-run-{run.pk}").first()
    model = existing or create_video_model(
        name=base.name,
        version=f"dpo-run-{run.pk}",
        kind=VideoModel.Kind.TUNED,
        description=f"Video-DPO run {run.pk} on export {run.export} (manifest sha256 {run.export_sha256[:12]})",
        base_model=base,
        backend=base.backend,
        adapter=str(adapter),
        backend_options=dict(base.backend_options or {}),
        default_settings=dict(base.default_settings or {}),
    )
    TrainingRun.objects.filter(pk=run.pk).update(tuned_model=model)
    run.tuned_model = model
    return model


# ----------------------------------------------------------------------------------------- reward model


def _clip() -> tuple[Any, Any]:
    """The site's CLIP scorer and its AutoScore settings row."""
    import torch

    from metrics.automatic.services import configured_clip_scorer

    scorer, settings_row, reason = configured_clip_scorer("cuda" if torch.cuda.is_available() else "cpu")
    if scorer is None:
        raise JobError(reason)
    return scorer, settings_row


def reward_comparisons(
    export: PreferenceExport, *, score_tie_margin: float = 0.0
) -> tuple[dict[str, list[Any]], dict[str, tuple[str, str]]]:
    """Per split, the comparisons a reward model trains and is evaluated on: the pairwise judgments (the
    overall head) and the pairs of videos of one prompt derived from rubric scores (one per dimension);
    and {video id: (original file, prompt text)} of every video they name."""
    from .pairs import DIMENSIONS, SPLITS
    from .training.reward_model import comparisons_from_pairs, comparisons_from_scores

    videos: dict[str, tuple[str, str]] = {}
    comparisons: dict[str, list[Any]] = {}
    for split in SPLITS:
        pairs = export_records(export, "pairs", split)
        scores = export_records(export, "scores", split, missing_ok=True)
        for record in pairs:
            for side in ("chosen", "rejected"):
                videos[record[side]["video_id"]] = (record[side]["original_file"], record["prompt"]["text"])
        for row in scores:
            videos[row["video"]["video_id"]] = (row["video"]["original_file"], row["prompt"]["text"])
        comparisons[split] = comparisons_from_pairs(
            [
                {
                    "chosen": r["chosen"]["video_id"],
                    "rejected": r["rejected"]["video_id"],
                    "label": r["label"],
                }
                for r in pairs
            ]
        ) + comparisons_from_scores(
            [
                {
                    "video": row["video"]["video_id"],
                    "prompt": row["prompt"]["id"],
                    **{f"{dim}_mean": row[f"{dim}_mean"] for dim in DIMENSIONS},
                }
                for row in scores
            ],
            score_tie_margin=score_tie_margin,
        )
    return comparisons, videos


def baseline_scores(
    video_ids: list[str],
    files: Mapping[str, Path],
    prompt_of: Mapping[str, str],
    clip: Any,
    clip_settings: Any,
) -> tuple[dict[str, dict[str, float]], dict[str, str], dict[str, dict[str, int]]]:
    """The CLIP score and the motion score (Motion_Mean) of the videos, for the reward model's evaluation:
    the AutoScore stored for the site's current settings where there is one, else computed from the file
    by `metrics.video.scoring.score_videos` (as the automatic-score job does, and stored as it stores
    them). Returns ({baseline: {video id: score}}, {baseline: why it is missing}, {baseline: {"stored": n,
    "computed": n}}); a baseline that cannot be had for every video is left out, with the reason."""
    from metrics.automatic.models import AutoScore
    from metrics.automatic.services import motion_auto_scores, motion_score_settings, record_auto_scores
    from metrics.video.scoring import VideoToScore, score_videos

    motion_settings, motion_options = motion_score_settings()
    rows = {v.public_id: v for v in Video.objects.filter(public_id__in=video_ids)}
    wanted = {
        "clip_score": (AutoScore.Metric.CLIP_SCORE, clip_settings),
        "motion_score": (AutoScore.Metric.MOTION_MEAN, motion_settings),
    }
    stored: dict[str, dict[str, float]] = {name: {} for name in wanted}
    for name, (metric, settings_row) in wanted.items():
        for public_id, value in AutoScore.objects.filter(
            video__public_id__in=video_ids, metric=metric, settings=settings_row
        ).values_list("video__public_id", "value"):
            stored[name][public_id] = value
    todo = [
        VideoToScore(
            files[video_id],
            prompt=prompt_of[video_id] if video_id not in stored["clip_score"] else None,
            motion=video_id not in stored["motion_score"],
        )
        for video_id in video_ids
    ]
    needed = [i for i, request in enumerate(todo) if request.prompt is not None or request.motion]
    scores: dict[str, dict[str, float]] = {name: dict(values) for name, values in stored.items()}
    unavailable: dict[str, str] = {}
    for result in score_videos([todo[i] for i in needed], clip_scorer=clip, motion=motion_options):
        video_id = video_ids[needed[result.index]]
        row = rows.get(video_id)
        if result.error is not None:
            raise JobError(f"cannot decode video {video_id}: {result.error}")
        if result.clip is not None:
            scores["clip_score"][video_id] = float(result.clip)
            if row is not None:
                record_auto_scores(row, {AutoScore.Metric.CLIP_SCORE: result.clip}, clip_settings)
        if result.motion_error is not None:
            unavailable.setdefault("motion_score", f"video {video_id}: {result.motion_error}")
        elif result.motion is not None:
            values = motion_auto_scores(result.motion)
            scores["motion_score"][video_id] = values[AutoScore.Metric.MOTION_MEAN]
            if row is not None:
                record_auto_scores(row, values, motion_settings)
    sources = {
        name: {"stored": len(stored[name]), "computed": len(scores[name]) - len(stored[name])}
        for name in wanted
        if name not in unavailable
    }
    return {name: s for name, s in scores.items() if name not in unavailable}, unavailable, sources


def _run_reward_model(run: TrainingRun, job: JobRun) -> dict[str, Any]:
    import torch

    from metrics.video.scoring import clip_frames

    from .training.reward_model import RewardConfig, fit_reward_model, save_reward_head, video_features

    evaluated = bool(run.config.get("evaluate", True))
    comparisons, videos = reward_comparisons(
        run.export, score_tie_margin=float(run.config.get("score_tie_margin", 0.0))
    )
    if not comparisons["train"]:
        raise JobError(f"export {run.export} has no training pairs and no rubric scores to compare")
    if evaluated and not comparisons["validation"]:
        raise JobError(
            f"export {run.export} has no validation comparisons to evaluate on; set evaluate to false or "
            "publish an export with a larger validation fraction"
        )
    scorer, clip_settings = _clip()
    ids = sorted(videos)
    files = {v: _media(videos[v][0]) for v in ids}
    job.progress(0, 3, f"CLIP features of {len(ids)} videos")
    # One video at a time, decoding only the frames CLIP looks at.
    features = torch.cat(
        [video_features(scorer, [clip_frames(files[v], scorer.num_frames)], [videos[v][1]]) for v in ids]
    )
    baselines: dict[str, dict[str, float]] = {}
    extra: dict[str, Any] = {}
    if evaluated:
        validation_ids = sorted(
            {c.first for c in comparisons["validation"]} | {c.second for c in comparisons["validation"]}
        )
        job.progress(1, 3, f"CLIP and motion scores of {len(validation_ids)} validation videos")
        baselines, unavailable, sources = baseline_scores(
            validation_ids, files, {v: videos[v][1] for v in ids}, scorer, clip_settings
        )
        extra = {"baseline_sources": sources, "baselines_unavailable": unavailable}
    job.progress(2, 3, "training the head")
    trainer_config = {k: v for k, v in run.config.items() if k not in REWARD_RUN_DEFAULTS}
    fitted = fit_reward_model(
        features,
        ids,
        comparisons["train"],
        comparisons["validation"] if evaluated else [],
        baselines=baselines,
        config=RewardConfig(**trainer_config),
    )
    save_reward_head(
        fitted.head, _media(run.folder) / "reward_head", extra={"export_sha256": run.export_sha256}
    )
    return {
        "validation": fitted.report,
        "videos": len(ids),
        "train_pairs": len(export_records(run.export, "pairs", "train")),
        "comparisons": {split: _count_by_head(c) for split, c in comparisons.items()},
        **extra,
    }


def _count_by_head(comparisons: list[Any]) -> dict[str, int]:
    from .training.reward_model import HEADS

    counts = {name: 0 for name in HEADS}
    for comparison in comparisons:
        counts[HEADS[comparison.head]] += 1
    return counts


def _json_safe(value: Any) -> Any:
    """NaN and infinities (an accuracy with nothing to count, chance's tie threshold) as null: JSON has none."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def figure_summary(run: TrainingRun) -> list[tuple[str, Any]]:
    """The run's stored figures as (name, value) lines for its page, besides the evaluation table and
    the warnings, which the page shows on their own."""
    figures = run.figures or {}
    lines: list[tuple[str, Any]] = []

    def add(name: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                add(f"{name}: {key}" if name else str(key), inner)
        else:
            lines.append((name, f"{value:.4g}" if isinstance(value, float) else value))

    for key, value in figures.items():
        if key == "warnings" or (key == "validation" and run.kind == TrainingRun.Kind.REWARD_MODEL):
            continue
        add(key.replace("_", " "), value)
    return lines


def reward_evaluation_table(run: TrainingRun) -> dict[str, Any]:
    """The reward model's validation figures as the run page's table: one row per head (the rubric
    dimensions, then overall) with its counts, and per method (reward model, CLIP score alone, motion
    score alone, chance) the accuracy without ties, with ties and the tie threshold."""
    from annotation.rubric import RUBRIC, dimension_title

    from .training.reward_model import HEADS

    report = (run.figures or {}).get("validation") or {}
    if run.kind != TrainingRun.Kind.REWARD_MODEL or not report:
        return {"methods": [], "rows": []}
    present = {method for row in report.values() for method in row}
    methods = [(key, label) for key, label in REWARD_METHODS if key in present]
    rows = []
    for head in HEADS:
        if head not in report:
            continue
        row = report[head]
        counts = row.get("counts", {})
        rows.append(
            {
                "head": head,
                "label": dimension_title(head, get_language() or "")
                if head in {d.key for d in RUBRIC}
                else gettext("Overall (pairwise judgments)"),
                "comparisons": int(counts.get("comparisons") or 0),
                "ties": int(counts.get("ties") or 0),
                "cells": [row.get(key, {}) for key, _ in methods],
            }
        )
    return {"methods": methods, "rows": rows}


def reward_head_folder(run: TrainingRun) -> Path:
    return _media(run.folder) / "reward_head"


# ------------------------------------------------------------------------------ evaluate against the base


def _evaluation_spec(run: TrainingRun, benchmark: Any, name: str = "", annotators: Any = ()) -> Any:
    from annotation.campaigns import CampaignSpec
    from annotation.models import Campaign

    if run.tuned_model is None:
        raise TrainingRunError("only a finished Video-DPO run has a tuned model to evaluate")
    return CampaignSpec(
        name=name or f"A/B {run.base_model} vs its DPO (run {run.pk})",
        kind=Campaign.Kind.AB_SHARED_NOISE,
        benchmark=benchmark,
        models=[run.base_model, run.tuned_model],  # A: baseline, B: tuned
        annotators=list(annotators),
    )


def start_evaluation_generation(
    run: TrainingRun,
    *,
    benchmark: Any,
    noise_per_prompt: int = 1,
    settings_given: Mapping[str, Any] | None = None,
    user: Any = None,
) -> list[Any]:
    """Generate, for base and tuned, the shared-noise videos an A/B campaign on `benchmark` needs (the
    same noise ids for both, so each pair starts from identical latents). Returns the generation runs."""
    from annotation.generation_needs import start_campaign_generation
    from generation.services import GenerationError

    spec = _evaluation_spec(run, benchmark)
    try:
        runs = start_campaign_generation(
            spec, user=user, count=noise_per_prompt, settings=dict(settings_given or {})
        )
    except GenerationError as exc:
        raise TrainingRunError(str(exc)) from None
    evaluation = {
        "benchmark_id": benchmark.pk,
        "noise_per_prompt": noise_per_prompt,
        "generation_run_ids": [r.pk for r in runs],
    }
    TrainingRun.objects.filter(pk=run.pk).update(evaluation=evaluation)
    run.evaluation = evaluation
    return runs


def create_evaluation_campaign(
    run: TrainingRun, *, annotators: Any = (), name: str = "", user: Any = None
) -> Any:
    """The A/B-with-shared-noise campaign (A: base, B: tuned) over the benchmark's shared-noise pairs."""
    from annotation.campaigns import CampaignError, create_campaign
    from generation.models import Benchmark

    benchmark = Benchmark.objects.filter(pk=run.evaluation.get("benchmark_id")).first()
    if benchmark is None:
        raise TrainingRunError("generate the evaluation videos first (choose a benchmark)")
    try:
        campaign = create_campaign(_evaluation_spec(run, benchmark, name, annotators), created_by=user)
    except CampaignError as exc:
        raise TrainingRunError(str(exc)) from None
    TrainingRun.objects.filter(pk=run.pk).update(evaluation_campaign=campaign)
    run.evaluation_campaign = campaign
    return campaign


def evaluation_shares(run: TrainingRun) -> list[dict[str, Any]]:
    """The overall A/B preference shares with their 95% intervals, from the campaign's results (the one
    place they are computed); [] until the campaign has judgments."""
    from metrics.human.results import OVERALL, ResultsError, campaign_results, find_table

    if run.evaluation_campaign is None:
        return []
    try:
        table = find_table(campaign_results(run.evaluation_campaign), "ab_shares")
    except ResultsError:
        return []
    return [row for row in table["rows"] if row["category"] == OVERALL]


# ------------------------------------------------------------------- applying a finished reward model

APPLY_REWARD_TASK = "preference.tasks.apply_reward_model"


def start_reward_scoring(
    run: TrainingRun,
    *,
    model: VideoModel,
    benchmark: Any,
    on_policy_export: str = "",
    min_gap: float = 0.5,
    user: Any = None,
) -> Any:
    """Queue a gpu job that scores the model's ready videos on the benchmark with the run's reward model
    (stored as AutoScore `reward_score`, beside CLIP and motion) and, with `on_policy_export`, publishes the
    best-vs-worst pairs per prompt as the next version of that export, marked reward-model labelled."""
    from evalsite.jobs import start_job

    from .models import export_folder
    from .services import _check_name

    if run.kind != TrainingRun.Kind.REWARD_MODEL or run.status != TrainingRun.Status.SUCCEEDED:
        raise TrainingRunError("only a finished reward-model run can score videos")
    if not Video.objects.filter(model=model, prompt__benchmark=benchmark, status=Video.Status.READY).exists():
        raise TrainingRunError(f"{model} has no ready videos on {benchmark}")
    if not isinstance(min_gap, int | float) or min_gap < 0:
        raise TrainingRunError("min_gap must be a number >= 0")
    params: dict[str, Any] = {
        "training_run_id": run.pk,
        "model_id": model.pk,
        "benchmark_id": benchmark.pk,
        "min_gap": float(min_gap),
    }
    with transaction.atomic():
        if on_policy_export:
            from django.db.models import Max

            from .export import ExportOptions
            from .services import ExportError

            try:
                name = _check_name(on_policy_export)
            except ExportError as exc:
                raise TrainingRunError(str(exc)) from None
            version = (PreferenceExport.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0) + 1
            export = PreferenceExport.objects.create(
                name=name,
                version=version,
                options=ExportOptions(formats=("jsonl",)).to_dict(),
                folder=export_folder(name, version),
                created_by=user if user is not None and user.is_authenticated else None,
            )
            params["export_id"] = export.pk
        job = start_job(
            APPLY_REWARD_TASK,
            title=job_title("apply_reward_model", run=run.pk, model=model, benchmark=benchmark),
            params=params,
            created_by=user,
        )
        if on_policy_export:
            PreferenceExport.objects.filter(pk=params["export_id"]).update(job=job)
    return job


def apply_reward_model(job: JobRun) -> dict[str, Any]:
    """The job body of `start_reward_scoring`; re-running it stores nothing twice."""
    from generation.models import Benchmark
    from metrics.automatic.models import AutoScore, ScoreSettings
    from metrics.automatic.services import record_auto_scores, score_settings

    from .training.on_policy import score_candidate_files, select_pairs
    from .training.reward_model import RewardScorer, load_reward_head

    params = job.params
    run = TrainingRun.objects.filter(pk=params.get("training_run_id")).first()
    model = VideoModel.objects.filter(pk=params.get("model_id")).first()
    benchmark = Benchmark.objects.filter(pk=params.get("benchmark_id")).first()
    if run is None or model is None or benchmark is None:
        raise JobError("the run, the model or the benchmark no longer exists")
    videos = list(
        Video.objects.filter(model=model, prompt__benchmark=benchmark, status=Video.Status.READY)
        .select_related("prompt")
        .order_by("prompt__position", "seed", "pk")
    )
    scorer = RewardScorer(_clip()[0], load_reward_head(reward_head_folder(run)))
    settings_row = score_settings(
        ScoreSettings.Family.REWARD,
        {"training_run": run.pk, "export_sha256": run.export_sha256, "head": "overall"},
        f"Reward model of training run {run.pk} (overall head, standardised on its validation videos)",
    )
    candidates = []
    job.progress(0, len(videos), f"scoring {len(videos)} videos")
    scored = score_candidate_files(
        scorer,
        [_media(video.original_file) for video in videos],
        video_ids=[video.public_id for video in videos],
        prompts=[video.prompt.text for video in videos],
        seeds=[video.seed if video.seed is not None else 0 for video in videos],
    )
    for done, (video, candidate) in enumerate(zip(videos, scored, strict=True), start=1):
        candidates.append(candidate)
        record_auto_scores(video, {AutoScore.Metric.REWARD_SCORE: candidate.scores["overall"]}, settings_row)
        job.progress(done, len(videos), f"scored video {done} of {len(videos)}")
    result: dict[str, Any] = {"scored": len(videos)}
    export = PreferenceExport.objects.filter(pk=params.get("export_id")).first()
    if export is not None and not export.is_ready:
        selection = select_pairs(candidates, min_gap=params["min_gap"], reward_model=f"training-run-{run.pk}")
        _publish_on_policy_export(export, run, selection)
        result |= {"export_id": export.pk, "pairs": len(selection.records)}
    return result


def _publish_on_policy_export(export: PreferenceExport, run: TrainingRun, selection: Any) -> None:
    """Write reward-model pairs as an export version whose records read like the human ones (prompt and
    video dicts, label 1.0), plus `label_source: "reward_model"` and both scores."""
    from dataclasses import asdict

    from . import selectors
    from .export import SCHEMA_VERSION, ExportOptions, staged_folder, write_data_file, write_manifest
    from .export import DataFile as ExportDataFile
    from .pairs import SPLITS, split_by_prompt

    options = ExportOptions.from_dict(export.options)
    records = selection.records
    ids = {r["chosen"] for r in records} | {r["rejected"] for r in records}
    videos = selectors.exported_videos(ids)
    rows = {v.public_id: v for v in Video.objects.filter(public_id__in=ids)}
    prompts = selectors.prompt_infos({row.prompt_id for row in rows.values()})
    prompt_of = {r["record_id"]: rows[r["chosen"]].prompt_id for r in records}
    splits = split_by_prompt(
        {pid: prompts[pid].text for pid in prompts},
        seed=options.split_seed,
        validation_fraction=options.validation_fraction,
    )
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for record in records:
        split = splits[prompt_of[record["record_id"]]]
        by_split[split].append(
            {
                **record,
                "split": split,
                "prompt": asdict(prompts[prompt_of[record["record_id"]]]),
                "chosen": asdict(videos[record["chosen"]]),
                "rejected": asdict(videos[record["rejected"]]),
            }
        )
    final = _media(export.folder)
    with staged_folder(final) as staging:
        entries = [write_data_file(staging, ExportDataFile("pairs", s, "jsonl", by_split[s])) for s in SPLITS]
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": export.name,
            "version": export.version,
            "options": options.to_dict(),
            "label_source": "reward_model",
            "reward_model": {"training_run": run.pk, "export_sha256": run.export_sha256},
            "campaigns": [],
            "counts": {
                "records": {s: len(by_split[s]) for s in SPLITS},
                "prompts_scored": selection.prompts,
                "too_few_videos": selection.too_few_videos,
                "gap_too_small": selection.gap_too_small,
            },
            "files": entries,
        }
        write_manifest(staging, manifest)
    PreferenceExport.objects.filter(pk=export.pk).update(
        manifest=manifest, status=PreferenceExport.Status.READY
    )
