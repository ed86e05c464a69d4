"""The demo content: two labelled demo models with playable synthetic clips, added once."""

import io

import pytest
from django.core.management import call_command

from generation.models import Video, VideoModel

pytestmark = pytest.mark.django_db


def test_load_demo_adds_labelled_models_and_ready_clips_once(make_benchmark):
    make_benchmark([f"prompt {i}" for i in range(1, 6)], slug="step-video-t2v-eval")
    out = io.StringIO()
    call_command("load_demo", "--prompts", "3", stdout=out)
    assert "12 new clips" in out.getvalue()
    demo_models = VideoModel.objects.filter(kind=VideoModel.Kind.DEMO)
    assert sorted(demo_models.values_list("name", flat=True)) == ["Demo model A", "Demo model B"]
    assert all("not a real video model" in m.description for m in demo_models)
    videos = Video.objects.all()
    assert videos.count() == 12 and {v.status for v in videos} == {Video.Status.READY}
    kinds = {v.generation_settings["demo_kind"] for v in videos}
    assert "smooth" in kinds and kinds & {"dropped_frames", "frozen", "jitter"}
    call_command("load_demo", "--prompts", "3", stdout=io.StringIO())
    assert Video.objects.count() == 12
