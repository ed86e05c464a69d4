"""The managers' API: campaigns (create with every refusal storing nothing, status, annotators, progress,
items and gold), quality and exclusions, and the judgments list with its filters."""

import pytest
from django.contrib.auth.models import Group

from annotation.models import AnnotatorExclusion, Campaign, Item, Judgment
from annotation.services import exclude_annotator

from .test_quality import MIRRORED, answer, score

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client, django_user_model):
    manager = django_user_model.objects.create_user("boss", password="pw-boss-12345", is_staff=True)
    client.force_login(manager)
    return client


def post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def test_annotators_get_403_from_every_manager_endpoint(client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    annotator = campaign.annotators.get()
    item = campaign.items.get()
    answer(item, annotator, "left")
    client.force_login(annotator)
    base = f"/api/campaigns/{campaign.pk}"
    for url in [
        "/api/campaigns/",
        f"{base}/",
        f"{base}/progress/",
        f"{base}/items/",
        f"{base}/quality/",
        "/api/judgments/",
        f"/api/judgments/{Judgment.objects.get().pk}/",
    ]:
        assert client.get(url).status_code == 403, url
    for url in [
        "/api/campaigns/",
        f"{base}/pause/",
        f"{base}/close/",
        f"{base}/annotators/",
        f"{base}/items/{item.pk}/gold/",
        f"{base}/exclusions/",
        f"{base}/import-judgments/",
    ]:
        assert (
            post(client, url, {"gold_answer": "slot0", "annotator": annotator.username}).status_code == 403
        ), url
    assert client.delete(f"{base}/exclusions/{annotator.username}/").status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == "active" and Item.objects.get().gold_answer == ""
    assert not AnnotatorExclusion.objects.exists()


@pytest.fixture
def request_body(library, annotators):
    benchmark, (alpha, beta) = library(["a cat", "a dog"])
    chosen, member = annotators(2, prefix="person")
    Group.objects.create(name="annotators").user_set.add(member)
    body = {
        "name": "by api",
        "kind": "ab_shared_noise",
        "benchmark": benchmark.slug,
        "models": [beta.pk, alpha.pk],
        "annotators": [chosen.username],
        "annotators_group": True,
        "overlap": "every_annotator",
        "repeat_fraction": 0.2,
        "description": "Pick the better one.",
    }
    return body, benchmark, (alpha, beta), (chosen, member)


def test_manager_creates_a_campaign_by_api(api, library, annotators):
    benchmark, (alpha, beta) = library(["a cat", "a dog"], ("Base", "Tuned"), noise=True)
    chosen, member = annotators(2, prefix="person")
    Group.objects.create(name="annotators").user_set.add(member)
    body = {
        "name": "by api",
        "kind": "ab_shared_noise",
        "benchmark": benchmark.slug,
        "models": [alpha.pk, beta.pk],
        "annotators": [chosen.username],
        "annotators_group": True,
        "overlap": "every_annotator",
        "repeat_fraction": 0.2,
        "description": "Pick the better one.",
    }
    response = post(api, "/api/campaigns/", body)
    assert response.status_code == 201, response.content
    data = response.json()
    campaign = Campaign.objects.get()
    assert (
        data["id"] == campaign.pk
        and data["kind"] == "ab_shared_noise"
        and data["benchmark"] == benchmark.slug
    )
    assert [(m["role"], m["id"]) for m in data["models"]] == [("baseline", alpha.pk), ("tuned", beta.pk)]
    assert sorted(data["annotators"]) == sorted([chosen.username, member.username])
    assert (data["judgments_per_item"], data["item_count"], data["required_total"], data["done_total"]) == (
        2,
        2,
        4,
        0,
    )
    assert data["normalise_media"] is False and data["created_by"] == "boss"
    listed = api.get("/api/campaigns/", {"kind": "ab_shared_noise"}).json()
    assert listed["count"] == 1 and listed["results"][0]["name"] == "by api"
    assert api.get("/api/campaigns/", {"status": "closed"}).json()["count"] == 0


@pytest.mark.parametrize(
    ("change", "status_message"),
    [
        ({"kind": "tournament"}, ("kind", "is not a valid choice")),
        ({"models": [999999]}, ("models", "Invalid pk")),
        ({"benchmark": "nope"}, ("benchmark", "does not exist")),
        ({"categories": ["Animals"]}, ("categories", "has no category 'Animals'")),
        ({"annotators": ["ghost"]}, ("annotators", "does not exist")),
        ({"models": "first only"}, ("detail", "a pairwise campaign compares two models; got 1")),
        ({"description": "Alpha is the baseline"}, ("detail", "the instructions name a compared model")),
        ({"repeat_fraction": 0.75}, ("detail", "between 0 and 0.5")),
        ({"claim_timeout_s": 1}, ("detail", "between 30 and 604800 seconds")),
        ({"judgments_per_item": 0}, ("detail", "between 1 and 100")),
        ({"judgments_per_item": 101}, ("detail", "between 1 and 100")),  # the web form's bound too
    ],
)
def test_a_bad_campaign_request_is_a_400_with_the_message_and_stores_nothing(
    api, request_body, change, status_message
):
    body, benchmark, (alpha, beta), _ = request_body
    body = {**body, "kind": "pairwise", "overlap": "k_per_item", **change}
    if change.get("models") == "first only":
        body["models"] = [alpha.pk]
    response = post(api, "/api/campaigns/", body)
    assert response.status_code == 400
    key, message = status_message
    text = response.json()[key]
    assert message in (text if isinstance(text, str) else " ".join(map(str, text)))
    assert Campaign.objects.count() == 0 and Item.objects.count() == 0


def test_pause_resume_close_and_add_annotators(api, campaign_factory, annotators):
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=2, overlap="every_annotator")
    base = f"/api/campaigns/{campaign.pk}"
    assert post(api, f"{base}/pause/").json()["status"] == "paused"
    assert post(api, f"{base}/pause/").json() == {"detail": "the campaign is already paused"}
    assert post(api, f"{base}/resume/").json()["status"] == "active"
    (late,) = annotators(1, prefix="late")
    response = post(api, f"{base}/annotators/", {"annotators": [late.username]})
    assert response.status_code == 200 and response.json() == {"added": [late.username]}
    assert set(campaign.items.values_list("required_judgments", flat=True)) == {3}
    response = post(api, f"{base}/annotators/", {})
    assert response.status_code == 400 and "annotators_group" in str(response.json())
    assert post(api, f"{base}/close/").json()["status"] == "closed"
    response = post(api, f"{base}/resume/")
    assert (
        response.status_code == 400 and response.json()["detail"] == "a closed campaign cannot be made active"
    )
    (later,) = annotators(1, prefix="later")
    response = post(api, f"{base}/annotators/", {"annotators": [later.username]})
    assert response.json() == {"detail": "the campaign is closed"}
    assert campaign.annotators.count() == 3
    assert post(api, "/api/campaigns/999999/pause/").status_code == 404


def test_progress_items_and_gold_by_api(api, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=3, n_annotators=2, missing=[(0, 2)])
    a0, a1 = campaign.annotators.order_by("username")
    first, second = campaign.items.order_by("position")
    answer(first, a0, "left", duration_ms=1200)
    answer(second, a0, "tie", duration_ms=800)
    answer(first, a1, "right", duration_ms=400)
    base = f"/api/campaigns/{campaign.pk}"
    progress = api.get(f"{base}/progress/").json()
    rows = {
        r["username"]: (r["done"], r["claimed"], r["total"], r["median_duration_ms"])
        for r in progress["annotators"]
    }
    assert rows == {a0.username: (2, 0, 2, 1000), a1.username: (1, 0, 2, 400)}
    assert progress["time_per_item"]["n"] == 3 and progress["time_per_item"]["median_ms"] == 800
    alpha = campaign.campaign_models.get(position=0).model
    skipped = campaign.benchmark.prompts.get(position=2)
    assert progress["excluded_prompts"] == [
        {"prompt": skipped.pk, "prompt_position": 2, "model": alpha.label, "reason": "no_video"}
    ]
    items = api.get(f"{base}/items/").json()
    assert items["count"] == 2
    first_row = items["results"][0]
    assert (first_row["position"], first_row["judgments_done"], first_row["required_judgments"]) == (1, 2, 3)
    assert [v["slot"] for v in first_row["videos"]] == [0, 1] and first_row["videos"][0]["model"].startswith(
        "Alpha"
    )
    response = post(api, f"{base}/items/{first.pk}/gold/", {"gold_answer": "tie"})
    assert response.status_code == 200 and Item.objects.get(pk=first.pk).gold_answer == "tie"
    response = post(api, f"{base}/items/{first.pk}/gold/", {"gold_answer": "left"})
    assert response.status_code == 400 and Item.objects.get(pk=first.pk).gold_answer == "tie"
    assert post(api, f"{base}/items/{first.pk}/gold/", {"gold_answer": ""}).json() == {"gold_answer": ""}
    other = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    assert (
        post(api, f"/api/campaigns/{other.pk}/items/{first.pk}/gold/", {"gold_answer": "tie"}).status_code
        == 404
    )


def test_quality_and_exclusions_by_api(api, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=2)
    a0, a1 = campaign.annotators.order_by("username")
    first, second = campaign.items.order_by("position")
    Item.objects.filter(pk=first.pk).update(gold_answer="slot1")
    answer(first, a0, "left", shown=MIRRORED)  # slot1: right
    answer(second, a0, "left")
    answer(first, a1, "left")  # slot0: wrong
    base = f"/api/campaigns/{campaign.pk}"
    body = api.get(f"{base}/quality/").json()
    figures = {row["username"]: row for row in body["annotators"]}
    assert (figures[a0.username]["gold_correct"], figures[a0.username]["gold_n"]) == (1, 1)
    assert figures[a1.username]["gold_accuracy"] == 0.0
    assert figures[a0.username]["left_share"] == 1.0 and figures[a0.username]["position_n"] == 2
    assert body["agreement"]["annotators"] == 2 and body["contradictions"] == []

    response = post(api, f"{base}/exclusions/", {"annotator": a1.username, "reason": "random clicks"})
    assert response.status_code == 201 and response.json() == {
        "annotator": a1.username,
        "reason": "random clicks",
    }
    assert post(api, f"{base}/exclusions/", {"annotator": a1.username}).json() == {
        "detail": f"{a1.username} is already excluded from this campaign"
    }
    assert post(api, f"{base}/exclusions/", {"annotator": "ghost"}).status_code == 400
    figures = {row["username"]: row for row in api.get(f"{base}/quality/").json()["annotators"]}
    assert figures[a1.username]["excluded"] and figures[a1.username]["exclusion_reason"] == "random clicks"
    judgments = api.get("/api/judgments/", {"campaign": campaign.pk, "annotator": a1.username}).json()
    assert judgments["count"] == 1 and judgments["results"][0]["excluded"] is True
    assert api.delete(f"{base}/exclusions/{a1.username}/").status_code == 204
    assert api.delete(f"{base}/exclusions/{a1.username}/").status_code == 400
    assert Judgment.objects.filter(annotator=a1).count() == 1


def test_judgments_api_lists_resolves_and_filters(api, campaign_factory):
    pairwise = campaign_factory("pairwise", n_prompts=1, n_annotators=2)
    a0, a1 = pairwise.annotators.order_by("username")
    item = pairwise.items.get()
    chose_beta = answer(item, a0, "left", shown=MIRRORED, duration_ms=2500)
    tie = answer(item, a1, "tie")
    rubric = campaign_factory("rubric", n_prompts=1, n_annotators=1, model_names=("Gamma",))
    scorer = rubric.annotators.get()
    rubric_item = rubric.items.get()
    scored = answer(rubric_item, scorer, None)
    score(scored, rubric_item.item_videos.get().video, (5, 4, 3, 2))
    imported = Judgment.objects.create(
        campaign=pairwise,
        annotator=a1,
        prompt=item.prompt,
        source="import",
        choice="right",
        left_model=chose_beta.right_model,
        right_model=chose_beta.left_model,
    )
    exclude_annotator(pairwise, a0)

    everything = api.get("/api/judgments/").json()
    assert everything["count"] == 4
    rows = {row["id"]: row for row in everything["results"]}
    beta_row = rows[chose_beta.pk]
    assert beta_row["left_model"].startswith("Beta") and beta_row["right_model"].startswith("Alpha")
    assert beta_row["winner"] == beta_row["left_model"] and beta_row["choice"] == "left"
    assert beta_row["left_video"] == chose_beta.left_video.public_id
    assert beta_row["preferred_video"] == chose_beta.left_video.public_id
    assert (beta_row["duration_ms"], beta_row["excluded"], beta_row["is_repeat"]) == (2500, True, False)
    assert rows[tie.pk]["winner"] == "tie" and rows[tie.pk]["excluded"] is False
    scored_row = rows[scored.pk]
    assert scored_row["winner"] is None and scored_row["choice"] == ""
    assert [
        (
            s["model"],
            s["instruction_following"],
            s["motion_smoothness"],
            s["physical_plausibility"],
            s["aesthetic_appeal"],
        )
        for s in scored_row["scores"]
    ] == [(str(rubric_item.item_videos.get().video.model), 5, 4, 3, 2)]

    def ids(**params):
        return sorted(row["id"] for row in api.get("/api/judgments/", params).json()["results"])

    assert ids(campaign=pairwise.pk) == sorted([chose_beta.pk, tie.pk, imported.pk])
    assert ids(campaign=rubric.pk) == [scored.pk]
    assert ids(annotator=a1.username) == sorted([tie.pk, imported.pk])
    assert ids(campaign=pairwise.pk, source="import") == [imported.pk]
    detail = api.get(f"/api/judgments/{imported.pk}/").json()
    assert detail["item"] is None and detail["left_video"] is None and detail["winner"].startswith("Beta")
    assert ids(annotator="nobody") == []
    assert api.get("/api/judgments/", {"limit": 2}).json()["next"] is not None
    assert api.get("/api/judgments/", {"campaign": "x"}).status_code == 400
    assert "expected one of site, import" in str(api.get("/api/judgments/", {"source": "web"}).json())


def test_a_campaign_key_that_is_not_a_number_is_a_404_on_every_campaign_endpoint(api, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    item = campaign.items.get()
    for key in ("abc", "²", "1.5", "99999999999999999999"):
        base = f"/api/campaigns/{key}"
        for url in [f"{base}/", f"{base}/progress/", f"{base}/items/", f"{base}/quality/"]:
            assert api.get(url).status_code == 404, url
        for url in [
            f"{base}/pause/",
            f"{base}/resume/",
            f"{base}/close/",
            f"{base}/normalise-media/",
            f"{base}/annotators/",
            f"{base}/items/{item.pk}/gold/",
            f"{base}/exclusions/",
            f"{base}/import-judgments/",
        ]:
            assert post(api, url, {"gold_answer": "slot0"}).status_code == 404, url
        assert api.delete(f"{base}/exclusions/somebody/").status_code == 404
        assert api.get(f"/api/judgments/{key}/").status_code == 404
    campaign.refresh_from_db()
    assert campaign.status == "active" and campaign.items.get().gold_answer == ""


@pytest.mark.parametrize("key", ["²", "abc", "-1", "0", "1.0", "1_0", "9" * 20])
def test_the_judgments_list_refuses_a_campaign_filter_that_is_not_an_id(api, key):
    response = api.get("/api/judgments/", {"campaign": key})
    assert response.status_code == 400
    assert response.json() == {"campaign": [f"give the id (a whole number from 1 to {2**63 - 1})"]}


def test_a_blank_campaign_filter_is_no_filter(api):
    assert api.get("/api/judgments/", {"campaign": " "}).status_code == 200


def test_openapi_schema_describes_the_manager_endpoints(admin_client):
    text = admin_client.get("/api/schema/").content.decode()
    for path in (
        "/api/campaigns/{id}/quality/",
        "/api/campaigns/{id}/import-judgments/",
        "/api/campaigns/{id}/items/{item_id}/gold/",
        "/api/judgments/",
    ):
        assert path in text, path
    assert "preferred_video" in text and "AnnotatorQuality" in text
