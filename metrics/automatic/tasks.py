"""Jobs of the automatic video metrics (gpu queue): thin shells that load rows, call `metrics.video` and
save the figures.

Both jobs save each video's figures as soon as they are computed and skip videos already stored, so a job
killed or cancelled midway resumes where it stopped and never stores a video twice. torch and the models
are imported inside the handlers: the web process may import this module to look a job up by name
(`evalsite.jobs.start_job`), not to run it.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from evalsite.jobs import JobError, JobRun, job_task
from generation.models import Video
from generation.services import media_path

from .models import AutoScore, AutoScoreRun, VaeEvaluation
from .services import (
    MOTION_METRICS,
    MetricsError,
    check_vae_folder,
    configured_clip_scorer,
    finish_vae_evaluation,
    ground_truth_videos,
    metrics_device,
    motion_auto_scores,
    motion_score_settings,
    pair_reconstructions,
    problems_summary,
    record_auto_scores,
    record_vae_video,
)

SSIM_DEFINITION = "Wang et al.: 11x11 Gaussian window (sigma 1.5), RGB, mean over frames then videos"
PSNR_DEFINITION = "mean over frames of per-frame RGB PSNR (capped at 100 dB), then over videos"
RFVD_DEFINITION = "I3D (Kinetics-400) logits of whole clips, short side 224 + centre crop; Frechet distance"


def _describe(video: Video) -> str:
    seed = "" if video.seed is None else f", seed {video.seed}"
    return f"video {video.pk} (prompt {video.prompt.position}{seed})"


def _original_file(video: Video):
    path = media_path(video.original_file)
    if not path.is_file():
        raise JobError(f"the original file of {_describe(video)} is missing: {video.original_file}")
    return path


def _figures(scores: Any) -> dict[str, Any]:
    """What `record_vae_video` stores of a `metrics.video.reconstruction.VideoPairScores`."""

    def features(values: Any) -> Any:
        return None if values is None else values.cpu().numpy()

    return {
        "frames": scores.frames,
        "height": scores.height,
        "width": scores.width,
        "ssim": scores.ssim,
        "psnr": scores.psnr,
        "truth_features": features(scores.truth_features),
        "reconstruction_features": features(scores.reconstruction_features),
    }


def _load_i3d(device: str) -> tuple[Any, str, dict[str, Any]]:
    """(model or None, why rFVD is unavailable or "", what to record in the evaluation's options)."""
    from django.conf import settings

    from metrics.video.i3d import I3DWeightsInvalid, I3DWeightsMissing, load_i3d

    path = settings.EVALSITE_I3D_PATH or None
    try:
        model = load_i3d(path, device=device)
    except I3DWeightsMissing as exc:
        return None, str(exc), {"i3d_path": path, "i3d": "missing"}
    except I3DWeightsInvalid as exc:
        return (
            None,
            f"rFVD is unavailable: the I3D file cannot be used: {exc}",
            {"i3d_path": path, "i3d": "invalid"},
        )
    return model, "", {"i3d_path": path, "i3d": model.source}


# The names are those from before metrics/ was split in two: job rows and queued messages carry them.
@job_task(queue="gpu", name="metrics.tasks.evaluate_vae")
def evaluate_vae(run: JobRun) -> dict:
    """Params: evaluation_id. Measures every test video against its reconstruction, then the summary."""
    from metrics.video.decode import VideoFailed
    from metrics.video.reconstruction import measure_vae_reconstructions, measure_video_pairs

    evaluation = (
        VaeEvaluation.objects.select_related("test_model", "benchmark", "reconstruction_model")
        .filter(pk=run.params["evaluation_id"])
        .first()
    )
    if evaluation is None:
        raise JobError("this evaluation no longer exists")
    videos = list(ground_truth_videos(evaluation.test_model, evaluation.benchmark))
    if not videos:
        raise JobError(f"{evaluation.test_model} has no ready test videos")
    reconstructions: dict[int, Video] = {}
    if evaluation.mode == VaeEvaluation.Mode.RECONSTRUCTIONS:
        assert evaluation.reconstruction_model is not None
        reconstructions, problems = pair_reconstructions(videos, evaluation.reconstruction_model)
        if problems:
            raise JobError(
                f"{len(problems)} of {len(videos)} test videos lack a reconstruction: {problems_summary(problems)}"
            )
    # Videos that left the test set since an earlier attempt no longer count.
    evaluation.video_results.exclude(video_id__in=[v.pk for v in videos]).delete()

    device = metrics_device()
    max_frames = evaluation.options.get("max_frames")
    chunk_frames = evaluation.options.get("chunk_frames")
    run.progress(0, len(videos), "loading models")
    i3d, rfvd_unavailable, i3d_options = _load_i3d(device)
    vae = None
    downsample_label = None
    vae_options: dict[str, Any] = {}
    if evaluation.mode == VaeEvaluation.Mode.VAE:
        from metrics.video.vae import load_video_vae

        try:
            check_vae_folder(evaluation.vae_path, evaluation.vae_kind)
            vae = load_video_vae(evaluation.vae_path, evaluation.vae_kind or None, device=device)
        except MetricsError as exc:
            raise JobError(str(exc)) from exc
        except Exception as exc:
            raise JobError(f"cannot load the VAE from {evaluation.vae_path}: {exc}") from exc
        if chunk_frames is not None and not vae.geometry.is_valid_frame_count(chunk_frames):
            raise JobError(
                f"chunk_frames must be 1 + {vae.geometry.frame_step} * k for this VAE, got {chunk_frames}"
            )
        downsample_label = vae.geometry.label
        vae_options = {"vae_class": vae.class_name, "vae_dtype": "float32"}
    evaluation.options = {
        **evaluation.options,
        "device": device,
        **i3d_options,
        **vae_options,
        "ssim": SSIM_DEFINITION,
        "psnr": PSNR_DEFINITION,
        "rfvd": RFVD_DEFINITION,
    }
    evaluation.save(update_fields=["options"])

    stored = {row.video_id: row.has_features for row in evaluation.video_results.all()}
    todo = [v for v in videos if not (v.pk in stored and (i3d is None or stored[v.pk]))]
    # Measure the videos before the first whose file is missing, then fail naming it (a retry resumes).
    paths: list[tuple[Any, ...]] = []
    missing = None
    for video in todo:
        try:
            truth = _original_file(video)
            paths.append((truth,) if vae is not None else (truth, _original_file(reconstructions[video.pk])))
        except JobError as exc:
            missing = exc
            break
    done = len(videos) - len(todo)
    todo = todo[: len(paths)]
    run.progress(done, len(videos), f"measuring {len(todo)} videos")
    if vae is not None:
        measured = measure_vae_reconstructions(
            [files[0] for files in paths],
            vae,
            device=device,
            i3d=i3d,
            chunk_frames=chunk_frames,
            max_frames=max_frames,
        )
    else:
        # A causal VAE may return fewer frames than it was given: compare the common prefix.
        measured = measure_video_pairs(
            paths, device=device, i3d=i3d, max_frames=max_frames, on_length_mismatch="truncate"
        )
    try:
        for scores in measured:
            video = todo[scores.index]
            record_vae_video(
                evaluation,
                video,
                reconstruction=reconstructions.get(video.pk),
                **_figures(scores),
            )
            done += 1
            run.progress(done, len(videos), _describe(video))
    except VideoFailed as exc:
        raise JobError(f"{_describe(todo[exc.video_index])}: {exc.reason}") from exc
    if missing is not None:
        raise missing
    run.progress(len(videos), len(videos), "summarising")
    try:
        summary = finish_vae_evaluation(
            evaluation, rfvd_unavailable=rfvd_unavailable, downsample_label=downsample_label
        )
    except MetricsError as exc:
        raise JobError(str(exc)) from exc
    run.save_result(summary=summary)
    return {"evaluation_id": evaluation.pk}


@job_task(queue="gpu", name="metrics.tasks.compute_auto_scores")
def compute_auto_scores(run: JobRun) -> dict:
    """Params: run_id. CLIP score (when CLIP weights are there) and motion score of each ready video."""
    from metrics.video.scoring import VideoToScore, score_videos

    score_run = (
        AutoScoreRun.objects.select_related("model", "benchmark").filter(pk=run.params["run_id"]).first()
    )
    if score_run is None:
        raise JobError("this run no longer exists")
    videos = list(
        Video.objects.filter(
            model=score_run.model, prompt__benchmark=score_run.benchmark, status=Video.Status.READY
        )
        .select_related("prompt")
        .order_by("prompt__position", "seed", "id")
    )
    if not videos:
        raise JobError(f"{score_run.model} has no ready videos on {score_run.benchmark}")
    device = metrics_device()
    run.progress(0, len(videos), "loading models")
    motion_settings, motion_options = motion_score_settings()
    scorer, clip_settings, clip_unavailable = configured_clip_scorer(device)
    score_run.motion_settings, score_run.clip_settings = motion_settings, clip_settings
    score_run.clip_unavailable, score_run.video_count = clip_unavailable, len(videos)
    score_run.save(update_fields=["motion_settings", "clip_settings", "clip_unavailable", "video_count"])

    settings_ids = [s.pk for s in (motion_settings, clip_settings) if s is not None]
    stored = set(
        AutoScore.objects.filter(video__in=videos, settings_id__in=settings_ids).values_list(
            "video_id", "metric", "settings_id"
        )
    )
    todo = []
    for video in videos:
        needs_motion = any(
            (video.pk, metric, motion_settings.pk) not in stored for metric in MOTION_METRICS.values()
        )
        needs_clip = clip_settings is not None and (
            (video.pk, AutoScore.Metric.CLIP_SCORE, clip_settings.pk) not in stored
        )
        if needs_motion or needs_clip:
            todo.append(
                (
                    video,
                    VideoToScore(
                        media_path(video.original_file),
                        prompt=video.prompt.text if needs_clip else None,
                        motion=needs_motion,
                    ),
                )
            )
    done = len(videos) - len(todo)
    run.progress(done, len(videos), f"scoring {len(todo)} videos")
    skipped = []
    for scores in score_videos([request for _, request in todo], clip_scorer=scorer, motion=motion_options):
        video = todo[scores.index][0]
        done += 1
        run.progress(done, len(videos), _describe(video))
        if scores.error is not None:
            skipped.append(
                {"video": video.pk, "metric": "all", "reason": f"cannot decode the original: {scores.error}"}
            )
            continue
        if scores.motion_error is not None:
            skipped.append({"video": video.pk, "metric": "motion", "reason": scores.motion_error})
        elif scores.motion is not None:
            record_auto_scores(video, motion_auto_scores(scores.motion), motion_settings)
        if scores.clip is not None:
            assert clip_settings is not None
            record_auto_scores(video, {AutoScore.Metric.CLIP_SCORE: scores.clip}, clip_settings)
    run.progress(len(videos), len(videos), "done")
    score_run.skipped, score_run.completed_at = skipped, timezone.now()
    score_run.save(update_fields=["skipped", "completed_at"])
    result = {"run_id": score_run.pk, "videos": len(videos), "skipped": len(skipped)}
    if clip_unavailable:
        result["clip_unavailable"] = clip_unavailable
    return result
