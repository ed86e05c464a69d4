"""Login throttling, by django-axes: failed logins are counted per username and client address, and after
`AXES_FAILURE_LIMIT` failures that pair is locked out for `AXES_COOLOFF_TIME`. The login form (site and
admin) answers a locked-out attempt with the lockout page (429); HTTP basic auth on the API answers 429
with the same message as JSON. `authenticate()` without a web request (the shell, a command, the test
client's `login()`) is no web login attempt and is not throttled."""

from __future__ import annotations

import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_credentials, get_lockout_message
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled


class WebLoginThrottleBackend(AxesStandaloneBackend):
    """Refuses a locked-out web login; logs no one in itself (ModelBackend, after it, does)."""

    def authenticate(self, request, username: str | None = None, password: str | None = None, **kwargs: Any):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class ThrottledBasicAuthentication(BasicAuthentication):
    """DRF's basic auth, answering 429 (not 401) while the username and address are locked out."""

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except AuthenticationFailed:
            if request is not None and not AxesProxyHandler.is_allowed(request, get_credentials(userid)):
                cool_off = get_cool_off(request)
                raise Throttled(
                    wait=cool_off.total_seconds() if cool_off else None, detail=str(get_lockout_message())
                ) from None
            raise


def cool_off_minutes(request: HttpRequest) -> int:
    cool_off = get_cool_off(request)
    return math.ceil(cool_off.total_seconds() / 60) if cool_off else 0


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The lockout page (AXES_LOCKOUT_CALLABLE), in the site's layout, with status 429."""
    return render(request, "registration/locked_out.html", {"minutes": cool_off_minutes(request)}, status=429)
