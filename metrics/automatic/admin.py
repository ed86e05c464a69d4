from django.contrib import admin

from .models import AutoScore, AutoScoreRun, ScoreSettings, VaeEvaluation, VaeEvaluationVideo


class VaeEvaluationVideoInline(admin.TabularInline):
    model = VaeEvaluationVideo
    fields = ["video", "reconstruction", "frames", "width", "height", "ssim", "psnr"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(VaeEvaluation)
class VaeEvaluationAdmin(admin.ModelAdmin):
    list_display = ["name", "mode", "test_model", "benchmark", "downsample_label", "ssim", "psnr", "rfvd"]
    list_filter = ["mode", "test_model"]
    readonly_fields = ["job", "created_by", "completed_at"]
    inlines = [VaeEvaluationVideoInline]


@admin.register(ScoreSettings)
class ScoreSettingsAdmin(admin.ModelAdmin):
    list_display = ["label", "family", "key", "created_at"]
    list_filter = ["family"]
    readonly_fields = ["key", "family", "settings"]


@admin.register(AutoScore)
class AutoScoreAdmin(admin.ModelAdmin):
    list_display = ["video", "metric", "value", "settings", "created_at"]
    list_filter = ["metric", "settings"]
    raw_id_fields = ["video"]


@admin.register(AutoScoreRun)
class AutoScoreRunAdmin(admin.ModelAdmin):
    list_display = ["model", "benchmark", "video_count", "created_at", "completed_at"]
    list_filter = ["model", "benchmark"]
    readonly_fields = ["job", "created_by", "clip_settings", "motion_settings"]
