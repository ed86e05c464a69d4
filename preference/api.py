from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # a key of the wrong type is a 404, not a 500
from rest_framework.response import Response

from annotation.models import Campaign
from evalsite.api import JobSerializer
from evalsite.jobs import JobStateError
from generation.models import Benchmark, VideoModel

from . import selectors
from .export import FORMATS, ExportOptions
from .forms import OPTION_HELP
from .models import EXPORT_NAME_PATTERN, PreferenceExport, TrainingRun
from .pairs import GRANULARITIES, TIE_HANDLING
from .services import ExportError, create_export
from .training_runs import (
    TrainingRunError,
    cancel_training_run,
    create_evaluation_campaign,
    create_training_run,
    curves,
    retry_training_run,
    start_evaluation_generation,
    start_reward_scoring,
)
from .views import serve_export_file

DEFAULTS = ExportOptions()


class PreferenceExportSerializer(serializers.ModelSerializer):
    campaigns = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    status = serializers.CharField(source="current_status", read_only=True)
    job = JobSerializer(read_only=True)
    created_by = serializers.StringRelatedField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = PreferenceExport
        fields = [
            "id",
            "name",
            "version",
            "status",
            "options",
            "campaigns",
            "folder",
            "manifest",
            "files",
            "job",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_files(self, export) -> list[dict]:
        """Each downloadable file with its API download URL (the manifest last)."""
        entries = {entry["name"]: entry for entry in export.file_entries}
        return [
            {
                **entries.get(name, {"name": name}),
                "url": reverse(
                    "api:preference-export-file-download", kwargs={"pk": export.pk, "filename": name}
                ),
            }
            for name in selectors.downloadable_names(export)
        ]


class PreferenceExportCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(regex=EXPORT_NAME_PATTERN, max_length=100)
    campaigns = serializers.PrimaryKeyRelatedField(
        queryset=Campaign.objects.all(), many=True, allow_empty=False
    )
    min_agreement = serializers.FloatField(
        min_value=0, max_value=1, default=DEFAULTS.min_agreement, help_text=OPTION_HELP["min_agreement"]
    )
    ties = serializers.ChoiceField(choices=TIE_HANDLING, default=DEFAULTS.ties, help_text=OPTION_HELP["ties"])
    granularity = serializers.ChoiceField(
        choices=GRANULARITIES, default=DEFAULTS.granularity, help_text=OPTION_HELP["granularity"]
    )
    validation_fraction = serializers.FloatField(
        min_value=0,
        max_value=0.99,
        default=DEFAULTS.validation_fraction,
        help_text=OPTION_HELP["validation_fraction"],
    )
    split_seed = serializers.CharField(
        max_length=100, default=DEFAULTS.split_seed, help_text=OPTION_HELP["split_seed"]
    )
    formats = serializers.ListField(
        child=serializers.ChoiceField(choices=FORMATS),
        allow_empty=False,
        default=list(DEFAULTS.formats),
        help_text=OPTION_HELP["formats"],
    )


class PreferenceExportViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Preference exports for DPO and reward-model training (managers only). POST {name, campaigns: [ids],
    min_agreement, ties, granularity, validation_fraction, split_seed, formats} builds the next version of
    `name` as a job; GET lists them with their manifests; `files/<name>/` downloads one file."""

    def get_queryset(self):
        return selectors.exports()

    def get_serializer_class(self):
        if self.action == "create":
            return PreferenceExportCreateSerializer
        return PreferenceExportSerializer

    def create(self, request):
        form = PreferenceExportCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        name, campaigns = data.pop("name"), data.pop("campaigns")
        try:
            export = create_export(name=name, campaigns=campaigns, options=data, user=request.user)
        except ExportError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        export = selectors.exports().get(pk=export.pk)
        return Response(PreferenceExportSerializer(export).data, status=status.HTTP_201_CREATED)

    @action(
        detail=True,
        methods=["get"],
        url_path=r"files/(?P<filename>[A-Za-z0-9._-]+)",
        url_name="file-download",
    )
    def download(self, request, pk=None, filename=None):
        return serve_export_file(request, get_object_or_404(selectors.exports(), pk=pk), filename)


# ------------------------------------------------------------------------------------------ training runs


class TrainingRunSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="current_status", read_only=True)
    job = JobSerializer(read_only=True)
    export = serializers.StringRelatedField()
    base_model = serializers.StringRelatedField()
    tuned_model = serializers.StringRelatedField()
    created_by = serializers.StringRelatedField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "kind",
            "status",
            "export",
            "export_id",
            "export_sha256",
            "base_model",
            "base_model_id",
            "config",
            "figures",
            "tuned_model",
            "tuned_model_id",
            "evaluation_campaign_id",
            "folder",
            "job",
            "created_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class TrainingRunCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TrainingRun.Kind.choices)
    export = serializers.PrimaryKeyRelatedField(queryset=PreferenceExport.objects.all())
    base_model = serializers.PrimaryKeyRelatedField(queryset=VideoModel.objects.all())
    settings = serializers.DictField(
        required=False,
        default=dict,
        help_text="trainer settings (DPOConfig / RewardConfig fields); unknown ones are refused",
    )


class TrainingRunMetricsSerializer(serializers.Serializer):
    train = serializers.DictField(help_text="figure -> [[step, value], ...]")
    validation = serializers.DictField(help_text="figure -> [[step, value], ...] on the held-out split")


class RewardScoringSerializer(serializers.Serializer):
    model = serializers.PrimaryKeyRelatedField(queryset=VideoModel.objects.all())
    benchmark = serializers.PrimaryKeyRelatedField(queryset=Benchmark.objects.all())
    on_policy_export = serializers.RegexField(
        regex=EXPORT_NAME_PATTERN,
        required=False,
        default="",
        allow_blank=True,
        help_text="name of the export whose next version gets the on-policy pairs; empty: scores only",
    )
    min_gap = serializers.FloatField(
        min_value=0, default=0.5, help_text="standardised reward gap a pair must exceed"
    )


class EvaluationSerializer(serializers.Serializer):
    benchmark = serializers.PrimaryKeyRelatedField(queryset=Benchmark.objects.all())
    noise_per_prompt = serializers.IntegerField(min_value=1, max_value=16, default=1)


class TrainingRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Reward-model and Video-DPO training runs (managers only). POST {kind, export, base_model, settings}
    queues a gpu job; `metrics/` gives the per-step curves; `cancel/` and `retry/` (resume) act on the job."""

    def get_queryset(self):
        return TrainingRun.objects.select_related("job", "export", "base_model", "tuned_model", "created_by")

    def get_serializer_class(self):
        if self.action == "create":
            return TrainingRunCreateSerializer
        return TrainingRunSerializer

    def create(self, request):
        form = TrainingRunCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            run = create_training_run(
                kind=data["kind"],
                export=data["export"],
                base_model=data["base_model"],
                settings_given=data["settings"],
                user=request.user,
            )
        except TrainingRunError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            TrainingRunSerializer(self.get_queryset().get(pk=run.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=None, responses=TrainingRunMetricsSerializer)
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        return Response(curves(self.get_object()))

    def _act(self, function):
        try:
            run = function(self.get_object())
        except (TrainingRunError, JobStateError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(TrainingRunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(cancel_training_run)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._act(retry_training_run)

    @extend_schema(request=RewardScoringSerializer, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def score(self, request, pk=None):
        """A finished reward model: score the model's videos on the benchmark, and build on-policy pairs."""
        form = RewardScoringSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            job = start_reward_scoring(self.get_object(), **form.validated_data, user=request.user)
        except TrainingRunError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=EvaluationSerializer, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"], url_path="evaluate")
    def evaluate(self, request, pk=None):
        """A finished Video-DPO run: generate base and tuned with shared noise ids on the benchmark."""
        form = EvaluationSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        run = self.get_object()
        try:
            start_evaluation_generation(run, **form.validated_data, user=request.user)
        except TrainingRunError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            TrainingRunSerializer(self.get_queryset().get(pk=run.pk)).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"], url_path="evaluation-campaign")
    def evaluation_campaign(self, request, pk=None):
        """Create the A/B-with-shared-noise campaign (A: base, B: tuned) once the videos are generated."""
        run = self.get_object()
        try:
            create_evaluation_campaign(run, user=request.user)
        except TrainingRunError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            TrainingRunSerializer(self.get_queryset().get(pk=run.pk)).data, status=status.HTTP_201_CREATED
        )
