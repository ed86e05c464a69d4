from django.contrib import admin

from .models import PreferenceExport, TrainingRun


@admin.register(PreferenceExport)
class PreferenceExportAdmin(admin.ModelAdmin):
    """Read-only: exports are made by `create_export` (the Exports page or the API), never edited."""

    list_display = ("name", "version", "status", "created_at", "created_by")
    list_filter = ("status",)
    search_fields = ("name",)
    readonly_fields = (
        "name",
        "version",
        "options",
        "campaigns",
        "status",
        "job",
        "manifest",
        "folder",
        "created_by",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Read-only: runs are made by `create_training_run` (the Training page or the API)."""

    list_display = ("id", "kind", "export", "base_model", "status", "tuned_model", "created_at")
    list_filter = ("kind", "status")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in TrainingRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
