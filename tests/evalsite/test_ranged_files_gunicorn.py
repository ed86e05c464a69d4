"""Byte ranges served by the site's own web server (gunicorn, as scripts/web.sh runs it). A range is
handed to the server as a file positioned at the range's start with its length in Content-Length, which
gunicorn sends with sendfile(2) instead of copying it through Python; the bytes that arrive must be
exactly the range asked for, at every offset, whole file and suffix forms included."""

import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import django
    from django.conf import settings

    settings.configure(
        ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], MEDIA_ROOT=os.environ["CLIP_DIR"], EVALSITE_MEDIA_OFFLOAD=""
    )
    django.setup()

    from django.core.handlers.wsgi import WSGIHandler
    from django.urls import path

    from evalsite.http import ranged_file_response


    def clip(request):
        return ranged_file_response(request, Path(os.environ["CLIP_DIR"]) / "clip.mp4", content_type="video/mp4")


    urlpatterns = [path("clip", clip)]
    application = WSGIHandler()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_clip(tmp_path):
    data = random.Random(7).randbytes(3 * 1024 * 1024 + 12345)  # more than one 256 KiB chunk, odd size
    (tmp_path / "clip.mp4").write_bytes(data)
    (tmp_path / "rangeapp.py").write_text(APP)
    port = _free_port()
    env = {**os.environ, "CLIP_DIR": str(tmp_path), "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "rangeapp:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/clip"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.head(url, timeout=1)
            break
        except requests.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(server.stderr.read().decode()) from None
            time.sleep(0.1)
    yield url, data
    server.terminate()
    server.wait(timeout=10)


def test_gunicorn_sends_exactly_the_range_asked_for(served_clip):
    url, data = served_clip
    size = len(data)
    for header, first, last in [
        ("bytes=0-", 0, size - 1),
        ("bytes=0-0", 0, 0),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=262143-524288", 262143, 524288),
        (f"bytes={size - 10}-{size + 50}", size - 10, size - 1),
        ("bytes=-777", size - 777, size - 1),
    ]:
        # A fresh connection each time, and one request reused after another: a range must not leave the
        # file's position or the connection's state wrong for the next.
        with requests.Session() as session:
            for _ in range(2):
                answer = session.get(url, headers={"Range": header}, timeout=10)
                assert answer.status_code == 206, header
                assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{size}", header
                assert answer.content == data[first : last + 1], header
    whole = requests.get(url, timeout=10)
    assert whole.status_code == 200 and whole.content == data


def test_a_range_is_handed_to_the_server_as_a_file_at_its_start(tmp_path, rf):
    """What lets gunicorn use sendfile: the response streams a file object whose descriptor stands at the
    range's first byte; read through Python instead, it still stops at the range's end."""
    from evalsite.http import ranged_file_response

    data = random.Random(3).randbytes(100_000)
    (tmp_path / "clip.mp4").write_bytes(data)
    response = ranged_file_response(rf.get("/", HTTP_RANGE="bytes=5000-5999"), tmp_path / "clip.mp4")
    filelike = response.file_to_stream
    assert filelike is not None and os.lseek(filelike.fileno(), 0, os.SEEK_CUR) == 5000
    assert response["Content-Length"] == "1000"
    assert b"".join(response.streaming_content) == data[5000:6000]
    response.close()
