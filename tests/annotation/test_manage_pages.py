"""The managers' campaign pages: access, creating a campaign (and every refusal storing nothing), status,
annotators, progress per annotator and per item, gold answers, quality with exclusions, and imports."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotation.models import AnnotatorExclusion, Assignment, Campaign, Item, Judgment, ProblemReport
from annotation.selectors import campaigns_with_progress, item_progress, progress_per_annotator, time_per_item
from generation.models import Category

from .test_quality import MIRRORED, answer

pytestmark = pytest.mark.django_db


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def row_of(html: str, attribute: str, value: str) -> str:
    """The text of the table row marked data-<attribute>="value", tags stripped."""
    match = re.search(rf'<tr data-{attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no row for {value}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def claim(item, annotator, *, expires_in_s=600, status=Assignment.Status.CLAIMED):
    now = timezone.now()
    return Assignment.objects.create(
        campaign=item.campaign,
        item=item,
        annotator=annotator,
        presentation=[0, 1],
        status=status,
        expires_at=now + timedelta(seconds=expires_in_s),
    )


def test_annotators_are_refused_and_visitors_sent_to_log_in(client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    annotator = campaign.annotators.get()
    item = campaign.items.get()
    base = f"/campaigns/{campaign.pk}"
    pages = [
        "/campaigns/",
        "/campaigns/new/",
        f"{base}/",
        f"{base}/items/",
        f"{base}/quality/",
        f"{base}/import/",
    ]
    actions = [
        (f"{base}/status/", {"status": "paused"}),
        (f"{base}/annotators/", {"annotators": [annotator.pk]}),
        (f"{base}/items/{item.pk}/gold/", {"gold_answer": "slot0"}),
        (f"{base}/exclusions/", {"annotator": annotator.pk}),
        (f"{base}/exclusions/{annotator.pk}/delete/", {}),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    client.force_login(annotator)
    for url in pages:
        assert client.get(url).status_code == 403, url
    for url, data in actions:
        assert client.post(url, data).status_code == 403, url
    campaign.refresh_from_db()
    assert campaign.status == "active" and Item.objects.get(pk=item.pk).gold_answer == ""
    assert not AnnotatorExclusion.objects.exists()


@pytest.fixture
def setup(library, annotators):
    """A benchmark of three prompts where Beta lacks prompt 3, two annotators, and the 'annotators' group
    with one active and one inactive member."""
    benchmark, (alpha, beta) = library(["a cat", "a dog", "a bird"], missing=[(1, 3)])
    chosen, member, gone = annotators(3, prefix="person")
    group = Group.objects.create(name="annotators")
    gone.is_active = False
    gone.save()
    group.user_set.add(member, gone)
    form = {
        "name": "Alpha or Beta",
        "kind": "pairwise",
        "benchmark": benchmark.pk,
        "model_a": beta.pk,
        "model_b": alpha.pk,
        "annotators": [chosen.pk],
        "annotator_group": "on",
        "overlap": "k_per_item",
        "judgments_per_item": 2,
        "rubric_layout": "single",
        "repeat_fraction": 0.1,
        "claim_timeout_s": 600,
        "description": "Which video follows the prompt better?",
    }
    return benchmark, (alpha, beta), (chosen, member, gone), form


def test_manager_creates_a_campaign_by_page(admin_client, setup):
    benchmark, (alpha, beta), (chosen, member, gone), form = setup
    response = admin_client.post("/campaigns/new/", form)
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    assert [entry.model for entry in campaign.campaign_models.order_by("position")] == [beta, alpha]
    assert set(campaign.annotators.all()) == {chosen, member}
    assert (campaign.judgments_per_item, campaign.repeat_fraction, campaign.claim_timeout_s) == (2, 0.1, 600)
    assert list(campaign.items.values_list("required_judgments", flat=True)) == [2, 2]
    html = page(admin_client.get(response["Location"]))
    assert (
        f'A: <a href="/models/{beta.pk}/">{beta}</a>' in html
        and f'B: <a href="/models/{alpha.pk}/">{alpha}</a>' in html
    )
    assert "shown as they are (not normalised)" in html
    assert "10% of items shown again" in html
    excluded = re.search(r'<table class="excluded">(.*?)</table>', html, re.S).group(1)
    assert "a bird" in excluded and str(beta) in excluded and "no ready video" in excluded
    listing = page(admin_client.get("/campaigns/"))
    assert "Alpha or Beta" in listing and "0/4 judgments" in listing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"description": "Is Alpha v1 better?"}, "the instructions name a compared model"),
        ({"kind": "seed_preference"}, "a seed_preference campaign compares one model; got 2"),
        ({"model_b": ""}, "a pairwise campaign compares two models; got 1"),
        ({"categories": "other-benchmark"}, "is not in benchmark"),
        ({"repeat_fraction": 0.9}, "Ensure this value is less than or equal to 0.5"),
        ({"claim_timeout_s": 5}, "Ensure this value is greater than or equal to 30"),
        ({"name": "taken"}, "a campaign named &#x27;taken&#x27; already exists"),
        ({"model_a": 999999}, "Select a valid choice"),
    ],
)
def test_a_bad_set_up_by_page_shows_the_message_and_stores_nothing(
    admin_client, setup, change, message, make_benchmark
):
    benchmark, (alpha, beta), _, form = setup
    if change.get("description"):
        change = {"description": f"Is {alpha} better?"}
    if change.get("categories"):
        other = make_benchmark(["x"], slug="other")
        change = {"categories": [Category.objects.create(benchmark=other, name="Animals", position=1).pk]}
    if change.get("name"):
        admin_client.post("/campaigns/new/", {**form, "name": "taken"})
    before = (Campaign.objects.count(), Item.objects.count())
    response = admin_client.post("/campaigns/new/", {**form, **change})
    assert message in page(response)
    assert (Campaign.objects.count(), Item.objects.count()) == before


def test_progress_per_annotator_per_item_and_time(admin_client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=3, n_annotators=3, missing=[(1, 3)])
    Campaign.objects.filter(pk=campaign.pk).update(
        normalise_media=True, normalised_format={"width": 640, "height": 360, "fps": 24, "duration_s": 5}
    )
    a0, a1, a2 = campaign.annotators.order_by("username")
    first, second = campaign.items.order_by("position")
    answer(first, a0, "left", duration_ms=1000)
    answer(second, a0, "right", shown=MIRRORED, duration_ms=3000)
    answer(first, a1, "tie", duration_ms=5000)
    claim(second, a1)  # live
    claim(second, a2, expires_in_s=-60)  # expired: not a live claim
    broken = claim(first, a2, status=Assignment.Status.PROBLEM)
    ProblemReport.objects.create(assignment=broken, kind="video_broken", note="black frames")

    progress = {p.username: p for p in progress_per_annotator(campaign)}
    figures = {
        name: (p.done, p.claimed, p.total, p.problems, p.median_duration_ms) for name, p in progress.items()
    }
    assert figures == {
        a0.username: (2, 0, 2, 0, 2000),
        a1.username: (1, 1, 2, 0, 5000),
        a2.username: (0, 0, 2, 1, None),
    }
    assert progress[a2.username].last_active is not None
    items = {
        i.position: (i.judgments_done, i.required_judgments, i.live_claims, i.problems)
        for i in item_progress(campaign)
    }
    assert items == {1: (2, 3, 0, 1), 2: (1, 3, 1, 0)}
    time = time_per_item(campaign)
    assert (time.n, time.median_ms, time.mean_ms) == (3, 3000, 3000)
    listed = campaigns_with_progress().get(pk=campaign.pk)
    assert (listed.item_count, listed.done_total, listed.required_total) == (2, 3, 6)

    html = page(admin_client.get(f"/campaigns/{campaign.pk}/"))
    assert row_of(html, "annotator", a0.username).startswith(f"{a0.username} 2 0 2 0 0 0 2000 ms")
    assert row_of(html, "annotator", a1.username).startswith(f"{a1.username} 1 1 2 0 0 0 5000 ms")
    assert row_of(html, "annotator", a2.username).startswith(f"{a2.username} 0 0 2 0 0 1 —")
    assert "normalised to 640×360, 24 fps, 5 s" in html
    assert "Over 3 answers: median 3000 ms" in html
    assert "A video does not play or is broken" in html and "black frames" in html
    excluded = re.search(r'<table class="excluded">(.*?)</table>', html, re.S).group(1)
    assert "prompt number 3" in excluded and "Beta" in excluded
    items_html = page(admin_client.get(f"/campaigns/{campaign.pk}/items/"))
    assert row_of(items_html, "item", "1").split(" ms")[0].endswith("2/3 0 0 1 3000")
    assert "Alpha" in row_of(items_html, "item", "2") and "Beta" in row_of(items_html, "item", "2")


def test_the_progress_bar_does_not_overfill(admin_client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=3, judgments_per_item=1)
    a0, a1, _ = campaign.annotators.order_by("username")
    first = campaign.items.order_by("position").first()
    answer(first, a0, "left")
    answer(first, a1, "left")
    listed = campaigns_with_progress().get(pk=campaign.pk)
    assert (listed.done_total, listed.required_total) == (1, 2)
    assert "1/2 judgments" in page(admin_client.get("/campaigns/"))


def test_pause_resume_and_close(admin_client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    url = f"/campaigns/{campaign.pk}/status/"
    for wanted in ("paused", "active", "closed"):
        response = admin_client.post(url, {"status": wanted})
        assert response.status_code == 302
        campaign.refresh_from_db()
        assert campaign.status == wanted
    response = admin_client.post(url, {"status": "active"}, follow=True)
    assert "a closed campaign cannot be made active" in page(response)
    response = admin_client.post(url, {"status": "finished"}, follow=True)
    assert "Select a valid choice" in page(response)
    campaign.refresh_from_db()
    assert campaign.status == "closed"


def test_adding_annotators_to_an_every_annotator_campaign(admin_client, campaign_factory, annotators):
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=2, overlap="every_annotator")
    assert set(campaign.items.values_list("required_judgments", flat=True)) == {2}
    (newcomer,) = annotators(1, prefix="late")
    url = f"/campaigns/{campaign.pk}/annotators/"
    admin_client.post(url, {"annotators": [newcomer.pk]})
    campaign.refresh_from_db()
    assert campaign.annotators.count() == 3 and campaign.judgments_per_item == 3
    assert set(campaign.items.values_list("required_judgments", flat=True)) == {3}
    response = admin_client.post(url, {"annotators": [newcomer.pk]}, follow=True)
    assert "Select a valid choice" in page(response)  # present annotators are not offered again
    assert campaign.annotators.count() == 3
    response = admin_client.post(url, {}, follow=True)
    assert "Choose annotators, or the group." in page(response)
    assert set(campaign.items.values_list("required_judgments", flat=True)) == {3}


def test_gold_answers_by_page(admin_client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=1)
    item = campaign.items.order_by("position").first()
    url = f"/campaigns/{campaign.pk}/items/{item.pk}/gold/"
    response = admin_client.post(url, {"gold_answer": "slot1", "page": "1"})
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/items/?page=1"
    assert Item.objects.get(pk=item.pk).gold_answer == "slot1"
    html = page(admin_client.get(f"/campaigns/{campaign.pk}/items/"))
    assert '<option value="slot1" selected>' in html
    response = admin_client.post(url, {"gold_answer": "left"}, follow=True)
    assert "Select a valid choice" in page(response)
    assert Item.objects.get(pk=item.pk).gold_answer == "slot1"
    rubric = campaign_factory("rubric", n_prompts=1, n_annotators=1)
    rubric_item = rubric.items.first()
    response = admin_client.post(
        f"/campaigns/{rubric.pk}/items/{rubric_item.pk}/gold/", {"gold_answer": "slot0"}, follow=True
    )
    assert "gold answers are for pairwise and A/B items" in page(response)
    assert Item.objects.get(pk=rubric_item.pk).gold_answer == ""
    assert (
        admin_client.post(f"/campaigns/{rubric.pk}/items/{item.pk}/gold/", {"gold_answer": "tie"}).status_code
        == 404
    )
    too_big = "9" * 20  # beyond the database's integers: a 404, not an error
    assert (
        admin_client.post(f"/campaigns/{too_big}/items/{item.pk}/gold/", {"gold_answer": "tie"}).status_code
        == 404
    )
    response = admin_client.post(url, {"gold_answer": "slot0", "page": "²"})
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/items/"


def test_rubric_campaign_pages_and_the_read_only_admin(admin_client, campaign_factory):
    from .test_quality import score

    campaign = campaign_factory("rubric", n_prompts=1, n_annotators=1, rubric_layout="together")
    annotator = campaign.annotators.get()
    item = campaign.items.get()
    judgment = answer(item, annotator, None, duration_ms=700)
    for position, row in enumerate(item.item_videos.select_related("video")):
        score(judgment, row.video, 3 + position, shown_position=position)
    detail = page(admin_client.get(f"/campaigns/{campaign.pk}/"))
    assert "The compared models&#x27; videos together" in detail and "1: <a" in detail and "2: <a" in detail
    quality = page(admin_client.get(f"/campaigns/{campaign.pk}/quality/"))
    assert "Gold accuracy" not in quality and "700 ms" in row_of(quality, "annotator", annotator.username)
    items = page(admin_client.get(f"/campaigns/{campaign.pk}/items/"))
    assert "gold_answer" not in items and "1/3" in row_of(items, "item", "1")
    for model in ("campaign", "item", "judgment", "annotatorexclusion", "problemreport"):
        listing = admin_client.get(f"/admin/annotation/{model}/")
        assert listing.status_code == 200, model
    assert admin_client.get("/admin/annotation/campaign/add/").status_code == 403
    assert "Alpha" in page(admin_client.get(f"/admin/annotation/campaign/{campaign.pk}/change/"))


def test_quality_page_excludes_and_includes_annotators(admin_client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=3, n_annotators=2)
    a0, a1 = campaign.annotators.order_by("username")
    first, second, third = campaign.items.order_by("position")
    Item.objects.filter(pk__in=[first.pk, second.pk]).update(gold_answer="slot0")
    answer(first, a0, "left")  # slot0: right
    answer(second, a0, "left", shown=MIRRORED)  # slot1: wrong
    answer(third, a0, "tie")
    answer(first, a1, "left")
    url = f"/campaigns/{campaign.pk}/quality/"
    html = page(admin_client.get(url))
    assert "0.50 (1/2)" in row_of(html, "annotator", a0.username)
    assert "1.00 (1/1)" in row_of(html, "annotator", a1.username)
    response = admin_client.post(
        f"/campaigns/{campaign.pk}/exclusions/", {"annotator": a0.pk, "reason": "fast clicks"}
    )
    assert response.status_code == 302
    exclusion = AnnotatorExclusion.objects.get()
    assert (exclusion.annotator, exclusion.reason, exclusion.created_by.is_superuser) == (
        a0,
        "fast clicks",
        True,
    )
    assert Judgment.objects.filter(annotator=a0).count() == 3
    row = row_of(page(admin_client.get(url)), "annotator", a0.username)
    assert "excluded" in row and "no: fast clicks" in row and "Include again" in row
    assert "excluded" in row_of(
        page(admin_client.get(f"/campaigns/{campaign.pk}/")), "annotator", a0.username
    )
    response = admin_client.post(f"/campaigns/{campaign.pk}/exclusions/", {"annotator": a0.pk}, follow=True)
    assert "already excluded" in page(response)
    admin_client.post(f"/campaigns/{campaign.pk}/exclusions/{a0.pk}/delete/")
    assert not AnnotatorExclusion.objects.exists()
    outsider = campaign_factory("pairwise", n_prompts=1, n_annotators=1).annotators.get()
    response = admin_client.post(
        f"/campaigns/{campaign.pk}/exclusions/", {"annotator": outsider.pk}, follow=True
    )
    assert "Select a valid choice" in page(response) and not AnnotatorExclusion.objects.exists()


def test_import_page_checks_then_imports(admin_client, campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=1)
    url = f"/campaigns/{campaign.pk}/import/"
    html = page(admin_client.get(url))
    assert "prompt,annotator,left_model,right_model,choice" in html

    def upload(text, **extra):
        return admin_client.post(url, {"file": SimpleUploadedFile("j.csv", text.encode()), **extra})

    header = "prompt,annotator,left_model,right_model,choice\n"
    html = page(upload(header + "1,rater,Alpha,Beta,left\n5,rater,Alpha,Beta,up\n"))
    assert "2 problem(s) found; nothing was imported." in html
    assert "no prompt at position 5" in html and "&#x27;up&#x27; is not one of left, tie, right" in html
    html = page(upload(header + "1,rater,Alpha,Beta,left\n", dry_run="on"))
    assert "Would import 1 judgment(s) from 1 row(s); inactive accounts would be created for rater." in html
    assert Judgment.objects.count() == 0
    html = page(upload(header + "1,rater,Alpha,Beta,left\n"))
    assert "Imported 1 judgment(s)" in html and Judgment.objects.get().source == "import"


def test_annotator_choices_leave_out_managers_and_present_annotators_and_explain_multi_select(
    admin_client, campaign_factory, annotators, django_user_model
):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    (present,) = campaign.annotators.all()
    (newcomer,) = annotators(1, prefix="late")
    django_user_model.objects.create_user("another-manager", password="pw-123456789", is_staff=True)
    detail = page(admin_client.get(f"/campaigns/{campaign.pk}/"))
    offered = re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', detail)
    assert newcomer.username in offered
    assert present.username not in offered and "another-manager" not in offered and "admin" not in offered
    new = page(admin_client.get("/campaigns/new/"))
    assert "another-manager" not in new and present.username in new
    assert new.count("Hold Ctrl") >= 3  # annotators, categories, more models
    # Fields of one kind only carry the kinds they apply to; the page's script hides the others.
    assert re.search(
        r'name="more_models"[^>]*data-kinds="rubric"|data-kinds="rubric"[^>]*name="more_models"', new
    )
    assert "annotation/manage/campaign_form.js" in new


def test_a_long_list_of_excluded_prompts_is_folded_below_the_problem_reports(
    admin_client, campaign_factory, make_benchmark
):
    from annotation.models import ExcludedPrompt

    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    other = make_benchmark([f"left-out prompt {i}" for i in range(240)], slug="many")
    ExcludedPrompt.objects.bulk_create(
        ExcludedPrompt(campaign=campaign, prompt=prompt, reason=ExcludedPrompt.Reason.NO_VIDEO)
        for prompt in other.prompts.all()
    )
    detail = page(admin_client.get(f"/campaigns/{campaign.pk}/"))
    folded = re.search(r'<details class="excluded-prompts"( open)?><summary>([^<]+)</summary>', detail)
    assert folded and folded.group(1) is None and folded.group(2) == "240 prompts left out of this campaign"
    assert detail.index("Problem reports") < detail.index('<details class="excluded-prompts"')
