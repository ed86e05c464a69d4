"""Preference exports: versioned, downloadable sets of files built from judgments (see `export.py`)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from annotation.models import Campaign
from evalsite.models import Job

EXPORT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
EXPORT_NAME_HELP = "letters, digits, '.', '_' and '-' (it names the folder); up to 100 characters"


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
    options = models.JSONField(default=dict, help_text="ExportOptions, as given")
    campaigns = models.ManyToManyField(Campaign, related_name="preference_exports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING, db_index=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    manifest = models.JSONField(default=dict, blank=True)
    folder = models.CharField(max_length=300, help_text="path under MEDIA_ROOT")
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
