"""REST API of the automatic video metrics: VAE evaluations, automatic scores and their runs."""

from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from evalsite.api import JobSerializer
from generation.models import Benchmark, VideoModel

from . import selectors
from .models import AutoScoreRun, VaeEvaluation, VaeEvaluationVideo
from .services import MetricsError, start_auto_score_run, start_vae_evaluation


class VaeEvaluationVideoSerializer(serializers.ModelSerializer):
    benchmark = serializers.CharField(source="video.prompt.benchmark.slug", read_only=True)
    prompt_position = serializers.IntegerField(source="video.prompt.position", read_only=True)
    seed = serializers.IntegerField(source="video.seed", read_only=True, allow_null=True)

    class Meta:
        model = VaeEvaluationVideo
        fields = [
            "video",
            "reconstruction",
            "benchmark",
            "prompt_position",
            "seed",
            "frames",
            "width",
            "height",
            "ssim",
            "psnr",
        ]
        read_only_fields = fields


class VaeEvaluationSerializer(serializers.ModelSerializer):
    test_model_label = serializers.CharField(source="test_model.label", read_only=True)
    benchmark = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    job = JobSerializer(read_only=True)

    class Meta:
        model = VaeEvaluation
        fields = [
            "id",
            "name",
            "mode",
            "test_model",
            "test_model_label",
            "benchmark",
            "vae_path",
            "vae_kind",
            "reconstruction_model",
            "options",
            "downsample_label",
            "video_count",
            "frame_count",
            "ssim",
            "psnr",
            "rfvd",
            "rfvd_unavailable",
            "completed_at",
            "created_at",
            "job",
        ]
        read_only_fields = fields


class VaeEvaluationDetailSerializer(VaeEvaluationSerializer):
    videos = serializers.SerializerMethodField()

    class Meta(VaeEvaluationSerializer.Meta):
        fields = [*VaeEvaluationSerializer.Meta.fields, "videos"]
        read_only_fields = fields

    def get_videos(self, evaluation) -> list[dict]:
        return VaeEvaluationVideoSerializer(selectors.vae_evaluation_videos(evaluation), many=True).data


class VaeEvaluationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    test_model = serializers.PrimaryKeyRelatedField(queryset=VideoModel.objects.all())
    benchmark = serializers.SlugRelatedField(
        slug_field="slug", queryset=Benchmark.objects.all(), required=False, allow_null=True
    )
    vae_path = serializers.CharField(required=False, allow_blank=True, max_length=500)
    vae_kind = serializers.CharField(required=False, allow_blank=True, max_length=40)
    reconstruction_model = serializers.PrimaryKeyRelatedField(
        queryset=VideoModel.objects.all(), required=False, allow_null=True
    )
    downsample_label = serializers.CharField(required=False, allow_blank=True, max_length=40)
    max_frames = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    chunk_frames = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class VaeEvaluationViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """VAE reconstruction evaluations (SSIM, PSNR, rFVD). POST starts one as a job: give `vae_path` (a local
    diffusers video VAE folder, optional `vae_kind`) or `reconstruction_model` (a model whose videos are the
    reconstructions of the test videos, paired by prompt and seed)."""

    def get_queryset(self):
        return selectors.vae_evaluations()

    def get_serializer_class(self):
        if self.action == "create":
            return VaeEvaluationCreateSerializer
        if self.action == "retrieve":
            return VaeEvaluationDetailSerializer
        return VaeEvaluationSerializer

    def create(self, request):
        form = VaeEvaluationCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            evaluation = start_vae_evaluation(**form.validated_data, user=request.user)
        except MetricsError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        evaluation = selectors.vae_evaluations().get(pk=evaluation.pk)
        return Response(VaeEvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)


class AutoScoreRunSerializer(serializers.ModelSerializer):
    model_label = serializers.CharField(source="model.label", read_only=True)
    benchmark = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    clip_settings = serializers.SlugRelatedField(slug_field="key", read_only=True)
    motion_settings = serializers.SlugRelatedField(slug_field="key", read_only=True)
    job = JobSerializer(read_only=True)

    class Meta:
        model = AutoScoreRun
        fields = [
            "id",
            "model",
            "model_label",
            "benchmark",
            "clip_settings",
            "motion_settings",
            "clip_unavailable",
            "video_count",
            "skipped",
            "created_at",
            "completed_at",
            "job",
        ]
        read_only_fields = fields


class AutoScoreRunCreateSerializer(serializers.Serializer):
    model = serializers.PrimaryKeyRelatedField(queryset=VideoModel.objects.all())
    benchmark = serializers.SlugRelatedField(slug_field="slug", queryset=Benchmark.objects.all())


def summary_data(summary: selectors.ScoreSummary) -> dict:
    columns = summary.columns

    def row_data(row: selectors.ScoreRow) -> dict:
        data = {"model": row.model.pk, "model_label": row.model.label, "scores": row.by_column(columns)}
        if row.category:
            data = {"category": row.category, **data}
        return data

    return {
        "benchmark": summary.benchmark.slug,
        "columns": [
            {
                "id": c.id,
                "metric": c.metric,
                "metric_label": c.metric_label,
                "settings_key": c.settings.key,
                "settings_label": c.settings.label,
                "settings": c.settings.settings,
            }
            for c in columns
        ],
        "models": [row_data(row) for row in summary.models],
        "categories": [row_data(row) for row in summary.categories],
    }


class AutoScoreViewSet(viewsets.GenericViewSet):
    """Automatic scores (CLIP score, Motion_Mean/Max/Min). GET lists, for each benchmark with scores (or
    ?benchmark=<slug>), the mean per model and per category, one column per metric and settings.
    POST {model, benchmark} starts a run as a job."""

    serializer_class = AutoScoreRunCreateSerializer
    pagination_class = None

    def get_queryset(self):
        return selectors.auto_score_runs()

    def list(self, request):
        slug = request.query_params.get("benchmark")
        benchmarks = [get_object_or_404(Benchmark, slug=slug)] if slug else selectors.scored_benchmarks()
        return Response([summary_data(selectors.auto_score_summary(b)) for b in benchmarks])

    def create(self, request):
        form = AutoScoreRunCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = start_auto_score_run(**form.validated_data, user=request.user)
        except MetricsError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        run = selectors.auto_score_runs().get(pk=run.pk)
        return Response(AutoScoreRunSerializer(run).data, status=status.HTTP_201_CREATED)


class AutoScoreRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs of automatic scores, newest first, with their job and why CLIP was unavailable if it was."""

    serializer_class = AutoScoreRunSerializer

    def get_queryset(self):
        return selectors.auto_score_runs()
