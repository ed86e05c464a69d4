"""Creating annotator accounts in bulk, with one-time passwords or invite links."""

from __future__ import annotations

import csv
import io
import re
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

ANNOTATORS_GROUP = "annotators"
USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")


class AccountsError(ValueError):
    pass


@dataclass(frozen=True)
class CreatedAccount:
    username: str
    password: str | None  # shown once; None when an invite link is issued instead
    invite_path: str | None


def one_time_password() -> str:
    """A random password that starts with a letter or digit, so that it reads the same in the printed CSV
    (where a leading `-` would be quoted as a would-be formula) and on the command line."""
    while True:
        password = secrets.token_urlsafe(9)
        if password[0].isalnum():
            return password


def parse_usernames_csv(text: str) -> list[tuple[str, str]]:
    """Read `username[,email]` rows (a header row naming `username` is optional). Errors name the line."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if line_no == 1 and cells[0].lower() == "username":
            continue
        username, email = cells[0], (cells[1] if len(cells) > 1 else "")
        if not USERNAME_RE.match(username):
            raise AccountsError(
                f"line {line_no}: {username!r} is not a valid username (letters, digits, @.+-_)"
            )
        if username.lower() in seen:
            raise AccountsError(f"line {line_no}: username {username!r} appears twice")
        seen.add(username.lower())
        rows.append((username, email))
    if not rows:
        raise AccountsError("no usernames found")
    return rows


def invite_path_for(user) -> str:
    """A one-time link to set a password: Django's password-reset token, void once the password is set."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("invite", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)})


@transaction.atomic
def create_annotators(rows: list[tuple[str, str]], *, invite: bool = False) -> list[CreatedAccount]:
    """Create annotator accounts; all or none. Existing usernames are an error, not silently reused."""
    User = get_user_model()
    taken = sorted(User.objects.filter(username__in=[u for u, _ in rows]).values_list("username", flat=True))
    if taken:
        raise AccountsError(f"these usernames already exist: {', '.join(taken)}")
    group, _ = Group.objects.get_or_create(name=ANNOTATORS_GROUP)
    created = []
    for username, email in rows:
        user = User(username=username, email=email, is_staff=False)
        if invite:
            user.set_unusable_password()
            user.save()
            created.append(CreatedAccount(username, None, invite_path_for(user)))
        else:
            password = one_time_password()
            user.set_password(password)
            user.save()
            created.append(CreatedAccount(username, password, None))
        user.groups.add(group)
    return created
