"""In the Chinese UI, what the pages' scripts write while they poll is Chinese too: a job row that starts
running, reports its progress and stalls (evalsite/jobs.js), and a generation run's counts as its videos finish
(generation/run_progress.js)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from evalsite.middleware import save_user_language
from evalsite.models import Job
from generation.models import GenerationItem, GenerationRun, VideoModel
from generation.views import RUN_COUNTS
from tests.browser.test_browser import chromium
from tests.browser.test_manager_pages_browser import (
    KEPT_IN_CHINESE,
    MANAGER_PASSWORD,
    english_words,
    log_in,
    open_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chinese_manager(django_user_model):
    manager = django_user_model.objects.create_superuser("boss", password=MANAGER_PASSWORD)
    save_user_language(manager, "zh-hans")
    return manager


@pytest.fixture
def page(live_server, chinese_manager):
    with chromium() as browser:
        page = open_page(browser, 1280)
        log_in(page, live_server, "boss", MANAGER_PASSWORD)
        yield page
        assert not page.errors, page.errors


def chinese(*words: str) -> list[str]:
    with translation.override("zh-hans"):
        return [translation.gettext(word) for word in words]


@pytest.mark.parametrize("where", ["job-list", "job-detail"])
def test_a_job_row_the_script_updates_keeps_speaking_chinese(page, live_server, where):
    job = Job.objects.create(kind="evalsite.tests.nothing", title="Transcode video 1")
    path = reverse("job-list") if where == "job-list" else reverse("job-detail", args=[job.pk])
    page.goto(live_server.url + path)
    row = page.locator(f'tr[data-job="{job.pk}"]')
    assert row.locator(".status").inner_text().strip() == chinese("queued")[0]  # as the server wrote it

    stale = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        progress_done=3,
        progress_total=10,
        message="video 4 of 10",  # as generation/runs/worker.py reports it
        started_at=stale,
        heartbeat_at=stale,
    )
    row.locator(".progress-text", has_text="3/10").wait_for(timeout=10000)
    row.locator(".badge.failed").wait_for(timeout=10000)  # the stalled badge
    shown = row.locator(".status").inner_text()
    running, stalled = chinese("running", "stalled")
    assert running in shown
    assert stalled in shown
    assert not english_words(shown, KEPT_IN_CHINESE), shown
    assert row.locator(".message").inner_text() == chinese("video %(number)s of %(total)s")[0] % {
        "number": 4,
        "total": 10,
    }


def test_a_generation_runs_counts_the_script_updates_stay_chinese(page, live_server, make_benchmark):
    benchmark = make_benchmark(["一只熊猫在竹林里吃竹子", "海浪拍打礁石"])
    model = VideoModel.objects.create(name="Engine", backend="plumbing", checkpoint="/nowhere")
    run = GenerationRun.objects.create(
        model=model, benchmark=benchmark, backend="plumbing", checkpoint="/nowhere"
    )
    first, second = (
        GenerationItem.objects.create(
            run=run, model=model, prompt=prompt, seed=1, settings={"steps": 4}, settings_hash=str(prompt.pk)
        )
        for prompt in benchmark.prompts.order_by("position")
    )
    page.goto(live_server.url + reverse("run-detail", args=[run.pk]))
    counts = page.locator("#run-progress .counts")
    before = counts.inner_text()

    GenerationItem.objects.filter(pk=first.pk).update(status=GenerationItem.Status.DONE)
    GenerationItem.objects.filter(pk=second.pk).update(
        status=GenerationItem.Status.RUNNING, steps_done=1, steps_total=4
    )
    GenerationRun.objects.filter(pk=run.pk).update(status=GenerationRun.Status.RUNNING)
    page.wait_for_function(
        "(before) => document.querySelector('#run-progress .counts').textContent !== before", arg=before
    )
    shown = counts.inner_text()
    assert not english_words(shown, KEPT_IN_CHINESE), shown
    counted = {"done": 1, "running": 1, "queued": 0, "failed": 0, "refused": 0, "cancelled": 0}
    assert shown == chinese(RUN_COUNTS)[0] % counted
