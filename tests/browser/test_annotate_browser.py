"""The annotator's page in Debian's Chromium, against the real API: synced playback and seeking, answers by
keyboard only, the next item without a page reload (from preloaded videos), rubric scores by keyboard,
full playback before an answer, and the Chinese UI. The database is then checked to hold the answers as
the page showed them."""

import functools
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from annotation.models import Assignment, Campaign, Judgment, PlaybackEvent, ProblemReport
from evalsite.middleware import save_user_language
from tests.browser.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.campaign_fixtures import ANNOTATOR_PASSWORD, video_shown_at
from tests.conftest import write_test_video
from tests.static_modules import linked_static_files, read_from_finders

# The shared campaign factory (tests/campaign_fixtures.py) is used here with longer clips (see
# `make_video` below).

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIP_FRAMES, CLIP_FPS = 48, 12  # 4 s: long enough to seek in
CLIP_SECONDS = CLIP_FRAMES / CLIP_FPS
TIMES = "() => Array.from(document.querySelectorAll('#stage video'), (v) => v.currentTime)"


@pytest.fixture
def make_video():
    """The campaign factory's clips, longer than its default."""
    return functools.partial(write_test_video, frames=CLIP_FRAMES, fps=CLIP_FPS)


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        # Playwright's wait_for_function evaluates strings, which the site's CSP forbids in the page;
        # tests/browser/test_csp_browser.py drives the pages under the policy.
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        page.problems = []
        page.scripts = []  # the path of every script Chromium fetched, modules included
        page.on(
            "request",
            lambda r: page.scripts.append(urlsplit(r.url).path) if r.resource_type == "script" else None,
        )
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.on(
            "response",
            lambda r: (
                page.problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        yield page
        browser.close()


def open_task(page, live_server, user, campaign) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next=/campaigns/{campaign.pk}/annotate/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", ANNOTATOR_PASSWORD)
    page.click("button[type=submit]")
    try:
        page.wait_for_function("document.documentElement.dataset.annotateReady === 'true'", timeout=15000)
    except Exception as exc:
        raise AssertionError(f"the page did not start at {page.url}: {page.problems}") from exc


def wait_for_media(page, count: int) -> None:
    page.wait_for_function(
        f"""() => {{
            const videos = document.querySelectorAll('#stage video');
            return videos.length === {count} && Array.from(videos).every((v) => v.readyState >= 2);
        }}""",
        timeout=15000,
    )


def shown_urls(page) -> list[str]:
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('#stage video'), (v) => new URL(v.currentSrc || v.src).pathname)"
    )


def public_id(url: str) -> str:
    """The library id of the video behind a URL the page was given (annotators get per-campaign ids)."""
    return video_shown_at(url).public_id


def seek_bar_click(page, fraction: float) -> None:
    box = page.locator("#seek").bounding_box()
    page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)


def settled_times(page) -> list[float]:
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#stage video')).every((v) => !v.seeking)", timeout=10000
    )
    return page.evaluate(TIMES)


def test_pairwise_item_plays_in_sync_seeks_together_and_is_answered_by_keyboard(
    page, live_server, campaign_factory
):
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=1)
    annotator = campaign.annotators.get()
    open_task(page, live_server, annotator, campaign)
    # Chromium loads exactly the modules that the blinding tests follow from the entry and scan.
    entry = "/static/annotation/annotate.js"
    assert sorted(set(page.scripts)) == sorted(linked_static_files([entry], read_from_finders))
    wait_for_media(page, 2)
    assert page.locator("#progress-text").inner_text() == "0 of 2"
    assert page.locator("#submit").inner_text() == "Choose an answer (1, 2 or 3)"
    assert page.locator("#submit").is_disabled()
    first_prompt = page.locator("#prompt").inner_text()
    shown_prompt = campaign.items.get(prompt__text=first_prompt).prompt
    assert page.locator("#prompt").get_attribute("lang") == shown_prompt.language
    page.evaluate("window.__pageMarker = 'still the same page'")
    page_url = page.url

    # Synced playback from one control.
    page.keyboard.press("Space")
    page.wait_for_function("document.querySelector('#stage video').currentTime > 0.5", timeout=10000)
    # A follower knocked out of step is brought back within 0.05 s while playing (before the loop
    # restarts both, which would put them in step anyway).
    knocked_at = page.evaluate(
        "() => { const [a, b] = document.querySelectorAll('#stage video'); b.currentTime += 0.2; return a.currentTime; }"
    )
    page.wait_for_function(
        f"""() => {{
            const [a, b] = document.querySelectorAll('#stage video');
            return !b.seeking && a.currentTime > {knocked_at} && Math.abs(a.currentTime - b.currentTime) < 0.05;
        }}""",
        timeout=int((CLIP_SECONDS - 0.5 - knocked_at) * 1000),
    )
    for _ in range(5):
        left, right = page.evaluate(TIMES)
        assert abs(left - right) < 0.1, (left, right)
        page.wait_for_timeout(150)
    assert page.evaluate("Array.from(document.querySelectorAll('#stage video')).every((v) => !v.paused)")
    page.keyboard.press("Space")
    page.wait_for_function("Array.from(document.querySelectorAll('#stage video')).every((v) => v.paused)")

    # A seek lands on both videos within 0.1 s, paused or playing.
    seek_bar_click(page, 0.75)
    left, right = settled_times(page)
    assert abs(left - right) < 0.1 and abs(left - 0.75 * CLIP_SECONDS) < 0.4, (left, right)
    page.keyboard.press("Space")
    seek_bar_click(page, 0.25)
    page.wait_for_timeout(300)
    left, right = page.evaluate(TIMES)
    assert abs(left - right) < 0.1 and left < 0.25 * CLIP_SECONDS + 0.8, (left, right)
    page.keyboard.press("Space")

    # Frame stepping moves both by one frame (24 fps assumed: the API gives no frame rate).
    before = settled_times(page)
    page.keyboard.press(".")
    page.wait_for_function(f"document.querySelector('#stage video').currentTime > {before[0] + 0.02}")
    after = settled_times(page)
    assert all(0.02 < a - b < 0.09 for a, b in zip(after, before, strict=True)), (before, after)
    assert abs(after[0] - after[1]) < 0.01

    # The item behind this one is already loading; answering shows it from the preloaded elements.
    upcoming = page.evaluate("Array.from(document.querySelectorAll('#preload video'), (v) => v.dataset.url)")
    assert len(upcoming) == 2
    page.evaluate("document.querySelectorAll('#preload video').forEach((v) => { v.__preloaded = true; })")
    left_url, right_url = shown_urls(page)
    page.keyboard.press("1")
    assert page.locator(".choice.selected").get_attribute("data-choice") == "left"
    page.keyboard.press("ArrowRight")
    assert page.locator(".choice.selected").get_attribute("data-choice") == "right"
    page.keyboard.press("1")
    assert page.locator("#submit").inner_text() == "Submit (Enter)"
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#progress-text').textContent === '1 of 2'")
    # The videos played, and the campaign does not require full playback: no playback reports are sent
    # (only a campaign that requires it checks them).
    assert not PlaybackEvent.objects.exists()
    wait_for_media(page, 2)
    assert page.evaluate("window.__pageMarker") == "still the same page" and page.url == page_url
    assert page.evaluate("Array.from(document.querySelectorAll('#stage video')).every((v) => v.__preloaded)")
    # They show their first frame already: no poster is fetched for them.
    assert page.evaluate("Array.from(document.querySelectorAll('#stage video')).every((v) => !v.poster)")
    assert shown_urls(page) == upcoming
    assert page.locator("#prompt").inner_text() != first_prompt
    assert page.locator(".choice.selected").count() == 0
    # The answer is listed for revision: it comes back as answered, is changed, and the page returns to
    # the item on screen.
    page.wait_for_selector("#recent li .revise")
    assert page.locator("#recent li").count() == 1
    second_left, second_right = shown_urls(page)
    page.click("#recent li .revise")
    wait_for_media(page, 2)
    assert shown_urls(page) == [left_url, right_url]
    assert page.locator(".choice.selected").get_attribute("data-choice") == "left"
    assert page.locator("#submit").inner_text() == "Save revision (Enter)"
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#message').textContent === 'Revision saved.'")
    wait_for_media(page, 2)
    assert shown_urls(page) == [second_left, second_right]
    assert page.locator("#progress-text").inner_text() == "1 of 2"

    page.keyboard.press("ArrowDown")  # tie
    page.keyboard.press("Enter")
    page.wait_for_selector("#finished:not([hidden])")
    assert "All done" in page.locator("#finished-text").inner_text()
    assert page.evaluate("window.__pageMarker") == "still the same page"

    first, second = Judgment.objects.filter(annotator=annotator).order_by("created_at", "pk")
    assert first.choice == "right" and first.revision == 1
    assert (first.left_video.public_id, first.right_video.public_id) == (
        public_id(left_url),
        public_id(right_url),
    )
    assert first.outcome_for(first.right_model_id) == "win"
    assert second.choice == "tie"
    assert (second.left_video.public_id, second.right_video.public_id) == (
        public_id(second_left),
        public_id(second_right),
    )
    assert page.problems == []


def test_rubric_item_with_two_videos_is_scored_entirely_by_keyboard(page, live_server, campaign_factory):
    campaign = campaign_factory("rubric", n_prompts=1, n_annotators=1, rubric_layout="together")
    annotator = campaign.annotators.get()
    open_task(page, live_server, annotator, campaign)
    wait_for_media(page, 2)
    shown = [public_id(url) for url in shown_urls(page)]
    assert page.locator("#submit").inner_text() == "Score every dimension: 8 missing"

    # Down the first video's column (each score moves on), then across to the second video.
    for key in ["5", "4", "3", "2"]:
        page.keyboard.press(key)
    assert page.locator("#submit").inner_text() == "Score every dimension: 4 missing"
    for key in ["1", "2", "3"]:
        page.keyboard.press(key)
    page.keyboard.press("f")  # the last dimension row, still on the second video
    page.keyboard.press("4")
    page.keyboard.press("ArrowLeft")  # back to the first video, same row: change its score
    page.keyboard.press("1")
    page.keyboard.press("h")
    assert page.locator("#rubric-overlay").is_visible()
    assert "Instruction following" in page.locator("#rubric-overlay").inner_text()
    page.keyboard.press("Escape")
    assert not page.locator("#rubric-overlay").is_visible()
    assert page.locator("#submit").inner_text() == "Submit (Enter)"
    page.keyboard.press("Enter")
    page.wait_for_selector("#finished:not([hidden])")

    judgment = Judgment.objects.get(annotator=annotator)
    scores = {
        score.video.public_id: [
            score.instruction_following,
            score.motion_smoothness,
            score.physical_plausibility,
            score.aesthetic_appeal,
        ]
        for score in judgment.scores.select_related("video")
    }
    assert scores == {shown[0]: [5, 4, 3, 1], shown[1]: [1, 2, 3, 4]}
    assert {s.shown_position: s.video.public_id for s in judgment.scores.all()} == {0: shown[0], 1: shown[1]}
    assert page.problems == []


def test_full_playback_is_required_before_the_answer_is_taken(page, live_server, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1, require_full_playback=True)
    annotator = campaign.annotators.get()
    open_task(page, live_server, annotator, campaign)
    wait_for_media(page, 2)
    page.keyboard.press("3")
    assert page.locator("#submit").inner_text() == "Watch to the end first: Left, Right"
    page.keyboard.press("Enter")
    assert page.locator("#message").inner_text() == "Watch to the end first: Left, Right"
    assert not Judgment.objects.exists()
    page.keyboard.press("l")  # loop off: stop at the end
    page.keyboard.press("Space")
    page.wait_for_function(
        "document.querySelectorAll('.played-through:not([hidden])').length === 2",
        timeout=int(CLIP_SECONDS * 1000) + 8000,
    )
    assert page.locator("#submit").inner_text() == "Submit (Enter)"
    page.keyboard.press("Enter")
    page.wait_for_selector("#finished:not([hidden])")
    judgment = Judgment.objects.get(annotator=annotator)
    assert judgment.choice == "right"
    # The page reported both videos' play and end, which the server checked before taking the answer.
    reported = set(PlaybackEvent.objects.filter(assignment=judgment.assignment).values_list("slot", "kind"))
    assert reported >= {(0, "play"), (1, "play"), (0, "ended"), (1, "ended")}


def test_the_page_speaks_chinese_for_a_user_who_chose_it_and_switches_back(
    page, live_server, campaign_factory
):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    annotator = campaign.annotators.get()
    save_user_language(annotator, "zh-hans")
    open_task(page, live_server, annotator, campaign)
    wait_for_media(page, 2)
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator("#problem-button").inner_text().startswith("报告问题")
    assert page.locator("#submit").inner_text() == "请选择一个答案（1、2 或 3）"
    assert page.locator("#stage figcaption .label").all_inner_texts() == ["左", "右"]
    assert page.locator("#progress-text").inner_text() == "0 / 1"
    page.keyboard.press("p")
    assert page.locator("#problem-dialog").is_visible()
    assert "视频无法播放或已损坏" in page.locator("#problem-dialog").inner_text()
    page.keyboard.press("Escape")
    assert not page.locator("#problem-dialog").is_visible()
    token = Assignment.objects.get(annotator=annotator, status="claimed").token
    page.keyboard.press("p")
    page.check("#problem-dialog input[value=prompt_unreadable]")
    page.fill("#problem-note", "文字乱码")
    page.click("#problem-dialog button[type=submit]")
    page.wait_for_selector("#finished:not([hidden])")
    assert page.locator("#message").inner_text() == "谢谢：问题已报告，此条目已被搁置。"
    assert page.locator("#finished-text").inner_text().startswith("全部完成")
    report = ProblemReport.objects.get()
    assert (report.assignment.token, report.kind, report.note) == (token, "prompt_unreadable", "文字乱码")

    page.click("button[name=language][value=en]")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_function("document.documentElement.dataset.annotateReady === 'true'")
    assert page.locator("#finished-text").inner_text().startswith("All done")
    assert page.locator("#problem-button").inner_text().startswith("Report a problem")
    assert page.url.endswith(f"/campaigns/{campaign.pk}/annotate/")
    assert page.problems == []


def test_a_refusal_from_the_server_is_shown_as_it_came_and_nothing_is_stored(
    page, live_server, campaign_factory
):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    annotator = campaign.annotators.get()
    open_task(page, live_server, annotator, campaign)
    wait_for_media(page, 2)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#message:not([hidden])")
    assert page.locator("#message").inner_text() == "this campaign is paused; no work is handed out"
    assert not Judgment.objects.exists()
    assert page.locator("#work").is_visible() and page.locator(".choice.selected").count() == 1
