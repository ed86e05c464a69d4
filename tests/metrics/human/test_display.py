"""The results and the leaderboard in the page's language: in the Chinese UI the tables, notes, plots and
what was left out read in Chinese, with names, categories and prompts as they were written; the API, the
downloads and the command keep the one English document."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils.translation import override

from annotation.models import Campaign
from evalsite.middleware import save_user_language
from evalsite.phrases import Phrasebook, fill
from generation.models import Refusal
from metrics.human import display, results
from tests.browser.test_manager_pages_browser import KEPT_IN_CHINESE, english_words
from tests.metrics.human.test_results import build_pairwise, build_rubric, empty_cache, make_world

pytestmark = pytest.mark.django_db

__all__ = ["empty_cache"]  # the autouse fixture, shared

ROUNDS = 100
SKIPPED_TAGS = {"script", "style", "code", "pre", "kbd", "textarea"}


class Prose(HTMLParser):
    """The text a reader sees in <main>, less code and scripts; and the page's plot figures (JSON)."""

    def __init__(self, html: str):
        super().__init__()
        self.parts: list[str] = []
        self.figures: dict = {}
        self._in_main = False
        self._skipping: list[str] = []
        self._figures_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self._in_main = True
        if tag in SKIPPED_TAGS:
            self._skipping.append(tag)
            self._figures_script = tag == "script" and dict(attrs).get("id") == "result-figures"

    def handle_endtag(self, tag):
        if tag == "main":
            self._in_main = False
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()
            self._figures_script = False

    def handle_data(self, data):
        if self._figures_script:
            self.figures = json.loads(data)
        elif self._in_main and not self._skipping:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def plot_texts(figures: dict) -> str:
    texts = []
    for figure in figures.values():
        texts += [figure["title"], figure["layout"]["title"]["text"]]
        texts += [
            a["title"]["text"] for n, a in figure["layout"].items() if n.endswith("axis") and "title" in a
        ]
        texts += [str(t.get("name", "")) for t in figure["data"]]
        texts += [str(v) for t in figure["data"] for v in (t.get("x") or []) if isinstance(v, str)]
    return " ".join(texts)


@pytest.fixture
def world(django_user_model):
    return make_world(django_user_model, slug="zh")


def data_words(world: dict) -> set[str]:
    texts = [
        "Alpha Beta zh Animals Vehicles prompt text",
        world["benchmark"].name,
        "failed the gold items content policy black frames rushed",  # reasons and notes people typed
        *world["people"],
    ]
    return {word for text in texts for word in re.findall(r"[A-Za-z_]+", text)}


def test_the_results_and_the_leaderboard_read_in_chinese_with_the_data_as_written(
    admin_client, admin_user, world
):
    pairwise = build_pairwise(world, name="Pairwise zh")
    Refusal.objects.all().delete()  # build_pairwise makes it again
    ab = build_pairwise(world, name="AB zh", kind=Campaign.Kind.AB_SHARED_NOISE)
    rubric = build_rubric(world, name="Rubric zh")
    save_user_language(admin_user, "zh-hans")
    allowed = KEPT_IN_CHINESE | data_words(world) | {"A", "B", "W", "p", "AB", "Pairwise", "Rubric"}
    problems = []
    pages = [reverse("campaign-results", args=[c.pk]) for c in (pairwise, ab, rubric)] + [
        reverse("leaderboard")
    ]
    for path in pages:
        response = admin_client.get(path, {"rounds": ROUNDS})
        assert response.status_code == 200, path
        prose = Prose(response.content.decode())
        assert prose.figures, path  # each page plots something
        if words := english_words(prose.text + " " + plot_texts(prose.figures), allowed):
            problems.append(f"{path}: {' '.join(words)}")
    assert not problems, "\n".join(problems)

    page = admin_client.get(
        reverse("campaign-results", args=[pairwise.pk]), {"rounds": ROUNDS}
    ).content.decode()
    assert "总体" in page and "合计" in page  # the "Overall" row and the "Pooled" column
    assert "Alpha" in page and "Animals" in page and "prompt text 1" in page  # data as written
    assert "failed the gold items" in page and "black frames" in page
    assert "视频无法播放或已损坏" in page  # the problem report's kind, in Chinese

    # The API, the downloads and the command read the one English document, whoever asks.
    body = admin_client.get(f"/api/results/campaigns/{pairwise.pk}/", {"rounds": ROUNDS}).json()
    titles = [t["title"] for t in body["tables"]]
    assert any(t.startswith("Metric-1: wins-ties-losses of A") for t in titles)
    assert {r["category"] for r in body["tables"][0]["rows"]} >= {"Overall", "Animals"}
    assert "problem report on an item of the prompt" in body["skipped"]["judgments_skipped"]
    csv = admin_client.get(
        f"/metrics/results/campaigns/{pairwise.pk}/tables/metric1_rows.csv", {"rounds": ROUNDS}
    ).content.decode()
    assert csv.startswith("Category,Annotator,Wins") and "Overall" in csv


def test_a_name_is_never_translated_even_when_it_is_a_word_of_the_results(world):
    """A model named "Pooled" and prompts whose text is "win" keep their names; the "Pooled" column, the
    "Overall" row and the votes are translated."""
    campaign = build_pairwise(world)
    world["alpha"].name, world["alpha"].version = "Pooled", ""
    world["alpha"].save()
    for prompt in world["prompts"].values():
        prompt.text = "win"
        prompt.save()
    found = results.campaign_results(campaign, rounds=ROUNDS)
    with override("zh-hans"):
        shown = display.shown_results(found)
        assert display.word("win tie loss") == "胜 平 负"
        assert display.word("win Alpha") == "win Alpha"
    prompts = next(t for t in shown["tables"] if t["key"] == "metric1_prompts")
    assert {row["text"] for row in prompts["rows"]} == {"win"}  # data
    assert [row["annotator:ann1-zh"] for row in prompts["rows"]] == ["胜", "平", "负", "胜"]
    wide = next(t for t in shown["tables"] if t["key"] == "metric1_wtl")
    assert "Pooled (A) 对 Beta zh (B)" in wide["title"]  # the model's name inside a translated title
    assert [c["label"] for c in wide["columns"]][-2:] == ["合计", "按提示词多数"]
    assert [row["category"] for row in wide["rows"]] == ["总体", "Animals", "Vehicles"]
    (figure,) = [p for p in shown["plots"] if p["key"] == "wtl_by_category"]
    assert [t["name"] for t in figure["data"]] == ["A 胜（Pooled）", "平局", "B 胜（Beta zh）"]
    # the English document is left as it was
    assert [row["category"] for row in found["tables"][0]["rows"]] == ["Overall", "Animals", "Vehicles"]


def test_a_phrasebook_recognises_its_phrases_filled_in_and_nothing_else():
    book = Phrasebook("Overall", "%(a)s (A) vs %(b)s (B)", "%(n)s rounds, 95%% intervals")
    assert book.match("7 rounds, 95% intervals") == ("%(n)s rounds, 95%% intervals", {"n": "7"})
    assert fill("%(a)s (A) vs %(b)s (B)", a="X", b="Y") in book
    assert book.match("X (A) vs Y (B)") == ("%(a)s (A) vs %(b)s (B)", {"a": "X", "b": "Y"})
    assert "Overall " not in book and "overall" not in book and 3 not in book
    assert book.translate("Something else") == "Something else"
    with override("zh-hans"):
        assert book.translate("Overall") == "总体"
