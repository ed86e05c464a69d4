"""Every API operation in the OpenAPI schema, called by schemathesis with generated values (valid ones and
hostile ones: huge numbers, wrong types, odd strings) as a manager: none may answer with a 5xx (issue 10).

The schema is generated in-process (drf-spectacular) and the requests go to the WSGI app directly, so the
sweep needs no server. A handful of examples per operation keeps it under a minute; raise
EVALSITE_SWEEP_EXAMPLES to dig deeper."""

import base64
import json
import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from generation.models import VideoModel

MANAGER, PASSWORD = "sweep-manager", "sweep-pass-1"
EXAMPLES = int(os.environ.get("EVALSITE_SWEEP_EXAMPLES", "6"))

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{MANAGER}:{PASSWORD}".encode()).decode()}


@pytest.fixture
def site(django_user_model, make_benchmark):
    """A manager and a few rows, so that generated ids sometimes name real ones."""
    django_user_model.objects.create_superuser(MANAGER, password=PASSWORD)
    make_benchmark(["a cat", "a dog"], slug="tiny")
    VideoModel.objects.create(name="Alpha")
    # as Django's test client does: a request must not close the test's database connection
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_with_a_server_error(case, site):
    response = case.call(headers=AUTH)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} {str(case.body)[:300]!r} -> "
        f"{response.status_code}: {response.text[:500]}"
    )


# The values issue 10 found 500s with, tried on every path and query parameter and every body field of
# every operation (deterministically, whatever schemathesis happens to draw).
HOSTILE = ["abc", str(10**30), "1e20", "-1", "null,null", "00000000-0000-0000-0000-00000000000x", "²"]
HOSTILE_BODY_VALUES = [2**70, 2**63, -(2**63) - 1, 1e308, "x" * 5000, [[[]]], {"a": None}, None]
RAW_SCHEMA = SchemaGenerator().get_schema(request=None, public=True)


def _operations():
    for path, methods in RAW_SCHEMA["paths"].items():
        for method, operation in methods.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def _body_fields(operation) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    schema_ = next(iter(content.values()), {}).get("schema", {})
    ref = schema_.get("$ref", "")
    if ref:
        schema_ = RAW_SCHEMA["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return list(schema_.get("properties", {}))


def _cases():
    for path, method, operation in _operations():
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
        path_names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        for name in names:
            for value in HOSTILE:
                yield pytest.param(path, method, path_names, name, value, None, id=f"{method} {path} {name}")
        if "requestBody" in operation:
            for value in HOSTILE_BODY_VALUES:
                body = {field: value for field in _body_fields(operation)}
                yield pytest.param(path, method, path_names, None, None, body, id=f"{method} {path} body")
            deep = "[" * 5000 + "]" * 5000
            yield pytest.param(path, method, path_names, None, None, deep, id=f"{method} {path} deep")


@pytest.mark.django_db
@pytest.mark.parametrize("path, method, path_names, name, value, body", list(_cases()))
def test_hostile_values_get_a_4xx(client, site, path, method, path_names, name, value, body):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username=MANAGER))
    url = path
    for path_name in path_names:
        url = url.replace("{" + path_name + "}", value if path_name == name else "1")
    query = {name: value} if name and name not in path_names else {}
    if body is None:
        response = getattr(client, method)(url, query) if method == "get" else getattr(client, method)(url)
    else:
        data = body if isinstance(body, str) else json.dumps(body)
        response = getattr(client, method)(url, data, content_type="application/json")
    assert response.status_code < 500, (method, url, query, str(body)[:200], response.content[:300])


def _site_pages() -> list[str]:
    """Every page of the site (not the API) whose URL takes no arguments."""
    from django.urls import URLPattern, URLResolver, get_resolver

    found = []

    def walk(patterns, prefix):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and "<" not in route and "(" not in route:
                found.append("/" + route.lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns, "")
    skipped = ("/api/", "/admin/", "/static/", "/accounts/logout/")
    return sorted({p for p in found if not p.startswith(skipped)})


FILTER_NAMES = ["model", "prompt", "benchmark", "status", "kind", "page", "campaign", "rounds", "category"]


@pytest.mark.django_db
@pytest.mark.parametrize("value", HOSTILE)
def test_site_pages_answer_hostile_filters_without_a_server_error(client, site, value):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username=MANAGER))
    pages = _site_pages()
    assert "/videos/" in pages and "/jobs/" in pages
    failures = []
    for page in pages:
        response = client.get(page, dict.fromkeys(FILTER_NAMES, value))
        if response.status_code >= 500:
            failures.append((page, response.status_code))
    assert failures == []
    assert client.get("/videos/", {"model": value}).status_code == 400  # still signed in, and refused
