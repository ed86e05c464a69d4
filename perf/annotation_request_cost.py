"""What one "next item" and one "submit" request cost the site: CPU milliseconds in the web process and
SQL queries, measured in-process on the product's own path (URL resolution, middleware, session and
CSRF checks, the DRF views, the ORM) against a scratch PostgreSQL database, with no HTTP client or web
server sharing the CPU. This is the figure that decides how many annotators two gunicorn workers carry
(perf/annotation_load.py measures that end to end).

It builds the same pairwise campaign as perf/annotation_load.py (`--items`, `--annotators`, the
campaign's own renditions unless `--no-renditions`), then lets every annotator answer `--rounds` items in
turn: GET /api/annotate/<campaign>/next/, the poster and clip of each video shown (Range: bytes=0-),
a `play` and an `ended` playback event per video, then POST .../answer/ (whose reply carries the next
item, as the page uses it). The first round of every annotator is a warm-up and left out of the figures,
but for its first GET next, reported as "open" (the page opening: its first claims), save the process's
very first request.
With `--answered 0.9` the campaign is that far along before the first request (other annotators' answers
already stored), which shows what grows with the answers given.

The process loads evalsite.wsgi before the first request, as a web worker does (which freezes its
start-up objects out of the garbage collector's reach).

Prints, per endpoint: CPU ms per request in the web process (p50, p95, mean), wall ms (which adds the
database's own time; nothing else runs), SQL queries per request (mean, max), and
with `--profile` the functions that take the most time. Also the full collections of the garbage
collector during the requests, and the longest: they run inside whichever request allocates at that
moment. (Django's test client leaves three signal finalizers behind per request, which a web server
does not, so the collections here walk more than a worker's would.)

    .venv/bin/python perf/annotation_request_cost.py                 # 20 annotators x 10 rounds
    .venv/bin/python perf/annotation_request_cost.py --profile 25
    .venv/bin/python perf/annotation_request_cost.py --items 8000 --answered 0.9   # near its end
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import annotation_load as load  # the load test's own set-up, shared on purpose

KINDS = ("open", "next", "submit", "playback", "media")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10, help="items each annotator answers")
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--judgments-per-item", type=int, default=3)
    parser.add_argument(
        "--no-renditions",
        dest="renditions",
        action="store_false",
        help="show the library's files under the campaign's ids, as the load test does",
    )
    parser.add_argument(
        "--answered",
        type=float,
        default=0.0,
        help="share of the items already answered as often as they require, by other annotators (a "
        "campaign that far along; only their assignments are written, which is what a request reads)",
    )
    parser.add_argument(
        "--signed-links",
        action="store_true",
        help="sign the media URLs the API gives, as behind nginx (EVALSITE_MEDIA_LINK_SECRET); media requests "
        "are then still sent to the site here, which is what nginx does with a link that fails its check",
    )
    parser.add_argument("--profile", type=int, default=0, help="print this many top functions")
    parser.add_argument("--show-queries", action="store_true", help="print one request's SQL of each kind")
    parser.add_argument("--database-url", default=load.DEFAULT_DATABASE_URL.replace("load", "cost_load"))
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.clips, args.clip_kb, args.poster_kb = 4, 4, 1
    args.conn_max_age, args.front_server, args.full_playback = 60, "none", False
    args.link_secret = load.secrets.token_urlsafe(32) if args.signed_links else ""
    args.data_dir = Path(tempfile.mkdtemp(prefix="evalsite-cost-"))
    return args


def add_renditions(campaign_id: int) -> int:
    """Give every video of the campaign its own rendition row (the stand-in files are reused: what is
    measured is the lookup, not the encoding), as a campaign whose media was prepared has."""
    from annotation.models import Campaign, ItemVideo, Rendition

    campaign = Campaign.objects.get(pk=campaign_id)
    videos = {row.video for row in ItemVideo.objects.filter(item__campaign=campaign).select_related("video")}
    Rendition.objects.bulk_create(
        Rendition(
            campaign=campaign,
            video=video,
            playable_file=video.playable_file,
            poster_file=video.poster_file,
            width=video.width,
            height=video.height,
            fps=video.fps,
            duration_s=video.duration_s,
        )
        for video in videos
    )
    return len(videos)


def answer_ahead(campaign_id: int, share: float) -> int:
    """Mark the first `share` of the campaign's items (in canonical order) answered as often as each
    requires, by annotators added for it who are not measured; returns how many answers that is."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotation.models import Assignment, Campaign, Item

    campaign = Campaign.objects.get(pk=campaign_id)
    items = list(Item.objects.filter(campaign=campaign).order_by("position"))
    items = items[: int(len(items) * share)]
    if not items:
        return 0
    required = max(item.required_judgments for item in items)
    user_model = get_user_model()
    others = user_model.objects.bulk_create(
        user_model(username=f"ahead-{campaign_id}-{i}", password="!") for i in range(required)
    )
    campaign.annotators.add(*others)
    now = timezone.now()
    answers = [
        Assignment(
            campaign=campaign,
            item=item,
            annotator=other,
            presentation=[0, 1],
            status=Assignment.Status.DONE,
            claimed_at=now,
            expires_at=now,
            finished_at=now,
        )
        for item in items
        for other in others[: item.required_judgments]
    ]
    Assignment.objects.bulk_create(answers, batch_size=5000)
    for item in items:  # as the answering transaction counts them
        item.answered = item.required_judgments
    Item.objects.bulk_update(items, ["answered"], batch_size=2000)
    return len(answers)


class CollectorPauses:
    """How long each full collection of Python's garbage collector (generation 2) took, in ms: it runs
    inside whichever request happens to allocate at that moment."""

    def __init__(self) -> None:
        self.full_ms: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full_ms.append((time.perf_counter() - self._started) * 1000)


def measure(args: argparse.Namespace, campaign_id: int, usernames: list[str]) -> dict[str, list]:
    import gc

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    rng = random.Random(args.seed)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=usernames)}
    logging.disable(logging.WARNING)  # one login line per annotator says nothing here
    clients = []
    for name in usernames:
        client = Client(enforce_csrf_checks=True)
        client.force_login(users[name])
        client.get("/")  # the CSRF cookie, as the annotator page sets it
        clients.append(client)
    figures: dict[str, list] = {
        name: [] for kind in KINDS for name in (kind, f"{kind}_queries", f"{kind}_wall")
    }
    profiler = cProfile.Profile() if args.profile else None
    import evalsite.wsgi  # noqa: F401 - what a web worker loads at start-up, as it does

    pauses = CollectorPauses()
    gc.callbacks.append(pauses)
    next_url = f"/api/annotate/{campaign_id}/next/"

    shown = dict.fromkeys(KINDS, False)

    def timed(kind: str, warm: bool, call, record_as: str | None = None):
        # Queries are counted by an execute wrapper, which costs next to nothing: Django's query log
        # (CaptureQueriesContext) renders every statement with its parameters, about 0.2 ms of CPU each,
        # which the product does not spend. `--show-queries` logs them, at that cost.
        queries: list[dict] = []

        def count(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                if args.show_queries:
                    queries.append({"sql": sql, "time": time.perf_counter() - started})
                else:
                    queries.append({})

        with connection.execute_wrapper(count):
            if profiler and warm:
                profiler.enable()
            started, started_wall = time.process_time(), time.perf_counter()
            response = call()
            if response.streaming:  # a clip or poster: read to the end, as the browser does
                received = sum(len(chunk) for chunk in response.streaming_content)
            spent, wall = time.process_time() - started, time.perf_counter() - started_wall
            if profiler and warm:
                profiler.disable()
        if kind == "media":
            if response.status_code != 206 or received != int(response["Content-Length"]):
                raise SystemExit(f"media: HTTP {response.status_code}, {received} B")
        elif response.status_code != (201 if kind == "playback" else 200):
            raise SystemExit(f"{kind}: HTTP {response.status_code} {response.content[:300]!r}")
        if args.show_queries and warm and not shown[kind]:
            shown[kind] = True
            print(f"--- the {len(queries)} queries of one {kind}:")
            for query in queries:
                print(f"    {float(query['time']) * 1000:6.2f} ms", query["sql"][:300])
        if warm:
            name = record_as or kind
            figures[name].append(spent * 1000)
            figures[f"{name}_queries"].append(len(queries))
            figures[f"{name}_wall"].append(wall * 1000)
        return response.json() if kind in ("next", "submit") else None

    for round_ in range(args.rounds):
        warm = round_ > 0
        for index, client in enumerate(clients):
            # An annotator's first next (the page opening: two items claimed, their walk drawn) is its own
            # figure; the very first request of the process, which warms it up, is left out.
            opening = not warm and index > 0
            data = timed(
                "next", warm or opening, lambda c=client: c.get(next_url), "open" if opening else None
            )
            for video in data["assignment"]["videos"]:  # the poster and the clip, as the page fetches them
                for url in (video["poster"], video["url"]):
                    timed("media", warm, lambda c=client, u=url: c.get(u, HTTP_RANGE="bytes=0-"))
            token = data["assignment"]["token"]
            csrf = client.cookies["csrftoken"].value
            for event in ("play", "ended"):  # as the page reports them, one per video shown
                for position in range(len(data["assignment"]["videos"])):
                    timed(
                        "playback",
                        warm,
                        lambda c=client, t=token, x=csrf, e=event, p=position: c.post(
                            f"/api/annotate/assignments/{t}/playback/",
                            data={"position": p, "event": e, "media_time": 0.0},
                            content_type="application/json",
                            HTTP_X_CSRFTOKEN=x,
                        ),
                    )
            timed(
                "submit",
                warm,
                lambda c=client, t=token, x=csrf: c.post(
                    f"/api/annotate/assignments/{t}/answer/",
                    data={"choice": rng.choice(("left", "tie", "right"))},
                    content_type="application/json",
                    HTTP_X_CSRFTOKEN=x,
                ),
            )
    gc.callbacks.remove(pauses)
    figures["gc_full_ms"] = pauses.full_ms
    if profiler:
        stats = pstats.Stats(profiler)
        by_package: dict[str, float] = {}
        for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            package = (
                filename.split("site-packages/")[-1].split("/")[0]
                if "site-packages" in filename
                else (Path(filename).parent.name or filename)
            )
            by_package[package] = by_package.get(package, 0.0) + tottime
        total = sum(by_package.values())
        print(
            "own time by package: "
            + ", ".join(
                f"{name} {share / total:.0%}"
                for name, share in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]
            )
        )
        stats.sort_stats("cumulative").print_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile)
    return figures


def report(figures: dict[str, list]) -> None:
    full = figures["gc_full_ms"]
    print(
        f"garbage collector: {len(full)} full collections during the requests"
        + (f", longest {max(full):.1f} ms, {sum(full):.0f} ms in all" if full else "")
    )
    for kind in KINDS:
        ms, queries = sorted(figures[kind]), figures[f"{kind}_queries"]
        if not ms:
            continue
        print(
            f"{kind:>6}: {len(ms)} requests, CPU ms p50 {load.percentile(ms, 0.5):.1f} "
            f"p95 {load.percentile(ms, 0.95):.1f} mean {statistics.fmean(ms):.1f}; "
            f"wall ms (the database's time too) p50 {load.percentile(sorted(figures[f'{kind}_wall']), 0.5):.1f}; "
            f"SQL queries mean {statistics.fmean(queries):.1f} max {max(queries)}"
        )


def main() -> int:
    import subprocess

    args = parse_args()
    print(f"Creating {args.database_url} and migrating it ...", flush=True)
    load.recreate_database(args.database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=load.ROOT,
        env=load.site_environment(args),
        check=True,
    )
    load.setup_django(args)
    try:
        from django.conf import settings

        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        campaign_id, usernames = load.build_campaign(args)
        if args.renditions:
            print(f"{add_renditions(campaign_id)} renditions of the campaign's own", flush=True)
        if args.answered:
            print(f"{answer_ahead(campaign_id, args.answered)} answers already given by others", flush=True)
        load.analyze()
        print(f"{args.annotators} annotators x {args.rounds} rounds (the first is a warm-up)", flush=True)
        report(measure(args, campaign_id, usernames))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            load.drop_database(args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
