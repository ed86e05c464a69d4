"""REST API of the human-evaluation numbers: a campaign's results and the leaderboard."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Campaign

from .leaderboard import LeaderboardError, leaderboard, parse_filters
from .results import ResultsError, campaign_results, check_rounds


class CampaignResultsView(APIView):
    """Every table and plot of a campaign's results (the same JSON as `manage.py results`): Metric-1,
    Metric-2, A/B shares, agreement, position bias, and what was left out and why. `?rounds=` sets the
    bootstrap rounds (100-20000, default 1000). Managers only."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, tags=["results"])
    def get(self, request, campaign_id: int):
        campaign = get_object_or_404(Campaign.objects.select_related("benchmark"), pk=campaign_id)
        try:
            rounds = check_rounds(request.query_params.get("rounds"))
        except ResultsError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(campaign_results(campaign, rounds=rounds))


class LeaderboardView(APIView):
    """Bradley-Terry ratings of every model from all pairwise judgments, with 95% bootstrap intervals,
    ranks, battle counts, mean Metric-2 scores and automatic metrics. Filters: `benchmark` (slug),
    `category` (id), `pool` (group name or "all"), `campaign` (id or name); `rounds` (default 1000)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, tags=["results"])
    def get(self, request):
        try:
            filters = parse_filters(request.query_params)
            rounds = check_rounds(request.query_params.get("rounds"))
        except (LeaderboardError, ResultsError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(leaderboard(filters, rounds=rounds))
