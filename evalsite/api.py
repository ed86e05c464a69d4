from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # a key of the wrong type is a 404, not a 500
from rest_framework.response import Response

from .job_messages import translated_message
from .jobs import JobStateError, cancel_job, retry_job
from .models import Job
from .query import QueryError, parse_choice, parse_uuid
from .selectors import jobs_queryset


class JobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True, allow_null=True)
    is_stalled = serializers.BooleanField(read_only=True)
    message_text = serializers.SerializerMethodField(
        help_text="the progress message in the request's language"
    )
    created_by = serializers.StringRelatedField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "queue",
            "title",
            "params",
            "status",
            "progress_done",
            "progress_total",
            "percent",
            "message",
            "message_text",
            "error",
            "result",
            "attempts",
            "cancel_requested",
            "is_stalled",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]
        read_only_fields = fields

    def get_message_text(self, job: Job) -> str:
        return translated_message(job.message)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Job.Status.values),
            OpenApiParameter("kind", str, description="task name"),
            OpenApiParameter("active", str, enum=["0", "1"], description="1: queued or running only"),
        ]
    )
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Jobs: list (filter with ?status=running&kind=...&active=1), detail, cancel and retry."""

    serializer_class = JobSerializer

    def get_queryset(self):
        params = self.request.query_params
        return jobs_queryset(
            status=parse_choice(params, "status", Job.Status.values),
            kind=params.get("kind"),
            active=parse_choice(params, "active", ("0", "1")) == "1",
        )

    def _act(self, pk, act):
        try:
            job_id = parse_uuid(pk)
        except QueryError:
            raise Http404("no such job") from None
        job = get_object_or_404(Job, pk=job_id)
        try:
            job = act(job)
        except JobStateError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(pk, cancel_job)

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._act(pk, retry_job)
