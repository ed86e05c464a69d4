"""HTTP helpers shared by the apps.

Django's FileResponse answers whole files only; browsers need byte ranges (206) to seek and loop video.
This handles the single-range form browsers send (`bytes=a-b`, `bytes=a-`, `bytes=-n`); a multi-range
request gets the whole file, which RFC 9110 allows. In production a front server can take this over."""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.utils.http import http_date

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


class _RangeFile:
    def __init__(self, path: Path, start: int, length: int):
        self.fh = open(path, "rb")
        self.fh.seek(start)
        self.remaining = length

    def __iter__(self):
        while self.remaining > 0:
            data = self.fh.read(min(CHUNK, self.remaining))
            if not data:
                break
            self.remaining -= len(data)
            yield data

    def close(self):
        self.fh.close()


def ranged_file_response(
    request: HttpRequest, path: Path, *, content_type: str | None = None
) -> HttpResponse:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise Http404("no such file") from None
    size = stat.st_size
    content_type = content_type or mimetypes.guess_type(str(path))[0] or "application/octet-stream"
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
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(length)
    else:
        response = FileResponse(open(path, "rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = http_date(stat.st_mtime)
    response["Cache-Control"] = "private, max-age=3600"
    return response
