"""Signed media links (EVALSITE_MEDIA_LINK_SECRET): the annotator API signs each media URL for the
caller's session, and nginx, with scripts/nginx-locations.conf, sends the file of a valid link itself and
hands every other request to the site, which checks the caller as before. The nginx tests run the real
nginx against the site (pytest-django's live server)."""

import getpass
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client

from annotation.models import Assignment, ItemVideo, Rendition
from evalsite.http import MediaLinks, nginx_locations
from generation.services import media_path
from tests.site_start import set_up_django

SECRET = "a-test-secret-of-more-than-32-characters-0123456789"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def media_urls(view: dict) -> list[str]:
    """Every media URL in a GET next answer: the item's clips and posters, and the clips to preload."""
    shown = view["assignment"]["videos"]
    return [v["url"] for v in shown] + [v["poster"] for v in shown] + view["upcoming"]["videos"]


def stored_file(campaign, assignment: Assignment, position: int, field: str) -> Path:
    video = ItemVideo.objects.get(item=assignment.item, slot=assignment.presentation[position]).video
    return media_path(getattr(Rendition.objects.get(campaign=campaign, video=video), field))


@pytest.fixture
def signing(settings):
    settings.EVALSITE_MEDIA_LINK_SECRET = SECRET
    settings.EVALSITE_MEDIA_LINK_TTL_S = 3600
    return settings


@pytest.mark.django_db
def test_without_a_secret_media_urls_are_plain(campaign_factory, settings):
    settings.EVALSITE_MEDIA_LINK_SECRET = ""
    campaign = campaign_factory(n_prompts=3, n_annotators=1)
    view = logged_in(campaign.annotators.get()).get(f"/api/annotate/{campaign.pk}/next/").json()
    urls = media_urls(view)
    assert urls and all(re.fullmatch(r"/media/[vp]/[A-Za-z0-9_-]+\.(mp4|jpg)", url) for url in urls)
    assert not (Path(settings.MEDIA_ROOT) / "offload").exists()


@pytest.mark.django_db
def test_every_media_url_the_annotator_gets_is_signed_and_linked_to_its_file(campaign_factory, signing):
    campaign = campaign_factory(n_prompts=3, n_annotators=1)
    client = logged_in(campaign.annotators.get())
    started = time.time()
    view = client.get(f"/api/annotate/{campaign.pk}/next/").json()
    urls = media_urls(view)
    assert len(urls) == 6
    assignment = Assignment.objects.get(token=view["assignment"]["token"])
    files = [stored_file(campaign, assignment, p, "playable_file") for p in (0, 1)]
    files += [stored_file(campaign, assignment, p, "poster_file") for p in (0, 1)]
    for url in urls:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert sorted(query) == ["e", "t"] and re.fullmatch(r"[A-Za-z0-9_-]{22}", query["t"][0])
        expires = int(query["e"][0])
        assert started + 3600 <= expires <= time.time() + 3600 * 1.25 + 1
        link = Path(django_settings.MEDIA_ROOT) / "offload" / parts.path.lstrip("/")
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    # The item's links lead to its renditions' bytes (the upcoming item's to its own).
    for url, stored in zip(urls[:4], files, strict=True):
        link = Path(django_settings.MEDIA_ROOT) / "offload" / urlsplit(url).path.lstrip("/")
        assert link.read_bytes() == stored.read_bytes()
    # The same URLs again a moment later (the page preloads by URL), and the site still serves them.
    assert media_urls(client.get(f"/api/annotate/{campaign.pk}/next/").json()) == urls
    response = client.get(urls[0], HTTP_RANGE="bytes=0-9")
    assert response.status_code == 206 and b"".join(response.streaming_content) == files[0].read_bytes()[:10]


@pytest.mark.django_db
def test_a_link_is_bound_to_the_session_it_was_given_to(campaign_factory, signing):
    campaign = campaign_factory(n_prompts=3, n_annotators=1)
    annotator = campaign.annotators.get()
    first = media_urls(logged_in(annotator).get(f"/api/annotate/{campaign.pk}/next/").json())
    second = media_urls(logged_in(annotator).get(f"/api/annotate/{campaign.pk}/next/").json())
    assert [urlsplit(u).path for u in first] == [urlsplit(u).path for u in second]
    assert all(
        parse_qs(urlsplit(a).query)["t"] != parse_qs(urlsplit(b).query)["t"]
        for a, b in zip(first, second, strict=True)
    )


@pytest.mark.django_db
def test_answers_problems_and_recent_answers_carry_signed_links_too(campaign_factory, signing):
    campaign = campaign_factory(n_prompts=4, n_annotators=1)
    client = logged_in(campaign.annotators.get())
    token = client.get(f"/api/annotate/{campaign.pk}/next/").json()["assignment"]["token"]
    answered = client.post(
        f"/api/annotate/assignments/{token}/answer/", {"choice": "left"}, content_type="application/json"
    ).json()
    reported = client.post(
        f"/api/annotate/assignments/{answered['next']['assignment']['token']}/problem/",
        {"kind": "other", "note": "n"},
        content_type="application/json",
    ).json()
    recent = client.get(f"/api/annotate/{campaign.pk}/recent/").json()["answers"]
    urls = media_urls(answered["next"]) + media_urls(reported) + [v["url"] for v in recent[0]["videos"]]
    assert urls and all(sorted(parse_qs(urlsplit(url).query)) == ["e", "t"] for url in urls)


def test_the_expiry_is_rounded_up_to_a_quarter_of_the_lifetime():
    one = MediaLinks("k", secret=SECRET, ttl_s=3600, now=1_000_000)
    assert one.expires % 900 == 0 and 1_003_600 <= one.expires < 1_003_600 + 900
    # 1,004,400 is the next multiple of 900 after 1,003,600: the same expiry until the lifetime reaches it.
    assert one.expires == 1_004_400
    assert MediaLinks("k", secret=SECRET, ttl_s=3600, now=1_000_800).expires == one.expires
    assert MediaLinks("k", secret=SECRET, ttl_s=3600, now=1_000_801).expires == one.expires + 900


def test_a_link_to_a_path_that_cannot_name_a_link_file_stays_plain(signing):
    links = MediaLinks("k", secret=SECRET, ttl_s=3600)
    assert links("/media/v/a b.mp4", "videos/x.mp4") == "/media/v/a b.mp4"
    assert links("/media/v/abc.mp4", "../outside.mp4") == "/media/v/abc.mp4"
    assert links("/media/v/abc.mp4", "") == "/media/v/abc.mp4"


@pytest.mark.parametrize(
    "secret", ["short", "has spaces in it and is long enough to pass 32 chars", "x;" * 20]
)
def test_a_secret_nginx_could_not_hold_stops_the_site_from_starting(tmp_path, secret):
    result = set_up_django(tmp_path, EVALSITE_MEDIA_LINK_SECRET=secret)
    assert result.returncode != 0 and "EVALSITE_MEDIA_LINK_SECRET must be at least 32" in result.stderr


# ------------------------------------------------------------------------------------------ real nginx

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

NGINX_CONF = """
user {user};
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    log_format who '$request_uri $status $upstream_addr';
    access_log {folder}/access.log who;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        {locations}
    }}
}}
"""


@pytest.fixture
def nginx(live_server, signing, tmp_path):
    """nginx with scripts/nginx-locations.conf in front of the live site; yields (base URL, a function
    that says who answered the last request to a URI: "nginx" or "site")."""
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/test.sh installs Debian's)")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "nginx"
    folder.mkdir()
    locations = nginx_locations(
        media_root=django_settings.MEDIA_ROOT,
        static_root=django_settings.STATIC_ROOT,
        site=live_server.url.removeprefix("http://"),
        link_secret=SECRET,
    )
    config = folder / "nginx.conf"
    config.write_text(
        NGINX_CONF.format(user=getpass.getuser(), folder=folder, port=port, locations=locations)
    )
    server = subprocess.Popen([NGINX, "-c", str(config), "-p", str(folder), "-g", "daemon off;"])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/accounts/login/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.05)

        def answered_by(uri: str) -> str:
            time.sleep(0.05)  # the access log is written after the answer
            lines = [
                line for line in (folder / "access.log").read_text().splitlines() if line.startswith(uri)
            ]
            return "nginx" if lines[-1].endswith(" -") else "site"

        yield base, answered_by
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.django_db(transaction=True)
def test_nginx_sends_a_valid_link_itself_and_hands_every_other_request_to_the_site(
    nginx, campaign_factory, django_user_model
):
    base, answered_by = nginx
    campaign = campaign_factory(n_prompts=3, n_annotators=1)
    client = logged_in(campaign.annotators.get())
    view = client.get(f"/api/annotate/{campaign.pk}/next/").json()
    assignment = Assignment.objects.get(token=view["assignment"]["token"])
    clip = view["assignment"]["videos"][0]["url"]
    stored = stored_file(campaign, assignment, 0, "playable_file").read_bytes()
    mine = {"sessionid": client.cookies["sessionid"].value}

    sent = requests.get(base + clip, cookies=mine, headers={"Range": "bytes=0-99"}, timeout=10)
    assert sent.status_code == 206 and sent.content == stored[:100] and answered_by(clip) == "nginx"
    assert sent.headers["Content-Type"] == "video/mp4"
    assert sent.headers["Cache-Control"] == "private, max-age=3600"
    assert "Last-Modified" not in sent.headers and "ETag" not in sent.headers
    poster = view["assignment"]["videos"][0]["poster"]
    assert requests.get(base + poster, cookies=mine, timeout=10).headers["Content-Type"] == "image/jpeg"
    assert answered_by(poster) == "nginx"

    # Without the session the link was made for, nginx asks the site, which refuses as it always does.
    anonymous = requests.get(base + clip, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and answered_by(clip) == "site"
    other = logged_in(django_user_model.objects.create_user("someone-else", password="pw-Long-enough-1"))
    theirs = {"sessionid": other.cookies["sessionid"].value}
    refused = requests.get(base + clip, cookies=theirs, timeout=10)
    assert refused.status_code == 404 and answered_by(clip) == "site"

    # An altered, expired or moved link, or none: the site checks the caller, and serves this one.
    path, query = clip.split("?")
    expired = MediaLinks(mine["sessionid"], secret=SECRET, ttl_s=60, now=time.time() - 7200)
    other_clip = view["assignment"]["videos"][1]["url"].split("?")[0]
    for uri in (
        f"{path}?{query.replace('t=', 't=A')}",
        f"{path}?e={expired.expires}&t={expired.signature(path)}",
        f"{other_clip}?{query}",
        path,
    ):
        answer = requests.get(base + uri, cookies=mine, headers={"Range": "bytes=0-99"}, timeout=10)
        assert answer.status_code == 206 and answered_by(uri) == "site", uri
    # A valid link whose link file is gone goes to the site as well.
    (Path(django_settings.MEDIA_ROOT) / "offload" / path.lstrip("/")).unlink()
    again = requests.get(base + clip, cookies=mine, headers={"Range": "bytes=0-99"}, timeout=10)
    assert again.status_code == 206 and again.content == stored[:100] and answered_by(clip) == "site"
