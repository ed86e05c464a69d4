"""Campaigns, the work they hand to annotators, and the judgments that come back.

An `Item` is one unit of work with its videos in a canonical order (slot 0, 1, ...). An `Assignment`
is one annotator's claim on one item, with the order in which that annotator is shown the videos.
A `Judgment` is the answer, stored as the annotator saw it (left video, right video, choice) and
resolvable to Win/Tie/Loss for either model; rubric answers carry one `RubricScore` per video.
Judgments brought in from elsewhere (`source=import`) have no item or assignment."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation import outcomes
from evalsite.text import strip_bidi_controls
from generation.models import Benchmark, Category, Prompt, Video, VideoModel, new_public_id

RUBRIC_DIMENSIONS = (
    "instruction_following",
    "motion_smoothness",
    "physical_plausibility",
    "aesthetic_appeal",
)


def new_token() -> str:
    """Opaque id for an assignment in URLs and JSON: random, never derived from an item or model."""
    return secrets.token_hex(12)


class Campaign(models.Model):
    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", _("Pairwise (Metric-1)")
        RUBRIC = "rubric", _("Rubric scoring (Metric-2)")
        SEED_PREFERENCE = "seed_preference", _("Seed preference (data for DPO)")
        AB_SHARED_NOISE = "ab_shared_noise", _("A/B with shared noise (DPO evaluation)")

    class Overlap(models.TextChoices):
        K_PER_ITEM = "k_per_item", _("k annotators per item")
        EVERY_ANNOTATOR = "every_annotator", _("Every annotator does every item")

    class RubricLayout(models.TextChoices):
        SINGLE = "single", _("One video at a time")
        TOGETHER = "together", _("The compared models' videos together")

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        CLOSED = "closed"

    PAIRED_KINDS = (Kind.PAIRWISE, Kind.SEED_PREFERENCE, Kind.AB_SHARED_NOISE)

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    description = models.TextField(blank=True, help_text="instructions shown to annotators")
    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="campaigns")
    categories = models.ManyToManyField(
        Category, blank=True, related_name="campaigns", help_text="none means every category"
    )
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="campaigns")
    overlap = models.CharField(max_length=20, choices=Overlap.choices, default=Overlap.K_PER_ITEM)
    judgments_per_item = models.PositiveSmallIntegerField(
        default=3, help_text="k, for 'k annotators per item'"
    )
    rubric_layout = models.CharField(max_length=10, choices=RubricLayout.choices, default=RubricLayout.SINGLE)
    require_full_playback = models.BooleanField(
        default=False, help_text="accept an answer only after every video has played through once"
    )
    repeat_fraction = models.FloatField(
        default=0.0, help_text="share of items shown a second time, mirrored, to measure self-consistency"
    )
    claim_timeout_s = models.PositiveIntegerField(
        default=900, help_text="an unanswered claim is released to others after this many seconds"
    )
    normalise_media = models.BooleanField(
        default=False, help_text="videos are shown re-encoded to one resolution, frame rate and length"
    )
    normalised_format = models.JSONField(
        default=dict, blank=True, help_text="width, height, fps and duration_s of the shown versions"
    )
    media_ready = models.BooleanField(
        default=False,
        help_text="every video has this campaign's own rendition; no work is handed out before",
    )
    shuffle_seed = models.CharField(max_length=32, default=new_token, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(judgments_per_item__gte=1), name="campaign_positive_overlap"
            ),
            models.CheckConstraint(
                condition=models.Q(repeat_fraction__gte=0) & models.Q(repeat_fraction__lte=0.5),
                name="campaign_repeat_fraction_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.name = strip_bidi_controls(self.name)
        super().save(*args, **kwargs)

    @property
    def is_paired(self) -> bool:
        return self.kind in self.PAIRED_KINDS


class CampaignModel(models.Model):
    """A model compared in a campaign. For pairwise and A/B campaigns position 0 is model A (the
    baseline) and position 1 model B (the tuned one); a seed-preference campaign has one model."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="campaign_models")
    model = models.ForeignKey(VideoModel, on_delete=models.PROTECT, related_name="campaign_entries")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "model"], name="campaignmodel_once"),
            models.UniqueConstraint(fields=["campaign", "position"], name="campaignmodel_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign}: model {self.position}"


class ExcludedPrompt(models.Model):
    """A prompt left out of a campaign because a compared model has no video for it or refused it."""

    class Reason(models.TextChoices):
        NO_VIDEO = "no_video", _("no ready video")
        REFUSED = "refused", _("refused by the model")
        TOO_FEW_SEEDS = "too_few_seeds", _("fewer than two seeds")
        NO_SHARED_NOISE = "no_shared_noise", _("no pair of videos made from the same noise")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="excluded_prompts")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(VideoModel, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=20, choices=Reason.choices)

    class Meta:
        ordering = ["campaign", "prompt"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "prompt", "model"], name="excludedprompt_once"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt} ({self.reason})"


class Item(models.Model):
    """One unit of work: a prompt and its videos in canonical slots (see ItemVideo)."""

    class GoldAnswer(models.TextChoices):
        SLOT_0 = "slot0", _("the video in slot 0 is better")
        TIE = "tie", _("similar quality")
        SLOT_1 = "slot1", _("the video in slot 1 is better")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(help_text="canonical order within the campaign")
    gold_answer = models.CharField(
        max_length=10, choices=GoldAnswer.choices, blank=True, help_text="known answer: a gold item"
    )
    required_judgments = models.PositiveSmallIntegerField(help_text="judgments wanted for this item")
    answered = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="first showings answered on the site: the answering transaction adds one (an answer "
        "is never taken back: its judgment keeps its annotator), so progress need not count them",
    )

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="item_unique_position"),
        ]
        indexes = [
            # The campaign's largest item id in one step (assignment.annotator_order asks on every claim).
            models.Index(fields=["campaign", "id"], name="item_campaign_id"),
            # The items answered as often as they require, for every annotator's progress.
            models.Index(
                fields=["campaign"],
                condition=models.Q(answered__gte=models.F("required_judgments")),
                name="item_answered_enough",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} item {self.position}"

    @property
    def is_gold(self) -> bool:
        return bool(self.gold_answer)


class ItemVideo(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="item_videos")
    video = models.ForeignKey(Video, on_delete=models.PROTECT, related_name="+")
    slot = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["item", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["item", "slot"], name="itemvideo_unique_slot"),
            models.UniqueConstraint(fields=["item", "video"], name="itemvideo_once"),
        ]

    def __str__(self) -> str:
        return f"{self.item} slot {self.slot}"


class Assignment(models.Model):
    """One annotator's claim on one item. `presentation` lists the item's slots in the order this
    annotator sees them (left to right). A repeat shows an item the annotator already answered again,
    mirrored; repeats do not count towards the item's required judgments."""

    class Status(models.TextChoices):
        CLAIMED = "claimed"
        DONE = "done"
        PROBLEM = "problem"
        RELEASED = "released"

    token = models.CharField(max_length=24, unique=True, default=new_token, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    presentation = models.JSONField(help_text="item slots in display order")
    is_repeat = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CLAIMED, db_index=True)
    claimed_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "annotator", "claimed_at"]
        constraints = [
            # Released claims are kept for the record; an annotator holds at most one live claim or
            # answer per item and showing (first, or repeat).
            models.UniqueConstraint(
                fields=["item", "annotator", "is_repeat"],
                condition=~models.Q(status="released"),
                name="assignment_once_per_annotator_item",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "annotator", "status"]),
            # Expired live claims, looked for on every claim (assignment._release_expired): usually none.
            models.Index(
                fields=["campaign", "expires_at"],
                condition=models.Q(status="claimed"),
                name="assignment_live_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.token[:8]} ({self.status})"


class PlaybackEvent(models.Model):
    """What the annotator's player reported; the server checks them when full playback is required."""

    class Kind(models.TextChoices):
        PLAY = "play"
        ENDED = "ended"

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="playback_events")
    slot = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    media_time = models.FloatField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["assignment", "received_at"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.media_time}"


class ProblemReport(models.Model):
    class Kind(models.TextChoices):
        VIDEO_BROKEN = "video_broken", _("A video does not play or is broken")
        PROMPT_UNREADABLE = "prompt_unreadable", _("The prompt is unreadable")
        OTHER = "other", _("Something else")

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="problem")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.kind} on {self.assignment}"


class Judgment(models.Model):
    """One answer. Paired kinds store the choice as seen (left/tie/right) with the left and right
    models and videos; rubric answers have `choice` empty and one RubricScore per video."""

    class Source(models.TextChoices):
        SITE = "site"
        IMPORT = "import"

    class Choice(models.TextChoices):
        LEFT = "left"
        TIE = "tie"
        RIGHT = "right"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="judgments")
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.CASCADE, related_name="judgments")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.CASCADE, related_name="judgment"
    )
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SITE)
    is_repeat = models.BooleanField(default=False)
    choice = models.CharField(max_length=5, choices=Choice.choices, blank=True)
    left_model = models.ForeignKey(
        VideoModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    right_model = models.ForeignKey(
        VideoModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    left_video = models.ForeignKey(Video, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    right_video = models.ForeignKey(Video, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    duration_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="from the item being shown to the answer"
    )
    revision = models.PositiveSmallIntegerField(default=0, help_text="times the annotator changed it")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(
        default=timezone.now,
        db_index=True,
        help_text="indexed: its maximum says when any judgment last changed",
    )

    class Meta:
        ordering = ["campaign", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(choice="")
                | (models.Q(left_model__isnull=False) & models.Q(right_model__isnull=False)),
                name="judgment_choice_has_models",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "annotator"]),
            models.Index(fields=["left_model", "right_model"]),
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk} ({self.choice or 'scores'})"

    def outcome_for(self, model_id: int) -> str | None:
        """'win', 'tie' or 'loss' for the given model, None if it is not on either side (`annotation.outcomes`)."""
        return outcomes.outcome_for(self.choice, self.left_model_id, self.right_model_id, model_id)


class RubricScore(models.Model):
    """The four 1-5 scores of Metric-2 for one video (or, when imported, one model's video)."""

    DIMENSIONS = RUBRIC_DIMENSIONS

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="scores")
    model = models.ForeignKey(VideoModel, on_delete=models.PROTECT, related_name="+")
    video = models.ForeignKey(Video, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    shown_position = models.PositiveSmallIntegerField(default=0, help_text="0 = first shown")
    instruction_following = models.PositiveSmallIntegerField()
    motion_smoothness = models.PositiveSmallIntegerField()
    physical_plausibility = models.PositiveSmallIntegerField()
    aesthetic_appeal = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["judgment", "shown_position"]
        constraints = [
            models.UniqueConstraint(fields=["judgment", "model", "video"], name="rubricscore_once"),
            *[
                models.CheckConstraint(
                    condition=models.Q(**{f"{dim}__gte": 1}) & models.Q(**{f"{dim}__lte": 5}),
                    name=f"rubricscore_{dim}_1_to_5",
                )
                for dim in RUBRIC_DIMENSIONS
            ],
        ]

    def __str__(self) -> str:
        return f"scores of judgment {self.judgment_id}"


class AnnotatorExclusion(models.Model):
    """A manager's decision to leave an annotator's judgments in a campaign out of results
    (they are kept, not deleted)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="annotator_exclusions")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "annotator"], name="annotatorexclusion_once"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} excluded from {self.campaign}"


class Rendition(models.Model):
    """The campaign's own copy of one of its videos, the only file annotators are shown for it: re-encoded
    for this campaign (with its own encoder variation, see annotation.renditions) in the video's own
    format, or in the campaign's common format when it normalises media, and padded to the size every
    video of the campaign is served at. Stored under a random id of its own. Videos of one campaign made
    from the same file may share one rendition file."""

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="renditions")
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="+")
    playable_file = models.CharField(max_length=300, help_text="path under MEDIA_ROOT")
    poster_file = models.CharField(max_length=300, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.FloatField()
    duration_s = models.FloatField()
    encoded_size = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="bytes of the video as encoded, before padding; empty until encoded"
    )
    poster_encoded_size = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="bytes of the poster as encoded, before padding"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "video"], name="rendition_once")]

    def __str__(self) -> str:
        return f"rendition {self.public_id[:8]}"


class CampaignMedia(models.Model):
    """The random id under which a campaign shows one of its videos (`/media/v/<public_id>.mp4` and
    `/media/p/<public_id>.jpg`). A video shown in several campaigns (a model's first video in a pairwise
    campaign and its seed-preference pairs, say) gets an unrelated id in each, so an annotator cannot
    recognise it from one campaign to the next by its address or by how fast their browser's cache
    serves it. The video's own public id is for managers only. Campaigns show their renditions instead
    (ids of their own, bytes of their own); these ids serve only campaigns made before renditions were
    made for every campaign, until their media is prepared."""

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="media")
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name_plural = "campaign media"
        constraints = [models.UniqueConstraint(fields=["campaign", "video"], name="campaignmedia_once")]

    def __str__(self) -> str:
        return f"campaign media {self.public_id[:8]}"
