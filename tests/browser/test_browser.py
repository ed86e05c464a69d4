"""In Debian's Chromium: a manager logs in, opens a benchmark, and plays a served video that
advances and seeks (the media answers byte ranges)."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from generation.models import Video, VideoModel
from generation.services import add_video, process_video

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@contextmanager
def chromium():
    """Debian's Chromium, headless, through Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page():
    with chromium() as browser:
        # Playwright's wait_for_function evaluates strings, which the site's CSP forbids in the page;
        # tests/browser/test_csp_browser.py drives the pages under the policy.
        yield browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)


def test_manager_logs_in_opens_a_benchmark_and_plays_a_video(
    browser_page, live_server, tmp_path, make_video, make_benchmark, django_user_model
):
    django_user_model.objects.create_superuser("boss", password="pw-123456789")
    benchmark = make_benchmark(
        ["一只熊猫在竹林里吃竹子", "a second prompt"], slug="pandas", name="Panda bench"
    )
    model = VideoModel.objects.create(name="Engine")
    source = make_video(tmp_path / "clip.mp4", frames=72, width=160, height=96, fps=24)
    video, _ = add_video(
        model=model,
        prompt=benchmark.prompts.get(position=1),
        source_path=source,
        original_name="clip.mp4",
        source=Video.Source.UPLOAD,
    )
    video = process_video(video)

    page = browser_page
    statuses = []
    page.on("response", lambda r: statuses.append(r.status) if "/media/v/" in r.url else None)
    page.goto(f"{live_server.url}/benchmarks/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.click("text=Panda bench")
    assert page.locator("td[lang=zh]").first.inner_text() == "一只熊猫在竹林里吃竹子"
    page.goto(f"{live_server.url}/videos/{video.pk}/")
    page.wait_for_function("document.querySelector('#player').readyState >= 1")
    duration = page.evaluate("document.querySelector('#player').duration")
    assert duration == pytest.approx(3.0, abs=0.1)
    page.evaluate("const v = document.querySelector('#player'); v.muted = true; v.play()")
    page.wait_for_function("document.querySelector('#player').currentTime > 0.5", timeout=10000)
    page.evaluate("document.querySelector('#player').pause()")
    landed = page.evaluate(
        """() => new Promise((resolve) => {
            const v = document.querySelector('#player');
            v.addEventListener('seeked', () => resolve(v.currentTime), {once: true});
            v.currentTime = 2.0;
        })"""
    )
    assert abs(landed - 2.0) < 0.1
    assert 206 in statuses


def test_jobs_page_progress_bars_follow_the_job_while_open(browser_page, live_server, django_user_model):
    from evalsite.models import Job

    django_user_model.objects.create_superuser("boss", password="pw-123456789")
    job = Job.objects.create(
        kind="generation.tasks.import_videos",
        title="Import folder demo",
        status="running",
        progress_done=1,
        progress_total=10,
    )
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/?next=/jobs/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    row = page.locator(f"tr[data-job='{job.pk}']")
    assert row.locator(".progress-text").inner_text() == "1/10"
    Job.objects.filter(pk=job.pk).update(progress_done=7, message="importing clip 7")
    page.wait_for_function(
        f"document.querySelector(\"tr[data-job='{job.pk}'] .progress-text\").textContent === '7/10'",
        timeout=10000,
    )
    assert row.locator("progress").evaluate("el => el.value") == 7
    assert row.locator(".message").inner_text() == "importing clip 7"
    Job.objects.filter(pk=job.pk).update(progress_done=10, status="succeeded")
    page.wait_for_function(
        f"document.querySelector(\"tr[data-job='{job.pk}']\").dataset.status === 'succeeded'"
    )
    assert row.locator(".badge").first.inner_text() == "succeeded"
