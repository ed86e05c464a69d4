from django.urls import path

from . import api

urlpatterns = [
    path(
        "results/campaigns/<int:campaign_id>/",
        api.CampaignResultsView.as_view(),
        name="campaign-results-api",
    ),
    path("leaderboard/", api.LeaderboardView.as_view(), name="leaderboard-api"),
]
