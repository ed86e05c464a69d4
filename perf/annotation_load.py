"""Load test of the annotator API: many annotators claiming and answering at once, through gunicorn on
PostgreSQL, on loopback only.

What it does:
1. Creates a scratch PostgreSQL database (`--database-url`, default
   postgres://postgres@127.0.0.1:5432/evalsite_annotation_load; its name must contain "load", and it is
   dropped first and at the end unless `--keep-db`), migrates it, and builds a pairwise campaign of
   `--items` items (`--judgments-per-item` each) and `--annotators` annotator accounts. Video rows point
   at placeholder files: the test drives the JSON API, not media delivery.
2. Starts `gunicorn evalsite.wsgi -b 127.0.0.1:PORT -w WORKERS --threads THREADS` on that database (or,
   with `--url`, uses a site that is already running on the database named by `--database-url`).
3. Every simulated annotator logs in through the login page (timed apart), then, for `--seconds`, loops:
   GET /api/annotate/<campaign>/next/ -> POST /api/annotate/assignments/<token>/answer/ with a random
   choice. One thread per annotator, one request in flight each, so the concurrency is fixed at
   `--annotators` (or `--concurrency`, if lower); every request has a `--timeout`. With no
   `--think-ms` (the default) this is a stress test: latency is then mostly queueing (Little's law:
   annotators / requests per second); with `--think-ms`, annotators also start spread over one think
   time, as people do.
4. Stops gunicorn (also on errors or Ctrl-C), then checks the database: every judgment acknowledged with
   200 is stored with the acknowledged choice (none lost), no judgment is stored that was not
   acknowledged (requests that failed without an answer are counted apart), no assignment, annotator/item
   pair or item holds more judgments than allowed (none duplicated).

Prints judgments per second, p50/p95/p99 latency of "next item" and "submit", status-code counts, the
checks, and the ratio of the measured rate to what `--annotators` real people need (one answer every
`--human-seconds` each). Exits non-zero on a 5xx, a lost or duplicated judgment, or a failed check.

Examples:
    .venv/bin/python perf/annotation_load.py --annotators 20 --seconds 10      # quick check
    .venv/bin/python perf/annotation_load.py --annotators 200 --seconds 60     # the full run
"""

from __future__ import annotations

import argparse
import functools
import os
import random
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
    Video.objects.bulk_create(
        Video(
            model=model,
            prompt=prompt,
            seed=0,
            source=Video.Source.UPLOAD,
            content_sha256=f"{model.pk:032x}{prompt.pk:032x}",
            original_file="load/placeholder.mp4",
            playable_file="load/placeholder.mp4",
            poster_file="load/placeholder.jpg",
            status=Video.Status.READY,
            width=64,
            height=48,
            fps=12.0,
            frame_count=12,
            duration_s=1.0,
        )
        for prompt in prompts
        for model in models
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
        )
    )
    # The placeholder videos have no files for the campaign's renditions; shown as the library's files,
    # the campaign hands out work at once instead of after its prepare-media job.
    type(campaign).objects.filter(pk=campaign.pk).update(media_ready=True)
    return campaign.pk, usernames


# ------------------------------------------------------------------------------------------- gunicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "evalsite.wsgi",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--timeout",
        "120",
        "--log-level",
        "warning",
    ]
    log = open(args.data_dir / "gunicorn.log", "w")  # the child keeps it; closed when it exits
    return subprocess.Popen(
        command, cwd=ROOT, env=site_environment(args), stdout=log, stderr=log, start_new_session=True
    )


def wait_until_up(base: str, server: subprocess.Popen | None, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode}; see its log")
        try:
            if requests.get(f"{base}/accounts/login/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the site at {base} did not answer within {limit_s:.0f} s")


def stop_gunicorn(server: subprocess.Popen | None) -> None:
    if server is None or server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


# ------------------------------------------------------------------------------------------- the load


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"login": [], "next": [], "submit": []})
    statuses: Counter = field(default_factory=Counter)
    acknowledged: dict[str, str] = field(default_factory=dict)  # token -> choice, answered with 200
    unknown: set[str] = field(default_factory=set)  # answers whose request failed without a status
    ran_out: int = 0
    errors: list[str] = field(default_factory=list)

    def record(self, kind: str, seconds: float, status: int | str) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[(kind, status)] += 1


def timed(tally: Tally, kind: str, call, gate: threading.Semaphore):
    with gate:
        started = time.perf_counter()
        try:
            response = call()
        except requests.RequestException as exc:
            tally.record(kind, time.perf_counter() - started, type(exc).__name__)
            return None
    tally.record(kind, time.perf_counter() - started, response.status_code)
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


def annotate(
    base: str, campaign_id: int, session, args, tally: Tally, gate, deadline: float, seed: int
) -> None:
    rng = random.Random(seed)
    next_url = f"{base}/api/annotate/{campaign_id}/next/"
    if args.think_ms:  # people do not all start in the same millisecond
        time.sleep(rng.uniform(0, args.think_ms / 1000))
    while time.monotonic() < deadline:
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
            time.sleep(0.2)
            continue
        if args.think_ms:
            time.sleep(args.think_ms / 1000 * rng.uniform(0.5, 1.5))
        token, choice = assignment["token"], rng.choice(("left", "tie", "right"))
        answer_url = f"{base}/api/annotate/assignments/{token}/answer/"
        headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": next_url}
        send = functools.partial(
            session.post, answer_url, json={"choice": choice}, headers=headers, timeout=args.timeout
        )
        response = timed(tally, "submit", send, gate)
        with tally.lock:
            if response is None:
                tally.unknown.add(token)
            elif response.status_code == 200 and response.json()["created"]:
                tally.acknowledged[token] = choice
            elif response.status_code == 200:
                tally.errors.append(f"{token}: answered before, though this client sent it once")


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
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--conn-max-age", type=int, default=60, help="EVALSITE_DB_CONN_MAX_AGE of the site")
    parser.add_argument("--timeout", type=float, default=30, help="seconds, for every request")
    parser.add_argument("--think-ms", type=float, default=0, help="mean pause before each answer")
    parser.add_argument("--human-seconds", type=float, default=10, help="a real annotator's time per answer")
    parser.add_argument("--url", help="use the site already running here instead of starting gunicorn")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep-db", action="store_true", help="leave the scratch database behind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL")
    if not args.url and "load" not in _maintenance_url(args.database_url)[1]:
        parser.error("the scratch database is dropped and recreated: its name must contain 'load'")
    args.items = args.items or max(1000, int(args.annotators * args.seconds * 2 / args.judgments_per_item))
    args.concurrency = min(args.concurrency or args.annotators, args.annotators)
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
    server = None
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
            base = f"http://127.0.0.1:{free_port()}"
            server = start_gunicorn(args, int(base.rsplit(":", 1)[1]))
        wait_until_up(base, server)
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
        run_in_threads(
            annotate,
            [
                (base, campaign_id, s, args, tally, gate, deadline, args.seed * 1000 + i)
                for i, s in enumerate(sessions)
            ],
        )
        elapsed = time.monotonic() - started
    finally:
        stop_gunicorn(server)
    checks = check_database(campaign_id, tally)
    ok = report(args, tally, checks, elapsed, server is not None)
    if created_db and not args.keep_db:
        from django.db import connections

        connections.close_all()
        drop_database(args.database_url)
    return 0 if ok else 1


def report(args, tally: Tally, checks: dict, elapsed: float, started_server: bool) -> bool:
    rate = len(tally.acknowledged) / elapsed
    needed = args.annotators / args.human_seconds
    print()
    print("== Annotation load test")
    where = f"gunicorn -w {args.workers} --threads {args.threads}" if started_server else args.url
    print(
        f"site: {where}, PostgreSQL, EVALSITE_DB_CONN_MAX_AGE={args.conn_max_age}; client: {args.annotators} annotators, "
        f"{args.concurrency} requests in flight at most, {args.timeout:g} s timeout, think time {args.think_ms:g} ms"
    )
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
    print(f"{'latency (ms)':<14}{'n':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for kind in ("next", "submit", "login"):
        values = [v * 1000 for v in tally.latencies[kind]]
        print(
            f"{kind:<14}{len(values):>8}"
            + "".join(f"{percentile(values, q):>9.1f}" for q in (0.5, 0.95, 0.99))
            + f"{max(values, default=float('nan')):>9.1f}"
        )
    print(
        "status codes: "
        + ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(tally.statuses.items(), key=str))
    )
    print("database check:")
    for name, value in checks.items():
        print(f"  {name}: {value}")
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
    failures += tally.errors[:10]
    if tally.ran_out:
        print(f"note: {tally.ran_out} annotators ran out of work before the end; use more --items")
    print(
        "RESULT: "
        + ("OK, no 5xx, no judgment lost or duplicated" if not failures else "FAILED: " + "; ".join(failures))
    )
    return not failures


if __name__ == "__main__":
    sys.exit(main())
