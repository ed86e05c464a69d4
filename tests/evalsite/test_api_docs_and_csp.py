"""The OpenAPI schema and its Swagger UI page are for managers, with every asset served by the site itself;
every response carries a Content-Security-Policy that forbids third-party origins and inline scripts."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator_client(client, django_user_model):
    django_user_model.objects.create_user("ann", password="pw-123456789")
    client.login(username="ann", password="pw-123456789")
    return client


def test_schema_and_docs_are_for_managers_only(annotator_client, admin_client):
    for url in ("/api/schema/", "/api/docs/"):
        assert Client().get(url).status_code in (401, 403), url
        assert annotator_client.get(url).status_code == 403, url
        assert admin_client.get(url).status_code == 200, url


def test_the_docs_page_loads_only_local_assets(admin_client):
    page = admin_client.get("/api/docs/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and not [s for s in sources if "//" in s], sources
    assert "<script>" not in page  # no inline script: the start-up script is a file of its own
    static = [s.removeprefix("/static/") for s in sources if s.startswith("/static/")]
    assert any(s.endswith("swagger-ui-bundle.js") for s in static)
    for path in static:
        assert finders.find(path) is not None, path
    (script,) = [s for s in sources if "script" in s and not s.startswith("/static/")]
    start = admin_client.get(script.replace("&amp;", "&"))
    assert start.status_code == 200 and start["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in start.content.decode()


def test_every_response_carries_a_strict_content_security_policy(client, admin_client):
    responses = [
        client.get("/accounts/login/"),
        client.get("/"),
        admin_client.get("/"),
        admin_client.get("/jobs/"),
        admin_client.get("/api/jobs/"),
        admin_client.get("/api/docs/"),
        admin_client.get("/no-such-page/"),
    ]
    for response in responses:
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"  # no inline, no eval, no other origin
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        for sources in directives.values():
            assert "http" not in sources and "*" not in sources, sources
