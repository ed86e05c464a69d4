"""Generate what a campaign set-up needs: runs that fill exactly the prompts a compared model lacks, after
which the campaign can be created (batches run in this process on the test-only plumbing backend)."""

import pytest

import generation.tasks  # noqa: F401  (registers the batch task for the eager runs)
from annotation.campaigns import CampaignSpec, create_campaign
from annotation.generation_needs import needed_runs, start_campaign_generation
from generation.backends import BACKENDS, register
from generation.models import GenerationRun, Video, VideoModel
from generation.services import GenerationError
from tests.generation.plumbing_backend import TARGET, make_checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def plumbing_backend():
    register("plumbing", TARGET)
    yield
    BACKENDS.pop("plumbing", None)


@pytest.fixture
def setup(make_benchmark, tmp_path):
    bench = make_benchmark(["a cat on grass", "a red car at night", "a boat on a lake"])
    models = [
        VideoModel.objects.create(
            name=name, backend="plumbing", checkpoint=str(make_checkpoint(tmp_path / name))
        )
        for name in ("Base", "Tuned", "Other")
    ]
    return bench, models


def test_an_ab_campaign_gets_shared_noise_for_both_models_then_can_be_created(
    setup, django_capture_on_commit_callbacks, celery_eager
):
    bench, (base, tuned, _other) = setup
    spec = CampaignSpec(name="ab", kind="ab_shared_noise", benchmark=bench, models=[base, tuned])
    with pytest.raises(Exception, match="no prompt has the videos"):
        create_campaign(spec)
    runs = needed_runs(spec, count=2)
    assert [r.model for r in runs] == [base, tuned] and all(r.prompt_positions == [1, 2, 3] for r in runs)
    with django_capture_on_commit_callbacks(execute=True):
        started = start_campaign_generation(spec, count=2)
    assert len(started) == 2 and all(r.status == GenerationRun.Status.QUEUED for r in started)
    videos = Video.objects.filter(status=Video.Status.READY)
    assert videos.count() == 12
    for model in (base, tuned):
        assert videos.filter(model=model).exclude(noise_id="").count() == 6
    assert set(videos.filter(model=base).values_list("noise_id", flat=True)) == set(
        videos.filter(model=tuned).values_list("noise_id", flat=True)
    )
    campaign = create_campaign(spec)
    assert campaign.items.count() == 6 and not campaign.excluded_prompts.exists()
    with pytest.raises(GenerationError, match="already has the videos"):
        start_campaign_generation(spec, count=2)
    # seed preference with 2 per prompt: the base model already has two videos of every prompt
    seeds = CampaignSpec(name="s", kind="seed_preference", benchmark=bench, models=[base])
    assert needed_runs(seeds, count=2) == [] and len(needed_runs(seeds, count=3)) == 1


def test_the_api_plans_and_the_campaign_form_starts_the_missing_videos(admin_client, setup):
    bench, (base, _tuned, other) = setup
    body = {"kind": "pairwise", "benchmark": bench.slug, "models": [base.pk, other.pk], "dry_run": True}
    response = admin_client.post("/api/campaigns/generate-missing/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert [p["videos"] for p in response.json()["plans"]] == [3, 3] and not GenerationRun.objects.exists()
    other.checkpoint = "/gone"
    other.save()
    response = admin_client.post(
        "/api/campaigns/generate-missing/", {**body, "dry_run": False}, content_type="application/json"
    )
    assert response.status_code == 400 and "/gone does not exist" in response.json()["detail"]
    assert not GenerationRun.objects.exists()

    form = {
        "name": "pw",
        "kind": "seed_preference",
        "benchmark": bench.pk,
        "model_a": base.pk,
        "overlap": "k_per_item",
        "judgments_per_item": 3,
        "rubric_layout": "single",
        "repeat_fraction": 0,
        "claim_timeout_s": 900,
        "generate_count": 2,
        "action": "generate",
    }
    response = admin_client.post("/campaigns/new/", form)
    assert response.status_code == 302 and response["Location"] == "/generation/runs/"
    run = GenerationRun.objects.get()
    assert run.model == base and run.items.count() == 6
