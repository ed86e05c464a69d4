"""Bulk annotator accounts: passwords printed once, invite links that work once, errors by line."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from evalsite.accounts import AccountsError, create_annotators, parse_usernames_csv

pytestmark = pytest.mark.django_db


def test_command_creates_annotators_and_prints_working_passwords(tmp_path, client):
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("username,email\nalice,alice@example.org\nbob,\n", encoding="utf-8")
    out = io.StringIO()
    call_command("create_annotators", str(csv_path), stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert lines[0] == "username,password" and len(lines) == 3
    passwords = dict(line.split(",", 1) for line in lines[1:])
    alice = get_user_model().objects.get(username="alice")
    assert (
        not alice.is_staff
        and alice.groups.filter(name="annotators").exists()
        and alice.email == "alice@example.org"
    )
    assert client.login(username="alice", password=passwords["alice"])


def test_existing_username_creates_nobody(tmp_path):
    get_user_model().objects.create_user("bob", password="x")
    with pytest.raises(AccountsError, match="already exist: bob"):
        create_annotators([("carol", ""), ("bob", "")])
    assert not get_user_model().objects.filter(username="carol").exists()


def test_bad_csv_lines_are_named():
    with pytest.raises(AccountsError, match="line 3: 'bad name' is not a valid username"):
        parse_usernames_csv("username\nok\nbad name\n")
    with pytest.raises(AccountsError, match="line 2: username 'Ann' appears twice"):
        parse_usernames_csv("ann\nAnn\n")


def test_command_reports_errors_as_command_error(tmp_path):
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CommandError, match="no usernames found"):
        call_command("create_annotators", str(csv_path))


def test_invite_link_sets_a_password_once(client):
    (account,) = create_annotators([("dora", "")], invite=True)
    assert account.password is None
    response = client.get(account.invite_path, follow=True)
    assert response.status_code == 200 and b"Choose your password" in response.content
    form_url = response.redirect_chain[-1][0]
    response = client.post(
        form_url, {"new_password1": "a-long-Passphrase-9", "new_password2": "a-long-Passphrase-9"}
    )
    assert response.status_code == 302
    assert client.login(username="dora", password="a-long-Passphrase-9")
    client.logout()
    again = client.get(account.invite_path, follow=True)
    assert b"has been used or has expired" in again.content


def test_admin_page_creates_annotators(admin_client):
    response = admin_client.post("/admin/auth/user/create-annotators/", {"usernames": "erin\nfrank\n"})
    assert response.status_code == 200
    assert (
        b"erin" in response.content
        and get_user_model().objects.filter(username__in=["erin", "frank"]).count() == 2
    )
