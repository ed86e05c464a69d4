"""Hostile query values, ids and bodies get a 4xx that names what was wrong, never a 500 (issue 10)."""

import io
import json

import pytest

from annotation.models import Campaign
from generation.models import Video, VideoModel

pytestmark = pytest.mark.django_db

HUGE = str(10**30)


@pytest.fixture
def client_(admin_client):
    return admin_client


@pytest.mark.parametrize(
    "url, parameter",
    [
        ("/api/videos/?model=abc", "model"),
        ("/api/videos/?prompt=abc", "prompt"),
        (f"/api/videos/?model={HUGE}", "model"),
        ("/api/videos/?limit=abc", "limit"),
        (f"/api/prompts/?limit={HUGE}", "limit"),
        ("/api/jobs/?limit=1e20", "limit"),
        (f"/api/jobs/?offset={HUGE}", "offset"),
        ("/api/judgments/?campaign=abc", "campaign"),
        (f"/api/judgments/?campaign={HUGE}", "campaign"),
    ],
)
def test_a_bad_list_parameter_is_a_400_naming_it(admin_client, url, parameter):
    response = admin_client.get(url)
    assert response.status_code == 400, response.content
    assert parameter in response.json()


@pytest.mark.parametrize("url", ["/videos/?model=abc", f"/videos/?model={HUGE}", "/jobs/?status=nope"])
def test_a_site_page_answers_a_bad_filter_with_a_400_page(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 400
    assert b"<nav" in response.content  # the site's menu stays


def test_a_bad_page_number_shows_the_first_page(admin_client):
    assert admin_client.get("/videos/?page=abc").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/api/preference-exports/abc/files/pairs.jsonl/",
        "/api/preference-exports/null,null/files/0/",
        f"/api/preference-exports/{HUGE}/files/pairs.jsonl/",
        "/api/videos/abc/",
        f"/api/videos/{HUGE}/",
        "/api/jobs/abc/",
        "/api/campaigns/abc/",
    ],
)
def test_a_bad_id_in_the_path_is_a_404(admin_client, url):
    assert admin_client.get(url).status_code == 404


@pytest.mark.parametrize("act", ["cancel", "retry"])
def test_acting_on_a_job_that_is_not_a_uuid_is_a_404(admin_client, act):
    assert admin_client.post(f"/api/jobs/not-a-uuid/{act}/").status_code == 404


@pytest.mark.parametrize(
    "url", ["/api/models/", "/api/campaigns/", "/api/preference-exports/", "/api/videos/import/"]
)
def test_json_nested_five_thousand_deep_is_a_400(admin_client, url):
    body = "[" * 5000 + "]" * 5000
    response = admin_client.post(url, body, content_type="application/json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    "field, value", [("judgments_per_item", 2**70), ("claim_timeout_s", 2**63), ("repeat_fraction", 1e308)]
)
def test_campaign_numbers_beyond_the_database_are_a_400(admin_client, library, field, value):
    benchmark, models = library(["a cat"], ("Alpha", "Beta"))
    body = {
        "name": "huge",
        "kind": "pairwise",
        "benchmark": benchmark.slug,
        "models": [m.pk for m in models],
        field: value,
    }
    response = admin_client.post("/api/campaigns/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert field.split("_")[0] in response.json()["detail"]  # the service's message names the bound
    assert not Campaign.objects.exists()


def test_campaign_with_every_annotator_still_bounds_k(admin_client, library):
    benchmark, models = library(["a cat"], ("Alpha", "Beta"))
    body = {
        "name": "every",
        "kind": "pairwise",
        "benchmark": benchmark.slug,
        "models": [m.pk for m in models],
        "overlap": "every",
        "judgments_per_item": 2**70,
    }
    response = admin_client.post("/api/campaigns/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content


def test_upload_seed_beyond_the_database_is_a_400(admin_client, make_benchmark, make_video, tmp_path):
    prompt = make_benchmark(["a cat"]).prompts.get()
    model = VideoModel.objects.create(name="Alpha")
    data = make_video(tmp_path / "a.mp4").read_bytes()
    upload = io.BytesIO(data)
    upload.name = "a.mp4"
    response = admin_client.post(
        "/api/videos/", {"file": upload, "model": model.pk, "prompt": prompt.pk, "seed": 2**70}
    )
    assert response.status_code == 400, response.content
    assert "seed" in response.json()["detail"]
    assert not Video.objects.exists()


def test_deleting_a_video_a_campaign_uses_is_a_409_and_keeps_it(admin_client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    video = Video.objects.filter(prompt__benchmark=campaign.benchmark).first()
    response = admin_client.delete(f"/api/videos/{video.pk}/")
    assert response.status_code == 409, response.content
    assert "campaign" in response.json()["detail"]
    assert Video.objects.filter(pk=video.pk).exists()


def test_the_upload_page_refuses_a_seed_beyond_the_database(
    admin_client, make_benchmark, make_video, tmp_path
):
    benchmark = make_benchmark(["a cat"])
    model = VideoModel.objects.create(name="Alpha")
    for field, value in [("seed", 2**70), ("prompt_position", 10**30)]:
        upload = io.BytesIO(make_video(tmp_path / "a.mp4").read_bytes())
        upload.name = "a.mp4"
        form = {"file": upload, "model": model.pk, "benchmark": benchmark.pk, "prompt_position": 1, "seed": 1}
        response = admin_client.post("/videos/", {**form, field: str(value)})
        assert response.status_code == 200 and "less than or equal to" in response.content.decode(), field
    assert not Video.objects.exists()
