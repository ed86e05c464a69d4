"""Pages of the human-evaluation numbers: a campaign's results, the leaderboard and their downloads."""

from collections.abc import Callable

from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from annotation.models import Campaign
from annotation.selectors import campaigns_with_demo_judgments
from evalsite.permissions import manager_required

from .display import shown_board, shown_results
from .downloads import DownloadError, check_format, plot_download, table_download
from .judgments import campaigns_with_judgment_counts
from .leaderboard import LeaderboardError, leaderboard, leaderboard_filter_options, parse_filters
from .results import (
    ResultsError,
    campaign_results,
    check_rounds,
    display_rows,
    find_plot,
    find_table,
    format_value,
)


def _shown_tables(tables: list[dict], link: Callable[[str, str], str]) -> list[dict]:
    return [
        {"table": t, "rows": display_rows(t), "csv": link(t["key"], "csv"), "json": link(t["key"], "json")}
        for t in tables
    ]


def _shown_plots(plots: list[dict], link: Callable[[str, str], str]) -> list[dict]:
    return [
        {
            "plot": p,
            "element_id": f"plot-{p['key']}",
            "csv": link(p["key"], "csv"),
            "json": link(p["key"], "json"),
        }
        for p in plots
    ]


@manager_required
def results_list(request):
    return render(
        request,
        "metrics/results_list.html",
        {
            "campaigns": campaigns_with_judgment_counts(),
            "demo_ids": set(campaigns_with_demo_judgments().values_list("pk", flat=True)),
        },
    )


@manager_required
def campaign_results_page(request, campaign_id: int):
    campaign = get_object_or_404(Campaign.objects.select_related("benchmark"), pk=campaign_id)
    try:
        rounds = check_rounds(request.GET.get("rounds"))
    except ResultsError as exc:
        return HttpResponseBadRequest(str(exc))
    results = shown_results(campaign_results(campaign, rounds=rounds))
    query = f"?rounds={rounds}" if request.GET.get("rounds") else ""

    def table_link(key: str, fmt: str) -> str:
        return reverse("campaign-results-table", args=[campaign.pk, key, fmt]) + query

    def plot_link(key: str, fmt: str) -> str:
        return reverse("campaign-results-plot", args=[campaign.pk, key, fmt]) + query

    return render(
        request,
        "metrics/campaign_results.html",
        {
            "campaign": campaign,
            "results": results,
            "tables": _shown_tables(results["tables"], table_link),
            "plots": _shown_plots(results["plots"], plot_link),
            "figures": {p["key"]: p for p in results["plots"]},
            "all_json": reverse("api:campaign-results-api", args=[campaign.pk]),
            "demo_data": campaigns_with_demo_judgments(Campaign.objects.filter(pk=campaign.pk)).exists(),
        },
    )


@manager_required
def campaign_results_download(request, campaign_id: int, what: str, key: str, fmt: str):
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    try:
        results = campaign_results(campaign, rounds=check_rounds(request.GET.get("rounds")))
        if what == "table":
            return table_download(find_table(results, key), check_format(fmt), f"{campaign.name}-{key}")
        return plot_download(find_plot(results, key), check_format(fmt), f"{campaign.name}-{key}")
    except (ResultsError, DownloadError) as exc:
        raise Http404(str(exc)) from exc


def _leaderboard_or_error(request) -> tuple[dict | None, str]:
    try:
        filters = parse_filters(request.GET)
        rounds = check_rounds(request.GET.get("rounds"))
    except (LeaderboardError, ResultsError) as exc:
        return None, str(exc)
    return leaderboard(filters, rounds=rounds), ""


@manager_required
def leaderboard_page(request):
    board, error = _leaderboard_or_error(request)
    query = request.GET.urlencode()

    def table_link(key: str, fmt: str) -> str:
        return reverse("leaderboard-download", args=["table", key, fmt]) + (f"?{query}" if query else "")

    def plot_link(key: str, fmt: str) -> str:
        return reverse("leaderboard-download", args=["plot", key, fmt]) + (f"?{query}" if query else "")

    context = {
        "error": error,
        "options": leaderboard_filter_options(),
        "chosen": request.GET,
        "demo_data": campaigns_with_demo_judgments().exists(),
    }
    if board is not None:
        board = shown_board(board)
        context.update(
            board=board,
            tables=_shown_tables(board["tables"], table_link),
            plots=_shown_plots(board["plots"], plot_link),
            figures={p["key"]: p for p in board["plots"]},
            battles=format_value(board["battles"], "int"),
        )
    return render(request, "metrics/leaderboard.html", context, status=400 if error else 200)


@manager_required
def leaderboard_download(request, what: str, key: str, fmt: str):
    if what not in ("table", "plot"):
        raise Http404("downloads are tables or plots")
    board, error = _leaderboard_or_error(request)
    if board is None:
        return HttpResponseBadRequest(error)
    try:
        if what == "table":
            return table_download(find_table(board, key), check_format(fmt), f"leaderboard-{key}")
        return plot_download(find_plot(board, key), check_format(fmt), f"leaderboard-{key}")
    except (ResultsError, DownloadError) as exc:
        raise Http404(str(exc)) from exc
