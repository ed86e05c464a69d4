"""Training runs through their gpu job (run inline): a Video-DPO run from a tiny export of real videos stores
per-step figures and registers a tuned model whose adapter loads through DiffusersBackend; a reward-model
run; bad requests are refused with a reason and store nothing."""

from pathlib import Path

import pytest
import torch
from django.urls import reverse

from preference.models import PreferenceExport, TrainingRun, TrainingStep
from preference.services import create_export
from preference.training_runs import DPO_FIGURES, TrainingRunError, create_training_run, curves
from tests.metrics.conftest import TINY_CLIP_CONFIG

from .conftest import judge

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

TINY_DPO = {
    "max_steps": 2,
    "height": 32,
    "width": 32,
    "frames": 5,
    "max_sequence_length": 8,
    "mixed_precision": "no",
    "gradient_checkpointing": False,
    "checkpoint_every": 1,
    "validate_every": 0,
    "lora_rank": 2,
    "lora_alpha": 2,
    "learning_rate": 1e-3,
}


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def judged_export(campaign_factory, django_capture_on_commit_callbacks) -> PreferenceExport:
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=1, name="dpo source")
    annotator = campaign.annotators.get()
    for item in campaign.items.order_by("position"):
        judge(item, annotator, "slot0")
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(
            name="dpo-source",
            campaigns=[campaign],
            options={"validation_fraction": 0.0, "formats": ["jsonl"]},
        )
    export.refresh_from_db()
    assert export.is_ready and export.manifest["counts"]["records"]["train"] == 2
    return export


@pytest.fixture
def tiny_clip_folder(tmp_path) -> Path:
    import json

    import open_clip

    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    torch.manual_seed(0)
    torch.save(open_clip.CLIP(**TINY_CLIP_CONFIG).state_dict(), folder / "open_clip_pytorch_model.bin")
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {}})
    )
    return folder


@pytest.fixture
def tiny_wan_model(tmp_path):
    from generation.backends.tiny import TINY_SETTINGS, make_tiny_wan
    from generation.services import create_video_model

    folder = make_tiny_wan(tmp_path / "tiny-wan")
    return create_video_model(
        name="TinyWan",
        version="base",
        backend="diffusers",
        checkpoint=str(folder),
        default_settings=dict(TINY_SETTINGS["wan"]),
    )


def test_the_loop_export_dpo_run_tuned_model_shared_noise_generation_ab_campaign(
    judged_export,
    tiny_wan_model,
    django_capture_on_commit_callbacks,
    settings,
    make_benchmark,
    admin_client,
    client,
    django_user_model,
):
    from generation.backends.diffusers_backend import DiffusersBackend

    with django_capture_on_commit_callbacks(execute=True):
        run = create_training_run(
            kind="video_dpo", export=judged_export, base_model=tiny_wan_model, settings_given=TINY_DPO
        )
    run.refresh_from_db()
    assert run.job.status == "succeeded", run.job.error_detail
    assert run.status == TrainingRun.Status.SUCCEEDED
    assert len(run.export_sha256) == 64
    steps = TrainingStep.objects.filter(run=run, split="train").order_by("step")
    assert [s.step for s in steps] == [1, 2]
    assert set(DPO_FIGURES) <= set(steps[0].values)
    assert curves(run)["train"]["loss"][0][0] == 1
    assert run.figures["last"]["implicit_accuracy"] in (0.0, 0.5, 1.0)

    tuned = run.tuned_model
    assert tuned.kind == "tuned" and tuned.base_model == tiny_wan_model and Path(tuned.adapter).is_dir()
    backend = DiffusersBackend.load(Path(tiny_wan_model.checkpoint), adapter=Path(tuned.adapter))
    lora_b = [p for name, p in backend.pipe.transformer.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained (B starts at zero) and loaded

    # Latents were computed once for this export: a second run with the same encoding reuses the folder.
    latents = list(Path(settings.MEDIA_ROOT, "training", "latents").rglob("index.jsonl"))
    assert len(latents) == 1 and len(latents[0].read_text().splitlines()) == 2

    api = admin_client.get(f"/api/training-runs/{run.pk}/metrics/").json()
    assert [point[0] for point in api["train"]["loss"]] == [1, 2]
    _loop_tail(
        run, make_benchmark, django_capture_on_commit_callbacks, admin_client, client, django_user_model
    )


def test_a_cancelled_dpo_run_resumes_from_its_checkpoint(
    judged_export, tiny_wan_model, django_capture_on_commit_callbacks, monkeypatch
):
    from evalsite.jobs import JobCancelled, JobRun

    original = JobRun.progress
    calls = {"n": 0}

    def cancel_at_step_one(self, done, total=None, message=None):
        if message and message.startswith("step 1 "):
            calls["n"] += 1
            raise JobCancelled()
        return original(self, done, total, message)

    monkeypatch.setattr(JobRun, "progress", cancel_at_step_one)
    with django_capture_on_commit_callbacks(execute=True):
        run = create_training_run(
            kind="video_dpo", export=judged_export, base_model=tiny_wan_model, settings_given=TINY_DPO
        )
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED and run.job.status == "cancelled"
    assert list(run.steps.values_list("step", flat=True)) == [1]
    first_loss = run.steps.get().values["loss"]

    monkeypatch.setattr(JobRun, "progress", original)
    from preference.training_runs import retry_training_run

    with django_capture_on_commit_callbacks(execute=True):
        retry_training_run(run)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.job.error_detail
    assert list(run.steps.filter(split="train").values_list("step", flat=True)) == [1, 2]
    assert run.steps.get(step=1).values["loss"] == first_loss
    assert run.tuned_model is not None


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"kind": "sft"}, "kind"),
        ({"settings": {"max_steps": 0}}, "max_steps"),
        ({"settings": {"beta": "big"}}, "beta"),
        ({"settings": {"colour": 1}}, "unknown settings"),
        ({"export": 999999}, "export"),
    ],
)
def test_bad_requests_are_refused_with_a_reason_and_store_nothing(
    judged_export, tiny_wan_model, admin_client, payload, message
):
    body = {"kind": "video_dpo", "export": judged_export.pk, "base_model": tiny_wan_model.pk, "settings": {}}
    response = admin_client.post("/api/training-runs/", {**body, **payload}, content_type="application/json")
    assert response.status_code == 400
    assert message in str(response.json())
    assert not TrainingRun.objects.exists()


def test_reward_model_run(
    judged_export,
    tiny_wan_model,
    django_capture_on_commit_callbacks,
    settings,
    tiny_clip_folder,
    admin_client,
):
    settings.EVALSITE_CLIP_MODEL = f"local-dir:{tiny_clip_folder}"
    with django_capture_on_commit_callbacks(execute=True):
        run = create_training_run(
            kind="reward_model", export=judged_export, base_model=tiny_wan_model, settings_given={"epochs": 5}
        )
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.job.error_detail
    assert run.figures["videos"] == 4 and run.figures["train_pairs"] == 2
    assert (Path(settings.MEDIA_ROOT) / run.folder / "reward_head" / "reward_head.json").is_file()
    page = admin_client.get(reverse("training-run-detail", args=[run.pk])).content.decode()
    assert "Score videos and build on-policy pairs" in page
    with pytest.raises(TrainingRunError, match="epochs"):
        create_training_run(
            kind="reward_model",
            export=judged_export,
            base_model=tiny_wan_model,
            settings_given={"epochs": "x"},
        )


def _loop_tail(run, make_benchmark, capture, admin_client, client, django_user_model):
    """Evaluate against the base: shared-noise generation for both models, the A/B campaign, blinding."""
    from generation.models import Video
    from preference.training_runs import (
        create_evaluation_campaign,
        evaluation_shares,
        start_evaluation_generation,
    )
    from tests.campaign_fixtures import ANNOTATOR_PASSWORD, with_media_prepared

    benchmark = make_benchmark(["a red ball rolls on grass"], slug="dpo-eval")
    with capture(execute=True):
        generation_runs = start_evaluation_generation(run, benchmark=benchmark, noise_per_prompt=1)
    assert len(generation_runs) == 2
    videos = {v.model_id: v for v in Video.objects.filter(prompt__benchmark=benchmark, status="ready")}
    assert set(videos) == {run.base_model_id, run.tuned_model_id}
    assert videos[run.base_model_id].noise_id == videos[run.tuned_model_id].noise_id != ""

    annotator = django_user_model.objects.create_user("dpo-ann", password=ANNOTATOR_PASSWORD)
    campaign = with_media_prepared(create_evaluation_campaign(run, annotators=[annotator]))
    assert campaign.kind == "ab_shared_noise" and campaign.items.count() == 1
    assert evaluation_shares(run) == []  # nothing judged yet

    page = admin_client.get(reverse("training-run-detail", args=[run.pk])).content.decode()
    assert "Evaluate against the base" in page and reverse("campaign-results", args=[campaign.pk]) in page

    client.login(username="dpo-ann", password=ANNOTATOR_PASSWORD)
    view = client.get(f"/api/annotate/{campaign.pk}/next/")
    assert view.status_code == 200
    received = [view.content]
    for shown in view.json()["assignment"]["videos"]:
        received += [b"".join(client.get(shown["url"]).streaming_content), str(shown).encode()]
    secrets = ["TinyWan", "dpo-run", "diffusers", "adapter", run.base_model.checkpoint, f"run {run.pk}"]
    for body in received:
        assert not [s for s in secrets if s.encode().lower() in body.lower()]

    # Judged for the tuned model (B): the page shows the report's shares, as the campaign's results compute them.
    judge(campaign.items.get(), annotator, "slot1")
    shares = evaluation_shares(run)
    assert [(row["model"].endswith("(A)"), row["share"]) for row in shares] == [(True, 0.0), (False, 100.0)]
    page = admin_client.get(reverse("training-run-detail", args=[run.pk])).content.decode()
    assert "100.0%" in page


def test_training_pages_and_api_are_for_managers_only(admin_client, client, django_user_model):
    from tests.campaign_fixtures import ANNOTATOR_PASSWORD

    assert admin_client.get(reverse("training-run-list")).status_code == 200
    django_user_model.objects.create_user("plain-ann", password=ANNOTATOR_PASSWORD)
    client.login(username="plain-ann", password=ANNOTATOR_PASSWORD)
    assert client.get(reverse("training-run-list")).status_code in (302, 403)
    assert client.get("/api/training-runs/").status_code == 403
    schema = admin_client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/training-runs/{id}/metrics/" in schema.content


def test_a_reward_model_scores_videos_for_the_leaderboard_and_builds_on_policy_pairs(
    judged_export, tiny_wan_model, django_capture_on_commit_callbacks, settings, tiny_clip_folder, library
):
    from metrics.automatic.models import AutoScore
    from metrics.automatic.selectors import model_metric_means
    from preference.export import read_jsonl
    from preference.training_runs import export_records, start_reward_scoring

    settings.EVALSITE_CLIP_MODEL = f"local-dir:{tiny_clip_folder}"
    with django_capture_on_commit_callbacks(execute=True):
        run = create_training_run(
            kind="reward_model", export=judged_export, base_model=tiny_wan_model, settings_given={"epochs": 5}
        )
    run.refresh_from_db()
    benchmark, [gamma] = library(["a dog runs", "a cat sleeps"], ("Gamma",), seeds=2)
    with django_capture_on_commit_callbacks(execute=True):
        job = start_reward_scoring(
            run, model=gamma, benchmark=benchmark, on_policy_export="on-policy", min_gap=0.0
        )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_detail
    scores = AutoScore.objects.filter(video__model=gamma, metric="reward_score")
    assert scores.count() == 4
    columns, means = model_metric_means([gamma.pk])
    assert "reward_score" in [c["metric"] for c in columns] and means[(gamma.pk, "reward_score")][1] == 4

    export = PreferenceExport.objects.get(name="on-policy")
    assert export.is_ready and export.manifest["label_source"] == "reward_model"
    records = export_records(export, "pairs", "train") + export_records(export, "pairs", "validation")
    assert len(records) == 2 and {r["label_source"] for r in records} == {"reward_model"}
    for record in records:
        assert record["chosen_score"] > record["rejected_score"]
        assert record["chosen"]["seed"] != record["rejected"]["seed"]
    manifest_files = {f["name"] for f in export.manifest["files"]}
    assert manifest_files == {"pairs-train.jsonl", "pairs-validation.jsonl"}
    assert read_jsonl(Path(settings.MEDIA_ROOT) / export.folder / "pairs-train.jsonl") == export_records(
        export, "pairs", "train"
    )
    # The on-policy export is a published version the next Video-DPO run can start from.
    assert create_training_run(
        kind="video_dpo", export=export, base_model=tiny_wan_model, settings_given=TINY_DPO
    )
