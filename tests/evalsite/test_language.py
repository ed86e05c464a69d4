"""The UI language is chosen per user: stored in UserSettings, activated on every request after login
(whatever the browser asks for), and the Chinese pages render from the compiled catalogue."""

import html

import pytest
from django.test import Client

from annotation.models import Campaign
from evalsite.middleware import LanguageError, save_user_language
from evalsite.models import UserSettings

pytestmark = pytest.mark.django_db

PASSWORD = "pw-language-1"


@pytest.fixture
def person(django_user_model):
    return django_user_model.objects.create_user("lin", password=PASSWORD)


@pytest.fixture
def task(person, make_benchmark):
    """A campaign the person annotates; the pages below need no items for what they test."""
    campaign = Campaign.objects.create(
        name="ModelNameInTitle vs Other", kind=Campaign.Kind.PAIRWISE, benchmark=make_benchmark(["一只猫"])
    )
    campaign.annotators.add(person)
    return campaign


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def test_choosing_a_language_stores_it_and_goes_back(client, person):
    client.force_login(person)
    response = client.post("/campaigns/language/", {"language": "zh-hans", "next": "/jobs/?x=1"})
    assert response.status_code == 302 and response["Location"] == "/jobs/?x=1"
    assert UserSettings.objects.get(user=person).language == "zh-hans"
    assert response.cookies["django_language"].value == "zh-hans"
    response = client.post("/campaigns/language/", {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == "/"
    assert UserSettings.objects.get(user=person).language == "en"


def test_an_unknown_language_is_refused_with_a_reason_and_nothing_changes(client, person):
    save_user_language(person, "en")
    client.force_login(person)
    response = client.post("/campaigns/language/", {"language": "fr", "next": "/"})
    assert response.status_code == 400
    assert "Unknown language 'fr'; choose one of: en, zh-hans." in response.content.decode()
    assert UserSettings.objects.get(user=person).language == "en"
    with pytest.raises(LanguageError):
        save_user_language(person, "")
    assert client.get("/campaigns/language/").status_code == 405


def test_choosing_a_language_needs_a_login(client):
    response = client.post("/campaigns/language/", {"language": "zh-hans"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not UserSettings.objects.exists()


def test_logging_in_from_a_fresh_browser_shows_the_stored_language(person, task):
    save_user_language(person, "zh-hans")
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")  # a browser that asks for English, with no cookie
    login_page = text_of(browser.get("/accounts/login/"))
    assert "Log in" in login_page and "登录" not in login_page
    home = browser.post("/accounts/login/", {"username": "lin", "password": PASSWORD}, follow=True)
    text = text_of(home)
    assert '<html lang="zh-hans">' in text
    assert "我的工作" in text and "My work" not in text
    assert f"任务 {task.pk} — 成对比较" in text
    assert "退出登录" in text
    assert "ModelNameInTitle" not in text


def test_the_annotator_page_renders_in_chinese_from_the_catalogue(client, person, task):
    save_user_language(person, "zh-hans")
    client.force_login(person)
    text = text_of(client.get(f"/campaigns/{task.pk}/annotate/"))
    for chinese in [
        "报告问题",
        "评分标准",
        "快捷键",
        "左边更好",
        "差不多",
        "右边更好",
        "从头重播",
        "提交（Enter）",
    ]:
        assert chinese in text, chinese
    assert "Report a problem" not in text and "Left is better" not in text
    # The rubric shows Chinese first, English second.
    assert text.index("指令遵循") < text.index("Instruction following")
    # The script's own texts come translated too.
    assert '"choose_answer": "\\u8bf7' in client.get(f"/campaigns/{task.pk}/annotate/").content.decode()


def test_a_stored_language_wins_over_the_browser_and_no_choice_follows_the_browser(person, task):
    browser = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    browser.force_login(person)
    assert "我的工作" in text_of(browser.get("/"))  # nothing stored: the browser's language
    save_user_language(person, "en")
    text = text_of(browser.get("/"))
    assert "My work" in text and "我的工作" not in text


def _settings_queries(client, url: str) -> tuple[int, list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        status = client.get(url).status_code
    return status, [q["sql"] for q in queries if q["sql"].startswith('SELECT "evalsite_usersettings"')]


def test_each_request_reads_the_user_with_their_language_in_one_query(client, person, task):
    """Every request of a signed-in person (media and API included) reads who they are and their language:
    one query for both, and the stored language still wins over the browser's."""
    save_user_language(person, "zh-hans")
    client.force_login(person)
    status, apart = _settings_queries(client, "/")
    assert status == 200 and apart == []
    assert "我的工作" in text_of(client.get("/", HTTP_ACCEPT_LANGUAGE="en"))
    # Someone who never chose a language: nothing to read apart either, and the browser's choice holds.
    other = type(person).objects.create_user("no-choice", password=PASSWORD)
    task.annotators.add(other)
    client.force_login(other)
    status, apart = _settings_queries(client, "/")
    assert status == 200 and apart == []
    assert "我的工作" in text_of(client.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    assert "My work" in text_of(client.get("/", HTTP_ACCEPT_LANGUAGE="en"))


def test_a_session_signed_in_through_djangos_own_backend_still_works(client, person, task):
    """Sessions made before the site's backend existed name Django's ModelBackend; they stay signed in,
    and their language is still read (apart, as before)."""
    save_user_language(person, "zh-hans")
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    status, apart = _settings_queries(client, "/")
    assert status == 200 and len(apart) == 1
    assert "我的工作" in text_of(client.get("/", HTTP_ACCEPT_LANGUAGE="en"))
