"""Pages and REST API of generation runs: plan before starting, clear 4xx errors with nothing queued,
cancel and retry, the Models page's backend and settings, managers only."""

import pytest

from evalsite.models import Job
from generation.backends import BACKENDS, register
from generation.models import GenerationItem, GenerationRun, VideoModel

from .plumbing_backend import TARGET, make_checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def plumbing_backend():
    register("plumbing", TARGET)
    yield
    BACKENDS.pop("plumbing", None)


@pytest.fixture
def bench(make_benchmark):
    return make_benchmark(["a cat on grass", "a red car at night", "a boat on a lake"])


@pytest.fixture
def model(tmp_path):
    return VideoModel.objects.create(
        name="Plumb",
        backend="plumbing",
        checkpoint=str(make_checkpoint(tmp_path / "ckpt")),
        default_settings={"steps": 7},
    )


def test_models_are_added_with_a_backend_and_shown_with_their_settings(admin_client, tmp_path):
    folder = make_checkpoint(tmp_path / "other")
    response = admin_client.post(
        "/api/models/",
        {
            "name": "Wan tiny",
            "backend": "plumbing",
            "checkpoint": str(folder),
            "default_settings": {"steps": 3},
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["backend"] == "plumbing" and response.json()["default_settings"] == {"steps": 3}
    bad = admin_client.post("/api/models/", {"name": "X", "backend": "nope"}, content_type="application/json")
    assert bad.status_code == 400 and "unknown backend 'nope'" in bad.content.decode()
    page = admin_client.get("/models/").content.decode()
    assert "plumbing" in page and "{&#x27;steps&#x27;: 3}" in page
    form = admin_client.post(
        "/models/",
        {
            "name": "Paged",
            "kind": "checkpoint",
            "backend": "plumbing",
            "checkpoint": str(folder),
            "default_settings": '{"steps": 2}',
            "backend_options": "{}",
        },
    )
    assert form.status_code == 302 and VideoModel.objects.get(name="Paged").default_settings == {"steps": 2}


def test_api_plans_then_starts_and_refuses_bad_input_with_nothing_queued(admin_client, model, bench):
    body = {
        "model": model.pk,
        "benchmark": bench.slug,
        "prompts": [1, 2],
        "seeds_per_prompt": 2,
        "grid": {"guidance_scale": [1, 5]},
    }
    plan = admin_client.post("/api/generation-runs/plan/", body, content_type="application/json")
    assert plan.status_code == 200, plan.content
    assert plan.json()["videos"] == 8 and plan.json()["total_steps"] == 8 * 7 and plan.json()["batches"] == 2
    assert not GenerationRun.objects.exists() and not Job.objects.exists()

    for change, message in [
        ({"settings": {"frames": 8}}, "frames: 8 does not follow"),
        ({"grid": {"steps": [0, 5]}}, "steps: 0 is below the minimum"),
    ]:
        response = admin_client.post(
            "/api/generation-runs/", {**body, **change}, content_type="application/json"
        )
        assert response.status_code == 400 and message in response.json()["detail"]
    model.checkpoint = "/nowhere/ckpt"
    model.save()
    response = admin_client.post("/api/generation-runs/", body, content_type="application/json")
    assert response.status_code == 400 and "/nowhere/ckpt does not exist" in response.json()["detail"]
    assert not GenerationRun.objects.exists() and not Job.objects.exists()


def test_run_pages_preview_start_cancel_and_retry(admin_client, model, bench):
    form = {
        "model": model.pk,
        "benchmark": bench.slug,
        "prompts": "1-2",
        "variant": "seeds",
        "values": "3,4",
        "settings": '{"guidance_scale": 2}',
        "grid": "",
        "batch_size": 2,
    }
    preview = admin_client.post("/generation/runs/new/", {**form, "action": "plan"})
    assert preview.status_code == 200 and not GenerationRun.objects.exists()
    assert "<dt>Videos</dt><dd><b>4</b>" in preview.content.decode()
    bad = admin_client.post("/generation/runs/new/", {**form, "settings": '{"frames": 6}', "action": "start"})
    assert bad.status_code == 200 and "frames: 6 does not follow" in bad.content.decode()
    started = admin_client.post("/generation/runs/new/", {**form, "action": "start"})
    run = GenerationRun.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/generation/runs/{run.pk}/"
    assert Job.objects.filter(queue="gpu", kind="generation.tasks.generate_batch").count() == 2

    detail = admin_client.get(f"/generation/runs/{run.pk}/").content.decode()
    assert "Cancel</button>" in detail and "a red car at night" in detail
    api = admin_client.get(f"/api/generation-runs/{run.pk}/").json()
    assert api["progress"]["videos"] == 4 and api["progress"]["percent"] == 0.0 and api["status"] == "queued"

    admin_client.post(f"/generation/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.CANCELLED and run.cancel_requested
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.CANCELLED}
    again = admin_client.post(f"/api/generation-runs/{run.pk}/cancel/")
    assert again.status_code == 409 and "nothing left to cancel" in again.json()["detail"]
    assert admin_client.post(f"/api/generation-runs/{run.pk}/retry/").status_code == 409

    first = run.items.order_by("id").first()
    GenerationItem.objects.filter(pk=first.pk).update(
        status="failed", error="out of memory", oom_hint="lower frames"
    )
    assert "lower frames" in admin_client.get(f"/generation/runs/{run.pk}/?status=failed").content.decode()
    retried = admin_client.post(f"/api/generation-runs/{run.pk}/retry/")
    assert retried.status_code == 200 and retried.json()["progress"]["counts"]["queued"] == 1
    items = admin_client.get(f"/api/generation-runs/{run.pk}/items/?status=queued").json()["results"]
    assert [i["id"] for i in items] == [first.pk] and items[0]["error"] == ""
    assert Job.objects.filter(status=Job.Status.QUEUED).count() == 1
    assert f"Run {run.pk}" in admin_client.get("/generation/runs/").content.decode()


def test_annotators_get_no_run_page_or_endpoint(client, django_user_model, model, bench):
    django_user_model.objects.create_user("ann", password="pw-123456789")
    client.login(username="ann", password="pw-123456789")
    for url in ["/generation/runs/", "/generation/runs/new/", "/api/generation-runs/"]:
        assert client.get(url).status_code == 403, url
    response = client.post(
        "/api/generation-runs/",
        {"model": model.pk, "benchmark": bench.slug, "seeds": [1]},
        content_type="application/json",
    )
    assert response.status_code == 403 and not GenerationRun.objects.exists()
