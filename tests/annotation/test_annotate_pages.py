"""The annotator's page and home: who may open them, what they show (the rubric in both languages, the key
legend, a neutral task title) and what they never show (model names, the campaign's name); the page's
script is pointed at the real API."""

import html
import json
import re

import pytest

from annotation.models import RUBRIC_DIMENSIONS, Campaign, Judgment
from annotation.rubric import DIMENSION_KEYS, LEVELS, RUBRIC, rubric_for_display
from tests.campaign_fixtures import ANNOTATOR_PASSWORD, video_shown_at

pytestmark = pytest.mark.django_db

SECRET_MODELS = ("Zephyrion", "Quillmatic")
SECRET_CAMPAIGN = "Zephyrion-vs-Quillmatic March run"


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def page_config(response) -> dict:
    match = re.search(
        r'<script id="annotate-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "the page carries its configuration as a JSON block"
    return json.loads(match[1])


def login(client, user) -> None:
    assert client.login(username=user.username, password=ANNOTATOR_PASSWORD)


@pytest.fixture
def secret_campaign(campaign_factory):
    return campaign_factory(
        "pairwise",
        n_prompts=2,
        n_annotators=1,
        model_names=SECRET_MODELS,
        name=SECRET_CAMPAIGN,
        description="Compare the two clips for overall quality.",
    )


def test_the_page_needs_a_login(client, secret_campaign):
    response = client.get(f"/campaigns/{secret_campaign.pk}/annotate/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/campaigns/")


def test_a_user_who_is_not_an_annotator_of_the_campaign_is_refused_with_a_reason(
    client, secret_campaign, annotators
):
    (outsider,) = annotators(1, prefix="outsider")
    login(client, outsider)
    response = client.get(f"/campaigns/{secret_campaign.pk}/annotate/")
    assert response.status_code == 403
    text = page_text(response)
    assert "You are not an annotator of this task" in text
    assert SECRET_CAMPAIGN not in text and not any(name in text for name in SECRET_MODELS)
    assert client.get("/campaigns/999999/annotate/").status_code == 404


def test_an_annotator_sees_the_rubric_in_both_languages_the_key_legend_and_no_model_or_campaign_name(
    client, secret_campaign
):
    annotator = secret_campaign.annotators.get()
    login(client, annotator)
    response = client.get(f"/campaigns/{secret_campaign.pk}/annotate/")
    assert response.status_code == 200
    text = page_text(response)
    assert f"Task {secret_campaign.pk} — Pairwise comparison" in text
    assert "Compare the two clips for overall quality." in text
    for dimension in RUBRIC:
        assert dimension.title_en in text and dimension.title_zh in text
        for english, chinese in dimension.levels.values():
            assert english in text and chinese in text
    legend = re.search(r'<dl id="key-legend".*?</dl>', text, re.S)[0]
    for keys, meaning in [
        ("1 / ←", "Left is better"),
        ("2 / ↓", "Similar"),
        ("3 / →", "Right is better"),
        ("Enter", "submit"),
        ("Space", "play / pause"),
        (", / .", "one frame back / forward"),
        ("R", "replay from the start"),
        ("H / ?", "show the rubric"),
        ("P", "report a problem"),
    ]:
        assert f"<dt><kbd>{keys}</kbd></dt><dd>{meaning}</dd>" in legend
    assert SECRET_CAMPAIGN not in text
    for secret in SECRET_MODELS:
        assert secret.lower() not in text.lower()


def test_the_english_rubric_keeps_the_reports_wording_and_every_level_has_both_languages():
    assert tuple(d.key for d in RUBRIC) == RUBRIC_DIMENSIONS
    by_key = {d.key: d for d in RUBRIC}
    assert by_key["instruction_following"].levels[5][0] == (
        "The video is fully consistent with the prompt, with all elements and details generated accurately "
        "and complex scenes expressed flawlessly."
    )
    assert (
        by_key["aesthetic_appeal"].levels[1][0]
        == "Unpleasant, without visual appeal, uncomfortable to watch."
    )
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for dimension in RUBRIC:
        assert sorted(dimension.levels) == sorted(LEVELS)
        assert cjk.search(dimension.title_zh) and not cjk.search(dimension.title_en)
        for english, chinese in dimension.levels.values():
            assert english and not cjk.search(english)
            assert len(cjk.findall(chinese)) >= 8, chinese
    english_first = rubric_for_display("en")[0]
    chinese_first = rubric_for_display("zh-hans")[0]
    assert english_first["title"] == "Instruction following" and english_first["other_title"] == "指令遵循"
    assert chinese_first["title"] == "指令遵循" and chinese_first["other_title"] == "Instruction following"
    assert [level["score"] for level in chinese_first["levels"]] == [5, 4, 3, 2, 1]
    assert chinese_first["levels"][0]["text"] == RUBRIC[0].levels[5][1]


def test_a_rubric_task_shows_the_scoring_keys_and_a_preference_task_its_own_labels(client, campaign_factory):
    rubric = campaign_factory("rubric", n_prompts=1, n_annotators=1, rubric_layout="together")
    login(client, rubric.annotators.get())
    response = client.get(f"/campaigns/{rubric.pk}/annotate/")
    text = page_text(response)
    assert f"Task {rubric.pk} — Rubric scoring" in text
    assert "<dt><kbd>a s d f</kbd></dt><dd>choose a dimension (row)</dd>" in text
    assert "<dt><kbd>1 – 5</kbd></dt><dd>score the chosen cell (then moves on)</dd>" in text
    assert 'id="score-grid"' in text and "Left is better" not in text
    config = page_config(response)
    assert [d["key"] for d in config["dimensions"]] == list(RUBRIC_DIMENSIONS)
    assert [d["shortcut"] for d in config["dimensions"]] == list(DIMENSION_KEYS)
    assert config["choices"] == {} and config["paired"] is False

    preference = campaign_factory("seed_preference", n_prompts=1, n_annotators=1)
    login(client, preference.annotators.get())
    text = page_text(client.get(f"/campaigns/{preference.pk}/annotate/"))
    assert f"Task {preference.pk} — Preference" in text
    assert "Prefer left" in text and "No preference" in text and "Prefer right" in text
    assert "Left is better" not in text


def test_a_manager_may_open_the_page_as_a_preview(admin_client, secret_campaign):
    response = admin_client.get(f"/campaigns/{secret_campaign.pk}/annotate/")
    assert response.status_code == 200
    assert "Preview: you are a manager, not an annotator of this task." in page_text(response)


def test_the_pages_script_talks_to_the_real_api_and_an_answer_lands_on_the_video_it_showed(
    client, secret_campaign
):
    annotator = secret_campaign.annotators.get()
    login(client, annotator)
    config = page_config(client.get(f"/campaigns/{secret_campaign.pk}/annotate/"))
    first = client.get(config["api"]["next"]).json()
    assignment = first["assignment"]
    assert first["done"] is False and first["progress"] == {"done": 0, "total": 2}
    assert [v["position"] for v in assignment["videos"]] == [0, 1]
    assert len(first["upcoming"]["videos"]) == 2
    left_url = assignment["videos"][0]["url"]

    answer_url = config["api"]["answer"].replace("{token}", assignment["token"])
    playback_url = config["api"]["playback"].replace("{token}", assignment["token"])
    played = client.post(
        playback_url, {"position": 0, "event": "play", "media_time": 0}, content_type="application/json"
    )
    assert played.status_code == 201
    reply = client.post(answer_url, {"choice": "left"}, content_type="application/json").json()
    assert reply["created"] is True and reply["next"]["progress"]["done"] == 1
    judgment = Judgment.objects.get(annotator=annotator)
    assert judgment.choice == "left" and video_shown_at(left_url) == judgment.left_video

    recent = client.get(config["api"]["recent"]).json()
    assert [a["token"] for a in recent["answers"]] == [assignment["token"]]
    problem_url = config["api"]["problem"].replace("{token}", reply["next"]["assignment"]["token"])
    after_problem = client.post(problem_url, {"kind": "other", "note": "x"}, content_type="application/json")
    assert after_problem.json()["done"] is True


def test_home_lists_the_annotators_tasks_by_neutral_title_with_progress(client, campaign_factory):
    first = campaign_factory(
        "pairwise",
        n_prompts=2,
        n_annotators=1,
        model_names=SECRET_MODELS,
        name=SECRET_CAMPAIGN,
        description="Look at motion first.",
    )
    annotator = first.annotators.get()
    second = campaign_factory("rubric", n_prompts=1, annotators=[annotator], name="Quillmatic rubric")
    closed = campaign_factory("pairwise", n_prompts=1, annotators=[annotator], name="closed one")
    Campaign.objects.filter(pk=closed.pk).update(status=Campaign.Status.CLOSED)
    not_mine = campaign_factory("pairwise", n_prompts=1, n_annotators=1, name="someone else's")
    login(client, annotator)
    text = page_text(client.get("/"))
    assert f"Task {first.pk} — Pairwise comparison" in text
    assert f"Task {second.pk} — Rubric scoring" in text
    assert "Look at motion first." in text
    assert f'href="/campaigns/{first.pk}/annotate/"' in text
    assert f"Task {closed.pk}" not in text and f"Task {not_mine.pk}" not in text
    row = re.search(rf'<tr data-task="{first.pk}">.*?</tr>', text, re.S)[0]
    assert "0 of 2" in row
    assert SECRET_CAMPAIGN not in text and "Quillmatic" not in text and "Zephyrion" not in text


def test_home_without_tasks_says_nothing_is_assigned(client, annotators):
    (person,) = annotators(1, prefix="idle")
    login(client, person)
    assert "Nothing is assigned to you yet" in page_text(client.get("/"))
