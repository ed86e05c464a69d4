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


def judged_campaign(campaign_factory, n_prompts: int, name: str):
    """A pairwise campaign of Alpha and Beta, one annotator choosing slot 0 on every prompt."""
    campaign = campaign_factory("pairwise", n_prompts=n_prompts, n_annotators=1, name=name)
    annotator = campaign.annotators.get()
    for item in campaign.items.order_by("position"):
        judge(item, annotator, "slot0")
    return campaign


def published_export(
    capture, name: str, campaigns: list, n_prompts: int, fraction: float
) -> PreferenceExport:
    """The campaigns' export, split by prompt text so that (with a fraction) both splits hold prompts."""
    options = {"validation_fraction": fraction, "formats": ["jsonl"]}
    if fraction:
        options["split_seed"] = split_seed_for(prompt_texts(n_prompts), fraction)
    with capture(execute=True):
        export = create_export(name=name, campaigns=campaigns, options=options)
    export.refresh_from_db()
    assert export.is_ready
    return export


def split_seed_for(texts: list[str], fraction: float) -> str:
    """A split seed that puts some of these prompt texts in each split (the split hashes seed and text)."""
    from preference.pairs import split_of

    for n in range(1000):
        if {split_of(t, seed=str(n), validation_fraction=fraction) for t in texts} == {"train", "validation"}:
            return str(n)
    raise AssertionError("no seed splits these prompts both ways")


def prompt_texts(n: int) -> list[str]:
    return [f"prompt number {i} 一只猫" for i in range(1, n + 1)]  # campaign_factory's prompts


@pytest.fixture
def judged_export(campaign_factory, django_capture_on_commit_callbacks) -> PreferenceExport:
    campaign = judged_campaign(campaign_factory, 2, "dpo source")
    export = published_export(django_capture_on_commit_callbacks, "dpo-source", [campaign], 2, 0.0)
    assert export.manifest["counts"]["records"]["train"] == 2
    return export


@pytest.fixture
def split_dpo_export(campaign_factory, django_capture_on_commit_callbacks) -> PreferenceExport:
    """Two prompts, each with slot 0 chosen, one prompt in each split."""
    campaign = judged_campaign(campaign_factory, 2, "dpo split source")
    export = published_export(django_capture_on_commit_callbacks, "dpo-split", [campaign], 2, 0.5)
    assert export.manifest["counts"]["records"] == {"train": 1, "validation": 1}
    return export


# Mean rubric scores (one annotator) of Alpha's and Beta's video on every prompt: Alpha wins instruction
# following and physical plausibility, Beta aesthetic appeal, motion smoothness is a tie.
RUBRIC = {"Alpha": (5, 3, 4, 2), "Beta": (2, 3, 1, 5)}


@pytest.fixture
def rubric_and_pairs_export(campaign_factory, django_capture_on_commit_callbacks) -> PreferenceExport:
    """Four prompts with a pairwise judgment each (slot 0 chosen) and rubric scores for two models each
    (RUBRIC), split by prompt text so both splits hold some of each."""
    from .conftest import score

    pairwise = judged_campaign(campaign_factory, 4, "reward pairs")
    rubric = campaign_factory("rubric", n_prompts=4, n_annotators=1, name="reward rubric")
    rater = rubric.annotators.get()
    for item in rubric.items.order_by("position"):
        score(item, rater, RUBRIC[item.item_videos.get().video.model.name])
    export = published_export(django_capture_on_commit_callbacks, "reward-source", [pairwise, rubric], 4, 0.5)
    assert all(export.manifest["counts"]["records"].values())
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


def test_a_dpo_run_records_held_out_rows_as_it_trains_and_keeps_the_trainers_warning(
    split_dpo_export, tiny_wan_model, django_capture_on_commit_callbacks, monkeypatch, admin_client
):
    from evalsite.jobs import JobRun
    from preference.training.video_dpo import ChosenErrorWatch

    message = "the chosen error keeps rising with the rejected one (test)"
    original_update = ChosenErrorWatch.update
    updates = {"n": 0}

    def warn_at_step_two(self, chosen_excess, rejected_excess):
        original_update(self, chosen_excess, rejected_excess)
        updates["n"] += 1
        return message if updates["n"] == 2 else None

    monkeypatch.setattr(ChosenErrorWatch, "update", warn_at_step_two)
    seen_at_step_two = {}
    original_progress = JobRun.progress

    def snapshot(self, done, total=None, text=None):
        if text and text.startswith("step 2 "):
            run = TrainingRun.objects.get()
            seen_at_step_two["validation"] = list(
                run.steps.filter(split="validation").values_list("step", flat=True)
            )
            seen_at_step_two["warnings"] = run.figures.get("warnings")
        return original_progress(self, done, total, text)

    monkeypatch.setattr(JobRun, "progress", snapshot)
    with django_capture_on_commit_callbacks(execute=True):
        run = create_training_run(
            kind="video_dpo",
            export=split_dpo_export,
            base_model=tiny_wan_model,
            settings_given={**TINY_DPO, "validate_every": 1},
        )
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.job.error_detail
    # Held out at step 1 while the run was still training (the page polls these), and at the end.
    assert seen_at_step_two == {"validation": [1], "warnings": [{"step": 2, "message": message}]}
    validation = curves(run)["validation"]
    assert [point[0] for point in validation["implicit_accuracy"]] == [1, 2]
    assert {point[1] for point in validation["pairs"]} == {1.0}
    assert run.figures["warnings"] == [{"step": 2, "message": message}]
    page = admin_client.get(reverse("training-run-detail", args=[run.pk])).content.decode()
    banner = page[
        page.index('id="training-warnings"') : page.index("</div>", page.index("training-warnings"))
    ]
    assert "step 2" in banner and message in banner


def test_the_run_page_draws_its_curves_with_the_local_plotly_and_the_curves_module(
    judged_export, tiny_wan_model, admin_client
):
    import re

    from django.contrib.staticfiles import finders
    from django.templatetags.static import static

    run = create_training_run(kind="video_dpo", export=judged_export, base_model=tiny_wan_model)
    page = admin_client.get(reverse("training-run-detail", args=[run.pk])).content.decode()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    for asset in ("vendor/plotly/plotly.min.js", "preference/training_curves.js"):
        assert static(asset) in scripts
        assert finders.find(asset), asset  # served from this site, not fetched
    assert not [src for src in scripts if src.startswith(("http:", "https:", "//"))]
    assert f'data-metrics="/api/training-runs/{run.pk}/metrics/"' in page


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


def test_a_reward_model_run_trains_on_pairs_and_rubric_scores_and_is_evaluated_beside_clip_and_motion(
    rubric_and_pairs_export,
    tiny_wan_model,
    django_capture_on_commit_callbacks,
    settings,
    tiny_clip_folder,
    admin_client,
):
    from generation.models import Video
    from metrics.automatic.models import AutoScore
    from metrics.automatic.services import configured_clip_scorer, motion_score_settings
    from metrics.video.decode import decode_video
    from metrics.video.motion import motion_score
    from preference.pairs import DIMENSIONS
    from preference.training_runs import export_records

    settings.EVALSITE_CLIP_MODEL = f"local-dir:{tiny_clip_folder}"
    export = rubric_and_pairs_export
    validation_pairs = export_records(export, "pairs", "validation")
    validation_scores = export_records(export, "scores", "validation")
    # Stored CLIP scores (the site's settings) for the judged videos, ranking every chosen one first: the
    # run must take these, not compute its own (all test videos share one clip, so computed scores tie).
    _, clip_settings, _ = configured_clip_scorer("cpu")
    for record in validation_pairs:
        for side, value in (("chosen", 0.9), ("rejected", 0.1)):
            video = Video.objects.get(public_id=record[side]["video_id"])
            AutoScore.objects.create(video=video, metric="clip_score", settings=clip_settings, value=value)

    with django_capture_on_commit_callbacks(execute=True):
        run = create_training_run(
            kind="reward_model", export=export, base_model=tiny_wan_model, settings_given={"epochs": 5}
        )
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.job.error_detail
    assert (Path(settings.MEDIA_ROOT) / run.folder / "reward_head" / "reward_head.json").is_file()

    # Trained on the judgments (overall) and on rubric pairs (one per dimension and two videos of a prompt).
    train_prompts = len(export_records(export, "scores", "train")) // 2
    assert run.figures["comparisons"]["train"] == {
        **dict.fromkeys(DIMENSIONS, train_prompts),
        "overall": len(export_records(export, "pairs", "train")),
    }
    report = run.figures["validation"]
    assert set(report) == {*DIMENSIONS, "overall"}
    assert report["overall"]["counts"]["comparisons"] == len(validation_pairs)
    assert report["motion_smoothness"]["counts"] == {
        "comparisons": len(validation_scores) // 2,
        "ties": len(validation_scores) // 2,
    }
    for head in report.values():
        assert {"reward_model", "clip_score", "motion_score", "chance"} <= set(head)
        assert head["chance"] == {
            "accuracy": 0.5,
            "accuracy_with_ties": pytest.approx(1 / 3),
            "tie_threshold": None,
        }
    assert report["overall"]["clip_score"]["accuracy"] == 1.0  # the stored scores
    assert report["overall"]["motion_score"]["accuracy"] == 0.5  # one clip for every video: all equal
    assert report["motion_smoothness"]["reward_model"]["accuracy"] is None  # only ties: nothing decided
    assert run.figures["baseline_sources"]["clip_score"] == {
        "stored": 2 * len(validation_pairs),
        "computed": len(validation_scores),
    }
    # The motion scores it computed are the library's, stored as the automatic-score job would.
    motion = AutoScore.objects.filter(metric="motion_mean", settings=motion_score_settings()[0])
    assert motion.count() == 2 * len(validation_pairs) + len(validation_scores)
    one = motion.select_related("video").first()
    expected = motion_score(decode_video(Path(settings.MEDIA_ROOT) / one.video.original_file)).as_dict()
    assert one.value == pytest.approx(expected["Motion_Mean"])

    page = admin_client.get(reverse("training-run-detail", args=[run.pk])).content.decode()
    table = page[
        page.index('<table id="reward-evaluation"') : page.index("</table>", page.index("reward-evaluation"))
    ]
    for label in (
        "Reward model",
        "CLIP score alone",
        "Motion score alone",
        "Chance",
        "Instruction following",
    ):
        assert label in table
    assert table.count('<tr data-head="') == len(DIMENSIONS) + 1
    assert "{&#x27;" not in page and "{'" not in page  # no pprint of the figures
    assert "Score videos and build on-policy pairs" in page
    with pytest.raises(TrainingRunError, match="epochs"):
        create_training_run(
            kind="reward_model",
            export=export,
            base_model=tiny_wan_model,
            settings_given={"epochs": "x"},
        )


def test_an_evaluated_reward_run_needs_a_validation_split(judged_export, tiny_wan_model, admin_client):
    body = {"kind": "reward_model", "export": judged_export.pk, "base_model": tiny_wan_model.pk}
    response = admin_client.post(
        "/api/training-runs/", {**body, "settings": {}}, content_type="application/json"
    )
    assert response.status_code == 400 and "empty validation split" in str(response.json())
    page = admin_client.post(reverse("training-run-list"), {**body, "settings": "{}"})
    assert page.status_code == 400 and "empty validation split" in page.content.decode()
    assert not TrainingRun.objects.exists()
    # Without an evaluation the same export trains.
    response = admin_client.post(
        "/api/training-runs/", {**body, "settings": {"evaluate": False}}, content_type="application/json"
    )
    assert response.status_code == 201, response.json()


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


def unevaluated_reward_run(export, base_model, clip_folder, settings, capture) -> TrainingRun:
    """A finished reward-model run (5 epochs, no evaluation) with the tiny CLIP as the site's CLIP."""
    settings.EVALSITE_CLIP_MODEL = f"local-dir:{clip_folder}"
    with capture(execute=True):
        run = create_training_run(
            kind="reward_model",
            export=export,
            base_model=base_model,
            settings_given={"epochs": 5, "evaluate": False},
        )
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.job.error_detail
    return run


def test_a_reward_model_scores_videos_for_the_leaderboard_and_builds_on_policy_pairs(
    judged_export, tiny_wan_model, django_capture_on_commit_callbacks, settings, tiny_clip_folder, library
):
    from metrics.automatic.models import AutoScore
    from metrics.automatic.selectors import model_metric_means
    from preference.export import read_jsonl
    from preference.training_runs import export_records, start_reward_scoring

    run = unevaluated_reward_run(
        judged_export, tiny_wan_model, tiny_clip_folder, settings, django_capture_on_commit_callbacks
    )
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


def test_the_leaderboard_page_shows_the_reward_score_of_videos_a_reward_model_scored(
    judged_export,
    tiny_wan_model,
    django_capture_on_commit_callbacks,
    settings,
    tiny_clip_folder,
    admin_client,
):
    import re
    from statistics import mean

    from metrics.automatic.models import AutoScore
    from metrics.human.results import format_value
    from preference.training_runs import start_reward_scoring

    run = unevaluated_reward_run(
        judged_export, tiny_wan_model, tiny_clip_folder, settings, django_capture_on_commit_callbacks
    )
    campaign = judged_export.campaigns.get()
    alpha = campaign.campaign_models.order_by("position").first().model  # judged, so on the leaderboard
    with django_capture_on_commit_callbacks(execute=True):
        job = start_reward_scoring(run, model=alpha, benchmark=campaign.benchmark)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_detail
    values = list(
        AutoScore.objects.filter(video__model=alpha, metric="reward_score").values_list("value", flat=True)
    )
    assert len(values) == 2

    page = admin_client.get("/metrics/leaderboard/").content.decode()
    table = re.search(r'<table class="leaderboard">(.*?)</table>', page, re.S).group(1)
    headers = re.findall(r"<th>(.*?)</th>", table)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]
    column = headers.index("Reward score")
    [alpha_row] = [row for row in rows if row[headers.index("Model")].startswith("Alpha")]
    assert alpha_row[column] == format_value(mean(values), "float")
