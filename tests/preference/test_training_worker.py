"""The whole loop through a real Celery worker on Redis: export -> Video-DPO run -> tuned model ->
generation of base and tuned with shared noise -> an A/B campaign with items whose annotator view names
no model, run or backend."""

import pytest

from generation.models import GenerationRun, Video
from preference.models import PreferenceExport, TrainingRun
from preference.services import create_export
from preference.training_runs import (
    create_evaluation_campaign,
    create_training_run,
    start_evaluation_generation,
)
from tests.campaign_fixtures import ANNOTATOR_PASSWORD, with_media_prepared
from tests.evalsite.test_worker import broker, launch_worker, wait_for  # noqa: F401  (fixtures)

from .conftest import judge
from .test_training_runs import TINY_DPO, tiny_wan_model  # noqa: F401  (fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_loop_runs_through_a_real_worker(
    broker,  # noqa: F811
    launch_worker,  # noqa: F811
    campaign_factory,
    tiny_wan_model,  # noqa: F811
    make_benchmark,
    django_user_model,
    client,
):
    worker = launch_worker("gpu1", {"CELERY_BROKER_URL": broker})
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=1, name="worker dpo source")
    annotator = campaign.annotators.get()
    for item in campaign.items.order_by("position"):
        judge(item, annotator, "slot0")
    export = create_export(
        name="worker-dpo", campaigns=[campaign], options={"validation_fraction": 0.0, "formats": ["jsonl"]}
    )
    wait_for(lambda: PreferenceExport.objects.get(pk=export.pk).is_ready, 120, "the export")

    run = create_training_run(
        kind="video_dpo",
        export=PreferenceExport.objects.get(pk=export.pk),
        base_model=tiny_wan_model,
        settings_given=TINY_DPO,
    )
    finished = wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(), 300, "the DPO run"
    )
    assert finished.status == TrainingRun.Status.SUCCEEDED, (finished.job.error_detail, worker.pid)
    assert finished.steps.filter(split="train").count() == TINY_DPO["max_steps"]
    assert finished.tuned_model is not None and finished.tuned_model.base_model_id == tiny_wan_model.pk

    benchmark = make_benchmark(["a red ball rolls on grass"], slug="worker-eval")
    runs = start_evaluation_generation(finished, benchmark=benchmark, noise_per_prompt=1)
    for generation_run in runs:
        wait_for(
            lambda r=generation_run: GenerationRun.objects.filter(pk=r.pk, finished_at__isnull=False).first(),
            300,
            f"generation run {generation_run.pk}",
        )
    videos = {v.model_id: v for v in Video.objects.filter(prompt__benchmark=benchmark, status="ready")}
    assert set(videos) == {tiny_wan_model.pk, finished.tuned_model_id}
    assert videos[tiny_wan_model.pk].noise_id == videos[finished.tuned_model_id].noise_id != ""

    person = django_user_model.objects.create_user("worker-ann", password=ANNOTATOR_PASSWORD)
    ab = with_media_prepared(create_evaluation_campaign(finished, annotators=[person]))
    assert ab.kind == "ab_shared_noise" and ab.items.count() == 1
    client.login(username="worker-ann", password=ANNOTATOR_PASSWORD)
    view = client.get(f"/api/annotate/{ab.pk}/next/")
    assert view.status_code == 200
    for secret in ("TinyWan", "dpo-run", "diffusers", "adapter", tiny_wan_model.checkpoint):
        assert secret.lower().encode() not in view.content.lower()
