"""The manager home says what to do next, from an empty site to reading results."""

import pytest

from evalsite.next_steps import next_steps

pytestmark = pytest.mark.django_db


def test_an_empty_site_asks_for_a_benchmark_first(admin_client):
    steps = next_steps()
    assert len(steps) == 1 and "load_benchmark" in str(steps[0].text)
    page = admin_client.get("/").content.decode()
    assert "What to do next" in page and "load_benchmark" in page


def test_with_a_benchmark_the_home_asks_for_videos_annotators_and_a_campaign(admin_client, make_benchmark):
    make_benchmark(["a prompt"], slug="bench")
    links = [str(step.link) for step in next_steps()]
    assert links == ["Import", "Create annotators", "New campaign"]
    page = admin_client.get("/").content.decode()
    assert "/campaigns/new/" in page and "/videos/import/" in page
