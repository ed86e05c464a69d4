"""Admin views for looking things up. Campaigns are created and changed through the campaign pages and
API (which validate through the services), so the admin shows campaigns, items and judgments read-only."""

from django.contrib import admin

from .models import (
    AnnotatorExclusion,
    Assignment,
    Campaign,
    CampaignModel,
    ExcludedPrompt,
    Item,
    ItemVideo,
    Judgment,
    ProblemReport,
    RubricScore,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CampaignModelInline(ReadOnlyInline):
    model = CampaignModel


class ItemVideoInline(ReadOnlyInline):
    model = ItemVideo


class RubricScoreInline(ReadOnlyInline):
    model = RubricScore


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "status", "benchmark", "overlap", "judgments_per_item", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name"]
    inlines = [CampaignModelInline]


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "position", "prompt", "required_judgments", "gold_answer"]
    list_filter = ["campaign"]
    inlines = [ItemVideoInline]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["token", "campaign", "item", "annotator", "is_repeat", "status", "claimed_at"]
    list_filter = ["status", "campaign"]


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "annotator", "prompt", "source", "choice", "is_repeat", "created_at"]
    list_filter = ["source", "campaign"]
    inlines = [RubricScoreInline]


@admin.register(ExcludedPrompt)
class ExcludedPromptAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "prompt", "model", "reason"]
    list_filter = ["reason", "campaign"]


@admin.register(ProblemReport)
class ProblemReportAdmin(ReadOnlyAdmin):
    list_display = ["assignment", "kind", "note", "created_at"]
    list_filter = ["kind"]


@admin.register(AnnotatorExclusion)
class AnnotatorExclusionAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "annotator", "reason", "created_by", "created_at"]
