"""Stored results of the automatic video metrics.

VAE reconstruction (the Step-Video-T2V report's Table 13): a `VaeEvaluation` compares a set of test videos
with their reconstructions, made either by a VAE on the worker or already in the library as another
model's videos; `VaeEvaluationVideo` holds each video's SSIM, PSNR and I3D features, written as the job goes,
so a resumed job skips finished videos and rFVD can be recomputed from the stored features.

Automatic scores of generated videos: an `AutoScore` row per video, metric and `ScoreSettings` (the exact
settings that produced the value), filled by `AutoScoreRun` jobs.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from evalsite.models import Job
from generation.models import Benchmark, Video, VideoModel


def features_to_bytes(features) -> bytes:
    """A feature vector as little-endian float32 bytes (what the feature columns hold)."""
    return np.asarray(features, dtype="<f4").reshape(-1).tobytes()


def features_from_bytes(data: bytes | memoryview | None) -> np.ndarray | None:
    if data is None:
        return None
    return np.frombuffer(bytes(data), dtype="<f4").copy()


class VaeEvaluation(models.Model):
    class Mode(models.TextChoices):
        VAE = "vae", "VAE run on the worker"
        RECONSTRUCTIONS = "reconstructions", "Reconstructions already in the library"

    name = models.CharField(max_length=200, help_text="how the VAE is named in the comparison table")
    mode = models.CharField(max_length=20, choices=Mode.choices)
    test_model = models.ForeignKey(
        VideoModel,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="whose ready videos are the test set",
    )
    benchmark = models.ForeignKey(
        Benchmark, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    vae_path = models.CharField(max_length=500, blank=True, help_text="local folder of a diffusers video VAE")
    vae_kind = models.CharField(max_length=40, blank=True)
    reconstruction_model = models.ForeignKey(
        VideoModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    options = models.JSONField(
        default=dict, blank=True, help_text="settings used: device, I3D file, frame limits, metric variants"
    )
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The summary, written when the job finishes.
    downsample_label = models.CharField(max_length=40, blank=True, help_text="temporal x height x width")
    video_count = models.PositiveIntegerField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(null=True, blank=True)
    ssim = models.FloatField(null=True, blank=True, help_text="mean over videos of the per-video mean SSIM")
    psnr = models.FloatField(null=True, blank=True, help_text="mean over videos of the per-video mean PSNR")
    rfvd = models.FloatField(null=True, blank=True)
    rfvd_unavailable = models.TextField(blank=True, help_text="why there is no rFVD")
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(mode="vae", reconstruction_model__isnull=True) & ~models.Q(vae_path=""))
                | models.Q(mode="reconstructions", reconstruction_model__isnull=False, vae_path=""),
                name="vaeevaluation_vae_or_reconstructions",
            ),
            models.CheckConstraint(
                condition=models.Q(rfvd__isnull=True) | models.Q(rfvd_unavailable=""),
                name="vaeevaluation_rfvd_number_or_reason",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_complete(self) -> bool:
        return self.completed_at is not None


class VaeEvaluationVideo(models.Model):
    """One test video's figures. `frames`, `width` and `height` are those compared (the VAE's usable clip)."""

    evaluation = models.ForeignKey(VaeEvaluation, on_delete=models.CASCADE, related_name="video_results")
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="+")
    reconstruction = models.ForeignKey(
        Video, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    frames = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    ssim = models.FloatField()
    psnr = models.FloatField()
    # I3D features (float32, 400 for the Kinetics I3D) of the ground truth and of the reconstruction.
    truth_features = models.BinaryField(null=True, blank=True)
    reconstruction_features = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["evaluation", "id"]
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "video"], name="vaeevaluationvideo_once_per_video"),
            models.CheckConstraint(
                condition=models.Q(truth_features__isnull=True, reconstruction_features__isnull=True)
                | models.Q(truth_features__isnull=False, reconstruction_features__isnull=False),
                name="vaeevaluationvideo_features_in_pairs",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluation} / video {self.video_id}"

    @property
    def has_features(self) -> bool:
        return self.truth_features is not None

    def feature_vectors(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.has_features:
            return None
        return features_from_bytes(self.truth_features), features_from_bytes(self.reconstruction_features)  # type: ignore[return-value]


class ScoreSettings(models.Model):
    """The exact settings that produced some scores; `key` is a digest of `family` and `settings`."""

    class Family(models.TextChoices):
        CLIP = "clip", "CLIP score"
        MOTION = "motion", "Motion score"
        REWARD = "reward", "Reward model"

    key = models.CharField(max_length=64, unique=True)
    family = models.CharField(max_length=20, choices=Family.choices)
    settings = models.JSONField(default=dict)
    label = models.CharField(max_length=300, help_text="short description for tables")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["family", "created_at"]
        verbose_name_plural = "score settings"

    def __str__(self) -> str:
        return self.label


class AutoScore(models.Model):
    class Metric(models.TextChoices):
        CLIP_SCORE = "clip_score", _("CLIP score")
        MOTION_MEAN = "motion_mean", "Motion_Mean"
        MOTION_MAX = "motion_max", "Motion_Max"
        MOTION_MIN = "motion_min", "Motion_Min"
        REWARD_SCORE = "reward_score", _("Reward score")

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="auto_scores")
    metric = models.CharField(max_length=20, choices=Metric.choices)
    settings = models.ForeignKey(ScoreSettings, on_delete=models.PROTECT, related_name="scores")
    value = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["video", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["video", "metric", "settings"], name="autoscore_once_per_video_metric_settings"
            )
        ]
        indexes = [models.Index(fields=["metric", "settings"])]

    def __str__(self) -> str:
        return f"{self.get_metric_display()} of video {self.video_id}: {self.value:.4g}"


class AutoScoreRun(models.Model):
    """One job computing automatic scores for a model's ready videos on a benchmark."""

    model = models.ForeignKey(VideoModel, on_delete=models.PROTECT, related_name="+")
    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="+")
    clip_settings = models.ForeignKey(
        ScoreSettings, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    motion_settings = models.ForeignKey(
        ScoreSettings, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    clip_unavailable = models.TextField(blank=True, help_text="why no CLIP score was computed")
    video_count = models.PositiveIntegerField(null=True, blank=True)
    skipped = models.JSONField(default=list, blank=True, help_text="videos a metric could not score, and why")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Automatic scores of {self.model} on {self.benchmark}"
