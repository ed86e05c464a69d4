"""Preference exports: versioned, downloadable sets of files built from judgments (see `export.py`)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation.models import Campaign
from evalsite.models import Job

EXPORT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
EXPORT_NAME_HELP = _("letters, digits, '.', '_' and '-' (it names the folder); up to 100 characters")


class PreferenceExport(models.Model):
    """One version of a named export. Its files live in MEDIA_ROOT/exports/<name>/v<version>/ and appear
    there only once complete; `manifest` repeats the folder's manifest.json."""

    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"
        CANCELLED = "cancelled"

    name = models.CharField(
        max_length=100,
        validators=[RegexValidator(EXPORT_NAME_PATTERN, EXPORT_NAME_HELP)],
        help_text=EXPORT_NAME_HELP,
    )
    version = models.PositiveIntegerField()
    options = models.JSONField(default=dict, help_text=_("ExportOptions, as given"))
    campaigns = models.ManyToManyField(Campaign, related_name="preference_exports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING, db_index=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    manifest = models.JSONField(default=dict, blank=True)
    folder = models.CharField(max_length=300, help_text=_("path under MEDIA_ROOT"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="preferenceexport_unique_version"),
            models.CheckConstraint(
                condition=models.Q(version__gte=1), name="preferenceexport_version_from_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def current_status(self) -> str:
        """The export's status; when its job ended without building it (cancelled while queued, say),
        the job's outcome."""
        job = self.job
        if self.status == self.Status.BUILDING and job is not None and job.is_finished:
            return self.Status.CANCELLED if job.status == Job.Status.CANCELLED else self.Status.FAILED
        return self.status

    @property
    def file_entries(self) -> list[dict]:
        return list(self.manifest.get("files", []))


def export_folder(name: str, version: int) -> str:
    return f"exports/{name}/v{version}"


class TrainingRun(models.Model):
    """One reward-model or Video-DPO training run from one published export version and a base model.
    Runs as a `gpu` job (`tasks.train_preference_model`); its files live in MEDIA_ROOT/training/run-<id>/."""

    class Kind(models.TextChoices):
        REWARD_MODEL = "reward_model", _("Reward model")
        VIDEO_DPO = "video_dpo", _("Video-DPO")

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    export = models.ForeignKey(PreferenceExport, on_delete=models.PROTECT, related_name="training_runs")
    export_sha256 = models.CharField(max_length=64, help_text=_("sha256 of the export's manifest.json"))
    base_model = models.ForeignKey(
        "generation.VideoModel", on_delete=models.PROTECT, related_name="training_runs"
    )
    config = models.JSONField(default=dict, help_text=_("the trainer's settings, as resolved"))
    figures = models.JSONField(default=dict, blank=True, help_text=_("final figures (last step, validation)"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    folder = models.CharField(max_length=300, help_text=_("path under MEDIA_ROOT"))
    tuned_model = models.OneToOneField(
        "generation.VideoModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_run",
        help_text=_("the model a finished Video-DPO run registered (base checkpoint + adapter)"),
    )
    evaluation = models.JSONField(
        default=dict,
        blank=True,
        help_text=_(
            "evaluate against the base: benchmark id, noise ids per prompt, the generation runs started"
        ),
    )
    evaluation_campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.pk} on {self.export}"

    @property
    def current_status(self) -> str:
        """The run's status; while its job is queued or ended without the handler saying so, the job's."""
        job = self.job
        if job is not None and self.status in (self.Status.QUEUED, self.Status.RUNNING):
            mapping = {
                Job.Status.CANCELLED: self.Status.CANCELLED,
                Job.Status.FAILED: self.Status.FAILED,
                Job.Status.RUNNING: self.Status.RUNNING,
                Job.Status.QUEUED: self.Status.QUEUED,
            }
            return mapping.get(job.status, self.status)
        return self.status


class TrainingStep(models.Model):
    """One logged step of a training run: `split` "train" (every step) or "validation" (held out)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="steps")
    step = models.PositiveIntegerField()
    split = models.CharField(max_length=10, default="train")
    values = models.JSONField(default=dict, help_text=_("figure name -> value"))

    class Meta:
        ordering = ["run", "split", "step"]
        constraints = [
            models.UniqueConstraint(fields=["run", "split", "step"], name="trainingstep_once_per_step")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.split} step {self.step}"
