"""Static files as a deployment serves them: collected by `collectstatic`, then served by WhiteNoise."""

import gzip

import pytest
from django.core.management import call_command
from django.test import Client

from tests.static_modules import linked_static_files

# The JavaScript MIME types a browser accepts for a module script (HTML's "JavaScript MIME type essence
# match"); anything else, text/plain say, and the browser refuses to run the module.
JAVASCRIPT_TYPES = {
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/ecmascript",
}


@pytest.fixture
def collected(settings, tmp_path) -> Client:
    """A client of a site whose static files were collected into a fresh folder, as `make serve` does.
    The client is made afterwards: WhiteNoise lists the collected files when its middleware starts."""
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATICFILES_DIRS = []  # plotly's 4 MB bundle is not what is tested here
    call_command("collectstatic", interactive=False, verbosity=0)
    return Client()


def essence(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def test_collected_modules_of_the_annotate_page_are_served_as_javascript(collected):
    served: dict[str, str] = {}

    def fetch(url: str) -> str:
        response = collected.get(url)
        assert response.status_code == 200, url
        served[url] = response["Content-Type"]
        return b"".join(response.streaming_content).decode()

    modules = linked_static_files(["/static/annotation/annotate.js"], fetch)

    assert "/static/annotation/annotate/players.js" in modules and len(modules) > 2
    compressed_urls = []
    for url, content_type in served.items():
        assert essence(content_type) in JAVASCRIPT_TYPES, (url, content_type)
        compressed = collected.get(url, HTTP_ACCEPT_ENCODING="gzip")
        assert essence(compressed["Content-Type"]) in JAVASCRIPT_TYPES, (url, compressed["Content-Type"])
        if compressed.get("Content-Encoding") == "gzip":  # kept only where it saves space
            assert gzip.decompress(b"".join(compressed.streaming_content)).decode() == modules[url]
            compressed_urls.append(url)
    assert "/static/annotation/annotate/players.js" in compressed_urls
