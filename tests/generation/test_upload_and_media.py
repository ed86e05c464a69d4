"""Uploading one video (API and page), rejection of bad files, and media served with byte ranges."""

import io
from pathlib import Path

import pytest

from evalsite.models import Job
from generation.models import Video, VideoModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def bench(make_benchmark):
    return make_benchmark(["一只猫", "a dog"])


@pytest.fixture
def model():
    return VideoModel.objects.create(name="Alpha")


def as_upload(data: bytes, name: str) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


def stored_files(settings) -> list[Path]:
    base = Path(settings.MEDIA_ROOT)
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []


def upload(client, data, name, model, prompt, **extra):
    return client.post(
        "/api/videos/", {"file": as_upload(data, name), "model": model.pk, "prompt": prompt.pk, **extra}
    )


def test_upload_is_transcoded_and_served_with_ranges(
    admin_client, bench, model, make_video, tmp_path, celery_eager, django_capture_on_commit_callbacks
):
    data = make_video(
        tmp_path / "Alpha-final.webm", codec="libvpx-vp9", frames=10, width=66, height=50
    ).read_bytes()
    prompt = bench.prompts.get(position=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            admin_client, data, "Alpha-final.webm", model, prompt, seed=5, generation_settings='{"steps": 30}'
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["job"]["kind"] == "generation.tasks.transcode_video"
    video = Video.objects.get(pk=body["video"]["id"])
    assert Job.objects.get(pk=body["job"]["id"]).status == Job.Status.SUCCEEDED
    assert (
        video.status == Video.Status.READY and video.seed == 5 and video.generation_settings == {"steps": 30}
    )
    assert (video.width, video.height, video.frame_count) == (66, 50, 10)
    assert video.source_codec == "vp9" and video.fps == pytest.approx(12)
    for relative in (video.original_file, video.playable_file, video.poster_file):
        assert "alpha" not in relative.lower() and video.public_id in relative

    url = f"/media/v/{video.public_id}.mp4"
    full = admin_client.get(url)
    content = b"".join(full.streaming_content)
    assert (
        full.status_code == 200 and full["Accept-Ranges"] == "bytes" and full["Content-Type"] == "video/mp4"
    )
    assert int(full["Content-Length"]) == len(content)
    part = admin_client.get(url, HTTP_RANGE="bytes=10-109")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 10-109/{len(content)}"
    assert b"".join(part.streaming_content) == content[10:110]
    tail = admin_client.get(url, HTTP_RANGE="bytes=-16")
    assert tail.status_code == 206 and b"".join(tail.streaming_content) == content[-16:]
    open_ended = admin_client.get(url, HTTP_RANGE=f"bytes={len(content) - 5}-")
    assert b"".join(open_ended.streaming_content) == content[-5:]
    beyond = admin_client.get(url, HTTP_RANGE=f"bytes={len(content)}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(content)}"
    poster = admin_client.get(f"/media/p/{video.public_id}.jpg")
    assert poster.status_code == 200 and b"".join(poster.streaming_content)[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.mp4", "empty"),
        (b"hello, I am text", "notes.mp4", "not a video"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image.mp4", "not a video"),
    ],
)
def test_bad_uploads_are_rejected_and_leave_nothing(
    admin_client, bench, model, settings, data, name, message
):
    response = upload(admin_client, data, name, model, bench.prompts.get(position=1))
    assert response.status_code == 400
    assert message in str(response.json()).lower()
    assert Video.objects.count() == 0 and Job.objects.count() == 0 and stored_files(settings) == []


def test_truncated_upload_is_rejected(admin_client, bench, model, make_video, tmp_path, settings):
    data = make_video(tmp_path / "c.mp4", frames=30).read_bytes()
    response = upload(admin_client, data[: len(data) // 2], "c.mp4", model, bench.prompts.get(position=1))
    assert response.status_code == 400 and Video.objects.count() == 0 and stored_files(settings) == []


def test_oversized_upload_is_rejected(admin_client, bench, model, make_video, tmp_path, settings):
    data = make_video(tmp_path / "c.mp4").read_bytes()
    settings.EVALSITE_MAX_VIDEO_BYTES = len(data) - 1
    response = upload(admin_client, data, "c.mp4", model, bench.prompts.get(position=1))
    assert response.status_code == 400 and "over the limit" in response.json()["detail"]
    assert stored_files(settings) == []


def test_same_file_twice_is_stored_once_and_a_taken_seed_is_refused(
    admin_client, bench, model, make_video, tmp_path
):
    prompt = bench.prompts.get(position=2)
    first = make_video(tmp_path / "a.mp4", seed=1).read_bytes()
    assert upload(admin_client, first, "a.mp4", model, prompt, seed=1).status_code == 201
    assert upload(admin_client, first, "a.mp4", model, prompt, seed=1).status_code == 201
    assert Video.objects.count() == 1
    other = make_video(tmp_path / "b.mp4", seed=2).read_bytes()
    response = upload(admin_client, other, "b.mp4", model, prompt, seed=1)
    assert response.status_code == 400 and "seed 1" in response.json()["detail"]


def test_malformed_upload_fields_get_a_400(admin_client, bench, model, make_video, tmp_path):
    data = make_video(tmp_path / "a.mp4").read_bytes()
    response = upload(
        admin_client, data, "a.mp4", model, bench.prompts.get(position=1), generation_settings="[1,2]"
    )
    assert response.status_code == 400 and "generation_settings" in response.json()
    response = admin_client.post("/api/videos/", {"model": model.pk})
    assert response.status_code == 400 and set(response.json()) >= {"file", "prompt"}


def test_upload_page_shows_the_error_and_accepts_a_good_file(
    admin_client, bench, model, make_video, tmp_path
):
    form = {"model": model.pk, "benchmark": bench.pk, "prompt_position": 1}
    response = admin_client.post("/videos/", {**form, "file": as_upload(b"nope", "x.mp4")})
    assert response.status_code == 200 and "not a video" in response.content.decode().lower()
    data = make_video(tmp_path / "a.mp4").read_bytes()
    response = admin_client.post("/videos/", {**form, "file": as_upload(data, "a.mp4")})
    assert response.status_code == 302 and Video.objects.count() == 1


def test_the_upload_page_keeps_generation_settings_and_refuses_what_is_not_an_object(
    admin_client, bench, model, make_video, tmp_path
):
    form = {"model": model.pk, "benchmark": bench.pk, "prompt_position": 1}
    data = make_video(tmp_path / "a.mp4").read_bytes()
    response = admin_client.post(
        "/videos/", {**form, "file": as_upload(data, "a.mp4"), "generation_settings": "[1, 2]"}
    )
    assert response.status_code == 200 and "must be a JSON object" in response.content.decode()
    assert Video.objects.count() == 0
    settings_sent = '{"sampler": "euler", "steps": 50}'
    response = admin_client.post(
        "/videos/", {**form, "file": as_upload(data, "a.mp4"), "generation_settings": settings_sent}
    )
    assert response.status_code == 302
    assert Video.objects.get().generation_settings == {"sampler": "euler", "steps": 50}


def test_original_is_for_managers_only(
    client, admin_client, bench, model, make_video, tmp_path, django_user_model
):
    data = make_video(tmp_path / "a.mp4").read_bytes()
    video_id = upload(admin_client, data, "a.mp4", model, bench.prompts.get(position=1)).json()["video"][
        "public_id"
    ]
    assert admin_client.get(f"/media/o/{video_id}").status_code == 200
    django_user_model.objects.create_user("ann", password="pw-123456789")
    client.login(username="ann", password="pw-123456789")
    assert client.get(f"/media/o/{video_id}").status_code == 403


def test_a_retried_transcode_clears_what_a_crashed_attempt_left(bench, model, make_video, tmp_path, settings):
    from generation.services import add_video, media_path, playable_relpath, process_video

    video, _ = add_video(
        model=model,
        prompt=bench.prompts.get(position=1),
        source_path=make_video(tmp_path / "a.mp4"),
        original_name="a.mp4",
        source=Video.Source.UPLOAD,
    )
    destination = media_path(playable_relpath(video.public_id))
    destination.parent.mkdir(parents=True, exist_ok=True)
    crashed = destination.parent / f".{destination.name}.partial-abc123.mp4"
    crashed.write_bytes(b"half an mp4")
    neighbour = destination.parent / ".other-video.mp4.partial-zzz.mp4"
    neighbour.write_bytes(b"another video's transcode in progress")
    assert process_video(video).status == Video.Status.READY
    assert not crashed.exists() and neighbour.exists()


def test_the_same_file_with_another_provenance_is_a_409_that_says_so(
    admin_client, bench, model, make_video, tmp_path
):
    prompt = bench.prompts.get(position=1)
    data = make_video(tmp_path / "a.mp4", seed=1).read_bytes()
    assert upload(admin_client, data, "a.mp4", model, prompt, seed=1, noise_id="n1").status_code == 201
    for change, said in [({"seed": 2}, "seed 1, not 2"), ({"noise_id": "n2"}, "noise id 'n1', not 'n2'")]:
        response = upload(
            admin_client, data, "a.mp4", model, prompt, **{"seed": 1, "noise_id": "n1", **change}
        )
        assert response.status_code == 409 and said in response.json()["detail"], response.content
    assert list(Video.objects.values_list("seed", "noise_id")) == [(1, "n1")]


def test_an_upload_over_the_limit_is_refused_by_its_declared_length_before_it_is_read(
    admin_client, settings, tmp_path
):
    settings.EVALSITE_MAX_VIDEO_BYTES = 1024
    body = b"x" * 10
    response = admin_client.generic(
        "POST",
        "/api/videos/",
        body,
        content_type="multipart/form-data; boundary=zzz",
        CONTENT_LENGTH=str(5 * 2**20),
    )
    assert response.status_code == 413 and "EVALSITE_MAX_UPLOAD_MB" in response.json()["detail"]
    assert stored_files(settings) == []
