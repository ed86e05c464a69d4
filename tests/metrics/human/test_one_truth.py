"""One campaign, every place that reports its numbers: a number of the same name has the same value on the
results page, in the results API, in the CSV downloads (tables and plots), in the `results` command, on
the quality page and in its API, and on the leaderboard's page, API and download.

The campaign has ties, an excluded annotator, a repeat, a problem report, a refused prompt and a prompt the
campaign left out (with a judgment stored before the import refused such rows). Each output is parsed on
its own (HTML tables, JSON, CSV, the command's stdout); nothing is read from the shared results dict, so a
place that computed a number its own way makes this test fail."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import defaultdict
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotation.models import ExcludedPrompt, Judgment
from tests.metrics.human.test_results import build_pairwise, empty_cache, make_world, paired_judgment

pytestmark = pytest.mark.django_db

__all__ = ["empty_cache"]  # the autouse fixture, shared

ROUNDS = 100
HTML_PRECISION = 0.0005 + 1e-9  # the pages show three decimals
RATING_PRECISION = 0.05 + 1e-9  # ratings are shown with one


class Page(HTMLParser):
    """What a page shows: every <table class="KEY"> as (header labels, rows of cell texts); the text of every
    element with a class, by class; and for rows with `data-annotator`, their cells' text by class."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.by_class: dict[str, list[str]] = defaultdict(list)
        self.rows_by_annotator: dict[str, dict[str, str]] = {}
        self._table: str | None = None
        self._in_head = False
        self._row: list[str] | None = None
        self._annotator: str | None = None
        self._open: list[tuple[str, str, list[str]]] = []  # (tag, classes, text) of open classed elements
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = attributes.get("class") or ""
        if tag == "table":
            self._table = classes.split()[0] if classes else None
            if self._table:
                self.tables[self._table] = ([], [])
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
            self._annotator = attributes.get("data-annotator")
            if self._annotator:
                self.rows_by_annotator[self._annotator] = {}
        if tag in ("td", "th") or classes:
            self._open.append((tag, classes, []))

    def handle_data(self, data):
        for _, _, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag == "tr" and self._row is not None and self._table:
            header, rows = self.tables[self._table]
            (header.extend if self._in_head else rows.append)(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        if not self._open or self._open[-1][0] != tag:
            return
        _, classes, parts = self._open.pop()
        text = " ".join("".join(parts).split())
        if tag in ("td", "th") and self._row is not None:
            self._row.append(text)
        for name in classes.split():
            self.by_class[name].append(text)
            if self._annotator:
                self.rows_by_annotator[self._annotator][name] = text

    def records(self, key: str) -> list[dict[str, str]]:
        header, rows = self.tables[key]
        return [dict(zip(header, row, strict=True)) for row in rows if len(row) == len(header)]


def number(text: str | None) -> float | None:
    """A number as a page, a CSV or a JSON shows it; "—", "" and None are undefined."""
    if text is None or (isinstance(text, str) and text.strip() in ("", "—")):
        return None
    if isinstance(text, int | float):
        return float(text)
    return float(text.replace(",", ""))


def csv_records(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


class Reported:
    """name -> place -> value, and the precision each place shows."""

    def __init__(self):
        self.values: dict[tuple, dict[str, float | None]] = defaultdict(dict)
        self.precision: dict[str, float] = {}

    def add(self, place: str, name: tuple, value, precision: float = 1e-9) -> None:
        self.values[name][place] = number(value)
        self.precision[place] = precision

    def check(self) -> None:
        disagreements = []
        for name, by_place in self.values.items():
            defined = {place: v for place, v in by_place.items() if v is not None}
            if len(defined) != len(by_place):
                if defined:
                    disagreements.append(f"{name}: defined only in some places: {by_place}")
                continue
            for place, value in defined.items():
                for other, other_value in defined.items():
                    tolerance = max(self.precision[place], self.precision[other])
                    if not math.isclose(value, other_value, abs_tol=tolerance):
                        disagreements.append(f"{name}: {place}={value} but {other}={other_value}")
        assert not disagreements, "\n".join(sorted(set(disagreements)))


@pytest.fixture
def campaign(django_user_model):
    world = make_world(django_user_model, slug="truth")
    campaign = build_pairwise(world, name="One truth")
    # a third counted annotator, with ties and both sides shown
    for prompt, a_on_left, outcome in (
        (1, True, "win"),
        (2, True, "tie"),
        (3, False, "tie"),
        (4, False, "loss"),
    ):
        paired_judgment(world, campaign, "ann4", prompt, a_on_left, outcome)
    # a repeat of ann2 (left out), answered on the left: counting it would move ann2's left share
    paired_judgment(world, campaign, "ann2", 2, True, "win", is_repeat=True)
    # a judgment stored on a prompt the campaign left out: listed as left out, never counted
    ExcludedPrompt.objects.create(
        campaign=campaign,
        prompt=world["prompts"][3],
        model=world["beta"],
        reason=ExcludedPrompt.Reason.NO_VIDEO,
    )
    return campaign


def test_every_place_reports_the_same_value_for_a_number_of_the_same_name(admin_client, campaign):
    reported = Reported()
    query = {"rounds": ROUNDS}

    # --- the results page ---------------------------------------------------------------------------
    response = admin_client.get(reverse("campaign-results", args=[campaign.pk]), query)
    assert response.status_code == 200
    html = response.content.decode()
    page = Page(html)
    place = "results page"
    assert "prompt #3 (Beta truth): no ready video · 3 judgments left out" in html
    reported.add(place, ("judgments analysed",), re.search(r"(\d+) judgments analysed", html).group(1))
    for row in page.records("agreement"):
        reported.add(place, ("alpha", row["Category"]), row["Krippendorff's alpha"], HTML_PRECISION)
        reported.add(place, ("alpha units", row["Category"]), row["Units"])
    for row in page.records("position_bias"):
        reported.add(place, ("left share", row["Annotator"]), row["Left"], HTML_PRECISION)
        reported.add(place, ("answers", row["Annotator"]), row["Answers"])
    for row in page.records("metric1_rows"):
        key = (row["Category"], row["Annotator"])
        for column in ("Wins", "Ties", "Losses"):
            reported.add(place, (column.lower(), *key), row[column])
        reported.add(place, ("win rate", *key), row["Win rate of A"], HTML_PRECISION)
    header, rows = page.tables["metric1_wtl"]
    for row in rows:
        for label, cell in zip(header[1:], row[1:], strict=True):
            if cell != "—":
                for name, count in zip(("wins", "ties", "losses"), cell.split("-"), strict=True):
                    reported.add("results page, W-T-L table", (name, row[0], label), count)

    # --- the results API, the `results` command, the CSV downloads -----------------------------------
    api = admin_client.get(f"/api/results/campaigns/{campaign.pk}/", query).json()
    out = io.StringIO()
    call_command("results", str(campaign.pk), "--rounds", str(ROUNDS), stdout=out)
    command = json.loads(out.getvalue())
    for place, body in (("results API", api), ("results command", command)):
        tables = {t["key"]: t for t in body["tables"]}
        reported.add(place, ("judgments analysed",), body["judgments_analysed"])
        for row in tables["agreement"]["rows"]:
            reported.add(place, ("alpha", row["category"]), row["alpha"])
            reported.add(place, ("alpha units", row["category"]), row["units"])
        for row in tables["position_bias"]["rows"]:
            reported.add(place, ("left share", row["annotator"]), row["left"])
            reported.add(place, ("answers", row["annotator"]), row["answers"])
        for row in tables["metric1_rows"]["rows"]:
            key = (row["category"], row["annotator"])
            for name in ("wins", "ties", "losses"):
                reported.add(place, (name, *key), row[name])
            reported.add(place, ("win rate", *key), row["win_rate"])
    base = f"/metrics/results/campaigns/{campaign.pk}"
    place = "results CSV"
    download = lambda path: admin_client.get(f"{base}/{path}", query).content  # noqa: E731
    for row in csv_records(download("tables/agreement.csv")):
        reported.add(place, ("alpha", row["Category"]), row["Krippendorff's alpha"])
        reported.add(place, ("alpha units", row["Category"]), row["Units"])
    for row in csv_records(download("tables/position_bias.csv")):
        reported.add(place, ("left share", row["Annotator"]), row["Left"])
        reported.add(place, ("answers", row["Annotator"]), row["Answers"])
    for row in csv_records(download("tables/metric1_rows.csv")):
        key = (row["Category"], row["Annotator"])
        for column in ("Wins", "Ties", "Losses"):
            reported.add(place, (column.lower(), *key), row[column])
        reported.add(place, ("win rate", *key), row["Win rate of A"])
    bars = {"A wins": "wins", "Tie": "ties", "B wins": "losses"}
    for point in csv_records(download("plots/wtl_by_category.csv")):
        name = next(value for label, value in bars.items() if point["trace"].startswith(label))
        reported.add("results plot CSV", (name, point["x"], "Pooled"), point["y"])

    # --- the quality page and its API ------------------------------------------------------------------
    response = admin_client.get(reverse("campaign-quality", args=[campaign.pk]))
    assert response.status_code == 200
    quality = Page(response.content.decode())
    (alpha,) = quality.by_class["alpha"]
    (units,) = quality.by_class["units"]
    reported.add("quality page", ("alpha", "Overall"), alpha, HTML_PRECISION)
    reported.add("quality page", ("alpha units", "Overall"), units)
    quality_api = admin_client.get(f"/api/campaigns/{campaign.pk}/quality/").json()
    reported.add("quality API", ("alpha", "Overall"), quality_api["agreement"]["alpha"])
    reported.add("quality API", ("alpha units", "Overall"), quality_api["agreement"]["units"])
    excluded = {a["username"] for a in quality_api["annotators"] if a["excluded"]}
    assert excluded == {"ann3-truth"}
    for figures in quality_api["annotators"]:
        name = figures["username"]
        row = quality.rows_by_annotator[name]
        if name in excluded:
            # a different number (their judgments as if they counted), named so on the page
            assert row["position"].startswith("if counted:") and row["majority"].startswith("if counted:")
            continue
        if figures["position_n"]:
            reported.add("quality page", ("left share", name), row["left"], HTML_PRECISION)
            reported.add("quality API", ("left share", name), figures["left_share"])
            reported.add("quality API", ("answers", name), figures["position_n"])

    # --- the leaderboard of this campaign: page, API, CSV ------------------------------------------------
    board_query = {"campaign": campaign.pk, "rounds": ROUNDS}
    board_page = Page(admin_client.get("/metrics/leaderboard/", board_query).content.decode())
    board_api = admin_client.get("/api/leaderboard/", board_query).json()
    board_csv = csv_records(
        admin_client.get("/metrics/leaderboard/table/leaderboard.csv", board_query).content
    )
    (api_table,) = [t for t in board_api["tables"] if t["key"] == "leaderboard"]
    for place, rows, keys in (
        (
            "leaderboard page",
            board_page.records("leaderboard"),
            ("Model", "Rating", "Wins", "Ties", "Losses"),
        ),
        ("leaderboard API", api_table["rows"], ("model", "rating", "wins", "ties", "losses")),
        ("leaderboard CSV", board_csv, ("Model", "Rating", "Wins", "Ties", "Losses")),
    ):
        model, rating, *counts = keys
        precision = RATING_PRECISION if place == "leaderboard page" else 1e-9
        for row in rows:
            reported.add(place, ("rating", row[model]), row[rating], precision)
            # model A's record is the results' Overall, Pooled wins-ties-losses of A
            if row[model].startswith("Alpha"):
                for name, column in zip(("wins", "ties", "losses"), counts, strict=True):
                    reported.add(place, (name, "Overall", "Pooled"), row[column])

    reported.check()
    # the test compares something: every name is reported in at least two places
    assert all(len(places) >= 2 for places in reported.values.values())
    assert len(reported.values[("alpha", "Overall")]) == 6
    assert len(reported.values[("wins", "Overall", "Pooled")]) == 9
    assert len(reported.values[("left share", "ann2-truth")]) == 6
    # and a judgment is either counted or listed as left out, never both: 9 analysed + 9 left out of 18
    assert Judgment.objects.filter(campaign=campaign).count() == 18
    assert set(reported.values[("judgments analysed",)].values()) == {9}
    skipped = api["skipped"]
    assert sum(skipped["judgments_skipped"].values()) == 9
    assert skipped["judgments_skipped"]["prompt left out of the campaign"] == 3
    assert [p["prompt"] for p in skipped["prompts_not_in_campaign"]] == [3]
    counted_prompts = {
        row["prompt"] for t in api["tables"] if t["key"] == "metric1_prompts" for row in t["rows"]
    }
    assert counted_prompts == {1, 2, 4}
