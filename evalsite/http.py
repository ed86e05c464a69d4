"""HTTP helpers shared by the apps.

Django's FileResponse answers whole files only; browsers need byte ranges (206) to seek and loop video.
This handles the single-range form browsers send (`bytes=a-b`, `bytes=a-`, `bytes=-n`); a multi-range
request gets the whole file, which RFC 9110 allows.

In production a front server can send the bytes instead (EVALSITE_MEDIA_OFFLOAD): the site still checks
who asks, then answers with an empty response that names the file in `X-Accel-Redirect` (nginx) or
`X-Sendfile` (Apache, lighttpd), and the front server serves it, byte ranges included. The name it gets is
a link under MEDIA_ROOT/offload/ named after the URL the client asked for, never the stored file's own
name: a campaign shows a library video under an id of its own, and the stored name is the video's
library id, which annotators must not learn even from a misconfigured front server.

With offload, every media request still costs a web worker the site's checks. Signed links
(EVALSITE_MEDIA_LINK_SECRET, `MediaLinks`) take those requests off the workers: the annotator API gives each
media URL an expiry and a signature over the expiry, the URL's path and the caller's session cookie, which
nginx's secure_link module checks on its own before it sends the file at offload/<the URL's path>. A link
that fails that check (expired, altered, another session's, no link file) goes to the site, which checks
the caller as it always does, so a failed signature never loses anything."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import get_script_prefix
from django.utils.http import http_date

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024
CACHE_CONTROL = "private, max-age=3600"
OFFLOAD_LINKS = "offload"  # under MEDIA_ROOT
URL_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class _RangeFile:
    """`length` bytes of a file from `start`, as a file object: reads stop at the range's end, and
    `fileno` (positioned at `start`) lets a WSGI server that honours Content-Length send the range with
    sendfile(2) instead of copying it through Python (gunicorn does)."""

    def __init__(self, path: Path, start: int, length: int):
        self.fh = open(path, "rb")
        self.fh.seek(start)
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        data = self.fh.read(self.remaining if size is None or size < 0 else min(size, self.remaining))
        self.remaining -= len(data)
        return data

    def fileno(self) -> int:
        return self.fh.fileno()

    def close(self) -> None:
        self.fh.close()


def ranged_file_response(
    request: HttpRequest, path: Path, *, content_type: str | None = None
) -> HttpResponse:
    """The file at `path` for a request the caller has already allowed: streamed with byte ranges, or
    handed to the front server when EVALSITE_MEDIA_OFFLOAD is set and the file is under MEDIA_ROOT."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise Http404("no such file") from None
    content_type = content_type or mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    offloaded = front_server_response(request, path, content_type)
    if offloaded is not None:
        return offloaded
    size = stat.st_size
    header = request.headers.get("Range", "").strip()
    match = RANGE_RE.match(header) if header else None
    if match and (match[1] or match[2]):
        first, last = match[1], match[2]
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        length = end - start + 1
        response = FileResponse(_RangeFile(path, start, length), status=206, content_type=content_type)
        response.block_size = CHUNK  # where it is copied through Python after all
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(length)
    else:
        response = FileResponse(open(path, "rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = http_date(stat.st_mtime)
    response["Cache-Control"] = CACHE_CONTROL
    return response


def front_server_response(request: HttpRequest, path: Path, content_type: str) -> HttpResponse | None:
    """An empty response telling the front server to send the file, or None to stream it here: offload
    is off, the file is outside MEDIA_ROOT, or the URL has a segment that cannot name a link. The front
    server keeps this response's Content-Type and Cache-Control and answers Range requests itself."""
    mode = settings.EVALSITE_MEDIA_OFFLOAD
    if not mode:
        return None
    media_root = Path(settings.MEDIA_ROOT).absolute()
    try:
        stored = Path(path).absolute().relative_to(media_root)
    except ValueError:
        return None
    link = offload_link(stored, request.path_info)
    if link is None:
        return None
    response = HttpResponse(content_type=content_type)
    if mode == "x-accel-redirect":
        response["X-Accel-Redirect"] = f"{settings.EVALSITE_MEDIA_OFFLOAD_PREFIX}/{quote(link.as_posix())}"
    else:
        response["X-Sendfile"] = str(media_root / link)
    response["Cache-Control"] = CACHE_CONTROL
    return response


def offload_link(stored: Path, url_path: str) -> Path | None:
    """`offload/<url_path>` under MEDIA_ROOT, made to lead to `stored` (a path under MEDIA_ROOT), or None
    when `stored` climbs out of MEDIA_ROOT or a segment of the URL's path cannot name a link."""
    segments = url_path.strip("/").split("/")
    if stored.is_absolute() or ".." in stored.parts or not all(URL_SEGMENT_RE.match(s) for s in segments):
        return None
    return link_under_url(Path(settings.MEDIA_ROOT).absolute(), stored, segments)


def link_under_url(media_root: Path, stored: Path, segments: list[str]) -> Path:
    """`offload/<the URL's path>`, under MEDIA_ROOT: a relative symbolic link to the stored file (made or
    repointed atomically, so concurrent requests and a URL whose file changed are both safe). A link
    rather than a copy: the stored file stays the one copy, and a deleted file's link leads nowhere."""
    relative = Path(OFFLOAD_LINKS, *segments)
    link = media_root / relative
    target = os.path.relpath(media_root / stored, link.parent)
    try:
        if os.readlink(link) == target:
            return relative
    except OSError:
        pass
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{secrets.token_hex(6)}")
    os.symlink(target, temporary)
    os.replace(temporary, link)
    return relative


class MediaLinks:
    """Signed links for one session: `links(url, stored)` is `url` (a media path the site serves) with
    `?e=<expiry>&t=<signature>`, after making sure offload/<the URL's path> under MEDIA_ROOT leads to
    `stored` (the file's path under MEDIA_ROOT) for the front server.

    The signature is nginx's secure_link_md5 of "<expiry><URL path><session key> <secret>" (base64url,
    unpadded), so only a request that carries the session cookie the link was made for passes nginx's
    check. The expiry is rounded up to a quarter of the lifetime, so the URLs of one item stay the same
    for a while (the page preloads the next item's clips by URL) and a link lives between one and 1.25
    lifetimes. Until then it works for that session even after logout or removal from the campaign;
    afterwards the site decides again."""

    def __init__(self, session_key: str, *, secret: str, ttl_s: int, now: float | None = None):
        self.session_key, self.secret = session_key, secret
        step = max(ttl_s // 4, 1)
        self.expires = -(-(int(time.time() if now is None else now) + ttl_s) // step) * step

    def signature(self, path: str) -> str:
        signed = f"{self.expires}{path}{self.session_key} {self.secret}".encode()
        digest = hashlib.md5(signed).digest()  # the algorithm of nginx's secure_link_md5
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def __call__(self, url: str, stored: str) -> str:
        prefix = get_script_prefix()
        if not stored or not url.startswith(prefix) or offload_link(Path(stored), url[len(prefix) :]) is None:
            return url  # the site serves it, as without signing
        return f"{url}?e={self.expires}&t={self.signature(url)}"


def media_links(request: HttpRequest) -> MediaLinks | None:
    """Signed links for the caller's session, or None: signing is off or the request has no session."""
    secret = settings.EVALSITE_MEDIA_LINK_SECRET
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if not secret or not session_key:
        return None
    return MediaLinks(session_key, secret=secret, ttl_s=settings.EVALSITE_MEDIA_LINK_TTL_S)


NGINX_LOCATIONS = Path(__file__).resolve().parents[1] / "scripts" / "nginx-locations.conf"


def nginx_locations(*, media_root: Path | str, static_root: Path | str, site: str, link_secret: str) -> str:
    """scripts/nginx-locations.conf (the README's front-server set-up) with its @NAMES@ filled in."""
    text = NGINX_LOCATIONS.read_text()
    values = {"MEDIA_ROOT": str(media_root).rstrip("/"), "STATIC_ROOT": str(static_root).rstrip("/")}
    values |= {"SITE": site, "MEDIA_LINK_SECRET": link_secret}
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text
