"""Load test of the annotator API with the media an annotator's browser streams: many annotators
claiming and answering at once, through the site's own web server on PostgreSQL, on loopback only.

What it does:
1. Creates a scratch PostgreSQL database (`--database-url`, default
   postgres://postgres@127.0.0.1:5432/evalsite_annotation_load; its name must contain "load", and it is
   dropped first and at the end unless `--keep-db`), migrates it, and builds a pairwise campaign of
   `--items` items (`--judgments-per-item` each) and `--annotators` annotator accounts. The videos point
   at `--clips` stand-in files of about `--clip-kb` KiB each (random bytes: the server does not look
   inside a file it streams) and posters of `--poster-kb` KiB.
2. Starts the site as `make serve` does, through scripts/web.sh (gunicorn on evalsite.wsgi, WEB_WORKERS
   sync workers: `--workers`, default 2, as in `make serve`; `--threads` above 1 makes them threaded),
   on that database; or, with `--url`, uses a site that is already running on the database named by
   `--database-url`. With `--front-server nginx` the client talks to an nginx in front of it
   (scripts/nginx-locations.conf) and the site hands media to nginx (EVALSITE_MEDIA_OFFLOAD=
   x-accel-redirect); it also signs the media URLs it gives (EVALSITE_MEDIA_LINK_SECRET, a new secret per
   run), so nginx sends those files without asking the site, unless `--unsigned-links`.
3. Every simulated annotator logs in through the login page (timed apart), then, for `--seconds`, drives
   the API as the annotator page does: GET /api/annotate/<campaign>/next/ when the page opens, then,
   only where the campaign requires full playback (`--full-playback`), a `play` playback event (POST
   .../assignments/<token>/playback/) for each video shown, the think time, an `ended` event for each
   video; then POST .../assignments/<token>/answer/ with a random choice, whose
   reply carries the next item (GET next again only when it carries none). `--flow every-next` also asks
   GET next for every item: one more request per judgment than people make. One thread per annotator,
   one API request in flight each, so the concurrency is fixed at `--annotators` (or `--concurrency`, if
   lower); every request has a `--timeout`. With no `--think-ms` (the default) this is a stress test:
   latency is then mostly queueing (Little's law: annotators / requests per second); with `--think-ms`,
   annotators also start spread over one think time, as people do (`--think-ms 10000`: an answer every 5
   to 15 s).
   Meanwhile each annotator's "browser" fetches what the annotator page fetches, over
   `--media-connections` connections of its own, without holding up the answers: the poster and the
   clip of every video on screen that was not preloaded (`Range: bytes=0-`, as a <video> element asks,
   read to the end; a browser that holds the whole clip loops and seeks in it without asking again; a
   preloaded clip shows its first frame, so the page asks for no poster for it),
   `--seeks` ranged reads of 256 KiB at a random offset in each clip on screen (jumps its buffer did not
   hold; none by default), and the clips that `next` lists under `upcoming` (at most 8, as the page
   does). `--no-media` leaves media out.
4. Stops the servers (also on errors or Ctrl-C), then checks the database: every judgment acknowledged
   with 200 is stored with the acknowledged choice (none lost), no judgment is stored that was not
   acknowledged (requests that failed without an answer are counted apart), no assignment, annotator/item
   pair or item holds more judgments than allowed (none duplicated); and every media answer had the
   status and the number of bytes its request called for, without Last-Modified or ETag.

Prints judgments per second, p50/p95/p99 latency of "next item", "submit" and "playback" against the
goal (p99 under 100 ms) as the client saw it and, with `--front-server nginx`, as nginx timed it (its
access log's $request_time: the site's answer without the delays of this client, whose hundreds of
threads share one interpreter with the media they read), the media streamed (requests, MB, time to
first byte and to the last byte of a clip), status-code counts, the checks, and the ratio of the measured rate to what `--annotators` real people
need (one answer every `--human-seconds` each). Exits non-zero on a 5xx, a lost or duplicated judgment,
a wrong media answer, or a failed check. The client runs on the same machine as the site and shares its
CPU, so on a small machine the figures are pessimistic; `--client-nice 10` lowers the client's priority
below the servers it started (PostgreSQL keeps its own), so its hundreds of threads use what CPU the site
leaves, as browsers on other machines would.

Examples:
    .venv/bin/python perf/annotation_load.py --annotators 20 --seconds 10                    # quick check
    .venv/bin/python perf/annotation_load.py --annotators 200 --seconds 60 --think-ms 10000  # people's pace
    .venv/bin/python perf/annotation_load.py --annotators 200 --seconds 60 --think-ms 10000 --front-server nginx
"""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import queue
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/evalsite_annotation_load"
PASSWORD = "load-test-password-1"
PRELOAD_LIMIT = 8  # clips of upcoming items the annotator page keeps loading (annotate/players.js)
SEEK_BYTES = 256 * 1024
CHUNK = 64 * 1024


# ------------------------------------------------------------------------------------------- database


def _maintenance_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    return urlunsplit(parts._replace(path="/postgres")), name


def recreate_database(database_url: str) -> None:
    import psycopg

    maintenance, name = _maintenance_url(database_url)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(database_url: str) -> None:
    import psycopg

    maintenance, name = _maintenance_url(database_url)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def site_environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        EVALSITE_DATA_DIR=str(args.data_dir),
        EVALSITE_DB_CONN_MAX_AGE=str(args.conn_max_age),
        EVALSITE_DEBUG="0",
        EVALSITE_MEDIA_OFFLOAD="x-accel-redirect" if args.front_server == "nginx" else "",
        EVALSITE_MEDIA_LINK_SECRET=args.link_secret,
        PYTHONUNBUFFERED="1",
    )
    return env


def setup_django(args: argparse.Namespace) -> None:
    os.environ.update(site_environment(args))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def build_campaign(args: argparse.Namespace) -> tuple[int, list[str]]:
    """A pairwise campaign with `--items` items and `--annotators` accounts; returns its id and the
    usernames. Everything is written in bulk: this is set-up, not what is measured."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotation.campaigns import CampaignSpec, create_campaign
    from generation.models import Benchmark, Prompt, Video, VideoModel

    stamp = time.strftime("%Y%m%d-%H%M%S")
    benchmark = Benchmark.objects.create(slug=f"load-{stamp}", name=f"Load test {stamp}", kind="generic")
    prompts = Prompt.objects.bulk_create(
        Prompt(
            benchmark=benchmark, position=i + 1, text=f"load prompt {i + 1}: a cat on a boat", language="en"
        )
        for i in range(args.items)
    )
    models = [VideoModel.objects.create(name=f"Load model {side}", version=stamp) for side in "AB"]
    clips, posters = write_media(args)
    Video.objects.bulk_create(
        Video(
            model=model,
            prompt=prompt,
            seed=0,
            source=Video.Source.UPLOAD,
            content_sha256=f"{model.pk:032x}{prompt.pk:032x}",
            original_file=clips[(2 * prompt.position + side) % len(clips)],
            playable_file=clips[(2 * prompt.position + side) % len(clips)],
            poster_file=posters[(2 * prompt.position + side) % len(posters)],
            status=Video.Status.READY,
            width=64,
            height=48,
            fps=12.0,
            frame_count=12,
            duration_s=1.0,
        )
        for prompt in prompts
        for side, model in enumerate(models)
    )
    user_model = get_user_model()
    password = make_password(PASSWORD)  # hashed once; every account shares it
    usernames = [f"load-{stamp}-{i:03d}" for i in range(args.annotators)]
    users = user_model.objects.bulk_create(user_model(username=name, password=password) for name in usernames)
    campaign = create_campaign(
        CampaignSpec(
            name=f"Load test {stamp}",
            kind="pairwise",
            benchmark=benchmark,
            models=models,
            annotators=users,
            judgments_per_item=args.judgments_per_item,
            require_full_playback=args.full_playback,
        )
    )
    # The placeholder videos have no files for the campaign's renditions; shown as the library's files,
    # the campaign hands out work at once instead of after its prepare-media job.
    type(campaign).objects.filter(pk=campaign.pk).update(media_ready=True)
    analyze()
    return campaign.pk, usernames


def analyze() -> None:
    """Refresh the planner's statistics after the bulk set-up, as autovacuum would in a while on a site
    that grew to this size: without them PostgreSQL plans for empty tables (a sequential scan of every
    video to show two) and the run measures a database no site has for long."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def write_media(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """`--clips` stand-in clips and as many posters under MEDIA_ROOT/load/, sizes within 20% of
    `--clip-kb` and `--poster-kb`; returns their paths under MEDIA_ROOT."""
    from django.conf import settings

    folder = Path(settings.MEDIA_ROOT) / "load"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    clips, posters = [], []
    for index in range(args.clips):
        for kind, kib, names in (("clip", args.clip_kb, clips), ("poster", args.poster_kb, posters)):
            name = f"{kind}-{index}.{'mp4' if kind == 'clip' else 'jpg'}"
            (folder / name).write_bytes(rng.randbytes(max(1, int(kib * 1024 * rng.uniform(0.8, 1.2)))))
            names.append(f"load/{name}")
    return clips, posters


# ------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_site(args: argparse.Namespace, port: int) -> subprocess.Popen:
    """The site as `make serve` serves it (scripts/web.sh), on this run's database and data folder."""
    extra = ["--threads", str(args.threads)] if args.threads > 1 else []
    env = {**site_environment(args), "HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": str(args.workers)}
    log = open(args.data_dir / "gunicorn.log", "w")  # the child keeps it; closed when it exits
    return subprocess.Popen(
        [str(ROOT / "scripts" / "web.sh"), *extra],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


NGINX_CONF = """
user {user};
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    # When each request ended, how long nginx took over it (first byte read to last byte sent: the
    # latency the site gives, without the load generator's own delays) and who answered it ("-": nginx
    # alone, from a signed link).
    log_format timing '$msec $request_time $request_method $request_uri $upstream_addr';
    access_log {folder}/access.log timing buffer=256k flush=1s;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream site {{ server 127.0.0.1:{site_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        {locations}
    }}
}}
"""


def start_nginx(args: argparse.Namespace, port: int, site_port: int) -> subprocess.Popen:
    from django.conf import settings

    from evalsite.http import nginx_locations

    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    folder = args.data_dir / "nginx"
    folder.mkdir(exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(
        NGINX_CONF.format(
            user=getpass.getuser(),
            folder=folder,
            port=port,
            site_port=site_port,
            locations=nginx_locations(
                media_root=settings.MEDIA_ROOT,
                static_root=settings.STATIC_ROOT,
                site="site",
                link_secret=args.link_secret or "signed-links-off-" + secrets.token_urlsafe(32),
            ),
        )
    )
    (folder / "access.log").unlink(missing_ok=True)  # this run's requests only
    log = open(folder / "stderr.log", "w")
    return subprocess.Popen(
        [binary, "-c", str(config), "-p", str(folder), "-g", "daemon off;"],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def wait_until_up(base: str, server: subprocess.Popen | None, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}; see its log")
        try:
            if requests.get(f"{base}/accounts/login/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the site at {base} did not answer within {limit_s:.0f} s")


def stop_server(server: subprocess.Popen | None) -> None:
    if server is None or server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


# ------------------------------------------------------------------------------------------- the load


MEDIA_TIMES = ("media first byte", "clip whole")
API_KINDS = ("next", "submit", "playback")  # what the goal is for
STEADY_AFTER_S = 5.0  # after the last annotator's start, before requests count as "steady"


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {kind: [] for kind in ("login", *API_KINDS, *MEDIA_TIMES)}
    )
    media_bytes: int = 0
    media_wrong: list[str] = field(default_factory=list)  # answers with the wrong status or length
    statuses: Counter = field(default_factory=Counter)
    acknowledged: dict[str, str] = field(default_factory=dict)  # token -> choice, answered with 200
    unknown: set[str] = field(default_factory=set)  # answers whose request failed without a status
    ran_out: int = 0
    errors: list[str] = field(default_factory=list)

    steady_from: float = float("inf")  # time.perf_counter() after which every annotator is under way
    steady_from_epoch: float = float("inf")  # the same moment by the wall clock (nginx's log has that)
    steady: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in API_KINDS})

    def record(self, kind: str, seconds: float, status: int | str, started: float = 0.0) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[(kind, status)] += 1
            if kind in self.steady and started >= self.steady_from:
                self.steady[kind].append(seconds)


def timed(tally: Tally, kind: str, call, gate: threading.Semaphore):
    with gate:
        started = time.perf_counter()
        try:
            response = call()
        except requests.RequestException as exc:
            tally.record(kind, time.perf_counter() - started, type(exc).__name__, started)
            return None
    tally.record(kind, time.perf_counter() - started, response.status_code, started)
    return response


def log_in(base: str, username: str, args, tally: Tally, gate) -> requests.Session | None:
    session = requests.Session()
    login = f"{base}/accounts/login/"
    page = timed(tally, "login", lambda: session.get(login, timeout=args.timeout), gate)
    if page is None or page.status_code != 200:
        return None
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    done = timed(
        tally,
        "login",
        lambda: session.post(
            login, data=form, headers={"Referer": login}, timeout=args.timeout, allow_redirects=False
        ),
        gate,
    )
    if done is None or done.status_code != 302 or "sessionid" not in session.cookies:
        with tally.lock:
            tally.errors.append(f"{username} could not log in ({getattr(done, 'status_code', 'no answer')})")
        return None
    return session


class Browser:
    """What one annotator's browser fetches besides the API, on connections of its own (a
    `requests.Session` each) while the person watches and answers: see step 3 of the module's
    docstring. `show` and `preload` only queue work; nothing here delays an answer."""

    def __init__(self, base: str, session: requests.Session, args, tally: Tally, rng: random.Random):
        self.base, self.args, self.tally, self.rng = base, args, tally, rng
        self.queue: queue.Queue = queue.Queue()
        self.fetched: set[str] = set()  # what the browser has (or is loading): not asked for again
        self.sizes: dict[str, int] = {}
        self.closing = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, args=(self._connection(session),), daemon=True)
            for _ in range(args.media_connections)
        ]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _connection(session: requests.Session) -> requests.Session:
        connection = requests.Session()
        connection.cookies.update(session.cookies)
        return connection

    def show(self, assignment: dict) -> None:
        for video in assignment["videos"]:
            preloaded = video.get("url") in self.fetched  # the page shows its first frame, not the poster
            if video.get("poster") and video["poster"] not in self.fetched and not preloaded:
                self.fetched.add(video["poster"])
                self.queue.put(("poster", video["poster"], 0))
            if not video.get("url"):
                continue
            if video["url"] not in self.fetched:
                self.fetched.add(video["url"])
                self.queue.put(("clip", video["url"], self.args.seeks))
            else:  # preloaded: only the jumps go to the server
                self.queue.put(("seek", video["url"], self.args.seeks))

    def preload(self, upcoming: dict | None) -> None:
        for url in (upcoming or {}).get("videos", [])[:PRELOAD_LIMIT]:
            if url and url not in self.fetched:
                self.fetched.add(url)
                self.queue.put(("clip", url, 0))

    def close(self) -> None:
        """Stop after the requests in flight: what is still queued when the run ends is not fetched."""
        self.closing.set()
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join(timeout=self.args.timeout)

    def _work(self, connection: requests.Session) -> None:
        while (task := self.queue.get()) is not None:
            if self.closing.is_set():
                continue
            kind, url, seeks = task
            if kind != "seek":
                self._fetch(connection, url, (0, None) if kind == "clip" else None)
            size = self.sizes.get(url)
            for _ in range(seeks if size else 0):  # no size: the clip failed, or is still loading
                start = self.rng.randrange(max(1, size - SEEK_BYTES))
                self._fetch(connection, url, (start, min(size, start + SEEK_BYTES) - 1))

    def _fetch(self, connection: requests.Session, url: str, byte_range: tuple[int, int | None] | None):
        """GET `url` (with `Range: bytes=a-b` when given), read to the end, check status and length."""
        headers = {}
        if byte_range is not None:
            first, last = byte_range
            headers["Range"] = f"bytes={first}-{'' if last is None else last}"
        started = time.perf_counter()
        try:
            with connection.get(
                self.base + url, headers=headers, stream=True, timeout=self.args.timeout
            ) as answer:
                first_byte = time.perf_counter() - started
                received = sum(len(chunk) for chunk in answer.iter_content(CHUNK))
                whole = time.perf_counter() - started
        except requests.RequestException as exc:
            with self.tally.lock:
                self.tally.statuses[("media", type(exc).__name__)] += 1
                self.tally.media_wrong.append(f"{url} {headers.get('Range', '')}: {type(exc).__name__}")
            return
        problem = media_problem(answer, byte_range, received)
        with self.tally.lock:
            self.tally.latencies["media first byte"].append(first_byte)
            self.tally.statuses[("media", answer.status_code)] += 1
            self.tally.media_bytes += received
            if byte_range == (0, None) and not problem:
                self.tally.latencies["clip whole"].append(whole)
                self.sizes[url] = received
            if problem:
                self.tally.media_wrong.append(f"{url} {headers.get('Range', '')}: {problem}")


def media_problem(answer: requests.Response, byte_range: tuple[int, int | None] | None, received: int) -> str:
    """What is wrong with a media answer, or "": a range asks for a 206 whose Content-Range and length
    agree with it, a plain GET for a 200 of Content-Length bytes; and no answer tells the file's date
    (Last-Modified, or an ETag such as nginx's, made of the date and size)."""
    dated = [name for name in ("Last-Modified", "ETag") if name in answer.headers]
    if dated:
        return f"{' and '.join(dated)} sent to an annotator"
    if byte_range is None:
        expected = int(answer.headers.get("Content-Length", -1))
        return (
            ""
            if answer.status_code == 200 and received == expected
            else f"{answer.status_code}, {received} B"
        )
    if answer.status_code != 206:
        return f"status {answer.status_code} to a range request"
    span, _, total = answer.headers.get("Content-Range", "").removeprefix("bytes ").partition("/")
    first, _, last = span.partition("-")
    wanted_last = int(total) - 1 if byte_range[1] is None else byte_range[1]
    if (int(first), int(last)) != (byte_range[0], wanted_last) or received != wanted_last - byte_range[0] + 1:
        return f"Content-Range {answer.headers.get('Content-Range')!r} and {received} B"
    return ""


def annotate(
    base: str, campaign_id: int, session, args, tally: Tally, gate, deadline: float, seed: int
) -> None:
    rng = random.Random(seed)
    browser = Browser(base, session, args, tally, random.Random(seed + 1)) if args.media else None
    try:
        answer_items(base, campaign_id, session, args, tally, gate, deadline, rng, browser)
    finally:
        if browser is not None:
            browser.close()


def answer_items(base, campaign_id, session, args, tally: Tally, gate, deadline, rng, browser) -> None:
    """One annotator at work, as the annotator page drives the API (annotation/static/annotation/
    annotate.js): GET next when the page opens, a `play` playback event per video once it is shown, an
    `ended` per video once watched, then the answer, whose reply carries the next item. With
    `--flow every-next` the loop also asks GET next for every item."""
    next_url = f"{base}/api/annotate/{campaign_id}/next/"
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": next_url}
    if args.think_ms:  # people do not all start in the same millisecond
        time.sleep(rng.uniform(0, args.think_ms / 1000))
    data = None
    while time.monotonic() < deadline:
        if data is None or args.flow == "every-next":
            response = timed(tally, "next", lambda: session.get(next_url, timeout=args.timeout), gate)
            if response is None or response.status_code != 200:
                time.sleep(0.1)
                continue
            data = response.json()
        assignment = data["assignment"]
        if assignment is None:
            if data["done"]:
                with tally.lock:
                    tally.ran_out += 1
                return
            data = None
            time.sleep(0.2)
            continue
        if browser is not None:
            browser.show(assignment)
            browser.preload(data["upcoming"])
        token, choice = assignment["token"], rng.choice(("left", "tie", "right"))
        playback_url = f"{base}/api/annotate/assignments/{token}/playback/"
        # The page reports playback only where the campaign requires full playback (--full-playback).
        positions = range(len(assignment["videos"])) if assignment["require_full_playback"] else ()
        think = args.think_ms / 1000 * rng.uniform(0.5, 1.5) if args.think_ms else 0.0
        if positions:  # the server takes an `ended` only once the clip (1 s) could have played through
            think = max(think, 1.0)
        for position in positions:
            send_event(tally, gate, session, playback_url, headers, args, "play", position)
        time.sleep(think)
        for position in positions:
            send_event(tally, gate, session, playback_url, headers, args, "ended", position)
        answer_url = f"{base}/api/annotate/assignments/{token}/answer/"
        send = functools.partial(
            session.post, answer_url, json={"choice": choice}, headers=headers, timeout=args.timeout
        )
        response = timed(tally, "submit", send, gate)
        data = None
        with tally.lock:
            if response is None:
                tally.unknown.add(token)
            elif response.status_code == 200 and response.json()["created"]:
                tally.acknowledged[token] = choice
                data = response.json()["next"]
            elif response.status_code == 200:
                tally.errors.append(f"{token}: answered before, though this client sent it once")


def send_event(tally: Tally, gate, session, url: str, headers: dict, args, event: str, position: int) -> None:
    body = {"position": position, "event": event, "media_time": 0.0 if event == "play" else 1.0}
    timed(
        tally, "playback", lambda: session.post(url, json=body, headers=headers, timeout=args.timeout), gate
    )


def run_in_threads(target, argument_lists: list[tuple]) -> list:
    results: list = [None] * len(argument_lists)

    def call(index: int, arguments: tuple) -> None:
        results[index] = target(*arguments)

    threads = [threading.Thread(target=call, args=(i, a), daemon=True) for i, a in enumerate(argument_lists)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# ------------------------------------------------------------------------------------------- checks


def check_database(campaign_id: int, tally: Tally) -> dict[str, object]:
    from django.db.models import Count, F

    from annotation.models import Assignment, Judgment

    stored = dict(Judgment.objects.filter(campaign_id=campaign_id).values_list("assignment__token", "choice"))
    lost = [t for t, choice in tally.acknowledged.items() if stored.get(t) != choice]
    unacknowledged = [t for t in stored if t not in tally.acknowledged and t not in tally.unknown]
    judgments = Judgment.objects.filter(campaign_id=campaign_id)
    doubled_pairs = (
        judgments.values("annotator", "item", "is_repeat").annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    per_item = (
        judgments.filter(is_repeat=False)
        .values("item")
        .annotate(n=Count("pk"), required=F("item__required_judgments"))
        .filter(n__gt=F("required"))
        .count()
    )
    done_without_judgment = Assignment.objects.filter(
        campaign_id=campaign_id, status="done", judgment__isnull=True
    ).count()
    return {
        "stored": len(stored),
        "acknowledged": len(tally.acknowledged),
        "lost (acknowledged, not stored as sent)": len(lost),
        "stored but never acknowledged": len(unacknowledged),
        "outcome unknown (request failed)": len(tally.unknown),
        "annotator/item pairs judged twice": doubled_pairs,
        "items over their required judgments": per_item,
        "answered assignments without a judgment": done_without_judgment,
    }


FRONT_KINDS = (
    ("next", "GET", re.compile(r"^/api/annotate/\d+/next/$")),
    ("submit", "POST", re.compile(r"^/api/annotate/assignments/[^/]+/answer/$")),
    ("playback", "POST", re.compile(r"^/api/annotate/assignments/[^/]+/playback/$")),
    ("media", "GET", re.compile(r"^/media/[vp]/[^/]+$")),
)


def front_server_latencies(log: Path, steady_from_epoch: float) -> tuple[dict[str, list], dict[str, list]]:
    """nginx's own timing of each annotator request (the `timing` access log: when it ended, seconds
    from its first byte read to its last byte sent), by kind; and the same for the requests that began
    in the steady state. What the site gives each request, without the delays of this client, whose
    hundreds of threads share one interpreter with the media they read. Media is also split by who
    answered it: nginx alone (a signed link it checked) or the site."""
    every: dict[str, list] = {kind: [] for kind, _, _ in FRONT_KINDS}
    steady: dict[str, list] = {kind: [] for kind, _, _ in FRONT_KINDS}
    if not log.exists():
        return every, steady
    for line in log.read_text().splitlines():
        parts = line.split(" ", 4)  # the upstream field may hold several addresses, ", "-separated
        if len(parts) != 5:
            continue
        ended, seconds, method, uri, upstream = parts
        path = uri.split("?", 1)[0]
        for kind, wanted, pattern in FRONT_KINDS:
            if method == wanted and pattern.match(path):
                every[kind].append(float(seconds))
                if kind == "media":
                    by = "media by nginx" if upstream == "-" else "media by site"
                    every.setdefault(by, []).append(float(seconds))
                if float(ended) - float(seconds) >= steady_from_epoch:
                    steady[kind].append(float(seconds))
                break
    return every, steady


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# ------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, help="requests in flight at most (default: --annotators)")
    parser.add_argument("--items", type=int, help="items in the campaign (default: enough not to run out)")
    parser.add_argument("--judgments-per-item", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")), help="WEB_WORKERS of the site"
    )
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (1: sync)")
    parser.add_argument(
        "--flow",
        choices=("page", "every-next"),
        default="page",
        help="page: as the annotator page (the next item from the answer's reply); every-next: also GET next per item",
    )
    parser.add_argument(
        "--full-playback",
        action="store_true",
        help="the campaign requires full playback: the client reports play and end of every video",
    )
    parser.add_argument("--no-media", dest="media", action="store_false", help="only the JSON API")
    parser.add_argument("--clip-kb", type=float, default=1500, help="about how large a clip is")
    parser.add_argument("--poster-kb", type=float, default=40, help="about how large a poster is")
    parser.add_argument("--clips", type=int, default=16, help="distinct clip files")
    parser.add_argument(
        "--seeks",
        type=int,
        default=0,
        help="ranged reads at random offsets per clip shown (jumps the browser's buffer did not hold)",
    )
    parser.add_argument("--media-connections", type=int, default=2, help="per annotator's browser")
    parser.add_argument("--front-server", choices=("none", "nginx"), default="none")
    parser.add_argument(
        "--unsigned-links",
        dest="signed_links",
        action="store_false",
        help="with --front-server nginx: no EVALSITE_MEDIA_LINK_SECRET, so every media request asks the site",
    )
    parser.add_argument("--conn-max-age", type=int, default=60, help="EVALSITE_DB_CONN_MAX_AGE of the site")
    parser.add_argument("--timeout", type=float, default=30, help="seconds, for every request")
    parser.add_argument("--think-ms", type=float, default=0, help="mean pause before each answer")
    parser.add_argument("--human-seconds", type=float, default=10, help="a real annotator's time per answer")
    parser.add_argument("--url", help="use the site already running here instead of starting one")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep-db", action="store_true", help="leave the scratch database behind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="lower this client's CPU priority by this much once the servers it starts are up (they keep "
        "theirs), so on a small machine the annotators' threads take the CPU the site is left with, as "
        "browsers on other machines would; 0: the same priority",
    )
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL")
    if args.url and args.front_server != "none":
        parser.error("--front-server starts a front server for the site this run starts; not with --url")
    if not args.url and "load" not in _maintenance_url(args.database_url)[1]:
        parser.error("the scratch database is dropped and recreated: its name must contain 'load'")
    args.items = args.items or max(1000, int(args.annotators * args.seconds * 2 / args.judgments_per_item))
    args.concurrency = min(args.concurrency or args.annotators, args.annotators)
    signed = args.front_server == "nginx" and args.signed_links
    args.link_secret = secrets.token_urlsafe(32) if signed else ""
    args.data_dir = ROOT / "var" / "annotation-load"
    args.data_dir.mkdir(parents=True, exist_ok=True)
    return args


def main() -> int:
    args = parse_args()
    created_db = not args.url
    if created_db:
        print(f"Creating {args.database_url} and migrating it ...", flush=True)
        recreate_database(args.database_url)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=site_environment(args),
            check=True,
        )
    setup_django(args)
    servers: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        campaign_id, usernames = build_campaign(args)
        print(
            f"Campaign {campaign_id}: {args.items} pairwise items x {args.judgments_per_item} judgments, "
            f"{len(usernames)} annotators (set up in {time.monotonic() - started:.1f} s)",
            flush=True,
        )
        if args.url:
            base = args.url.rstrip("/")
        else:
            site_port = free_port()
            servers.append(start_site(args, site_port))
            base = f"http://127.0.0.1:{site_port}"
            if args.front_server == "nginx":
                wait_until_up(base, servers[-1])
                port = free_port()
                servers.append(start_nginx(args, port, site_port))
                base = f"http://127.0.0.1:{port}"
        wait_until_up(base, servers[-1] if servers else None)
        if args.client_nice:
            os.nice(args.client_nice)
        tally = Tally()
        gate = threading.Semaphore(args.concurrency)
        # Password checks are slow on purpose; more logins at once than server threads only queue up.
        login_gate = threading.Semaphore(min(args.concurrency, args.workers * args.threads))
        started = time.monotonic()
        sessions = run_in_threads(log_in, [(base, name, args, tally, login_gate) for name in usernames])
        login_s = time.monotonic() - started
        sessions = [s for s in sessions if s is not None]
        print(
            f"{len(sessions)} annotators logged in in {login_s:.1f} s; annotating for {args.seconds:g} s ...",
            flush=True,
        )
        started = time.monotonic()
        deadline = started + args.seconds
        # Everyone has opened the page (they start spread over one think time) and loaded a first item.
        steady_after = args.think_ms / 1000 + STEADY_AFTER_S
        tally.steady_from = time.perf_counter() + steady_after
        tally.steady_from_epoch = time.time() + steady_after
        run_in_threads(
            annotate,
            [
                (base, campaign_id, s, args, tally, gate, deadline, args.seed * 1000 + i)
                for i, s in enumerate(sessions)
            ],
        )
        elapsed = time.monotonic() - started
    finally:
        for server in reversed(servers):
            stop_server(server)
    checks = check_database(campaign_id, tally)
    ok = report(args, tally, checks, elapsed, bool(servers))
    if created_db and not args.keep_db:
        from django.db import connections

        connections.close_all()
        drop_database(args.database_url)
    return 0 if ok else 1


def latency_row(label: str, seconds: list[float]) -> str:
    values = [v * 1000 for v in seconds]
    return (
        f"{label:<18}{len(values):>8}"
        + "".join(f"{percentile(values, q):>9.1f}" for q in (0.5, 0.95, 0.99))
        + f"{max(values, default=float('nan')):>9.1f}"
    )


def report(args, tally: Tally, checks: dict, elapsed: float, started_server: bool) -> bool:
    rate = len(tally.acknowledged) / elapsed
    needed = args.annotators / args.human_seconds
    print()
    print("== Annotation load test")
    threads = f" --threads {args.threads}" if args.threads > 1 else " (sync)"
    where = f"scripts/web.sh: gunicorn, WEB_WORKERS={args.workers}{threads}" if started_server else args.url
    if started_server and args.front_server == "nginx":
        where += ", behind nginx (EVALSITE_MEDIA_OFFLOAD=x-accel-redirect"
        where += ", signed media links that nginx checks)" if args.link_secret else ", unsigned media links)"
    print(
        f"site: {where}, PostgreSQL, EVALSITE_DB_CONN_MAX_AGE={args.conn_max_age}; client: {args.annotators} annotators, "
        f"{args.concurrency} API requests in flight at most, {args.timeout:g} s timeout, think time {args.think_ms:g} ms, "
        f"flow {args.flow}{', full playback required' if args.full_playback else ''}"
        + (f", niced +{args.client_nice} below the servers" if args.client_nice else "")
    )
    if args.media:
        print(
            f"media: {args.clips} clips of ~{args.clip_kb:g} KiB and posters of ~{args.poster_kb:g} KiB; each browser "
            f"streams shown clips (Range: bytes=0-), {args.seeks} 256 KiB seek(s) per clip shown, preloads "
            f"upcoming clips, over {args.media_connections} connections"
        )
    else:
        print("media: left out (--no-media)")
    print(
        f"duration: {elapsed:.1f} s; judgments acknowledged: {len(tally.acknowledged)}; "
        f"annotators who ran out of work: {tally.ran_out}"
    )
    print(f"throughput: {rate:.1f} judgments/s")
    print(
        f"reference: {args.annotators} people answering every {args.human_seconds:g} s need {needed:.1f} judgments/s; "
        f"ratio measured/needed = {rate / needed:.2f}"
        + (" (the think time caps what this client asks for)" if args.think_ms else "")
    )
    if args.media:
        media_requests = sum(n for (kind, _), n in tally.statuses.items() if kind == "media")
        print(
            f"media streamed: {media_requests} requests, {tally.media_bytes / 1e6:.1f} MB, "
            f"{tally.media_bytes / 1e6 / elapsed:.1f} MB/s"
        )
    print(f"{'latency (ms)':<18}{'n':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    kinds = (*API_KINDS, "login", *(MEDIA_TIMES if args.media else ()))
    for kind in kinds:
        print(latency_row(kind, tally.latencies[kind]))
    steady = [kind for kind in API_KINDS if tally.steady[kind]]
    if steady:
        print(
            f"steady state (requests started {args.think_ms / 1000 + STEADY_AFTER_S:g} s or more into the run, "
            "once every annotator has opened the page and loaded a first item):"
        )
        for kind in steady:
            print(latency_row(f"  {kind}", tally.steady[kind]))
    goals = {"at the client": tally.latencies}
    if started_server and args.front_server == "nginx":
        every, steady_front = front_server_latencies(
            args.data_dir / "nginx" / "access.log", tally.steady_from_epoch
        )
        print(
            "at the front server (nginx's $request_time: from the request's first byte to the answer's last):"
        )
        for kind, values in every.items():
            if values:
                print(latency_row(f"  {kind}", values))
        for kind, values in steady_front.items():
            if values and kind in API_KINDS:
                print(latency_row(f"  {kind}, steady", values))
        goals["at the front server"] = every
    for where, latencies in goals.items():
        p99 = {
            kind: percentile([v * 1000 for v in latencies[kind]], 0.99)
            for kind in API_KINDS
            if latencies.get(kind)
        }
        print(
            f"goal p99 < 100 ms, {where}: "
            + ", ".join(
                f"{kind} {value:.1f} ms {'met' if value < 100 else 'NOT met'}" for kind, value in p99.items()
            )
        )
    print(
        "status codes: "
        + ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(tally.statuses.items(), key=str))
    )
    print("database check:")
    for name, value in checks.items():
        print(f"  {name}: {value}")
    if args.media:
        print(f"  media requests failed or answered with a wrong status or length: {len(tally.media_wrong)}")
    server_errors = sum(
        n for (_, status), n in tally.statuses.items() if isinstance(status, int) and status >= 500
    )
    failures = []
    if server_errors:
        failures.append(f"{server_errors} responses with a 5xx status")
    for name in (
        "lost (acknowledged, not stored as sent)",
        "stored but never acknowledged",
        "annotator/item pairs judged twice",
        "items over their required judgments",
        "answered assignments without a judgment",
    ):
        if checks[name]:
            failures.append(f"{name}: {checks[name]}")
    failures += tally.errors[:10] + tally.media_wrong[:10]
    if tally.ran_out:
        print(f"note: {tally.ran_out} annotators ran out of work before the end; use more --items")
    print(
        "RESULT: "
        + ("OK, no 5xx, no judgment lost or duplicated" if not failures else "FAILED: " + "; ".join(failures))
    )
    return not failures


if __name__ == "__main__":
    sys.exit(main())
