from django.urls import path

from . import views

urlpatterns = [
    path("results/", views.results_list, name="results-list"),
    path("results/campaigns/<int:campaign_id>/", views.campaign_results_page, name="campaign-results"),
    path(
        "results/campaigns/<int:campaign_id>/tables/<slug:key>.<str:fmt>",
        views.campaign_results_download,
        {"what": "table"},
        name="campaign-results-table",
    ),
    path(
        "results/campaigns/<int:campaign_id>/plots/<slug:key>.<str:fmt>",
        views.campaign_results_download,
        {"what": "plot"},
        name="campaign-results-plot",
    ),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path(
        "leaderboard/<str:what>/<slug:key>.<str:fmt>",
        views.leaderboard_download,
        name="leaderboard-download",
    ),
]
