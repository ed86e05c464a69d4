"""Names keep no bidirectional control characters, however they arrive (API, forms, import, admin)."""

import pytest

from annotation.models import Campaign
from evalsite.text import strip_bidi_controls
from generation.models import Benchmark, VideoModel

pytestmark = pytest.mark.django_db

OVERRIDE = "\u202eevil\u202c \u2067name\u2069\u200f"


def test_strip_bidi_controls_keeps_every_other_character():
    assert strip_bidi_controls(OVERRIDE) == "evil name"
    assert strip_bidi_controls("模型 A — ١٢٣ עברית") == "模型 A — ١٢٣ עברית"


def test_saved_names_lose_their_bidi_controls(admin_client, make_benchmark):
    response = admin_client.post("/api/models/", {"name": OVERRIDE}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert VideoModel.objects.get().name == "evil name"
    benchmark = make_benchmark(["a prompt"], slug="bench", name=OVERRIDE)
    assert Benchmark.objects.get(pk=benchmark.pk).name == "evil name"
    campaign = Campaign(name=OVERRIDE, kind=Campaign.Kind.PAIRWISE, benchmark=benchmark)
    campaign.save()
    assert Campaign.objects.get(pk=campaign.pk).name == "evil name"
