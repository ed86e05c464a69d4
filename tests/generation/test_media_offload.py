"""Media handed to a front server (EVALSITE_MEDIA_OFFLOAD): after the site's checks the answer is empty
and names the file in X-Accel-Redirect or X-Sendfile, by a link named after the URL the annotator asked
for; with offload off the site streams the file itself, byte ranges included."""

import os
from pathlib import Path

import pytest
from django.test import Client, RequestFactory

from annotation.models import Assignment, ItemVideo, Rendition
from evalsite.http import ranged_file_response
from generation.models import Video
from generation.services import media_path
from tests.site_start import set_up_django

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def shown(campaign_factory):
    """(an annotator's client, [(media URL, the Video behind it, the file served)]) for the item on
    their screen: both videos and both posters of a pairwise item, served from the campaign's renditions."""
    campaign = campaign_factory(n_prompts=2, n_annotators=1, name="Campaign Omega")
    client = logged_in(campaign.annotators.get())
    view = client.get(f"/api/annotate/{campaign.pk}/next/").json()["assignment"]
    assignment = Assignment.objects.get(token=view["token"])
    media = []
    for position, info in enumerate(view["videos"]):
        video = ItemVideo.objects.get(item=assignment.item, slot=assignment.presentation[position]).video
        rendition = Rendition.objects.get(campaign=campaign, video=video)
        media += [
            (info["url"], video, media_path(rendition.playable_file)),
            (info["poster"], video, media_path(rendition.poster_file)),
        ]
    return client, media


def leaks(header: str, video: Video) -> list[str]:
    """What in a header would tell an annotator which library video (and so which model) this is."""
    named = [video.public_id, video.model.name, video.model.version, video.original_name, video.playable_file]
    return [text for text in named if text and text.lower() in header.lower()]


def test_x_accel_redirect_names_the_url_the_annotator_asked_for_and_reaches_the_stored_bytes(shown, settings):
    settings.EVALSITE_MEDIA_OFFLOAD = "x-accel-redirect"
    settings.EVALSITE_MEDIA_OFFLOAD_PREFIX = "/internal-media"
    client, media = shown
    for url, video, served in media:
        response = client.get(url, HTTP_RANGE="bytes=0-99")
        assert response.status_code == 200 and not response.streaming and response.content == b""
        internal = response["X-Accel-Redirect"]
        assert internal == f"/internal-media/offload{url}"
        assert response["Content-Type"] == ("video/mp4" if served.suffix == ".mp4" else "image/jpeg")
        assert response["Cache-Control"] == "private, max-age=3600"
        for header in ("Last-Modified", "Content-Disposition", "Content-Range", "X-Sendfile"):
            assert header not in response
        assert leaks(internal, video) == []
        # What nginx's `alias MEDIA_ROOT/` location opens for that URI: a relative link to the stored file.
        link = Path(settings.MEDIA_ROOT) / internal.removeprefix("/internal-media/")
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.read_bytes() == served.read_bytes()


def test_x_sendfile_names_the_absolute_path_of_the_same_link(shown, settings):
    settings.EVALSITE_MEDIA_OFFLOAD = "x-sendfile"
    client, media = shown
    for url, video, served in media:
        response = client.get(url)
        assert response.status_code == 200 and response.content == b"" and "X-Accel-Redirect" not in response
        assert response["X-Sendfile"] == str(Path(settings.MEDIA_ROOT).absolute() / "offload" / url[1:])
        assert leaks(response["X-Sendfile"].removeprefix(str(settings.MEDIA_ROOT)), video) == []
        assert Path(response["X-Sendfile"]).read_bytes() == served.read_bytes()


def test_a_url_whose_file_changed_is_linked_to_the_new_file(shown, settings, tmp_path):
    settings.EVALSITE_MEDIA_OFFLOAD = "x-sendfile"
    client, media = shown
    url, video, served = media[0]
    before = Path(client.get(url)["X-Sendfile"])
    replacement = "videos/zz/replacement.mp4"
    media_path(replacement).parent.mkdir(parents=True, exist_ok=True)
    media_path(replacement).write_bytes(b"another encoding of the clip")
    Rendition.objects.filter(video=video, playable_file__endswith=served.name).update(
        playable_file=replacement
    )
    after = Path(client.get(url)["X-Sendfile"])
    assert after == before and after.read_bytes() == b"another encoding of the clip"
    assert [p.name for p in after.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_offload_comes_after_the_checks(shown, settings, admin_user):
    settings.EVALSITE_MEDIA_OFFLOAD = "x-accel-redirect"
    _, media = shown
    url, video, _ = media[0]
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "X-Accel-Redirect" not in anonymous
    original = f"/media/o/{video.public_id}"
    annotator_asks = shown[0].get(original)
    assert annotator_asks.status_code == 403 and "X-Accel-Redirect" not in annotator_asks
    manager_asks = logged_in(admin_user).get(original)
    assert manager_asks["X-Accel-Redirect"] == f"/internal-media/offload{original}"
    assert logged_in(admin_user).get("/media/v/no-such-id.mp4").status_code == 404


def test_with_offload_off_the_site_streams_byte_ranges(shown, settings):
    settings.EVALSITE_MEDIA_OFFLOAD = ""
    client, media = shown
    url, video, served = media[0]
    stored = served.read_bytes()
    part = client.get(url, HTTP_RANGE="bytes=8-107")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 8-107/{len(stored)}"
    assert b"".join(part.streaming_content) == stored[8:108] and "X-Accel-Redirect" not in part
    whole = client.get(url)
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == stored
    assert not (Path(settings.MEDIA_ROOT) / "offload").exists()


def test_a_file_outside_the_media_folder_is_streamed_even_with_offload_on(settings, tmp_path):
    settings.EVALSITE_MEDIA_OFFLOAD = "x-accel-redirect"
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"0123456789")
    request = RequestFactory().get("/somewhere/elsewhere.bin", HTTP_RANGE="bytes=2-4")
    response = ranged_file_response(request, outside)
    assert response.status_code == 206 and b"".join(response.streaming_content) == b"234"
    assert "X-Accel-Redirect" not in response


def test_an_unknown_offload_mode_stops_the_site_from_starting(tmp_path):
    result = set_up_django(tmp_path, EVALSITE_MEDIA_OFFLOAD="nginx")
    assert result.returncode != 0
    assert (
        "EVALSITE_MEDIA_OFFLOAD must be empty, x-accel-redirect or x-sendfile, not 'nginx'" in result.stderr
    )
