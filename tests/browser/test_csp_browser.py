"""Under the site's Content-Security-Policy, Chromium reports no violation on the main pages: login, the
manager's home and jobs, results and leaderboard with their plotly plots drawn, the Swagger UI page, and
the annotator's page playing videos."""

import os
from pathlib import Path

import pytest

from tests.browser.test_annotate_browser import ANNOTATOR_PASSWORD
from tests.browser.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.metrics.human.test_results import build_pairwise, empty_cache, make_world

__all__ = ["empty_cache"]  # the autouse fixture, shared

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Recorded in the page itself: a policy violation fires this event whether or not it reaches the console.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} in ${e.sourceFile}`));
"""


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.add_init_script(RECORD_VIOLATIONS)
        page.problems = []
        page.on(
            "console",
            lambda m: page.problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.documents = []  # (url, policy) of every page loaded: the policy must be in force on each
        page.on(
            "response",
            lambda r: (
                page.documents.append((r.url, r.headers.get("content-security-policy")))
                if r.request.resource_type == "document"
                else None
            ),
        )
        yield page
        browser.close()


def assert_no_violation(page, where: str) -> None:
    violations = page.evaluate("window.__cspViolations || []")
    assert not violations and not page.problems, (where, violations, page.problems)
    unprotected = [url for url, policy in page.documents if not policy or "script-src 'self'" not in policy]
    assert page.documents and not unprotected, (where, unprotected)


def test_manager_pages_and_plots_keep_to_the_policy(page, live_server, django_user_model):
    world = make_world(django_user_model)
    campaign = build_pairwise(world)
    django_user_model.objects.create_superuser("boss", password="pw-123456789")
    page.goto(f"{live_server.url}/accounts/login/")
    assert page.evaluate("document.querySelector('meta') !== null")
    assert_no_violation(page, "login")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert_no_violation(page, "home")
    for path in ("/jobs/", "/benchmarks/", "/campaigns/", "/metrics/"):
        page.goto(live_server.url + path)
        assert_no_violation(page, path)
    for path in (f"/metrics/results/campaigns/{campaign.pk}/?rounds=200", "/metrics/leaderboard/?rounds=200"):
        page.goto(live_server.url + path)
        page.wait_for_selector("[data-plot] .main-svg", timeout=20000)  # plotly drew
        page.wait_for_timeout(300)
        assert_no_violation(page, path)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20000)  # Swagger UI read the schema
    page.wait_for_timeout(300)
    assert_no_violation(page, "/api/docs/")


def test_the_annotator_page_keeps_to_the_policy(page, live_server, campaign_factory):
    # Waits use selectors and page.evaluate: wait_for_function would evaluate a string, which the policy
    # rightly refuses.
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=1)
    page.goto(f"{live_server.url}/accounts/login/?next=/campaigns/{campaign.pk}/annotate/")
    page.fill("input[name=username]", campaign.annotators.get().username)
    page.fill("input[name=password]", ANNOTATOR_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("html[data-annotate-ready=true]", state="attached", timeout=15000)
    ready = "Array.from(document.querySelectorAll('#stage video')).filter((v) => v.readyState >= 2).length"
    for _ in range(150):
        if page.evaluate(ready) == 2:
            break
        page.wait_for_timeout(100)
    assert page.evaluate(ready) == 2, page.problems
    page.keyboard.press("Space")
    page.wait_for_timeout(500)
    assert_no_violation(page, "annotate")
