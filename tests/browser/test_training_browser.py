"""A training run's page in Chromium: the local plotly and the curves module draw a chart per figure with the
train curve and, where held out, the validation one, under the site's Content-Security-Policy."""

import pytest

from tests.browser.test_csp_browser import assert_no_violation, page  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_run_page_draws_train_and_validation_curves(page, live_server, django_user_model):  # noqa: F811
    from generation.services import create_video_model
    from preference.models import PreferenceExport, TrainingRun
    from preference.training_runs import record_step, record_warning

    export = PreferenceExport.objects.create(
        name="drawn", version=1, status=PreferenceExport.Status.READY, folder="exports/drawn/v1"
    )
    model = create_video_model(name="Drawn", version="base")
    run = TrainingRun.objects.create(
        kind=TrainingRun.Kind.VIDEO_DPO,
        export=export,
        export_sha256="0" * 64,
        base_model=model,
        status=TrainingRun.Status.RUNNING,
        folder="training/run-drawn",
    )
    for step in (1, 2, 3):
        record_step(run, step, {"loss": 0.7 - 0.1 * step, "implicit_accuracy": 0.5 + 0.1 * step})
    record_step(run, 2, {"implicit_accuracy": 0.75, "pairs": 4.0}, "validation")
    record_warning(run, 3, "the chosen error keeps rising with the rejected one")

    django_user_model.objects.create_superuser("boss", password="pw-123456789")
    page.goto(f"{live_server.url}/accounts/login/?next=/preference/training/{run.pk}/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_selector('[data-figure="implicit_accuracy"] .main-svg', timeout=20000)
    traces = page.evaluate(
        "Array.from(document.querySelectorAll('#training-curves [data-figure]'))"
        ".map((div) => [div.dataset.figure, div.data.map((t) => [t.name, t.x.length])])"
    )
    assert sorted(traces) == [
        ["implicit_accuracy", [["train", 3], ["validation", 1]]],
        ["loss", [["train", 3]]],
    ]
    assert page.is_visible("#training-warnings") and page.is_hidden("#training-curves-empty")
    assert_no_violation(page, "training run")
