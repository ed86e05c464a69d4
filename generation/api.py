from django.db.models import ProtectedError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # a key of the wrong type is a 404, not a 500
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from evalsite.api import JobSerializer
from evalsite.query import JSONParser, parse_choice, parse_id, protected_message

from . import selectors
from .models import Benchmark, GenerationItem, GenerationRun, Prompt, Refusal, Video, VideoModel
from .runs.planning import RunSpec, cancel_run, plan_run, retry_failed, run_progress, start_run
from .services import GenerationError, ProvenanceConflict, create_video_model, mark_refused
from .uploads import UploadError, check_generation_settings, start_import, upload_video


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class BenchmarkSerializer(serializers.ModelSerializer):
    prompt_count = serializers.IntegerField(read_only=True)
    categories = serializers.SerializerMethodField()

    class Meta:
        model = Benchmark
        fields = ["slug", "name", "kind", "description", "prompt_count", "categories", "created_at"]

    def get_categories(self, benchmark) -> list[dict]:
        return [
            {"name": c.name, "position": c.position, "prompt_count": c.prompt_count}
            for c in benchmark.category_rows
        ]


class PromptSerializer(serializers.ModelSerializer):
    benchmark = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    category = serializers.StringRelatedField()
    tags = serializers.StringRelatedField(many=True)
    tag_groups = serializers.SerializerMethodField()

    class Meta:
        model = Prompt
        fields = [
            "id",
            "benchmark",
            "position",
            "text",
            "language",
            "category",
            "tags",
            "tag_groups",
            "motion_level",
        ]

    def get_tag_groups(self, prompt) -> list[str]:
        return sorted({t.group for t in prompt.tags.all() if t.group})


class VideoModelSerializer(serializers.ModelSerializer):
    video_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = VideoModel
        fields = [
            "id",
            "name",
            "version",
            "kind",
            "description",
            "checkpoint",
            "base_model",
            "backend",
            "adapter",
            "backend_options",
            "default_settings",
            "video_count",
            "created_at",
        ]
        read_only_fields = ["id", "video_count", "created_at"]
        validators = []  # uniqueness is reported by the service with a clearer message

    def create(self, validated_data):
        try:
            return create_video_model(**validated_data)
        except GenerationError as exc:
            raise serializers.ValidationError({"name": [str(exc)]}) from exc


class VideoSerializer(serializers.ModelSerializer):
    model = serializers.PrimaryKeyRelatedField(read_only=True)
    model_label = serializers.CharField(source="model.label", read_only=True)
    benchmark = serializers.CharField(source="prompt.benchmark.slug", read_only=True)
    prompt_position = serializers.IntegerField(source="prompt.position", read_only=True)
    playable_url = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()

    class Meta:
        model = Video
        fields = [
            "id",
            "public_id",
            "model",
            "model_label",
            "benchmark",
            "prompt",
            "prompt_position",
            "seed",
            "noise_id",
            "generation_settings",
            "settings_hash",
            "generation_record",
            "source",
            "original_name",
            "status",
            "error",
            "width",
            "height",
            "fps",
            "frame_count",
            "duration_s",
            "size_bytes",
            "source_codec",
            "playable_url",
            "poster_url",
            "created_at",
        ]
        read_only_fields = fields

    def get_playable_url(self, video) -> str | None:
        return selectors.playable_url(video)

    def get_poster_url(self, video) -> str | None:
        return selectors.poster_url(video)


class VideoUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    model = serializers.PrimaryKeyRelatedField(queryset=VideoModel.objects.all())
    prompt = serializers.PrimaryKeyRelatedField(queryset=Prompt.objects.all())
    seed = serializers.IntegerField(required=False, allow_null=True)  # its range: upload_video
    noise_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    generation_settings = serializers.JSONField(required=False)

    def validate_generation_settings(self, value):
        try:
            return check_generation_settings(value)
        except UploadError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class ImportSerializer(serializers.Serializer):
    root = serializers.CharField(
        required=False, help_text="folder on the server, under EVALSITE_IMPORT_ROOTS"
    )
    archive = serializers.FileField(required=False, help_text="a .zip of videos (with or without a manifest)")
    manifest = serializers.CharField(required=False, allow_blank=True)
    benchmark = serializers.SlugRelatedField(
        slug_field="slug", queryset=Benchmark.objects.all(), required=False
    )
    model = serializers.CharField(required=False, allow_blank=True)
    create_models = serializers.BooleanField(default=False)
    dry_run = serializers.BooleanField(default=False)

    def validate(self, attrs):
        if bool(attrs.get("root")) == bool(attrs.get("archive")):
            raise serializers.ValidationError("give either a folder (root) or an archive, not both")
        return attrs


class RefusalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Refusal
        fields = ["id", "model", "prompt", "reason", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators = []

    def create(self, validated_data):
        try:
            return mark_refused(**validated_data)
        except GenerationError as exc:
            raise serializers.ValidationError({"prompt": [str(exc)]}) from exc


class BenchmarkViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = BenchmarkSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return selectors.benchmarks_with_counts()

    @action(detail=True, methods=["get"])
    def prompts(self, request, slug=None):
        benchmark = get_object_or_404(Benchmark, slug=slug)
        queryset = selectors.prompts_for(
            benchmark, category=request.query_params.get("category"), tag=request.query_params.get("tag")
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(PromptSerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("benchmark", str, description="benchmark slug"),
            OpenApiParameter("category", str, description="category name"),
            OpenApiParameter("tag", str, description="tag name or tag group"),
        ]
    )
)
class PromptViewSet(viewsets.ReadOnlyModelViewSet):
    """Prompts; filter with ?benchmark=<slug>&category=<name>&tag=<name or group>."""

    serializer_class = PromptSerializer

    def get_queryset(self):
        params = self.request.query_params
        return selectors.prompts_queryset(
            benchmark=params.get("benchmark"), category=params.get("category"), tag=params.get("tag")
        )


class VideoModelViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = VideoModelSerializer

    def get_queryset(self):
        return selectors.video_models_with_counts()


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("model", int, description="video model id"),
            OpenApiParameter("prompt", int, description="prompt id"),
            OpenApiParameter("benchmark", str, description="benchmark slug"),
            OpenApiParameter("status", str, enum=Video.Status.values),
        ]
    )
)
class VideoViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """The video library. Filter with ?model=<id>&benchmark=<slug>&prompt=<id>&status=ready.
    POST a multipart form to upload one file; POST to import/ to bring many in as a job."""

    serializer_class = VideoSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        params = self.request.query_params
        return selectors.videos_queryset(
            model=parse_id(params, "model"),
            benchmark=params.get("benchmark"),
            prompt=parse_id(params, "prompt"),
            status=parse_choice(params, "status", Video.Status.values),
        )

    def get_serializer_class(self):
        if self.action == "create":
            return VideoUploadSerializer
        if self.action == "import_videos":
            return ImportSerializer
        return VideoSerializer

    def create(self, request):
        form = VideoUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            video, job = upload_video(
                uploaded=data["file"],
                model=data["model"],
                prompt=data["prompt"],
                seed=data.get("seed"),
                noise_id=data.get("noise_id", ""),
                generation_settings=data.get("generation_settings"),
                user=request.user,
            )
        except ProvenanceConflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except (UploadError, GenerationError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        body = {"video": VideoSerializer(video).data, "job": JobSerializer(job).data if job else None}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        from .services import delete_video

        try:
            delete_video(instance)
        except ProtectedError as exc:
            raise Conflict(protected_message(exc)) from exc

    @action(detail=False, methods=["post"], url_path="import")
    def import_videos(self, request):
        form = ImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        options = {
            "manifest": data.get("manifest") or "",
            "benchmark": data["benchmark"].slug if data.get("benchmark") else "",
            "model": data.get("model") or "",
            "create_models": data["create_models"],
            "dry_run": data["dry_run"],
        }
        try:
            job = start_import(
                archive=data.get("archive"), root=data.get("root"), options=options, user=request.user
            )
        except (UploadError, GenerationError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class RefusalViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = RefusalSerializer

    def get_queryset(self):
        return Refusal.objects.select_related("model", "prompt").order_by("id")


# ---------------------------------------------------------------- generation runs


class GenerationRunSerializer(serializers.ModelSerializer):
    model_label = serializers.CharField(source="model.label", read_only=True)
    benchmark = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    progress = serializers.SerializerMethodField()
    created_by = serializers.StringRelatedField()

    class Meta:
        model = GenerationRun
        fields = [
            "id",
            "model",
            "model_label",
            "benchmark",
            "spec",
            "backend",
            "checkpoint",
            "adapter",
            "batch_size",
            "status",
            "cancel_requested",
            "progress",
            "created_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_progress(self, run) -> dict:
        return run_progress(run)


class GenerationItemSerializer(serializers.ModelSerializer):
    prompt_position = serializers.IntegerField(source="prompt.position", read_only=True)

    class Meta:
        model = GenerationItem
        fields = [
            "id",
            "prompt",
            "prompt_position",
            "seed",
            "shared_noise",
            "noise_id",
            "settings",
            "settings_hash",
            "status",
            "error",
            "oom_hint",
            "steps_done",
            "steps_total",
            "attempts",
            "video",
            "job",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunRequestSerializer(serializers.Serializer):
    """A run: a model, a benchmark, its prompts (all, some categories, or positions), one way of choosing
    seeds or shared noise, settings and an optional grid of settings (name -> list of values)."""

    model = serializers.PrimaryKeyRelatedField(queryset=VideoModel.objects.all())
    benchmark = serializers.SlugRelatedField(slug_field="slug", queryset=Benchmark.objects.all())
    categories = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    prompts = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        help_text="prompt positions",
    )
    seeds = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False, default=list)
    seeds_per_prompt = serializers.IntegerField(min_value=0, required=False, default=0)
    noise_seeds = serializers.ListField(
        child=serializers.IntegerField(min_value=0), required=False, default=list
    )
    noise_ids = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list
    )
    noise_per_prompt = serializers.IntegerField(min_value=0, required=False, default=0)
    settings = serializers.DictField(required=False, default=dict)
    grid = serializers.DictField(child=serializers.ListField(), required=False, default=dict)
    batch_size = serializers.IntegerField(min_value=1, required=False, default=4)

    def spec(self) -> RunSpec:
        data = self.validated_data
        return RunSpec(
            model=data["model"],
            benchmark=data["benchmark"],
            categories=data["categories"],
            prompt_positions=data["prompts"],
            seeds=data["seeds"],
            seeds_per_prompt=data["seeds_per_prompt"],
            noise_seeds=data["noise_seeds"],
            noise_ids=data["noise_ids"],
            noise_per_prompt=data["noise_per_prompt"],
            settings=data["settings"],
            grid=data["grid"],
            batch_size=data["batch_size"],
        )


class GenerationRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Generation runs. POST plan/ with a run's body to see its videos and estimate without starting it;
    POST the same body here to start it. cancel/ stops it (between denoising steps), retry/ queues its
    failed videos again, items/ lists its videos (?status=failed)."""

    serializer_class = GenerationRunSerializer

    def get_queryset(self):
        return GenerationRun.objects.select_related("model", "benchmark", "created_by")

    def get_serializer_class(self):
        if self.action in ("create", "plan"):
            return RunRequestSerializer
        if self.action == "items":
            return GenerationItemSerializer
        return GenerationRunSerializer

    @extend_schema(request=RunRequestSerializer, responses={201: GenerationRunSerializer})
    def create(self, request):
        form = RunRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = start_run(form.spec(), user=request.user)
        except GenerationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(GenerationRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RunRequestSerializer, responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["post"])
    def plan(self, request):
        form = RunRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            plan = plan_run(form.spec())
        except GenerationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(plan.report())

    def _act(self, pk, act):
        run = get_object_or_404(GenerationRun, pk=pk)
        try:
            run = act(run)
        except GenerationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(GenerationRunSerializer(run).data)

    @extend_schema(request=None, responses={200: GenerationRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(pk, cancel_run)

    @extend_schema(request=None, responses={200: GenerationRunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._act(pk, lambda run: retry_failed(run, user=request.user))

    @extend_schema(responses={200: GenerationItemSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def items(self, request, pk=None):
        run = get_object_or_404(GenerationRun, pk=pk)
        items = run.items.select_related("prompt").order_by("id")
        if request.query_params.get("status"):
            items = items.filter(status=request.query_params["status"])
        page = self.paginate_queryset(items)
        return self.get_paginated_response(GenerationItemSerializer(page, many=True).data)
