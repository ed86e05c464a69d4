from django.contrib import admin

from .models import (
    Benchmark,
    Category,
    GenerationItem,
    GenerationRun,
    Prompt,
    Refusal,
    Tag,
    Video,
    VideoModel,
)


@admin.register(Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "created_at"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "benchmark", "position"]
    list_filter = ["benchmark"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "group", "benchmark"]
    list_filter = ["benchmark", "group"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["position", "benchmark", "category", "language", "text"]
    list_filter = ["benchmark", "category", "language", "motion_level"]
    search_fields = ["text"]


@admin.register(VideoModel)
class VideoModelAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "kind", "backend", "checkpoint", "adapter", "created_at"]


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ["id", "model", "prompt", "seed", "status", "width", "height", "fps", "created_at"]
    list_filter = ["status", "source", "model"]
    readonly_fields = ["public_id", "content_sha256", "original_file", "playable_file", "poster_file"]


@admin.register(Refusal)
class RefusalAdmin(admin.ModelAdmin):
    list_display = ["model", "prompt", "reason", "created_at"]


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "model", "benchmark", "backend", "status", "created_at", "finished_at"]
    list_filter = ["status", "backend"]


@admin.register(GenerationItem)
class GenerationItemAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "run",
        "prompt",
        "seed",
        "noise_id",
        "status",
        "steps_done",
        "steps_total",
        "attempts",
    ]
    list_filter = ["status"]
    raw_id_fields = ["run", "prompt", "video", "job"]
