"""What the API and the pages accept from a request, checked in one place: ids and numbers in the query
string, page limits, JSON bodies, and the errors a request can cause in the database.

Every list endpoint and site list page reads its filters through `parse_int`, `parse_id`, `parse_uuid`
and `parse_limit`; a value that is not what the parameter expects (not a number, out of the range the
database can store) is a 400 that names the parameter, never a 500. The API's pagination, JSON parser and
exception handler (configured in settings.REST_FRAMEWORK) apply the same rules to every endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions, pagination, parsers, status
from rest_framework.response import Response

# The widest integer every supported database stores (a 64-bit signed BIGINT; ids are at most this).
DB_INT_MAX = 2**63 - 1
MAX_PAGE_SIZE = 1000


class QueryError(exceptions.ValidationError):
    """A query parameter that cannot be used; `detail` is {parameter: [message]}."""

    def __init__(self, name: str, message: str):
        super().__init__({name: [message]})
        self.parameter = name
        self.message = message


def _raw(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def parse_int(
    params: Mapping[str, Any],
    name: str,
    *,
    minimum: int = -DB_INT_MAX,
    maximum: int = DB_INT_MAX,
    default: int | None = None,
) -> int | None:
    """The whole number `params[name]` (absent or blank: `default`), within [minimum, maximum]."""
    raw = _raw(params, name)
    if raw is None:
        return default
    digits = raw[1:] if raw[:1] in "+-" else raw
    # isdecimal() and an ASCII check: int() also accepts "²"-like digits, "1_000" and other scripts' digits
    if not (digits.isascii() and digits.isdecimal()) or len(digits) > 20:
        raise QueryError(name, f"expected a whole number, got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise QueryError(name, f"must be between {minimum} and {maximum}")
    return value


def parse_id(params: Mapping[str, Any], name: str) -> int | None:
    """A row's id (a positive whole number a database can store), or None when absent or blank."""
    try:
        return parse_int(params, name, minimum=1, maximum=DB_INT_MAX)
    except QueryError:
        raise QueryError(name, f"give the id (a whole number from 1 to {DB_INT_MAX})") from None


def parse_uuid(value: str | Mapping[str, Any], name: str = "id") -> uuid.UUID | None:
    """A UUID given directly or as `value[name]`; None when absent."""
    raw = _raw(value, name) if isinstance(value, Mapping) else (str(value).strip() or None)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise QueryError(name, f"expected a UUID, got {raw[:40]!r}") from None


def parse_limit(
    params: Mapping[str, Any], name: str = "limit", *, default: int, maximum: int = MAX_PAGE_SIZE
) -> int:
    """A page size between 1 and `maximum`; absent: `default`."""
    value = parse_int(params, name, minimum=1, maximum=maximum, default=default)
    assert value is not None
    return value


def parse_choice(params: Mapping[str, Any], name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    raw = _raw(params, name)
    if raw is not None and raw not in choices:
        raise QueryError(name, f"expected one of {', '.join(choices)}")
    return raw


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's limit/offset pagination, with the limit capped and bad values refused (DRF ignores them)."""

    max_limit = MAX_PAGE_SIZE

    def get_limit(self, request) -> int:
        default = self.default_limit or MAX_PAGE_SIZE
        return parse_limit(
            request.query_params, self.limit_query_param, default=default, maximum=self.max_limit
        )

    def get_offset(self, request) -> int:
        value = parse_int(request.query_params, self.offset_query_param, minimum=0, default=0)
        assert value is not None
        return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested deeper than Python's recursion limit is a 400, not a crash."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply") from None


def protected_message(error: ProtectedError) -> str:
    objects = list(error.protected_objects)[:5]
    names = sorted({type(o)._meta.verbose_name for o in objects})
    return f"this is in use ({', '.join(names)}) and cannot be deleted: {', '.join(str(o) for o in objects)}"


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus: a delete blocked by a reference is a 409 (not a 500); a JSON body nested too
    deep for the parser (any parser) is a 400."""
    if isinstance(exc, ProtectedError):
        return Response({"detail": protected_message(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, RecursionError):
        return Response({"detail": "the request is nested too deeply"}, status=status.HTTP_400_BAD_REQUEST)
    from rest_framework.views import exception_handler as drf_exception_handler  # it imports this module

    return drf_exception_handler(exc, context)


FORM_OVERHEAD_BYTES = 1024 * 1024  # the multipart envelope and the other fields of an upload form


class RequestSizeMiddleware:
    """Refuse a request whose declared Content-Length is over the largest upload (EVALSITE_MAX_UPLOAD_MB)
    with a 413 before its body is read, so nothing is written to disk. It sits before the CSRF check,
    which would read the body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.EVALSITE_MAX_VIDEO_BYTES + FORM_OVERHEAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0  # Django's own parsing treats a malformed length as no body
        if declared > limit:
            message = (
                f"the request is {declared / 2**20:.1f} MiB, over the limit of "
                f"{settings.EVALSITE_MAX_VIDEO_BYTES / 2**20:.0f} MiB per file (EVALSITE_MAX_UPLOAD_MB)"
            )
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class QueryErrorMiddleware:
    """On the site's pages (not the API, whose views answer JSON), a bad query parameter is a 400 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, QueryError):
            context = {"parameter": exception.parameter, "message": exception.message}
            return render(request, "evalsite/bad_request.html", context, status=400)
        return None
