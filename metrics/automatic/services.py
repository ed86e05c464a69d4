"""Writes of the automatic video metrics: starting VAE evaluations and automatic-score runs (with their validation),
and recording what the jobs compute. Views, the API and the jobs all go through these functions.

The numerical work lives in `metrics.video` (torch, no Django); it is imported inside the functions that
need it, so that the web process does not load torch to show a page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from evalsite.job_titles import job_title
from evalsite.jobs import start_job
from generation.models import Benchmark, Video, VideoModel

from .models import (
    AutoScore,
    AutoScoreRun,
    ScoreSettings,
    VaeEvaluation,
    VaeEvaluationVideo,
    features_from_bytes,
    features_to_bytes,
)

RFVD_NEEDS_TWO = "rFVD is unavailable: it needs at least two test videos."


class MetricsError(ValueError):
    """Bad input for a metrics run; the message is for the person who started it."""


def metrics_device() -> str:
    """The device named by EVALSITE_METRICS_DEVICE; "auto" is CUDA when this machine has it, else the CPU."""
    wanted = (settings.EVALSITE_METRICS_DEVICE or "auto").strip()
    if wanted != "auto":
        return wanted
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------- test sets and reconstructions


def ground_truth_videos(test_model: VideoModel, benchmark: Benchmark | None = None) -> QuerySet[Video]:
    """The ready videos of `test_model` (on `benchmark` if given), in a stable order."""
    videos = Video.objects.filter(model=test_model, status=Video.Status.READY).select_related(
        "prompt", "prompt__benchmark"
    )
    if benchmark is not None:
        videos = videos.filter(prompt__benchmark=benchmark)
    return videos.order_by("prompt__benchmark__slug", "prompt__position", "seed", "id")


def _describe(video: Video) -> str:
    seed = "" if video.seed is None else f", seed {video.seed}"
    return f"video {video.pk} ({video.prompt.benchmark.slug} prompt {video.prompt.position}{seed})"


def pair_reconstructions(
    videos: Sequence[Video], reconstruction_model: VideoModel
) -> tuple[dict[int, Video], list[str]]:
    """Match each test video with `reconstruction_model`'s ready video of the same prompt and seed.

    Returns ({test video id: reconstruction}, problems); a test video without exactly one match is a
    problem, named in the list."""
    candidates: dict[tuple[int, int | None], list[Video]] = {}
    for video in Video.objects.filter(
        model=reconstruction_model, status=Video.Status.READY, prompt__in={v.prompt_id for v in videos}
    ).order_by("id"):
        candidates.setdefault((video.prompt_id, video.seed), []).append(video)
    pairs: dict[int, Video] = {}
    problems = []
    for video in videos:
        found = candidates.get((video.prompt_id, video.seed), [])
        if len(found) == 1:
            pairs[video.pk] = found[0]
        elif not found:
            problems.append(f"{reconstruction_model} has no ready reconstruction of {_describe(video)}")
        else:
            problems.append(
                f"{reconstruction_model} has {len(found)} videos for {_describe(video)}; give them seeds"
            )
    return pairs, problems


def problems_summary(problems: list[str], shown: int = 5) -> str:
    more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
    return "; ".join(problems[:shown]) + more


def supported_vae_kinds() -> dict[str, str]:
    from metrics.video.vae import SUPPORTED_VAE_CLASSES

    return dict(SUPPORTED_VAE_CLASSES)


def check_vae_folder(path: str, kind: str = "") -> str:
    """Check that `path` is a local diffusers video-VAE folder (its own, or a pipeline's `vae/`); return the
    autoencoder class it holds. Raises MetricsError naming the problem."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise MetricsError(
            f"no folder at {path!r}: give the local folder of a diffusers video VAE "
            "(saved with save_pretrained: config.json and the weights)"
        )
    config_file = folder / "config.json"
    if not config_file.is_file() and (folder / "vae" / "config.json").is_file():
        config_file = folder / "vae" / "config.json"
    if not config_file.is_file():
        raise MetricsError(f"{path!r} is not a diffusers model folder: no config.json in it or in vae/")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MetricsError(f"cannot read {config_file}: {exc}") from exc
    classes = supported_vae_kinds()
    supported = ", ".join(classes.values())
    saved = config.get("_class_name") if isinstance(config, dict) else None
    requested = classes.get(kind.lower(), kind) if kind else None
    if requested and requested not in classes.values():
        raise MetricsError(f"unknown VAE kind {kind!r}; use one of {', '.join(classes)}")
    if requested and saved and requested != saved:
        raise MetricsError(f"kind {kind!r} asks for {requested} but {config_file} describes a {saved}")
    class_name = requested or saved
    if not class_name:
        raise MetricsError(f"{config_file} names no model class; choose the VAE kind")
    if class_name not in classes.values():
        raise MetricsError(f"{path!r} holds a {class_name}, not a supported video VAE ({supported})")
    weights = [p for p in config_file.parent.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth")]
    if not weights:
        raise MetricsError(f"{config_file.parent} has a config.json but no weights file")
    return class_name


# ---------------------------------------------------------------- VAE evaluations


def start_vae_evaluation(
    *,
    name: str,
    test_model: VideoModel,
    benchmark: Benchmark | None = None,
    vae_path: str = "",
    vae_kind: str = "",
    reconstruction_model: VideoModel | None = None,
    downsample_label: str = "",
    max_frames: int | None = None,
    chunk_frames: int | None = None,
    user=None,
) -> VaeEvaluation:
    """Check the inputs, record the evaluation and queue its job (on the gpu queue)."""
    name, vae_path, vae_kind = name.strip(), vae_path.strip(), vae_kind.strip()
    if not name:
        raise MetricsError("give the evaluation a name (how the VAE appears in the table)")
    if bool(vae_path) == (reconstruction_model is not None):
        raise MetricsError("give either a VAE folder or a model whose videos are the reconstructions")
    if reconstruction_model is not None and reconstruction_model.pk == test_model.pk:
        raise MetricsError("the reconstructions must come from another model than the test videos")
    for label, value in (("max_frames", max_frames), ("chunk_frames", chunk_frames)):
        if value is not None and value < 1:
            raise MetricsError(f"{label} must be at least 1")
    videos = list(ground_truth_videos(test_model, benchmark))
    if not videos:
        where = f" on {benchmark}" if benchmark else ""
        raise MetricsError(f"{test_model} has no ready videos{where} to use as test videos")
    if reconstruction_model is not None:
        _, problems = pair_reconstructions(videos, reconstruction_model)
        if problems:
            raise MetricsError(
                f"{len(problems)} of {len(videos)} test videos lack a reconstruction: {problems_summary(problems)}"
            )
        mode = VaeEvaluation.Mode.RECONSTRUCTIONS
    else:
        check_vae_folder(vae_path, vae_kind)
        mode = VaeEvaluation.Mode.VAE
        downsample_label = ""  # measured from the VAE itself
    options: dict[str, Any] = {"max_frames": max_frames, "chunk_frames": chunk_frames}
    with transaction.atomic():
        evaluation = VaeEvaluation.objects.create(
            name=name[:200],
            mode=mode,
            test_model=test_model,
            benchmark=benchmark,
            vae_path=vae_path,
            vae_kind=vae_kind,
            reconstruction_model=reconstruction_model,
            downsample_label=downsample_label.strip()[:40],
            options=options,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        evaluation.job = start_job(
            "metrics.tasks.evaluate_vae",
            title=job_title("vae_evaluation", name=evaluation.name, model=test_model),
            params={"evaluation_id": evaluation.pk},
            created_by=user,
        )
        evaluation.save(update_fields=["job"])
    return evaluation


def record_vae_video(
    evaluation: VaeEvaluation,
    video: Video,
    *,
    reconstruction: Video | None,
    frames: int,
    width: int,
    height: int,
    ssim: float,
    psnr: float,
    truth_features: Iterable[float] | None,
    reconstruction_features: Iterable[float] | None,
) -> VaeEvaluationVideo:
    """Store one video's figures; a second call for the same video replaces them (never a second row)."""
    values = {
        "reconstruction": reconstruction,
        "frames": frames,
        "width": width,
        "height": height,
        "ssim": ssim,
        "psnr": psnr,
        "truth_features": None if truth_features is None else features_to_bytes(truth_features),
        "reconstruction_features": (
            None if reconstruction_features is None else features_to_bytes(reconstruction_features)
        ),
    }
    row, _ = VaeEvaluationVideo.objects.update_or_create(evaluation=evaluation, video=video, defaults=values)
    return row


def rfvd_from_rows(rows: Sequence[VaeEvaluationVideo]) -> float:
    """rFVD between the stored I3D features of the ground truth and of the reconstructions."""
    import numpy as np
    import torch

    from metrics.video.fvd import fvd_from_features

    truth = np.stack([features_from_bytes(row.truth_features) for row in rows])
    recon = np.stack([features_from_bytes(row.reconstruction_features) for row in rows])
    return fvd_from_features(torch.from_numpy(truth), torch.from_numpy(recon))


def finish_vae_evaluation(
    evaluation: VaeEvaluation, *, rfvd_unavailable: str | None, downsample_label: str | None = None
) -> dict[str, Any]:
    """Write the summary from the stored per-video rows: means over videos, rFVD from stored features."""
    rows = list(evaluation.video_results.order_by("id"))
    if not rows:
        raise MetricsError("no video was evaluated")
    reason = rfvd_unavailable or ""
    rfvd = None
    if not reason:
        if len(rows) < 2:
            reason = RFVD_NEEDS_TWO
        elif not all(row.has_features for row in rows):
            reason = "rFVD is unavailable: some videos have no stored I3D features."
        else:
            rfvd = rfvd_from_rows(rows)
    evaluation.video_count = len(rows)
    evaluation.frame_count = sum(row.frames for row in rows)
    evaluation.ssim = sum(row.ssim for row in rows) / len(rows)
    evaluation.psnr = sum(row.psnr for row in rows) / len(rows)
    evaluation.rfvd, evaluation.rfvd_unavailable = rfvd, reason
    if downsample_label is not None:
        evaluation.downsample_label = downsample_label
    evaluation.completed_at = timezone.now()
    evaluation.save()
    return {
        "videos": evaluation.video_count,
        "frames": evaluation.frame_count,
        "ssim": evaluation.ssim,
        "psnr": evaluation.psnr,
        "rfvd": evaluation.rfvd,
        "rfvd_unavailable": evaluation.rfvd_unavailable,
        "downsample": evaluation.downsample_label,
    }


# ---------------------------------------------------------------- automatic scores


def settings_key(family: str, values: dict[str, Any]) -> str:
    canonical = json.dumps({"family": family, "settings": values}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def score_settings(family: str, values: dict[str, Any], label: str) -> ScoreSettings:
    """The settings row for these exact values (created the first time they are used)."""
    row, _ = ScoreSettings.objects.get_or_create(
        key=settings_key(family, values),
        defaults={"family": family, "settings": values, "label": label[:300]},
    )
    return row


def clip_configuration() -> dict[str, Any]:
    """The CLIP model this site is configured to use (settings EVALSITE_CLIP_*)."""
    return {
        "model": settings.EVALSITE_CLIP_MODEL,
        "pretrained": settings.EVALSITE_CLIP_PRETRAINED,
        "checkpoint": settings.EVALSITE_CLIP_CHECKPOINT or "",
        "text_dir": settings.EVALSITE_CLIP_TEXT_DIR or "",
    }


def clip_unavailable_reason(config: dict[str, Any]) -> str | None:
    """Why the configured CLIP cannot be loaded from local files, or None. Nothing is fetched from a hub,
    so a built-in model name needs a local weights file, and an XLM-RoBERTa text tower a local folder."""
    name = config["model"]
    prefix = "CLIP score is unavailable: "
    if name.startswith("hf-hub:"):
        return prefix + (
            f"{name!r} names a model hub repository, and the site fetches nothing from a hub; download the "
            "folder and set EVALSITE_CLIP_MODEL to local-dir:/that/folder."
        )
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:"))
        if not (folder / "open_clip_config.json").is_file():
            return prefix + f"{folder} has no open_clip_config.json (EVALSITE_CLIP_MODEL={name!r})."
        return None
    checkpoint = config["checkpoint"]
    if not checkpoint or not Path(checkpoint).is_file():
        where = f"no file at {checkpoint!r}" if checkpoint else "no weights file is configured"
        return prefix + (
            f"{where}. Put the open_clip weights of {name} / {config['pretrained']} (for the default model, "
            "open_clip_pytorch_model.bin from laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k) there, "
            "or set EVALSITE_CLIP_CHECKPOINT; weights are never fetched from a model hub."
        )
    import open_clip

    model_config = open_clip.get_model_config(name)
    if not model_config:
        return prefix + f"{name!r} is not an open_clip model name (EVALSITE_CLIP_MODEL)."
    if "hf_tokenizer_name" in model_config.get("text_cfg", {}):
        text_dir = config["text_dir"]
        if not text_dir or not (Path(text_dir) / "config.json").is_file():
            return prefix + (
                f"{name} has a Hugging Face text tower, which needs a local folder with its config.json and "
                f"tokenizer files (for the default model, those of xlm-roberta-base); none at {text_dir!r} "
                "(EVALSITE_CLIP_TEXT_DIR)."
            )
    return None


def configured_clip_scorer(device: str) -> tuple[Any, ScoreSettings | None, str]:
    """The site's configured CLIP scorer on `device`: (scorer, its settings row, "") or (None, None, why the
    CLIP score is unavailable). The automatic-score job and the reward model both load CLIP through it."""
    from metrics.video.clip_score import load_clip_scorer

    config = clip_configuration()
    reason = clip_unavailable_reason(config)
    if reason:
        return None, None, reason
    local_dir = config["model"].startswith("local-dir:")
    checkpoint = None if local_dir else config["checkpoint"]
    text_dir = None if local_dir else (config["text_dir"] or None)
    try:
        scorer = load_clip_scorer(
            config["model"],
            None if local_dir else config["pretrained"],
            checkpoint_path=checkpoint,
            text_model_dir=text_dir,
            device=device,
        )
    except Exception as exc:
        return None, None, f"CLIP score is unavailable: cannot load {config['model']}: {exc}"
    values = {
        "model": config["model"],
        "pretrained": None if local_dir else config["pretrained"],
        "checkpoint": checkpoint,
        "scale": scorer.scale,
        "frames": scorer.num_frames,
    }
    name = config["model"] if local_dir else f"{config['model']} / {config['pretrained']}"
    label = f"{name}, mean {scorer.scale} over {scorer.num_frames} evenly spaced frames"
    return scorer, score_settings(ScoreSettings.Family.CLIP, values, label), ""


MOTION_METRICS = {
    "Motion_Mean": AutoScore.Metric.MOTION_MEAN,
    "Motion_Max": AutoScore.Metric.MOTION_MAX,
    "Motion_Min": AutoScore.Metric.MOTION_MIN,
}


def motion_score_settings() -> tuple[ScoreSettings, Any]:
    """The settings row of the motion score as the site computes it, and the
    `metrics.video.scoring.MotionOptions` it records."""
    from metrics.video.scoring import MotionOptions

    options = MotionOptions()
    values = {"stride": options.stride, "short_side": options.short_side, "farneback": asdict(options.params)}
    label = f"Farneback optical flow, frame stride {options.stride}, short side {options.short_side} px"
    return score_settings(ScoreSettings.Family.MOTION, values, label), options


def motion_auto_scores(motion: Any) -> dict[str, float]:
    """A `metrics.video.motion.MotionScore` as {AutoScore metric: value}."""
    return {MOTION_METRICS[name]: value for name, value in motion.as_dict().items()}


def start_auto_score_run(*, model: VideoModel, benchmark: Benchmark, user=None) -> AutoScoreRun:
    """Queue CLIP and motion scores for the model's ready videos on the benchmark (gpu queue)."""
    if not Video.objects.filter(model=model, prompt__benchmark=benchmark, status=Video.Status.READY).exists():
        raise MetricsError(f"{model} has no ready videos on {benchmark}")
    with transaction.atomic():
        run = AutoScoreRun.objects.create(
            model=model,
            benchmark=benchmark,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        run.job = start_job(
            "metrics.tasks.compute_auto_scores",
            title=job_title("auto_scores", model=model, benchmark=benchmark),
            params={"run_id": run.pk},
            created_by=user,
        )
        run.save(update_fields=["job"])
    return run


def record_auto_scores(video: Video, values: dict[str, float], score_settings_row: ScoreSettings) -> None:
    """Store a video's values of some metrics under one settings row; values already stored stay."""
    AutoScore.objects.bulk_create(
        [
            AutoScore(video=video, metric=metric, settings=score_settings_row, value=float(value))
            for metric, value in values.items()
        ],
        ignore_conflicts=True,
    )
