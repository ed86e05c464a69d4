"""Logins are throttled (django-axes): the login form and HTTP basic auth lock a username out from an
address after the failure limit, with a clear 429, never a 500. Passwords are checked for similarity to the
username and for being all digits; people change their own password on a page linked from the top bar."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def low_limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def manager(django_user_model):
    return django_user_model.objects.create_user(
        "boss", email="boss.horseman@example.org", password="right-horse-battery", is_staff=True
    )


def login(client, password: str):
    return client.post("/accounts/login/", {"username": "boss", "password": password})


def basic(client, password: str):
    token = base64.b64encode(f"boss:{password}".encode()).decode()
    return client.get("/api/jobs/", HTTP_AUTHORIZATION=f"Basic {token}")


def test_the_login_form_locks_out_after_the_limit_even_for_the_right_password(client, manager):
    for _ in range(2):
        response = login(client, "wrong")
        assert response.status_code == 200 and "didn" in response.content.decode()
    third = login(client, "wrong")
    assert third.status_code == 429
    page = third.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page and 'class="topbar"' in page
    right = login(client, "right-horse-battery")
    assert right.status_code == 429 and "_auth_user_id" not in client.session


def test_another_username_or_a_success_before_the_limit_is_not_locked(client, manager, django_user_model):
    django_user_model.objects.create_user("other", password="other-horse-battery")
    login(client, "wrong")
    login(client, "wrong")
    assert login(client, "right-horse-battery").status_code == 302  # a success resets the count
    client.logout()
    for _ in range(2):
        assert login(client, "wrong").status_code == 200
    ok = client.post("/accounts/login/", {"username": "other", "password": "other-horse-battery"})
    assert ok.status_code == 302


def test_basic_auth_on_the_api_is_throttled_with_a_clear_429(client, manager):
    assert basic(client, "right-horse-battery").status_code == 200
    for _ in range(2):
        assert basic(client, "wrong").status_code in (401, 403)  # a plain failure, as before
    locked = basic(client, "wrong")
    assert locked.status_code == 429 and "locked" in locked.json()["detail"].lower()
    again = basic(client, "right-horse-battery")
    assert again.status_code == 429 and int(again["Retry-After"]) == 15 * 60


def test_password_change_page_is_linked_and_validates(client, manager):
    client.force_login(manager)
    home = client.get("/").content.decode()
    assert 'href="/accounts/password/"' in home
    page = client.get("/accounts/password/")
    assert page.status_code == 200 and 'class="topbar"' in page.content.decode()

    def change(new: str):
        return client.post(
            "/accounts/password/",
            {"old_password": "right-horse-battery", "new_password1": new, "new_password2": new},
        )

    numeric = change("4839201756").content.decode()
    assert "entirely numeric" in numeric
    similar = change("horseman1").content.decode()
    assert "too similar to the email address" in similar
    done = change("a-much-better-one-7")
    assert done.status_code == 302 and done["Location"] == "/accounts/password/done/"
    manager.refresh_from_db()
    assert manager.check_password("a-much-better-one-7")
    assert "Password changed" in client.get("/accounts/password/done/").content.decode()
