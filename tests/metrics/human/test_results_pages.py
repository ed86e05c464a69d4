"""The results pages, the API, the downloads and the `results` command show the hand-known numbers of
test_results.py; everything is for managers only; plotly.js comes from the site's own static files."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.staticfiles import finders
from django.core.management import CommandError, call_command

from tests.metrics.human.test_results import (
    build_pairwise,
    build_rubric,
    empty_cache,
    make_campaign,
    make_world,
    report_problem,
    rubric_items,
    score_item,
)

pytestmark = pytest.mark.django_db

__all__ = ["empty_cache"]  # the autouse fixture, shared

ROUNDS = 200


@pytest.fixture
def world(django_user_model):
    return make_world(django_user_model)


@pytest.fixture
def annotator_client(client, world):
    assert client.login(username="ann1-bench", password="pw-annotate-1")
    return client


def page(admin_client, url: str) -> str:
    response = admin_client.get(url, {"rounds": ROUNDS})
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_the_pairwise_page_shows_every_number_and_what_was_left_out(admin_client, world):
    campaign = build_pairwise(world)
    html = page(admin_client, f"/metrics/results/campaigns/{campaign.pk}/")
    # Metric-1 (Table 7 shape and the long table).
    for wtl in ("2-1-1", "4-2-2", "1-1-1", "2-0-1", "3-1-2", "1-0-0", "0-1-0", "1-1-0", "0-0-2"):
        assert f"<td>{wtl}</td>" in html, wtl
    assert "<td>0.667</td>" in html  # pooled and per-annotator win rate 2/3
    assert "<td>0.6875</td>" in html  # sign test of 4 wins against 2 losses
    # Agreement: alpha 0.3 and kappa 0.2 overall, 12/22 and 0.455 on Animals, -1 on Vehicles.
    for number in ("0.300", "0.200", "0.545", "0.455", "-1.000"):
        assert f"<td>{number}</td>" in html, number
    # Position bias: ann1 0.25 / 0.25 / 0.5; everyone 0.375 left.
    assert "<td>ann1-bench</td><td>4</td><td>0.250</td><td>0.250</td><td>0.500</td>" in html
    assert "<td>0.375</td>" in html
    # What was left out, and why.
    assert "ann3-bench" in html and "failed the gold items" in html
    assert "prompt text 5" in html and "content policy" in html and "Beta bench" in html
    assert "black frames" in html
    assert "1 judgment: repeat" in html and "2 judgments: excluded annotator" in html
    assert "not on the side chosen" in html  # the page says agreement uses the canonical preference
    # The per-prompt majority row (3 wins, 1 loss) and why the pooled sign test is optimistic.
    assert "<td>Overall</td><td>Majority per prompt</td><td>3</td><td>0</td><td>1</td><td>3-0-1</td>" in html
    assert "counts each annotator&#x27;s judgment separately" in html and "p-value is optimistic" in html
    # Each note is stated once on the page (not again under the table it explains).
    assert html.count("p-value is optimistic") == 1 and html.count("Win rate = wins / (wins + losses)") == 1
    assert "8 judgments analysed" in html
    # Plots, drawn by the site's own plotly.js.
    assert "/static/vendor/plotly/plotly.min.js" in html and '<script src="http' not in html
    assert 'data-plot="wtl_by_category"' in html and 'id="result-figures"' in html


def test_the_rubric_page_shows_the_sums_means_and_refused_prompt(admin_client, world):
    campaign = build_rubric(world)
    html = page(admin_client, f"/metrics/results/campaigns/{campaign.pk}/")
    for sums in (
        "20-19",
        "23-21",
        "21-18",
        "23-20",
        "15-14",
        "13-13",
        "13-11",
        "15-11",
        "5-5",
        "10-8",
        "8-7",
        "8-9",
    ):
        assert f"<td>{sums}</td>" in html, sums
    for sums in ("10-10", "12-11", "10-9", "11-10", "11-9", "12-10"):
        assert f"<td>{sums}</td>" in html, sums
    # Means beside the sums: Alpha's instruction following 20/6, Beta's physical plausibility 18/6.
    assert (
        "<td>Overall</td><td>Instruction following</td><td>Alpha bench</td><td>20</td><td>3.33</td><td>6</td>"
        in html
    )
    assert (
        "<td>Overall</td><td>Physical plausibility</td><td>Beta bench</td><td>18</td><td>3.00</td><td>6</td>"
        in html
    )
    assert "refused" in html and "prompt text 5" in html
    assert 'data-plot="dimensions_by_model"' in html and 'data-plot="rubric_agreement_heatmap"' in html


def test_the_rubric_page_lists_problem_prompts_and_prompts_not_yet_compared(admin_client, world):
    campaign = make_campaign(world, "rubric", "One at a time")
    items = rubric_items(world, campaign, [1, 2, 4])
    for (model_name, prompt), item in items.items():
        for annotator in ("ann1", "ann2"):
            if (model_name, prompt) != ("Beta", 4) or annotator == "ann1":
                score_item(world, item, model_name, annotator, 3)
    report_problem(world, items[("Beta", 1)], "ann3", note="frozen frames")
    html = page(admin_client, f"/metrics/results/campaigns/{campaign.pk}/")
    assert "Prompts with a problem report" in html
    assert (
        "<td>#1</td><td>prompt text 1</td><td>item 2: A video does not play or is broken (frozen frames)</td>"
        in html
    )
    assert "Prompts left out of the Metric-2 comparison" in html
    assert "<td>#4</td><td>prompt text 4</td><td>Alpha bench: 2, Beta bench: 1</td>" in html
    assert "<td>Overall</td><td>1</td><td>6-6</td>" in html  # prompt 2 only


def test_the_api_and_the_command_give_the_same_tables(admin_client, world, capsys):
    campaign = build_pairwise(world)
    response = admin_client.get(f"/api/results/campaigns/{campaign.pk}/", {"rounds": ROUNDS})
    assert response.status_code == 200
    api = response.json()
    pooled = next(
        r
        for t in api["tables"]
        if t["key"] == "metric1_rows"
        for r in t["rows"]
        if r["annotator"] == "Pooled"
    )
    assert (pooled["wins"], pooled["ties"], pooled["losses"], pooled["win_rate"]) == (
        4,
        2,
        2,
        pytest.approx(2 / 3),
    )
    assert api["skipped"]["judgments_skipped"]["excluded annotator"] == 2

    call_command("results", campaign.name, "--rounds", str(ROUNDS))
    printed = json.loads(capsys.readouterr().out)
    assert printed == api
    call_command("results", str(campaign.pk), "--rounds", str(ROUNDS))
    assert json.loads(capsys.readouterr().out)["campaign"]["name"] == "Alpha vs Beta"


def test_the_command_and_the_api_refuse_clearly(admin_client, world):
    build_pairwise(world)
    with pytest.raises(CommandError, match="no campaign with the id or name 'Gamma'.*Alpha vs Beta"):
        call_command("results", "Gamma")
    with pytest.raises(CommandError, match="rounds must be between"):
        call_command("results", "Alpha vs Beta", "--rounds", "5")
    assert admin_client.get("/api/results/campaigns/999999/").status_code == 404
    campaign_id = build_rubric(world).pk
    response = admin_client.get(f"/api/results/campaigns/{campaign_id}/", {"rounds": "many"})
    assert response.status_code == 400 and "whole number" in response.json()["detail"]
    response = admin_client.get("/api/leaderboard/", {"benchmark": "nope"})
    assert response.status_code == 400 and "nope" in response.json()["detail"]


@pytest.mark.parametrize("value", ["²", "1²", "٣"])
def test_the_command_refuses_digits_that_are_no_id(world, value):
    build_pairwise(world)
    with pytest.raises(CommandError, match="no campaign with the id or name"):
        call_command("results", value)


def test_tables_and_plots_download_as_csv_and_json(admin_client, world):
    campaign = build_pairwise(world)
    base = f"/metrics/results/campaigns/{campaign.pk}"
    response = admin_client.get(f"{base}/tables/metric1_rows.csv", {"rounds": ROUNDS})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    pooled = next(r for r in rows if r["Category"] == "Overall" and r["Annotator"] == "Pooled")
    assert (pooled["W-T-L"], pooled["Wins"], pooled["Sign test p"]) == ("4-2-2", "4", "0.6875")
    table = admin_client.get(f"{base}/tables/metric1_wtl.json", {"rounds": ROUNDS}).json()
    assert table["rows"][0]["annotator:Pooled"] == "4-2-2"
    points = list(
        csv.DictReader(io.StringIO(admin_client.get(f"{base}/plots/wtl_by_category.csv").content.decode()))
    )
    assert {(p["trace"].split()[0], p["x"], p["y"]) for p in points if p["x"] == "Overall"} == {
        ("A", "Overall", "4"),
        ("Tie", "Overall", "2"),
        ("B", "Overall", "2"),
    }
    figure = admin_client.get(f"{base}/plots/agreement_heatmap.json").json()
    assert figure["data"][0]["type"] == "heatmap" and figure["data"][0]["z"][0][1] == 0.5
    assert admin_client.get(f"{base}/tables/nothing.csv").status_code == 404
    assert admin_client.get(f"{base}/tables/metric1_rows.xlsx").status_code == 404


def test_the_leaderboard_page_and_downloads(admin_client, world):
    build_pairwise(world)
    html = page(admin_client, "/metrics/leaderboard/")
    # Pooled over the analysed answers: Alpha 4 wins, 2 ties, 2 losses: 5 points to 3.
    assert "8 battles" in html and html.count("half a win") == 1  # the note is stated once
    assert "/static/vendor/plotly/plotly.min.js" in html and 'data-plot="ratings"' in html
    board = admin_client.get("/api/leaderboard/", {"rounds": ROUNDS}).json()
    alpha = next(r for r in board["tables"][0]["rows"] if r["model"] == "Alpha bench")
    assert f"<td>{alpha['rating']:.1f}</td>" in html and f"<td>{alpha['ci_low']:.1f}</td>" in html
    assert (alpha["wins"], alpha["ties"], alpha["losses"]) == (4, 2, 2)
    response = admin_client.get("/metrics/leaderboard/table/leaderboard.csv", {"rounds": ROUNDS})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["Model"] for r in rows] == ["Alpha bench", "Beta bench"]
    assert float(rows[0]["Rating"]) == pytest.approx(alpha["rating"])
    figure = admin_client.get("/metrics/leaderboard/plot/ratings.json", {"rounds": ROUNDS}).json()
    assert figure["data"][0]["x"] == ["Alpha bench", "Beta bench"]
    response = admin_client.get("/metrics/leaderboard/", {"pool": "ghosts"})
    assert response.status_code == 400 and "no annotator pool (group) named" in response.content.decode()


def test_plotly_is_served_from_the_static_files():
    path = finders.find("vendor/plotly/plotly.min.js")
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        assert "plotly" in handle.read(2000).lower()


def test_everything_is_for_managers_only(client, annotator_client, world):
    campaign = build_pairwise(world)
    urls = [
        "/metrics/results/",
        f"/metrics/results/campaigns/{campaign.pk}/",
        f"/metrics/results/campaigns/{campaign.pk}/tables/metric1_rows.csv",
        f"/metrics/results/campaigns/{campaign.pk}/plots/wtl_by_category.json",
        "/metrics/leaderboard/",
        "/metrics/leaderboard/table/leaderboard.csv",
    ]
    for url in urls:
        assert annotator_client.get(url).status_code == 403, url
    for url in (f"/api/results/campaigns/{campaign.pk}/", "/api/leaderboard/"):
        assert annotator_client.get(url).status_code == 403, url
    annotator_client.logout()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_the_results_list_links_every_campaign(admin_client, world):
    pairwise, rubric = build_pairwise(world), build_rubric(world)
    html = page(admin_client, "/metrics/results/")
    assert (
        f"/metrics/results/campaigns/{pairwise.pk}/" in html
        and f"/metrics/results/campaigns/{rubric.pk}/" in html
    )
    # not the results' "judgments analysed": this count has its own name
    assert "All judgments (repeats and left-out ones included)" in html
    assert "/metrics/leaderboard/" in page(admin_client, "/metrics/")


def test_the_results_page_runs_a_bounded_number_of_queries(
    admin_client, world, django_assert_max_num_queries
):
    campaign = build_rubric(world)
    # Session and user (3), the campaign, and load_campaign's eight reads, whatever the number of judgments.
    with django_assert_max_num_queries(13):
        response = admin_client.get(f"/metrics/results/campaigns/{campaign.pk}/", {"rounds": ROUNDS})
    assert response.status_code == 200
