"""The annotator's JSON API: what the page receives, moving on in one round trip, and 4xx answers
that change nothing."""

import json
import re

import pytest
from django.test import Client

from annotation.models import (
    Assignment,
    Campaign,
    ItemVideo,
    Judgment,
    PlaybackEvent,
    ProblemReport,
    Rendition,
    RubricScore,
)
from generation.models import VideoModel
from tests.campaign_fixtures import ANNOTATOR_PASSWORD, shown_id

pytestmark = pytest.mark.django_db

VIEW_KEYS = {
    "token",
    "kind",
    "prompt",
    "videos",
    "require_full_playback",
    "progress",
    "is_answered",
    "answer",
}
VIDEO_KEYS = {"position", "url", "poster", "width", "height", "duration_s"}
# Every key the annotator's page may ever see in these responses.
ALLOWED_KEYS = {
    *VIEW_KEYS,
    *VIDEO_KEYS,
    "done",
    "assignment",
    "upcoming",
    "total",
    "text",
    "language",
    "choice",
    "revision",
    "scores",
    "judgment",
    "created",
    "revised",
    "next",
    "answers",
    "instruction_following",
    "motion_smoothness",
    "physical_plausibility",
    "aesthetic_appeal",
}


def keys_of(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def snapshot():
    return (
        list(Judgment.objects.order_by("pk").values_list("pk", "choice", "revision")),
        RubricScore.objects.count(),
        list(Assignment.objects.order_by("pk").values_list("pk", "status", "claimed_at")),
        PlaybackEvent.objects.count(),
        ProblemReport.objects.count(),
    )


@pytest.fixture
def pairwise(campaign_factory):
    return campaign_factory(n_prompts=3, n_annotators=2, name="Secret campaign Zeta")


def test_next_gives_the_item_in_display_terms_and_nothing_that_names_a_model(pairwise):
    person = pairwise.annotators.order_by("pk").first()
    response = logged_in(person).get(f"/api/annotate/{pairwise.pk}/next/")
    assert response.status_code == 200
    data = response.json()
    assert keys_of(data) <= ALLOWED_KEYS
    assert set(data) == {"done", "assignment", "upcoming", "progress"} and data["done"] is False
    view = data["assignment"]
    assert set(view) == VIEW_KEYS and view["kind"] == "paired" and view["is_answered"] is False
    assert data["progress"] == view["progress"] == {"done": 0, "total": 3}
    assignment = Assignment.objects.get(token=view["token"])
    assert view["prompt"] == {
        "text": assignment.item.prompt.text,
        "language": assignment.item.prompt.language,
    }
    for position, shown in enumerate(view["videos"]):
        video = ItemVideo.objects.get(item=assignment.item, slot=assignment.presentation[position]).video
        assert set(shown) == VIDEO_KEYS and shown["position"] == position
        assert video.public_id not in shown["url"] + shown["poster"]
        assert shown["url"] == f"/media/v/{shown_id(pairwise, video)}.mp4"
        assert shown["poster"] == f"/media/p/{shown_id(pairwise, video)}.jpg"
        assert (shown["width"], shown["height"], shown["duration_s"]) == (
            video.width,
            video.height,
            video.duration_s,
        )
    upcoming = Assignment.objects.get(annotator=person, status="claimed", pk__gt=assignment.pk)
    assert data["upcoming"] == {
        "videos": [
            f"/media/v/{shown_id(pairwise, ItemVideo.objects.get(item=upcoming.item, slot=slot).video)}.mp4"
            for slot in upcoming.presentation
        ]
    }
    text = response.content.decode().lower()
    for model in VideoModel.objects.all():
        assert model.name.lower() not in text and model.version.lower() not in text
    assert "zeta" not in text and "slot" not in text


def test_logging_out_and_in_again_resumes_the_same_item(pairwise):
    person = pairwise.annotators.order_by("pk").first()
    first = Client()
    assert first.login(username=person.username, password=ANNOTATOR_PASSWORD)
    token = first.get(f"/api/annotate/{pairwise.pk}/next/").json()["assignment"]["token"]
    first.logout()
    assert first.get(f"/api/annotate/{pairwise.pk}/next/").status_code == 403
    second = Client()
    assert second.login(username=person.username, password=ANNOTATOR_PASSWORD)
    assert second.get(f"/api/annotate/{pairwise.pk}/next/").json()["assignment"]["token"] == token


def test_an_answer_moves_on_in_one_round_trip_and_a_double_submit_stores_one_judgment(pairwise):
    person = pairwise.annotators.order_by("pk").first()
    client = logged_in(person)
    first = client.get(f"/api/annotate/{pairwise.pk}/next/").json()
    token = first["assignment"]["token"]
    response = post(client, f"/api/annotate/assignments/{token}/answer/", {"choice": "left"})
    assert response.status_code == 200
    data = response.json()
    assert keys_of(data) <= ALLOWED_KEYS
    assert data["judgment"] == {"choice": "left", "revision": 0}
    assert (data["created"], data["revised"]) == (True, False)
    following = data["next"]["assignment"]
    assert following["token"] != token and data["next"]["progress"] == {"done": 1, "total": 3}
    # The item preloaded behind the first is the one that comes next.
    assert [v["url"] for v in following["videos"]] == first["upcoming"]["videos"]

    again = post(client, f"/api/annotate/assignments/{token}/answer/", {"choice": "left"}).json()
    assert (again["created"], again["revised"]) == (False, False)
    assert again["next"]["assignment"]["token"] == following["token"]
    assert Judgment.objects.count() == 1


def test_the_recent_answers_can_be_listed_and_revised(pairwise):
    person = pairwise.annotators.order_by("pk").first()
    client = logged_in(person)
    tokens = []
    following = client.get(f"/api/annotate/{pairwise.pk}/next/").json()
    while following["assignment"]:
        token = following["assignment"]["token"]
        tokens.append(token)
        following = post(client, f"/api/annotate/assignments/{token}/answer/", {"choice": "tie"}).json()[
            "next"
        ]
    assert following["done"] is True and following["progress"] == {"done": 3, "total": 3}

    answers = client.get(f"/api/annotate/{pairwise.pk}/recent/").json()["answers"]
    assert [a["token"] for a in answers] == list(reversed(tokens))
    assert all(a["is_answered"] and a["answer"] == {"choice": "tie", "revision": 0} for a in answers)
    assert keys_of(answers) <= ALLOWED_KEYS

    revised = post(client, f"/api/annotate/assignments/{tokens[0]}/answer/", {"choice": "right"}).json()
    assert revised["revised"] is True and revised["judgment"] == {"choice": "right", "revision": 1}
    assert Judgment.objects.get(assignment__token=tokens[0]).choice == "right"


def test_a_problem_report_moves_on_and_playback_reports_are_recorded(pairwise):
    person = pairwise.annotators.order_by("pk").first()
    client = logged_in(person)
    token = client.get(f"/api/annotate/{pairwise.pk}/next/").json()["assignment"]["token"]
    played = post(
        client,
        f"/api/annotate/assignments/{token}/playback/",
        {"position": 1, "event": "play", "media_time": 0},
    )
    assert played.status_code == 201
    event = PlaybackEvent.objects.get()
    assert event.slot == Assignment.objects.get(token=token).presentation[1]
    response = post(client, f"/api/annotate/assignments/{token}/problem/", {"kind": "video_broken"})
    assert response.status_code == 200
    data = response.json()
    assert data["assignment"]["token"] != token and data["progress"]["done"] == 1
    assert ProblemReport.objects.get().assignment.token == token


def test_a_rubric_item_is_answered_with_scores_by_position(campaign_factory):
    campaign = campaign_factory(
        "rubric", n_prompts=1, n_annotators=1, model_names=("M1", "M2"), rubric_layout="together"
    )
    client = logged_in(campaign.annotators.get())
    view = client.get(f"/api/annotate/{campaign.pk}/next/").json()["assignment"]
    assert view["kind"] == "rubric" and len(view["videos"]) == 2
    body = {
        "scores": [
            {
                "position": p,
                "instruction_following": 5 - p,
                "motion_smoothness": 4,
                "physical_plausibility": 3,
                "aesthetic_appeal": 2,
            }
            for p in (1, 0)
        ]
    }
    data = post(client, f"/api/annotate/assignments/{view['token']}/answer/", body).json()
    assert data["judgment"]["scores"] == sorted(body["scores"], key=lambda s: s["position"])
    assert data["next"]["done"] is True


def test_a_normalising_campaign_shows_its_renditions(pairwise):
    Campaign.objects.filter(pk=pairwise.pk).update(normalise_media=True)
    item_video = ItemVideo.objects.filter(item__campaign=pairwise).first()
    rendition = Rendition.objects.get(campaign=pairwise, video=item_video.video)
    Rendition.objects.filter(pk=rendition.pk).update(
        playable_file="renditions/x.mp4", poster_file="renditions/x.jpg", width=640, height=360, fps=24,
        duration_s=4.0,
    )  # fmt: skip
    people = list(pairwise.annotators.all())
    shown = []
    for person in people:
        client = logged_in(person)
        data = client.get(f"/api/annotate/{pairwise.pk}/next/").json()
        while data["assignment"]:
            shown += data["assignment"]["videos"]
            token = data["assignment"]["token"]
            data = post(client, f"/api/annotate/assignments/{token}/answer/", {"choice": "left"}).json()[
                "next"
            ]
    of_rendition = [v for v in shown if rendition.public_id in v["url"]]
    assert of_rendition and all(
        v["url"] == f"/media/v/{rendition.public_id}.mp4"
        and v["poster"] == f"/media/p/{rendition.public_id}.jpg"
        and (v["width"], v["height"], v["duration_s"]) == (640, 360, 4.0)
        for v in of_rendition
    )
    assert not any(item_video.video.public_id in v["url"] for v in shown)


def test_next_says_not_done_while_others_hold_the_last_items(campaign_factory):
    campaign = campaign_factory(n_prompts=1, n_annotators=2, judgments_per_item=1)
    first, second = campaign.annotators.order_by("pk")
    holder = logged_in(first)
    held = holder.get(f"/api/annotate/{campaign.pk}/next/").json()
    waiting = logged_in(second).get(f"/api/annotate/{campaign.pk}/next/").json()
    assert waiting == {
        "done": False,
        "assignment": None,
        "upcoming": None,
        "progress": {"done": 0, "total": 1},
    }
    post(holder, f"/api/annotate/assignments/{held['assignment']['token']}/answer/", {"choice": "left"})
    finished = logged_in(second).get(f"/api/annotate/{campaign.pk}/next/").json()
    assert finished["done"] is True and finished["progress"] == {"done": 0, "total": 0}


BAD_REQUESTS = [
    # (who, method, path, body, status, detail)
    ("owner", "post", "answer", {"choice": "up"}, 400, "'choice' must be one of left, tie, right"),
    ("owner", "post", "answer", "{not json", 400, "JSON"),
    ("owner", "post", "answer", ["left"], 400, "must be a JSON object"),
    ("other", "post", "answer", {"choice": "left"}, 404, "no such assignment"),
    ("owner", "post", "answer-unknown", {"choice": "left"}, 404, "no such assignment"),
    ("owner", "post", "playback", {"position": 5, "event": "play"}, 400, "'position' must be an integer"),
    ("owner", "post", "playback", {"position": 0, "event": "seek"}, 400, "'event' must be one of"),
    ("other", "post", "playback", {"position": 0, "event": "play"}, 404, "no such assignment"),
    ("owner", "post", "problem", {"kind": "meh"}, 400, "'kind' must be one of"),
    ("owner", "post", "problem", {"kind": "other", "note": "x" * 3000}, 400, "'note' must be text"),
    ("other", "post", "problem", {"kind": "other"}, 404, "no such assignment"),
    ("stranger", "get", "next", None, 403, "not an annotator of this campaign"),
    ("stranger", "get", "recent", None, 403, "not an annotator of this campaign"),
    ("owner", "get", "next-unknown-campaign", None, 404, ""),
    ("owner", "get", "next-paused", None, 409, "campaign is paused"),
    ("owner", "post", "answer-paused", {"choice": "left"}, 409, "campaign is paused"),
    ("anonymous", "get", "next", None, 403, "credentials"),
    ("anonymous", "post", "answer", {"choice": "left"}, 403, "credentials"),
    ("owner", "get", "answer", None, 405, ""),
]


@pytest.mark.parametrize(("who", "method", "target", "body", "status", "detail"), BAD_REQUESTS)
def test_every_bad_request_answers_4xx_with_a_detail_and_changes_nothing(
    campaign_factory, django_user_model, who, method, target, body, status, detail
):
    campaign = campaign_factory(n_prompts=2, n_annotators=2, judgments_per_item=2)
    owner, other = campaign.annotators.order_by("pk")
    token = logged_in(owner).get(f"/api/annotate/{campaign.pk}/next/").json()["assignment"]["token"]
    logged_in(other).get(f"/api/annotate/{campaign.pk}/next/")
    if target.endswith("-paused"):
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    clients = {
        "owner": logged_in(owner),
        "other": logged_in(other),
        "stranger": logged_in(django_user_model.objects.create(username="stranger")),
        "anonymous": Client(),
    }
    path = {
        "answer": f"/api/annotate/assignments/{token}/answer/",
        "answer-paused": f"/api/annotate/assignments/{token}/answer/",
        "answer-unknown": f"/api/annotate/assignments/{'f' * 24}/answer/",
        "playback": f"/api/annotate/assignments/{token}/playback/",
        "problem": f"/api/annotate/assignments/{token}/problem/",
        "next": f"/api/annotate/{campaign.pk}/next/",
        "next-paused": f"/api/annotate/{campaign.pk}/next/",
        "next-unknown-campaign": f"/api/annotate/{campaign.pk + 1000}/next/",
        "recent": f"/api/annotate/{campaign.pk}/recent/",
    }[target]
    before = snapshot()
    client = clients[who]
    if method == "get":
        response = client.get(path)
    elif isinstance(body, str):
        response = client.post(path, body, content_type="application/json")
    else:
        response = post(client, path, body)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert snapshot() == before


def test_posts_need_the_csrf_token(pairwise):
    person = pairwise.annotators.order_by("pk").first()
    client = Client(enforce_csrf_checks=True)
    client.force_login(person)
    response = client.get(f"/api/annotate/{pairwise.pk}/next/")
    token = response.json()["assignment"]["token"]
    url = f"/api/annotate/assignments/{token}/answer/"
    refused = post(client, url, {"choice": "left"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert Judgment.objects.count() == 0
    client.get("/")  # any page sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    accepted = client.post(
        url, json.dumps({"choice": "left"}), content_type="application/json", headers={"X-CSRFToken": csrf}
    )
    assert accepted.status_code == 200 and Judgment.objects.count() == 1


def _queries_of(call) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = call()
    assert response.status_code == 200, response.content
    return [q["sql"] for q in queries]


def _reading(queries: list[str], table: str) -> list[str]:
    return [sql for sql in queries if sql.startswith(f'SELECT "{table}".')]


def test_next_and_answer_read_a_fixed_number_of_queries_whatever_the_campaign_size(campaign_factory):
    """What one request costs does not grow with the campaign: the item on screen and the one preloaded
    behind it read their videos in one query and their renditions in one, in a campaign of 3 items as
    in one of 12, and answering (which also hands out the next item) costs the same in both."""
    counts = []
    for n_prompts in (3, 12):
        campaign = campaign_factory(n_prompts=n_prompts, n_annotators=1, judgments_per_item=1)
        client = logged_in(campaign.annotators.get())
        url = f"/api/annotate/{campaign.pk}/next/"
        client.get(url)  # both claims made; what follows is the steady state of an annotator at work
        next_queries = _queries_of(lambda c=client, u=url: c.get(u))
        assert len(_reading(next_queries, "annotation_itemvideo")) == 1
        assert len(_reading(next_queries, "annotation_rendition")) == 1
        assert not [q for q in next_queries if q.startswith("SELECT 1 AS")]  # checked with the membership
        token = client.get(url).json()["assignment"]["token"]
        answer_queries = _queries_of(
            lambda c=client, t=token: post(c, f"/api/annotate/assignments/{t}/answer/", {"choice": "tie"})
        )
        counts.append((len(next_queries), len(answer_queries)))
        for sql in next_queries + answer_queries:
            # Nothing reads the whole campaign: its items are not counted, nor its answers grouped, nor
            # every claim of the campaign looked at for expiry (the index of live claims is asked).
            assert not re.search(r'^SELECT COUNT.* FROM "annotation_item" WHERE \S+"campaign_id" = \d+$', sql)
            assert 'GROUP BY "annotation_assignment"."item_id"' not in sql
            assert not (" OR EXISTS(" in sql and '"annotation_assignment"."annotator_id" IN' not in sql)
    assert counts[0] == counts[1], counts


def test_a_clip_is_authorised_for_an_annotator_in_one_query_besides_their_session(campaign_factory):
    """The file behind a media URL and whether the caller annotates the campaign that shows it are read
    together: media requests come several per answer."""
    campaign = campaign_factory(n_prompts=2, n_annotators=1, judgments_per_item=1)
    client = logged_in(campaign.annotators.get())
    video = client.get(f"/api/annotate/{campaign.pk}/next/").json()["assignment"]["videos"][0]
    for url in (video["url"], video["poster"]):
        queries = _queries_of(lambda c=client, u=url: c.get(u))
        rest = [q for q in queries if not q.startswith(('SELECT "django_session"', 'SELECT "auth_user"'))]
        assert len(rest) == 1, rest
