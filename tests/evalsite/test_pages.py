"""Manager pages render real content; the API lists benchmarks and prompts; the schema is served."""

import pytest

from evalsite.models import Job
from generation.models import Video, VideoModel
from generation.services import add_video, load_benchmark, process_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def step_video(shared_benchmarks):
    return load_benchmark(shared_benchmarks / "Step-Video-T2V-Eval").benchmark


def test_benchmark_pages_show_chinese_prompts_and_category_counts(admin_client, step_video):
    listing = admin_client.get("/benchmarks/").content.decode()
    assert "Step-Video-T2V-Eval" in listing and ">128<" in listing
    detail = admin_client.get("/benchmarks/step-video-t2v-eval/").content.decode()
    assert "一名足球运动员在球场上带球奔跑" in detail
    assert 'href="?category=Combined%20Concepts">Combined Concepts</a></td><td class="num">12<' in detail
    food = admin_client.get("/benchmarks/step-video-t2v-eval/?category=Food").content.decode()
    assert "page 1" not in food and food.count('lang="zh"') == 11
    prompt = admin_client.get("/benchmarks/step-video-t2v-eval/prompts/13/").content.decode()
    assert "Food" in prompt


def test_moviegen_tag_groups_are_listed(admin_client, shared_benchmarks):
    load_benchmark(shared_benchmarks / "MovieGenVideoBenchWithTag.csv")
    page = admin_client.get("/benchmarks/moviegen-video-bench/").content.decode()
    assert "unusual activity &amp; subject" in page and "page 1 of 21" in page
    physics = admin_client.get("/benchmarks/moviegen-video-bench/?tag=physics").content.decode()
    assert "physics - " in physics


def test_api_lists_benchmarks_with_category_counts_and_filters_prompts(admin_client, step_video):
    (bench,) = admin_client.get("/api/benchmarks/").json()["results"]
    assert bench["prompt_count"] == 128 and len(bench["categories"]) == 11
    assert bench["categories"][0] == {"name": "Sports", "position": 1, "prompt_count": 12}
    prompts = admin_client.get(
        "/api/prompts/", {"benchmark": "step-video-t2v-eval", "category": "Surreal"}
    ).json()
    assert prompts["count"] == 11 and {p["category"] for p in prompts["results"]} == {"Surreal"}
    assert prompts["results"][0]["position"] == 71
    nested = admin_client.get("/api/benchmarks/step-video-t2v-eval/prompts/", {"limit": 5}).json()
    assert nested["count"] == 128 and nested["results"][0]["text"].startswith("一名足球运动员")


def test_models_can_be_added_by_page_and_api_with_clear_duplicate_errors(admin_client):
    response = admin_client.post(
        "/models/", {"name": "Step-Video-T2V", "version": "base", "kind": "checkpoint"}
    )
    assert response.status_code == 302
    again = admin_client.post("/models/", {"name": "Step-Video-T2V", "version": "base", "kind": "checkpoint"})
    assert "already exists" in again.content.decode()
    api = admin_client.post(
        "/api/models/",
        {
            "name": "Step-Video-T2V",
            "version": "dpo",
            "kind": "tuned",
            "base_model": VideoModel.objects.get().pk,
        },
        content_type="application/json",
    )
    assert api.status_code == 201 and api.json()["base_model"] == VideoModel.objects.get(version="base").pk
    dup = admin_client.post(
        "/api/models/", {"name": "Step-Video-T2V", "version": "dpo"}, content_type="application/json"
    )
    assert dup.status_code == 400 and "already exists" in dup.json()["name"][0]


def test_refusal_is_recorded_and_blocks_a_video(admin_client, step_video, tmp_path, make_video):
    model = VideoModel.objects.create(name="Engine")
    response = admin_client.post(
        f"/models/{model.pk}/", {"benchmark": step_video.pk, "prompt_position": 5, "reason": "policy"}
    )
    assert response.status_code == 302
    assert (
        "Engine refused #5: policy" in admin_client.get("/benchmarks/step-video-t2v-eval/").content.decode()
    )
    from generation.services import GenerationError

    with pytest.raises(GenerationError, match="refused prompt 5"):
        add_video(
            model=model,
            prompt=step_video.prompts.get(position=5),
            source_path=make_video(tmp_path / "a.mp4"),
            original_name="a.mp4",
            source=Video.Source.UPLOAD,
        )


def test_video_pages_show_a_player_and_the_facts(admin_client, step_video, tmp_path, make_video):
    model = VideoModel.objects.create(name="Engine")
    video, _ = add_video(
        model=model,
        prompt=step_video.prompts.get(position=2),
        source_path=make_video(tmp_path / "a.mp4"),
        original_name="a.mp4",
        source=Video.Source.UPLOAD,
        seed=3,
        noise_id="noise-7",
    )
    process_video(video)
    page = admin_client.get(f"/videos/{video.pk}/").content.decode()
    assert f'src="/media/v/{video.public_id}.mp4"' in page and "noise-7" in page and "64×48" in page
    listing = admin_client.get("/videos/", {"model": model.pk}).content.decode()
    assert f"/media/v/{video.public_id}.mp4" in listing
    prompt_page = admin_client.get("/benchmarks/step-video-t2v-eval/prompts/2/").content.decode()
    assert f"/media/v/{video.public_id}.mp4" in prompt_page


def test_jobs_page_and_actions(admin_client):
    job = Job.objects.create(
        kind="generation.tasks.import_videos", title="Import folder x", progress_total=10, progress_done=4
    )
    page = admin_client.get("/jobs/").content.decode()
    assert "Import folder x" in page and 'value="4"' in page and "jobs.js" in page
    response = admin_client.post(f"/jobs/{job.pk}/cancel/")
    assert response.status_code == 302 and Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED
    api = admin_client.get("/api/jobs/", {"status": "cancelled"}).json()
    assert api["count"] == 1 and api["results"][0]["percent"] == 40
    conflict = admin_client.post(f"/api/jobs/{job.pk}/cancel/")
    assert conflict.status_code == 409 and "already cancelled" in conflict.json()["detail"]


def test_openapi_schema_is_served(admin_client):
    response = admin_client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "openapi: 3" in text and "/api/videos/import/" in text and "/api/jobs/{id}/retry/" in text


def test_annotator_home_and_login_page(client, django_user_model):
    assert client.get("/").status_code == 302
    assert "Log in" in client.get("/accounts/login/").content.decode()
    django_user_model.objects.create_user("ann", password="pw-123456789")
    client.login(username="ann", password="pw-123456789")
    assert "My work" in client.get("/").content.decode()
