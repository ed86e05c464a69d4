import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from evalsite.text import strip_bidi_controls


def new_public_id() -> str:
    """Opaque id for stored files and media URLs: random, never derived from a model or prompt."""
    return secrets.token_hex(16)


class Benchmark(models.Model):
    class Kind(models.TextChoices):
        STEP_VIDEO_EVAL = "step-video-t2v-eval", _("Step-Video-T2V-Eval")
        MOVIEGEN = "moviegen-video-bench", _("Movie Gen Video Bench")
        GENERIC = "generic", _("Generic prompt file")

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=40, choices=Kind.choices)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=500, blank=True, help_text=_("file the prompts were loaded from"))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.name = strip_bidi_controls(self.name)
        super().save(*args, **kwargs)


class Category(models.Model):
    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="categories")
    name = models.CharField(max_length=200)
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["benchmark", "position"]
        constraints = [
            models.UniqueConstraint(fields=["benchmark", "name"], name="category_unique_name"),
            models.UniqueConstraint(fields=["benchmark", "position"], name="category_unique_position"),
        ]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A prompt tag (Movie Gen's concepts). `group` is the Step-Video-T2V report's grouping (Table 12)."""

    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=200)
    group = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["benchmark", "group", "name"]
        constraints = [models.UniqueConstraint(fields=["benchmark", "name"], name="tag_unique_name")]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    class MotionLevel(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="prompts")
    position = models.PositiveIntegerField(help_text=_("1-based line/row in the benchmark file"))
    text = models.TextField()
    language = models.CharField(max_length=16)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="prompts"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="prompts")
    motion_level = models.CharField(max_length=10, choices=MotionLevel.choices, blank=True)

    class Meta:
        ordering = ["benchmark", "position"]
        constraints = [
            models.UniqueConstraint(fields=["benchmark", "position"], name="prompt_unique_position"),
            models.CheckConstraint(condition=models.Q(position__gte=1), name="prompt_position_from_one"),
        ]

    def __str__(self) -> str:
        return f"{self.benchmark.slug}#{self.position}"


class VideoModel(models.Model):
    """A named, versioned source of videos: a checkpoint, an external engine, a DPO-tuned variant."""

    class Kind(models.TextChoices):
        CHECKPOINT = "checkpoint", _("Checkpoint")
        ENGINE = "engine", _("External engine")
        BASELINE = "baseline", _("Baseline")
        TUNED = "tuned", _("Tuned (e.g. DPO) version")
        DEMO = "demo", _("Demo (synthetic clips)")

    name = models.CharField(max_length=200)
    version = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CHECKPOINT)
    description = models.TextField(blank=True)
    checkpoint = models.CharField(
        max_length=500,
        blank=True,
        help_text=_(
            "checkpoint path or hub id; for generation, a local folder (the base folder when an adapter is set)"
        ),
    )
    backend = models.CharField(
        max_length=50,
        blank=True,
        help_text=_("generation backend (diffusers, command, ...); empty: not generated here"),
    )
    adapter = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("LoRA adapter folder applied on top of the checkpoint (tuned models)"),
    )
    backend_options = models.JSONField(
        default=dict, blank=True, help_text=_("options of the backend (the command backend's command, say)")
    )
    default_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("generation settings a run starts from (steps, guidance_scale, ...)"),
    )
    capabilities_record = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text=_(
            "what a worker read from the loaded checkpoint (settings, frame rule, ...), for checking runs"
        ),
    )
    base_model = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="derived_models",
        help_text=_("the model this one was tuned from"),
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="videomodel_unique_version")]

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()

    def save(self, *args, **kwargs):
        self.name = strip_bidi_controls(self.name)
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        return str(self)


class Video(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    class Source(models.TextChoices):
        UPLOAD = "upload"
        IMPORT = "import"
        DEMO = "demo"
        GENERATION = "generation"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    model = models.ForeignKey(VideoModel, on_delete=models.PROTECT, related_name="videos")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="videos")
    seed = models.BigIntegerField(null=True, blank=True)
    noise_id = models.CharField(
        max_length=200, blank=True, help_text=_("id of the initial noise; equal ids pair videos made from it")
    )
    generation_settings = models.JSONField(default=dict, blank=True)
    settings_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text=_("hash of the resolved settings of a generated video; empty otherwise"),
    )
    generation_record = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("backend, checkpoint, adapter, library versions (managers only)"),
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    original_name = models.CharField(
        max_length=500, blank=True, help_text=_("file name as brought in (managers only)")
    )
    content_sha256 = models.CharField(max_length=64)
    original_file = models.CharField(max_length=300, help_text=_("path under MEDIA_ROOT"))
    playable_file = models.CharField(max_length=300, blank=True)
    poster_file = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROCESSING, db_index=True)
    error = models.TextField(blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    source_codec = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["prompt", "model", "seed", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "prompt", "content_sha256"], name="video_same_file_once_per_model_prompt"
            ),
            models.UniqueConstraint(
                fields=["model", "prompt", "seed", "settings_hash"],
                condition=models.Q(seed__isnull=False),
                name="video_one_per_model_prompt_seed_settings",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="ready") | ~models.Q(playable_file=""),
                name="video_ready_has_playable",
            ),
        ]
        indexes = [models.Index(fields=["model", "prompt"]), models.Index(fields=["noise_id"])]

    def __str__(self) -> str:
        return f"video {self.public_id[:8]}"


class Refusal(models.Model):
    """The model's engine refused this prompt; analyses exclude the prompt for comparisons with it."""

    model = models.ForeignKey(VideoModel, on_delete=models.CASCADE, related_name="refusals")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="refusals")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "prompt"], name="refusal_once_per_model_prompt")
        ]

    def __str__(self) -> str:
        return f"{self.model} refused {self.prompt}"


class GenerationRun(models.Model):
    """A manager's request to generate videos: one model over some prompts, seeds or shared noise ids,
    and one setting or a grid of settings. Its planned videos are `GenerationItem` rows."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("Done")
        DONE_WITH_PROBLEMS = "problems", _("Done, with failures or refusals")
        CANCELLED = "cancelled", _("cancelled")

    model = models.ForeignKey(VideoModel, on_delete=models.PROTECT, related_name="generation_runs")
    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="generation_runs")
    spec = models.JSONField(
        default=dict, help_text=_("what was asked: categories or prompts, seeds or noise ids, settings grid")
    )
    backend = models.CharField(max_length=50)
    checkpoint = models.CharField(max_length=500)
    adapter = models.CharField(max_length=500, blank=True)
    batch_size = models.PositiveIntegerField(default=4, help_text=_("videos per gpu-queue job"))
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"generation run {self.pk}"


class GenerationItem(models.Model):
    """One planned video: (model, prompt, seed, hash of the resolved settings) is unique, so no retry or
    later run makes a second video for the same thing. With `shared_noise` its initial latents are stored
    and named by a noise id (from the seed and the latent shape); the same seed without it draws the very
    same latents, so the two are one video."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        REFUSED = "refused", _("refused")
        CANCELLED = "cancelled", _("cancelled")

    FINISHED = (Status.DONE, Status.FAILED, Status.REFUSED, Status.CANCELLED)

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="items")
    model = models.ForeignKey(VideoModel, on_delete=models.PROTECT, related_name="generation_items")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="generation_items")
    seed = models.BigIntegerField(help_text=_("the seed, or the seed the shared noise is drawn from"))
    shared_noise = models.BooleanField(default=False)
    noise_id = models.CharField(max_length=200, blank=True, help_text=_("set once the latent shape is known"))
    settings = models.JSONField(default=dict, help_text=_("resolved settings (defaults filled in)"))
    settings_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    oom_hint = models.CharField(max_length=300, blank=True, help_text=_("which setting to lower"))
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    job = models.ForeignKey(
        "evalsite.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_items"
    )
    video = models.OneToOneField(
        Video, null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_item"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "prompt", "seed", "settings_hash"], name="generationitem_once"
            ),
        ]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"{self.prompt} {self.noise_id or f'seed {self.seed}'}"
