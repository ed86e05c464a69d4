"""Jobs of the automatic video metrics (gpu queue): thin shells that load rows, call `metrics.video` and
save the figures.

Both jobs save each video's figures as soon as they are computed and skip videos already stored, so a job
killed or cancelled midway resumes where it stopped and never stores a video twice. torch and the models
are imported inside the handlers: the web process may import this module to look a job up by name
(`evalsite.jobs.start_job`), not to run it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.utils import timezone

from evalsite.jobs import JobError, JobRun, job_task
from generation.models import Video
from generation.services import media_path

from .models import AutoScore, AutoScoreRun, ScoreSettings, VaeEvaluation
from .services import (
    MetricsError,
    check_vae_folder,
    configured_clip_scorer,
    finish_vae_evaluation,
    ground_truth_videos,
    metrics_device,
    pair_reconstructions,
    problems_summary,
    record_auto_scores,
    record_vae_video,
    score_settings,
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
    from metrics.video.decode import decode_video
    from metrics.video.reconstruction import measure_pair

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
    for done, video in enumerate(videos):
        if video.pk in stored and (i3d is None or stored[video.pk]):
            continue
        run.progress(done, len(videos), f"{_describe(video)}")
        reconstruction = reconstructions.get(video.pk)
        try:
            frames = decode_video(_original_file(video), max_frames=max_frames)
            if vae is not None:
                from metrics.video.vae import reconstruct, usable_clip

                truth = usable_clip(vae, frames, chunk_frames=chunk_frames)
                recon = reconstruct(vae, frames, chunk_frames=chunk_frames)
            else:
                assert reconstruction is not None
                recon = decode_video(_original_file(reconstruction), max_frames=max_frames)
                if recon.shape[1:3] != frames.shape[1:3]:
                    raise JobError(
                        f"frame sizes differ: {_describe(video)} is {frames.shape[2]}x{frames.shape[1]}, its "
                        f"reconstruction (video {reconstruction.pk}) is {recon.shape[2]}x{recon.shape[1]}"
                    )
                # A causal VAE may return fewer frames than it was given: compare the common prefix.
                count = min(frames.shape[0], recon.shape[0])
                truth, recon = frames[:count], recon[:count]
            figures = measure_pair(truth, recon, device=device, i3d=i3d)
        except ValueError as exc:
            raise JobError(f"{_describe(video)}: {exc}") from exc
        record_vae_video(evaluation, video, reconstruction=reconstruction, **figures)
    run.progress(len(videos), len(videos), "summarising")
    try:
        summary = finish_vae_evaluation(
            evaluation, rfvd_unavailable=rfvd_unavailable, downsample_label=downsample_label
        )
    except MetricsError as exc:
        raise JobError(str(exc)) from exc
    run.save_result(summary=summary)
    return {"evaluation_id": evaluation.pk}


MOTION_METRICS = {
    "Motion_Mean": AutoScore.Metric.MOTION_MEAN,
    "Motion_Max": AutoScore.Metric.MOTION_MAX,
    "Motion_Min": AutoScore.Metric.MOTION_MIN,
}


def _motion_settings() -> tuple[ScoreSettings, dict[str, Any]]:
    from metrics.video.motion import DEFAULT_SHORT_SIDE, DEFAULT_STRIDE, FarnebackParams

    values = {
        "stride": DEFAULT_STRIDE,
        "short_side": DEFAULT_SHORT_SIDE,
        "farneback": asdict(FarnebackParams()),
    }
    label = f"Farneback optical flow, frame stride {DEFAULT_STRIDE}, short side {DEFAULT_SHORT_SIDE} px"
    return score_settings(ScoreSettings.Family.MOTION, values, label), values


@job_task(queue="gpu", name="metrics.tasks.compute_auto_scores")
def compute_auto_scores(run: JobRun) -> dict:
    """Params: run_id. CLIP score (when CLIP weights are there) and motion score of each ready video."""
    from metrics.video.decode import decode_video
    from metrics.video.motion import motion_score

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
    motion_settings, _ = _motion_settings()
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
    skipped = []
    for done, video in enumerate(videos):
        needs_motion = any(
            (video.pk, metric, motion_settings.pk) not in stored for metric in MOTION_METRICS.values()
        )
        needs_clip = clip_settings is not None and (
            (video.pk, AutoScore.Metric.CLIP_SCORE, clip_settings.pk) not in stored
        )
        if not (needs_motion or needs_clip):
            continue
        run.progress(done, len(videos), _describe(video))
        try:
            frames = decode_video(media_path(video.original_file))
        except Exception as exc:
            skipped.append(
                {"video": video.pk, "metric": "all", "reason": f"cannot decode the original: {exc}"}
            )
            continue
        if needs_motion:
            try:
                motion = motion_score(frames)
            except ValueError as exc:
                skipped.append({"video": video.pk, "metric": "motion", "reason": str(exc)})
            else:
                values = {MOTION_METRICS[name]: value for name, value in motion.as_dict().items()}
                record_auto_scores(video, values, motion_settings)
        if needs_clip:
            assert clip_settings is not None
            clip = scorer.score(frames, video.prompt.text)
            record_auto_scores(video, {AutoScore.Metric.CLIP_SCORE: clip}, clip_settings)
    run.progress(len(videos), len(videos), "done")
    score_run.skipped, score_run.completed_at = skipped, timezone.now()
    score_run.save(update_fields=["skipped", "completed_at"])
    result = {"run_id": score_run.pk, "videos": len(videos), "skipped": len(skipped)}
    if clip_unavailable:
        result["clip_unavailable"] = clip_unavailable
    return result
