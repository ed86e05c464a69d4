"""The managers' API (staff only, like the rest of /api/ outside `annotate/`): campaigns with their set-up,
progress, items and gold answers, quality control and exclusions, importing judgments, and every judgment.
Managers are not blind: responses name the models. Refusals are 400 with `{"detail": "..."}` and change
nothing."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404  # a key of the wrong type is a 404, not a 500
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from evalsite.query import JSONParser, parse_choice, parse_id
from generation.models import Benchmark, Category, VideoModel

from .. import importing, outcomes, quality, selectors, services
from ..campaigns import CampaignError, CampaignSpec, create_campaign
from ..models import Campaign, Item, Judgment

PROBLEMS_LISTED = 200


def _refusal(exc: Exception) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


def _usernames():
    return serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), many=True, required=False
    )


# --- campaigns ------------------------------------------------------------------------------------------


class CampaignModelSerializer(serializers.Serializer):
    role = serializers.CharField(
        help_text="A / B (pairwise), baseline / tuned (A/B), model, or 1..n (rubric)"
    )
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.CharField()
    label = serializers.CharField()


class CampaignSerializer(serializers.ModelSerializer):
    benchmark = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    categories = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    models = serializers.SerializerMethodField()
    annotators = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    item_count = serializers.IntegerField(read_only=True)
    required_total = serializers.IntegerField(read_only=True, help_text="judgments wanted in all")
    done_total = serializers.IntegerField(
        read_only=True, help_text="first showings answered, at most the required number per item"
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "kind",
            "status",
            "description",
            "benchmark",
            "categories",
            "models",
            "annotators",
            "overlap",
            "judgments_per_item",
            "rubric_layout",
            "require_full_playback",
            "repeat_fraction",
            "claim_timeout_s",
            "normalise_media",
            "normalised_format",
            "media_ready",
            "item_count",
            "required_total",
            "done_total",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema(responses=CampaignModelSerializer(many=True))
    def get_models(self, campaign) -> list[dict]:
        return [
            {"role": role, "id": m.pk, "name": m.name, "version": m.version, "label": m.label}
            for role, m in selectors.model_roles(campaign)
        ]


class CampaignCreateSerializer(serializers.Serializer):
    """Parses the request; `create_campaign` validates the set-up (the same check as the web form's)."""

    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Campaign.Kind.choices)
    benchmark = serializers.SlugRelatedField(slug_field="slug", queryset=Benchmark.objects.all())
    categories = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="category names; none: all"
    )
    models = serializers.PrimaryKeyRelatedField(
        queryset=VideoModel.objects.all(),
        many=True,
        help_text="model ids in order: A then B (pairwise), baseline then tuned (A/B)",
    )
    annotators = _usernames()
    annotators_group = serializers.BooleanField(
        default=False, help_text="add every active member of the group 'annotators'"
    )
    overlap = serializers.ChoiceField(choices=Campaign.Overlap.choices, default=Campaign.Overlap.K_PER_ITEM)
    judgments_per_item = serializers.IntegerField(default=3, help_text="k, for 'k annotators per item'")
    rubric_layout = serializers.ChoiceField(
        choices=Campaign.RubricLayout.choices, default=Campaign.RubricLayout.SINGLE
    )
    require_full_playback = serializers.BooleanField(default=False)
    repeat_fraction = serializers.FloatField(default=0.0)
    claim_timeout_s = serializers.IntegerField(default=900)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="instructions shown to annotators"
    )

    def validate(self, attrs):
        benchmark = attrs["benchmark"]
        categories = []
        for name in attrs.get("categories", []):
            category = Category.objects.filter(benchmark=benchmark, name=name).first()
            if category is None:
                raise ValidationError(
                    {"categories": [f"benchmark {benchmark.slug!r} has no category {name!r}"]}
                )
            categories.append(category)
        attrs["categories"] = categories
        return attrs

    def to_spec(self) -> CampaignSpec:
        data = self.validated_data
        people = list(data.get("annotators", []))
        if data["annotators_group"]:
            people += [u for u in selectors.annotator_group_members() if u not in people]
        return CampaignSpec(
            name=data["name"],
            kind=data["kind"],
            benchmark=data["benchmark"],
            models=data["models"],
            categories=data["categories"],
            annotators=people,
            overlap=data["overlap"],
            judgments_per_item=data["judgments_per_item"],
            rubric_layout=data["rubric_layout"],
            require_full_playback=data["require_full_playback"],
            repeat_fraction=data["repeat_fraction"],
            claim_timeout_s=data["claim_timeout_s"],
            description=data["description"],
        )


class CampaignNeedsSerializer(CampaignCreateSerializer):
    """A campaign set-up (as for creating one; the name is optional) and how to fill what it lacks."""

    name = serializers.CharField(max_length=200, required=False, default="")
    count = serializers.IntegerField(
        default=1, help_text="seeds per prompt (seed preference) or shared-noise ids per prompt (A/B)"
    )
    settings = serializers.DictField(required=False, default=dict, help_text="on top of each model's own")
    batch_size = serializers.IntegerField(default=4, min_value=1, max_value=64)
    dry_run = serializers.BooleanField(default=False, help_text="only plan: list the runs and their videos")


class AddAnnotatorsSerializer(serializers.Serializer):
    annotators = _usernames()
    annotators_group = serializers.BooleanField(default=False)

    def validate(self, attrs):
        if not attrs.get("annotators") and not attrs["annotators_group"]:
            raise ValidationError("give annotators (usernames) or annotators_group: true")
        return attrs

    def chosen(self) -> list:
        people = list(self.validated_data.get("annotators", []))
        if self.validated_data["annotators_group"]:
            people += [u for u in selectors.annotator_group_members() if u not in people]
        return people


# --- progress -------------------------------------------------------------------------------------------


class AnnotatorProgressSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    in_campaign = serializers.BooleanField()
    done = serializers.IntegerField()
    repeats_done = serializers.IntegerField()
    imported = serializers.IntegerField()
    claimed = serializers.IntegerField()
    total = serializers.IntegerField(help_text="items in the campaign")
    problems = serializers.IntegerField()
    median_duration_ms = serializers.FloatField(allow_null=True)
    last_active = serializers.DateTimeField(allow_null=True)
    excluded = serializers.BooleanField()
    exclusion_reason = serializers.CharField()


class TimeSummarySerializer(serializers.Serializer):
    n = serializers.IntegerField()
    median_ms = serializers.FloatField(allow_null=True)
    p10_ms = serializers.FloatField(allow_null=True)
    p90_ms = serializers.FloatField(allow_null=True)
    mean_ms = serializers.FloatField(allow_null=True)


class ExcludedPromptSerializer(serializers.Serializer):
    prompt = serializers.IntegerField(source="prompt_id")
    prompt_position = serializers.IntegerField(source="prompt.position")
    model = serializers.CharField(source="model.label", allow_null=True, default=None)
    reason = serializers.CharField()


class ProblemReportSerializer(serializers.Serializer):
    annotator = serializers.CharField(source="assignment.annotator.username")
    item = serializers.IntegerField(source="assignment.item_id")
    item_position = serializers.IntegerField(source="assignment.item.position")
    kind = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class ProgressSerializer(serializers.Serializer):
    annotators = AnnotatorProgressSerializer(many=True)
    time_per_item = TimeSummarySerializer()
    excluded_prompts = ExcludedPromptSerializer(many=True)
    problem_reports = ProblemReportSerializer(many=True, help_text=f"the latest {PROBLEMS_LISTED}")


class ItemVideoSerializer(serializers.Serializer):
    slot = serializers.IntegerField()
    model = serializers.CharField(source="video.model.label")
    video = serializers.CharField(source="video.public_id")
    seed = serializers.IntegerField(source="video.seed", allow_null=True)


class ItemSerializer(serializers.ModelSerializer):
    prompt_position = serializers.IntegerField(source="prompt.position")
    prompt_text = serializers.CharField(source="prompt.text")
    videos = ItemVideoSerializer(source="item_videos", many=True)
    judgments_done = serializers.IntegerField()
    repeats_done = serializers.IntegerField()
    live_claims = serializers.IntegerField()
    problems = serializers.IntegerField()

    class Meta:
        model = Item
        fields = [
            "id",
            "position",
            "prompt",
            "prompt_position",
            "prompt_text",
            "videos",
            "required_judgments",
            "judgments_done",
            "repeats_done",
            "live_claims",
            "problems",
            "gold_answer",
        ]
        read_only_fields = fields


class GoldSerializer(serializers.Serializer):
    gold_answer = serializers.ChoiceField(
        choices=[("", "not gold"), *Item.GoldAnswer.choices],
        allow_blank=True,
        help_text="slot0 / tie / slot1 in canonical terms (slot 0 holds model A's video); empty clears",
    )


# --- quality --------------------------------------------------------------------------------------------


class AnnotatorQualitySerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    excluded = serializers.BooleanField()
    exclusion_reason = serializers.CharField()
    judgments = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_correct = serializers.IntegerField()
    gold_n = serializers.IntegerField()
    self_consistency = serializers.FloatField(allow_null=True)
    repeat_agreeing = serializers.IntegerField()
    repeat_n = serializers.IntegerField()
    majority_agreement = serializers.FloatField(allow_null=True)
    majority_agreeing = serializers.IntegerField()
    majority_n = serializers.IntegerField()
    pairwise_share = serializers.FloatField(allow_null=True)
    pairwise_n = serializers.IntegerField()
    left_share = serializers.FloatField(
        allow_null=True,
        help_text="share of 'left' answers over the judgments that count in the results (the results' position "
        "bias); for an excluded annotator, over their judgments as if they counted",
    )
    tie_share = serializers.FloatField(allow_null=True)
    right_share = serializers.FloatField(allow_null=True)
    position_n = serializers.IntegerField()
    position_p_value = serializers.FloatField()
    median_duration_ms = serializers.FloatField(allow_null=True)
    contradictions = serializers.IntegerField()
    contradiction_n = serializers.IntegerField()


class ContradictionSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    judgment_id = serializers.IntegerField()
    campaign_id = serializers.IntegerField()
    prompt_id = serializers.IntegerField()
    prompt_position = serializers.IntegerField()
    preferred = serializers.CharField()
    other = serializers.CharField()
    preferred_mean = serializers.FloatField()
    other_mean = serializers.FloatField()
    matched_by = serializers.CharField()


class DimensionAgreementSerializer(serializers.Serializer):
    dimension = serializers.CharField()
    alpha = serializers.FloatField(allow_null=True)
    units = serializers.IntegerField()


class AgreementSerializer(serializers.Serializer):
    """The results' overall agreement: paired kinds in `alpha`, rubric campaigns per dimension."""

    alpha = serializers.FloatField(allow_null=True)
    annotators = serializers.IntegerField()
    units = serializers.IntegerField()
    by_dimension = DimensionAgreementSerializer(many=True)


class QualitySerializer(serializers.Serializer):
    agreement = AgreementSerializer()
    annotators = AnnotatorQualitySerializer(many=True)
    contradictions = ContradictionSerializer(many=True)


class ExclusionSerializer(serializers.Serializer):
    annotator = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all())
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="CSV with a header; see `python manage.py import_judgments --help`"
    )
    dry_run = serializers.BooleanField(default=False)


class ImportProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    message = serializers.CharField()


class ImportReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    campaign = serializers.CharField()
    format = serializers.CharField()
    dry_run = serializers.BooleanField()
    rows = serializers.IntegerField()
    imported = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    created_annotators = serializers.ListField(child=serializers.CharField())
    errors = ImportProblemSerializer(many=True)
    summary = serializers.CharField()


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Campaign.Status.values),
            OpenApiParameter("kind", str, enum=Campaign.Kind.values),
        ]
    )
)
class CampaignViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Campaigns: list, create (validated by create_campaign; nothing stored on error), detail, and the
    actions below. Filter the list with ?status=active&kind=pairwise."""

    serializer_class = CampaignSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        campaigns = selectors.campaigns_with_progress().prefetch_related("categories", "annotators")
        params = self.request.query_params
        if status_ := parse_choice(params, "status", Campaign.Status.values):
            campaigns = campaigns.filter(status=status_)
        if kind := parse_choice(params, "kind", Campaign.Kind.values):
            campaigns = campaigns.filter(kind=kind)
        return campaigns

    def get_serializer_class(self):
        if self.action == "generate_missing":
            return CampaignNeedsSerializer
        return CampaignCreateSerializer if self.action == "create" else CampaignSerializer

    @extend_schema(
        request=CampaignNeedsSerializer, responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT}
    )
    @action(detail=False, methods=["post"], url_path="generate-missing")
    def generate_missing(self, request):
        """Start (or with dry_run, plan) the generation runs that give a campaign set-up every video it needs."""
        from generation.api import GenerationRunSerializer
        from generation.services import GenerationError

        from ..generation_needs import plan_campaign_generation, start_campaign_generation

        form = CampaignNeedsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        options = {"count": data["count"], "settings": data["settings"], "batch_size": data["batch_size"]}
        try:
            if data["dry_run"]:
                plans = plan_campaign_generation(form.to_spec(), **options)
                return Response({"plans": [plan.report() for plan in plans]})
            runs = start_campaign_generation(form.to_spec(), user=request.user, **options)
        except GenerationError as exc:
            return _refusal(exc)
        return Response(
            {"runs": GenerationRunSerializer(runs, many=True).data}, status=status.HTTP_201_CREATED
        )

    def _campaign(self, pk) -> Campaign:
        return get_object_or_404(Campaign, pk=pk)

    def _detail(self, campaign: Campaign) -> dict:
        return CampaignSerializer(self.get_queryset().get(pk=campaign.pk)).data

    @extend_schema(request=CampaignCreateSerializer, responses={201: CampaignSerializer})
    def create(self, request):
        form = CampaignCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            campaign = create_campaign(form.to_spec(), created_by=request.user)
        except CampaignError as exc:
            return _refusal(exc)
        return Response(self._detail(campaign), status=status.HTTP_201_CREATED)

    def _set_status(self, pk, new_status: str) -> Response:
        campaign = self._campaign(pk)
        try:
            services.set_campaign_status(campaign, new_status)
        except CampaignError as exc:
            return _refusal(exc)
        return Response(self._detail(campaign))

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Stop handing out work; answers to claims already on screen are still accepted."""
        return self._set_status(pk, Campaign.Status.PAUSED)

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._set_status(pk, Campaign.Status.ACTIVE)

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Close for good: a closed campaign is not reopened."""
        return self._set_status(pk, Campaign.Status.CLOSED)

    @extend_schema(
        request=None,
        responses={202: inline_serializer("NormaliseMediaJob", {"job": serializers.UUIDField()})},
    )
    @action(detail=True, methods=["post"], url_path="normalise-media")
    def normalise_media(self, request, pk=None):
        """Re-encode every video to one resolution, frame rate and length, as a job (GET /api/jobs/<job>/
        for progress). The campaign is paused until the job has finished."""
        from ..renditions import start_normalise_media

        campaign = self._campaign(pk)
        try:
            job = start_normalise_media(campaign, created_by=request.user)
        except CampaignError as exc:
            return _refusal(exc)
        return Response({"job": str(job.pk)}, status=202)

    @extend_schema(
        request=AddAnnotatorsSerializer,
        responses={
            200: inline_serializer(
                "AddedAnnotators", {"added": serializers.ListField(child=serializers.CharField())}
            )
        },
    )
    @action(detail=True, methods=["post"], url_path="annotators")
    def add_annotators(self, request, pk=None):
        """Add annotators; with 'every annotator' overlap every item then requires one more judgment each."""
        campaign = self._campaign(pk)
        form = AddAnnotatorsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            added = services.add_annotators(campaign, form.chosen())
        except CampaignError as exc:
            return _refusal(exc)
        return Response({"added": [u.get_username() for u in added]})

    @extend_schema(responses={200: ProgressSerializer})
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        """Progress per annotator, time per item, the excluded prompts and the latest problem reports."""
        campaign = self._campaign(pk)
        body = {
            "annotators": selectors.progress_per_annotator(campaign),
            "time_per_item": selectors.time_per_item(campaign),
            "excluded_prompts": selectors.excluded_prompts(campaign),
            "problem_reports": selectors.problem_reports(campaign)[:PROBLEMS_LISTED],
        }
        return Response(ProgressSerializer(body).data)

    @extend_schema(responses={200: ItemSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def items(self, request, pk=None):
        """Items in canonical order with judgments done/required, live claims, problems and gold answer
        (paginated). Slot 0 holds model A's video."""
        campaign = self._campaign(pk)
        page = self.paginate_queryset(selectors.item_progress(campaign))
        return self.get_paginated_response(ItemSerializer(page, many=True).data)

    @extend_schema(request=GoldSerializer, responses={200: GoldSerializer})
    @action(detail=True, methods=["post"], url_path=r"items/(?P<item_id>\d+)/gold")
    def gold(self, request, pk=None, item_id=None):
        """Mark an item as gold with its known answer, or clear the mark with an empty answer."""
        item = get_object_or_404(
            Item.objects.select_related("campaign"), pk=item_id, campaign=self._campaign(pk)
        )
        form = GoldSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            services.set_gold_answer(item, form.validated_data["gold_answer"])
        except CampaignError as exc:
            return _refusal(exc)
        return Response({"gold_answer": item.gold_answer})

    @extend_schema(responses={200: QualitySerializer})
    @action(detail=True, methods=["get"])
    def quality(self, request, pk=None):
        """Per-annotator quality figures (see annotation.quality), the campaign's agreement, and the
        contradictions between pairwise answers and rubric scores."""
        campaign = self._campaign(pk)
        body = {
            "agreement": quality.campaign_agreement(campaign),
            "annotators": quality.annotator_quality(campaign),
            "contradictions": quality.contradictions(campaign),
        }
        return Response(QualitySerializer(body).data)

    @extend_schema(
        request=ExclusionSerializer,
        responses={
            201: inline_serializer(
                "ExclusionCreated", {"annotator": serializers.CharField(), "reason": serializers.CharField()}
            )
        },
    )
    @action(detail=True, methods=["post"])
    def exclusions(self, request, pk=None):
        """Exclude an annotator from results; their judgments are kept and flagged `excluded`."""
        campaign = self._campaign(pk)
        form = ExclusionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        annotator = form.validated_data["annotator"]
        try:
            exclusion = services.exclude_annotator(
                campaign, annotator, reason=form.validated_data["reason"], by=request.user
            )
        except CampaignError as exc:
            return _refusal(exc)
        return Response(
            {"annotator": annotator.get_username(), "reason": exclusion.reason},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"exclusions/(?P<username>[^/]+)")
    def include(self, request, pk=None, username=None):
        """Count an excluded annotator's judgments again."""
        campaign = self._campaign(pk)
        annotator = get_object_or_404(get_user_model(), username=username)
        try:
            services.include_annotator(campaign, annotator)
        except CampaignError as exc:
            return _refusal(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer},
        responses={200: ImportReportSerializer, 400: ImportReportSerializer},
    )
    @action(detail=True, methods=["post"], url_path="import-judgments")
    def import_judgments(self, request, pk=None):
        """Import judgments from a CSV (formats: annotation.importing). 200 with the report; 400 with every
        problem by line, and nothing imported."""
        campaign = self._campaign(pk)
        form = ImportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        report = importing.import_judgments(
            campaign, form.validated_data["file"].read(), dry_run=form.validated_data["dry_run"]
        )
        body = ImportReportSerializer({**report.as_dict(), "summary": report.summary()}).data
        return Response(body, status=status.HTTP_200_OK if report.ok else status.HTTP_400_BAD_REQUEST)


# --- judgments ------------------------------------------------------------------------------------------


class RubricScoreSerializer(serializers.Serializer):
    model = serializers.CharField(source="model.label")
    video = serializers.CharField(source="video.public_id", allow_null=True, default=None)
    shown_position = serializers.IntegerField()
    instruction_following = serializers.IntegerField()
    motion_smoothness = serializers.IntegerField()
    physical_plausibility = serializers.IntegerField()
    aesthetic_appeal = serializers.IntegerField()


class JudgmentSerializer(serializers.ModelSerializer):
    campaign_name = serializers.CharField(source="campaign.name")
    annotator = serializers.CharField(source="annotator.username")
    prompt_position = serializers.IntegerField(source="prompt.position")
    left_model = serializers.CharField(source="left_model.label", allow_null=True, default=None)
    right_model = serializers.CharField(source="right_model.label", allow_null=True, default=None)
    left_video = serializers.CharField(source="left_video.public_id", allow_null=True, default=None)
    right_video = serializers.CharField(source="right_video.public_id", allow_null=True, default=None)
    winner = serializers.SerializerMethodField(
        help_text="the preferred model's label, 'tie', or null (scores)"
    )
    preferred_video = serializers.SerializerMethodField(help_text="public id of the preferred video")
    scores = RubricScoreSerializer(many=True)
    excluded = serializers.BooleanField(help_text="the annotator is excluded from this campaign's results")

    class Meta:
        model = Judgment
        fields = [
            "id",
            "campaign",
            "campaign_name",
            "item",
            "source",
            "annotator",
            "excluded",
            "prompt",
            "prompt_position",
            "is_repeat",
            "choice",
            "left_model",
            "right_model",
            "left_video",
            "right_video",
            "winner",
            "preferred_video",
            "scores",
            "duration_ms",
            "revision",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_winner(self, judgment) -> str | None:
        if judgment.choice not in outcomes.PAIRED_CHOICES:
            return None
        model = outcomes.preferred(judgment.choice, judgment.left_model, judgment.right_model)
        return "tie" if model is None else model.label

    def get_preferred_video(self, judgment) -> str | None:
        if judgment.choice not in outcomes.PAIRED_CHOICES:
            return None
        video = outcomes.preferred(judgment.choice, judgment.left_video, judgment.right_video)
        return video.public_id if video else None


class JudgmentViewSet(viewsets.ReadOnlyModelViewSet):
    """Every judgment, for managers; filter with ?campaign=<id>&annotator=<username>&source=site|import.
    Rubric judgments carry their scores; `excluded` marks annotators left out of the campaign's results."""

    serializer_class = JudgmentSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("campaign", int, description="campaign id"),
            OpenApiParameter("annotator", str, description="username"),
            OpenApiParameter("source", str, enum=Judgment.Source.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return selectors.judgments_queryset(
            campaign=parse_id(params, "campaign"),
            annotator=params.get("annotator") or None,
            source=parse_choice(params, "source", Judgment.Source.values),
        )


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
# basenames differ from the pages' URL names (campaign-list, campaign-detail) so that reverse() is unambiguous
router.register("campaigns", CampaignViewSet, basename="api-campaign")
router.register("judgments", JudgmentViewSet, basename="api-judgment")
urlpatterns = router.urls
