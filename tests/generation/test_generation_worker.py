"""Generation runs over Step-Video-T2V-Eval prompts with the real tiny Wan (random weights, offline
tokenizer) through DiffusersBackend in a real Celery worker on Redis: videos land in the library with their
seeds and settings, the same seed gives identical frames twice, one noise id gives two checkpoints
identical initial latents, progress reaches 100%, and nothing an annotator receives names the backend,
the checkpoint or the model."""

import hashlib

import pytest

from annotation.campaigns import CampaignSpec, create_campaign
from generation.backends.noise import NoiseStore
from generation.backends.tiny import TINY_SETTINGS, make_tiny_wan
from generation.models import GenerationRun, Video, VideoModel
from generation.runs.planning import RunSpec, plan_run, run_progress, start_run
from generation.services import GenerationError, load_benchmark, media_path
from tests.campaign_fixtures import ANNOTATOR_PASSWORD, with_media_prepared
from tests.evalsite.test_worker import broker, launch_worker, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def step_video(shared_benchmarks):
    return load_benchmark(shared_benchmarks / "Step-Video-T2V-Eval").benchmark


@pytest.fixture
def tiny_wans(tmp_path):
    """Two checkpoints of one family (different random weights), and three models: A, A again, B."""
    first, second = make_tiny_wan(tmp_path / "wan-a", seed=0), make_tiny_wan(tmp_path / "wan-b", seed=1)
    settings = {k: v for k, v in TINY_SETTINGS["wan"].items()}
    make = lambda name, folder: VideoModel.objects.create(  # noqa: E731
        name=name, backend="diffusers", checkpoint=str(folder), default_settings=settings
    )
    return make("Wan-Alpha", first), make("Wan-Alpha-copy", first), make("Wan-Beta", second)


def finished(run):
    return lambda: GenerationRun.objects.filter(pk=run.pk, finished_at__isnull=False).first()


def test_tiny_wan_runs_fill_the_library_reproducibly_through_a_worker(
    broker,  # noqa: F811
    launch_worker,  # noqa: F811
    step_video,
    tiny_wans,
    client,
    admin_client,
    django_user_model,
):
    alpha, alpha_copy, beta = tiny_wans
    launch_worker("gpu1", {"CELERY_BROKER_URL": broker})
    grid = start_run(
        RunSpec(
            model=alpha,
            benchmark=step_video,
            prompt_positions=[1, 2],
            seeds=[5],
            grid={"guidance_scale": [1.0, 5.0]},
        )
    )
    again = start_run(
        RunSpec(
            model=alpha_copy,
            benchmark=step_video,
            prompt_positions=[1],
            seeds=[5],
            settings={"guidance_scale": 1.0},
        )
    )
    shared = [
        start_run(RunSpec(model=model, benchmark=step_video, prompt_positions=[1], noise_seeds=[11]))
        for model in (alpha, beta)
    ]
    runs = [wait_for(finished(run), 240, f"run {run.pk}") for run in [grid, again, *shared]]
    assert [run.status for run in runs] == [GenerationRun.Status.DONE] * 4
    assert all(run_progress(run)["percent"] == 100.0 for run in runs)
    items = [item for run in runs for item in run.items.select_related("video", "prompt")]
    assert len(items) == 7 and all(item.steps_done == item.steps_total == 2 for item in items)

    videos = {
        (v.model_id, v.prompt.position, v.seed, v.generation_settings["guidance_scale"]): v
        for v in Video.objects.select_related("prompt")
    }
    assert len(videos) == 7 and all(v.status == Video.Status.READY for v in videos.values())
    first = videos[(alpha.pk, 1, 5, 1.0)]
    assert first.source == Video.Source.GENERATION and (first.width, first.height, first.frame_count) == (
        16,
        16,
        9,
    )
    assert first.generation_settings["steps"] == 2 and first.generation_settings["flow_shift"] == 3.0
    record = first.generation_record
    assert (
        record["backend"] == "diffusers"
        and record["checkpoint"] == alpha.checkpoint
        and record["adapter"] == ""
    )
    assert (
        record["versions"]["diffusers"]
        and record["versions"]["torch"]
        and record["backend_info"]["family"] == "wan"
    )
    assert media_path(first.playable_file).is_file() and media_path(first.poster_file).is_file()

    # The same seed and settings give identical frames, from another model row on the same checkpoint.
    assert videos[(alpha_copy.pk, 1, 5, 1.0)].generation_record["frames_sha256"] == record["frames_sha256"]
    assert videos[(alpha.pk, 1, 5, 5.0)].generation_record["frames_sha256"] != record["frames_sha256"]

    # One noise id: both checkpoints started from the stored latents, and made different videos from them.
    noisy = [v for v in videos.values() if v.noise_id]
    assert len(noisy) == 2 and {v.model_id for v in noisy} == {alpha.pk, beta.pk}
    noise_id = noisy[0].noise_id
    assert noisy[1].noise_id == noise_id and noisy[0].seed == noisy[1].seed == 11
    stored = NoiseStore(media_path("noise")).load(noise_id)
    stored_sha = hashlib.sha256(stored.contiguous().numpy().tobytes()).hexdigest()
    assert {v.generation_record["latents_sha256"] for v in noisy} == {stored_sha}
    assert noisy[0].generation_record["frames_sha256"] != noisy[1].generation_record["frames_sha256"]

    # The checkpoint's configs say what it takes: a bad setting is refused before anything is queued, for
    # a model row no worker has loaded too, and planning the grid again finds every video already made.
    fresh = VideoModel.objects.create(name="Wan-Fresh", backend="diffusers", checkpoint=alpha.checkpoint)
    for model in (alpha, fresh):
        with pytest.raises(
            GenerationError, match="frames: 10 does not follow this model's frame rule 4k\\+1"
        ):
            start_run(
                RunSpec(
                    model=model,
                    benchmark=step_video,
                    prompt_positions=[1],
                    seeds=[5],
                    settings={"frames": 10},
                )
            )
    again_plan = plan_run(
        RunSpec(
            model=alpha,
            benchmark=step_video,
            prompt_positions=[1, 2],
            seeds=[5],
            grid={"guidance_scale": [1.0, 5.0]},
        )
    )
    assert again_plan.validated_by == "backend capabilities"
    model_page = admin_client.get(f"/models/{alpha.pk}/").content.decode()
    assert (
        "wan, frames 4k+1, sides a multiple of 16" in model_page and "<code>flow_shift</code>" in model_page
    )
    assert len(again_plan.videos) == 0 and again_plan.already_planned == 4

    # An A/B campaign over the generated pair: the annotator's item and media name no backend or model.
    annotator = django_user_model.objects.create_user("ann", password=ANNOTATOR_PASSWORD)
    prompt = noisy[0].prompt
    campaign = create_campaign(
        CampaignSpec(
            name="ab",
            kind="ab_shared_noise",
            benchmark=step_video,
            models=[alpha, beta],
            categories=[prompt.category],
            annotators=[annotator],
        )
    )
    with_media_prepared(campaign)
    client.login(username="ann", password=ANNOTATOR_PASSWORD)
    view = client.get(f"/api/annotate/{campaign.pk}/next/")
    received = [view.content]
    for shown in view.json()["assignment"]["videos"]:
        received += [b"".join(client.get(shown["url"]).streaming_content), str(shown).encode()]
    secrets = ["diffusers", "Wan-", alpha.checkpoint, beta.checkpoint, noise_id, record["frames_sha256"]]
    for body in received:
        assert not [s for s in secrets if s.encode().lower() in body.lower()]
