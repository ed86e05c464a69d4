"""Annotators never learn which model made a video: every URL of the site, fetched as an annotator,
is scanned for the models' names, versions and ids; pages and API endpoints for managers refuse them."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from generation.models import Video, VideoModel
from generation.services import add_video, process_video

pytestmark = pytest.mark.django_db

SECRET_NAME, SECRET_VERSION = "SecretModelX", "v9-hush"


def walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def concrete_urls(values: dict[str, str]) -> list[str]:
    """Every pattern of the site with its parameters filled in from `values` (admin internals aside)."""
    urls = set()
    for route in walk(get_resolver().url_patterns):
        if route.startswith("admin/") and route != "admin/":
            continue
        url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values.get(m[1], "x"), route)
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m[1], "x"), url)
        url = url.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
        if re.search(r"[()\[\]*+?\\]", url):
            continue
        urls.add("/" + url)
    return sorted(urls)


@pytest.fixture
def world(tmp_path, make_video, make_benchmark, django_user_model):
    benchmark = make_benchmark(["一只猫"])
    model = VideoModel.objects.create(
        name=SECRET_NAME, version=SECRET_VERSION, checkpoint=f"/ckpt/{SECRET_NAME}"
    )
    source = make_video(tmp_path / f"{SECRET_NAME}_{SECRET_VERSION}.mp4", title=f"made by {SECRET_NAME}")
    video, _ = add_video(
        model=model,
        prompt=benchmark.prompts.get(),
        source_path=source,
        original_name=source.name,
        source=Video.Source.UPLOAD,
    )
    video = process_video(video)
    assert video.status == Video.Status.READY
    from evalsite.models import Job

    job = Job.objects.create(kind="generation.tasks.import_videos", title=f"Import {SECRET_NAME}")
    django_user_model.objects.create_user("ann", password="pw-123456789")
    return {"benchmark": benchmark, "model": model, "video": video, "job": job}


def secrets_of(world) -> list[bytes]:
    return [SECRET_NAME.encode(), SECRET_VERSION.encode(), SECRET_NAME.lower().encode()]


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def test_nothing_an_annotator_can_fetch_names_a_model(client, world):
    assert client.login(username="ann", password="pw-123456789")
    video = world["video"]
    values = {
        "slug": "tiny",
        "position": "1",
        "pk": str(video.pk),
        "job_id": str(world["job"].pk),
        "public_id": video.public_id,
        "format": "json",
        "action": "cancel",
        "uidb64": "x",
        "token": "x",
    }
    urls = concrete_urls(values)
    assert f"/media/v/{video.public_id}.mp4" in urls and f"/api/videos/{video.pk}/" in urls
    allowed = {"/"}
    # A library video's own id is for managers: annotators are shown a campaign's renditions only.
    library_media = {f"/media/v/{video.public_id}.mp4", f"/media/p/{video.public_id}.jpg"}
    leaks = []
    for url in urls:
        response = client.get(url)
        payload = body_of(response) + str(dict(response.headers)).encode()
        leaks += [f"{url} contains {s!r}" for s in secrets_of(world) if s.lower() in payload.lower()]
        if url in allowed:
            assert response.status_code == 200, url
        elif url in library_media:
            assert response.status_code == 404, url
        elif url.startswith(("/accounts/", "/i18n/")):
            continue
        else:
            assert response.status_code in (302, 403, 404, 405), f"{url} answered {response.status_code}"
            if response.status_code == 302:
                assert "/login/" in response["Location"], url
    assert leaks == []


def test_annotator_is_refused_by_every_manager_api_endpoint(client, world):
    client.login(username="ann", password="pw-123456789")
    for url in [
        "/api/models/",
        "/api/videos/",
        "/api/jobs/",
        "/api/benchmarks/",
        "/api/prompts/",
        "/api/refusals/",
        f"/api/videos/{world['video'].pk}/",
        f"/api/models/{world['model'].pk}/",
    ]:
        assert client.get(url).status_code == 403, url
    response = client.post("/api/models/", {"name": "x"})
    assert response.status_code == 403


def test_the_served_video_file_carries_no_model_name(admin_client, world):
    video = world["video"]
    data = body_of(admin_client.get(f"/media/v/{video.public_id}.mp4"))
    assert len(data) > 1000
    original = world["video"].original_file
    from generation.services import media_path

    assert SECRET_NAME.encode() in media_path(original).read_bytes()  # the test's source does carry it
    assert SECRET_NAME.encode() not in data and SECRET_VERSION.encode() not in data


def test_manager_sees_the_model(admin_client, world):
    response = admin_client.get(f"/videos/{world['video'].pk}/")
    assert SECRET_NAME in response.content.decode()
