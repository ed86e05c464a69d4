from django.urls import reverse
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # a key of the wrong type is a 404, not a 500
from rest_framework.response import Response

from annotation.models import Campaign
from evalsite.api import JobSerializer

from . import selectors
from .export import FORMATS, OPTION_HELP, ExportOptions
from .models import EXPORT_NAME_PATTERN, PreferenceExport
from .pairs import GRANULARITIES, TIE_HANDLING
from .services import ExportError, create_export
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
                "url": reverse("preference-export-file-download", kwargs={"pk": export.pk, "filename": name}),
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
