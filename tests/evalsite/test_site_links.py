"""Site links open site pages: no page's URL name reverses to the API, and a 403 keeps the site's menu."""

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from evalsite.models import Job

pytestmark = pytest.mark.django_db


def _names(patterns, namespace="", route=""):
    """(URL name with its namespace, the route it sits under) for every named pattern."""
    for pattern in patterns:
        here = route + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _names(pattern.url_patterns, inner, here)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield namespace + pattern.name, here


def test_no_url_name_stands_for_both_a_page_and_an_api_endpoint():
    places: dict[str, set[str]] = {}
    for name, route in _names(get_resolver().url_patterns):
        places.setdefault(name, set()).add("api" if route.startswith("api/") else "site")
    clashes = sorted(name for name, where in places.items() if where == {"api", "site"})
    assert not clashes, f"names used by both a page and the API: {clashes}"
    assert {"api:job-list", "api:job-detail", "api:video-list"} <= set(places)
    assert reverse("job-list") == "/jobs/" and reverse("video-list") == "/videos/"
    job_id = uuid.uuid4()
    assert reverse("job-detail", args=[job_id]) == f"/jobs/{job_id}/"
    assert reverse("api:job-detail", args=[job_id]) == f"/api/jobs/{job_id}/"


def test_menu_home_and_job_rows_link_to_site_pages(admin_client):
    job = Job.objects.create(kind="import_videos", title="Import folder x", queue="cpu")
    home = admin_client.get("/").content.decode()
    hrefs = set(re.findall(r'href="([^"]+)"', home))
    assert "/jobs/" in hrefs and f"/jobs/{job.pk}/" in hrefs
    assert not [h for h in hrefs if h.startswith("/api/")], hrefs
    listing = admin_client.get("/jobs/").content.decode()
    assert f'href="/jobs/{job.pk}/"' in listing and "/api/jobs/" not in listing
    assert admin_client.get(f"/jobs/{job.pk}/").status_code == 200


def test_forbidden_page_keeps_the_site_menu(client, django_user_model):
    django_user_model.objects.create_user("ann", password="pw-123456789")
    client.login(username="ann", password="pw-123456789")
    response = client.get("/jobs/")
    page = response.content.decode()
    assert response.status_code == 403
    assert 'class="topbar"' in page and "Log out" in page and "This page is for managers." in page
