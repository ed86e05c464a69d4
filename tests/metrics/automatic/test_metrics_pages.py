"""The metrics pages and API: they show the stored figures, start runs with clear errors, and are for
managers only."""

import pytest
from django.utils import timezone

from evalsite.models import Job
from generation.models import Video, VideoModel
from metrics.automatic.models import AutoScore, ScoreSettings, VaeEvaluation, VaeEvaluationVideo

pytestmark = pytest.mark.django_db


def stored_video(model, prompt, seed=None) -> Video:
    """A library row only (the pages never open the files)."""
    name = f"{model.pk}-{prompt.pk}-{seed}"
    return Video.objects.create(
        model=model,
        prompt=prompt,
        seed=seed,
        source=Video.Source.IMPORT,
        content_sha256=name,
        original_file=f"originals/{name}.mp4",
        playable_file=f"videos/{name}.mp4",
        status=Video.Status.READY,
        width=64,
        height=48,
    )


@pytest.fixture
def world(make_benchmark, django_user_model):
    bench = make_benchmark(["一只猫在草地上奔跑", "a red car at night"])
    test_model = VideoModel.objects.create(name="Test set")
    recon_model = VideoModel.objects.create(name="Recon set")
    prompts = list(bench.prompts.order_by("position"))
    videos = [stored_video(test_model, p) for p in prompts]
    for p in prompts:
        stored_video(recon_model, p)
    done = timezone.now()
    first = VaeEvaluation.objects.create(
        name="Wan 2.1 VAE",
        mode="vae",
        test_model=test_model,
        vae_path="/weights/wan-vae",
        downsample_label="4x8x8",
        video_count=2,
        frame_count=34,
        ssim=0.91234,
        psnr=31.456,
        rfvd=12.345,
        options={
            "device": "cuda",
            "i3d_path": "/w/i3d.pt",
            "i3d": "torchscript",
            "vae_class": "AutoencoderKLWan",
        },
        completed_at=done,
    )
    second = VaeEvaluation.objects.create(
        name="Step-Video VAE",
        mode="reconstructions",
        test_model=test_model,
        reconstruction_model=recon_model,
        downsample_label="8x16x16",
        video_count=2,
        frame_count=34,
        ssim=0.95,
        psnr=33.2,
        rfvd_unavailable="rFVD is unavailable: the I3D weights file was not found at '/w/i3d.pt'.",
        completed_at=done,
    )
    for video, (ssim, psnr) in zip(videos, [(0.9017, 30.11), (0.9229, 32.80)], strict=True):
        VaeEvaluationVideo.objects.create(
            evaluation=first, video=video, frames=17, width=64, height=48, ssim=ssim, psnr=psnr
        )
    clip = ScoreSettings.objects.create(key="c" * 64, family="clip", label="tiny clip")
    motion = ScoreSettings.objects.create(key="m" * 64, family="motion", label="farneback")
    for video, value in zip(videos, [0.25, 0.31], strict=True):
        AutoScore.objects.create(video=video, metric="clip_score", settings=clip, value=value)
        AutoScore.objects.create(video=video, metric="motion_mean", settings=motion, value=4 * value)
    django_user_model.objects.create_user("ann", password="pw-123456789")
    return {
        "bench": bench,
        "test_model": test_model,
        "recon_model": recon_model,
        "first": first,
        "second": second,
        "videos": videos,
    }


def test_vae_comparison_page_puts_the_vaes_side_by_side_with_the_best_in_bold(admin_client, world):
    page = admin_client.get("/metrics/vae/").content.decode()
    assert "Test videos: Test set" in page
    for text in ["Wan 2.1 VAE", "4x8x8", "0.9123", "31.46", "Step-Video VAE", "8x16x16"]:
        assert text in page
    assert "<b>0.9500</b>" in page and "<b>33.20</b>" in page and "<b>12.35</b>" in page
    assert 'title="rFVD is unavailable: the I3D weights file was not found' in page
    assert 'href="/metrics/"' in admin_client.get("/").content.decode()  # the nav link


def test_evaluation_page_shows_summary_settings_and_per_video_figures(admin_client, world):
    page = admin_client.get(f"/metrics/vae/{world['first'].pk}/").content.decode()
    for text in [
        "0.9123",
        "31.46",
        "12.35",
        "4x8x8",
        "/weights/wan-vae",
        "AutoencoderKLWan",
        "cuda",
        "/w/i3d.pt",
    ]:
        assert text in page
    for text in ["0.9017", "30.11", "0.9229", "32.80", "64×48", "tiny #1", "tiny #2"]:
        assert text in page
    other = admin_client.get(f"/metrics/vae/{world['second'].pk}/").content.decode()
    assert "rFVD is unavailable: the I3D weights file was not found" in other and "Recon set" in other


def test_auto_scores_page_shows_means_per_model_and_category(admin_client, world):
    page = admin_client.get("/metrics/scores/").content.decode()
    assert "CLIP score" in page and "Motion_Mean" in page
    assert '0.2800 <span class="muted">(2)</span>' in page  # mean CLIP score of the test set's videos
    assert "1.1200" in page and "tiny clip" in page
    assert admin_client.get("/metrics/").status_code == 200


def test_start_forms_report_bad_inputs(admin_client, world, tmp_path):
    response = admin_client.post(
        "/metrics/vae/",
        {"name": "x", "test_model": world["test_model"].pk, "vae_path": str(tmp_path / "nowhere")},
    )
    assert response.status_code == 200 and "no folder at" in response.content.decode()
    response = admin_client.post("/metrics/vae/", {"name": "x", "test_model": world["test_model"].pk})
    assert "Give either a VAE folder or a model" in response.content.decode()
    empty = VideoModel.objects.create(name="Empty")
    response = admin_client.post("/metrics/scores/", {"model": empty.pk, "benchmark": world["bench"].pk})
    assert "Empty has no ready videos on" in response.content.decode()
    assert not Job.objects.exists()


def test_api_lists_evaluations_and_starts_one_as_a_gpu_job(admin_client, world):
    listing = admin_client.get("/api/vae-evaluations/").json()
    assert listing["count"] == 2
    detail = admin_client.get(f"/api/vae-evaluations/{world['first'].pk}/").json()
    assert detail["ssim"] == pytest.approx(0.91234) and detail["downsample_label"] == "4x8x8"
    assert [v["psnr"] for v in detail["videos"]] == [30.11, 32.80]
    assert detail["videos"][0]["prompt_position"] == 1

    response = admin_client.post(
        "/api/vae-evaluations/",
        {
            "name": "Recon",
            "test_model": world["test_model"].pk,
            "reconstruction_model": world["recon_model"].pk,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["mode"] == "reconstructions" and body["job"]["queue"] == "gpu"
    assert body["job"]["kind"] == "metrics.tasks.evaluate_vae" and body["job"]["status"] == "queued"

    bad = admin_client.post(
        "/api/vae-evaluations/",
        {"name": "x", "test_model": world["test_model"].pk, "vae_path": "/no/such/vae"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "no folder at '/no/such/vae'" in bad.json()["detail"]
    missing = VideoModel.objects.create(name="Half recon")
    stored_video(missing, world["videos"][0].prompt)
    bad = admin_client.post(
        "/api/vae-evaluations/",
        {"name": "x", "test_model": world["test_model"].pk, "reconstruction_model": missing.pk},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "1 of 2 test videos lack a reconstruction" in bad.json()["detail"]


def test_api_lists_score_summaries_and_starts_a_run(admin_client, world):
    (summary,) = admin_client.get("/api/auto-scores/").json()
    assert summary["benchmark"] == "tiny"
    columns = {c["metric"]: c["id"] for c in summary["columns"]}
    (model_row,) = summary["models"]
    assert model_row["model_label"] == "Test set"
    assert model_row["scores"][columns["clip_score"]] == {"mean": pytest.approx(0.28), "count": 2}
    assert [c["category"] for c in summary["categories"]] == ["(none)"]
    response = admin_client.post(
        "/api/auto-scores/",
        {"model": world["test_model"].pk, "benchmark": "tiny"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["job"]["kind"] == "metrics.tasks.compute_auto_scores"
    assert admin_client.get("/api/auto-score-runs/").json()["count"] == 1


def test_an_annotator_is_refused_every_metrics_page_and_endpoint(client, world):
    assert client.login(username="ann", password="pw-123456789")
    pk = world["first"].pk
    pages = ["/metrics/", "/metrics/vae/", f"/metrics/vae/{pk}/", "/metrics/scores/"]
    endpoints = [
        "/api/vae-evaluations/",
        f"/api/vae-evaluations/{pk}/",
        "/api/auto-scores/",
        "/api/auto-score-runs/",
    ]
    for url in pages + endpoints:
        assert client.get(url).status_code == 403, url
    for url in ["/metrics/vae/", "/metrics/scores/", "/api/vae-evaluations/", "/api/auto-scores/"]:
        response = client.post(url, {"name": "x", "test_model": world["test_model"].pk, "vae_path": "/x"})
        assert response.status_code == 403, url
    assert not Job.objects.exists()
    assert "/metrics/" not in client.get("/").content.decode()
