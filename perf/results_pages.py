"""Speed of the human-evaluation result pages on a large store of judgments.

On a scratch database (a SQLite file in a temporary folder by default, or `--database-url` for PostgreSQL,
whose database is dropped and created again, and dropped at the end: its name must contain "perf" or
"scratch"), the script:

1. loads `--judgments` (default 1,000,000) pairwise judgments among `--models` (20) models of known ratings
   (evenly spread over 400 points; ties as `simulate_battles` makes them), spread over one pairwise campaign
   per pair of models, 128 prompts in 11 categories and 60 annotators, with a few annotator exclusions,
   refusals and a problem report for the leaderboard to leave out; rows go in by raw multi-row INSERTs
   (SQLite) or COPY (PostgreSQL), and the load time is reported on its own;
2. builds the campaigns of the results-page goal: 128 prompts x 3 models x 6 annotators, as a rubric
   campaign where every annotator scores every prompt (the three videos together) and three pairwise
   campaigns among the three models (every annotator judges every prompt);
3. times, through the Django test client as a signed-in manager:
   - the leaderboard page (1000 bootstrap rounds) cold (empty cache: the aggregation in the database, the
     fit and 1000 rounds, rendering) and warm (the counts cached under the judgments' fingerprint, which is
     computed on every request, and the fit under a digest of the counts), with its parts timed alone;
   - each results page of step 2, cold and warm;
   and prints the figures against the goals: the leaderboard < 1 s, a results page < 200 ms warm.

Example:
    .venv/bin/python perf/results_pages.py
    .venv/bin/python perf/results_pages.py --database-url postgres://postgres@127.0.0.1:5432/perf_results
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEADERBOARD_GOAL_S = 1.0
RESULTS_PAGE_GOAL_S = 0.2
N_PROMPTS = 128
N_CATEGORIES = 11
N_ANNOTATORS = 60


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="scratch PostgreSQL database (default: SQLite)")
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5, help="warm requests timed (the median is shown)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder and database (dropped by default)"
    )
    return parser.parse_args()


def postgres_admin(url: str):
    """A connection to the server's maintenance database, and the name of the scratch database."""
    import psycopg
    from dj_database_url import parse

    config = parse(url)
    name = config["NAME"]
    if "perf" not in name and "scratch" not in name:
        sys.exit(f"refusing to drop the database {name!r}: its name must contain 'perf' or 'scratch'")
    admin = psycopg.connect(
        host=config["HOST"] or None,
        port=config["PORT"] or None,
        user=config["USER"] or None,
        password=config["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    return admin, name


def prepare_database(args: argparse.Namespace, scratch: Path) -> str:
    os.environ["EVALSITE_DATA_DIR"] = str(scratch)
    os.environ.setdefault("CELERY_BROKER_URL", "filesystem://")
    url = args.database_url or f"sqlite:///{scratch / 'perf.sqlite3'}"
    if args.database_url:
        admin, name = postgres_admin(url)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        admin.close()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def drop_scratch_database(url: str) -> None:
    from django.db import connections

    connections.close_all()
    admin, name = postgres_admin(url)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def insert_rows(table: str, columns: list[str], rows: list[tuple]) -> None:
    """Raw bulk insert: COPY on PostgreSQL, multi-row INSERTs on SQLite."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    per_statement = 32766 // len(columns)  # SQLite's bound on parameters per statement
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {placeholders}",
                [value for row in chunk for value in row],
            )


def build_library(n_models: int):
    from django.contrib.auth import get_user_model

    from generation.models import Benchmark, Category, Prompt, Video, VideoModel

    benchmark = Benchmark.objects.create(slug="perf", name="Perf benchmark", kind=Benchmark.Kind.GENERIC)
    categories = Category.objects.bulk_create(
        Category(benchmark=benchmark, name=f"Category {i + 1}", position=i + 1) for i in range(N_CATEGORIES)
    )
    prompts = Prompt.objects.bulk_create(
        Prompt(
            benchmark=benchmark,
            position=i + 1,
            text=f"perf prompt {i + 1}",
            language="en",
            category=categories[i % N_CATEGORIES],
        )
        for i in range(N_PROMPTS)
    )
    models = VideoModel.objects.bulk_create(
        VideoModel(name=f"Model {i:02d}", version="perf") for i in range(n_models)
    )
    videos = Video.objects.bulk_create(
        Video(
            model=model,
            prompt=prompt,
            seed=0,
            source=Video.Source.IMPORT,
            content_sha256=f"{model.pk}-{prompt.pk}",
            original_file=f"originals/{model.pk}-{prompt.pk}.mp4",
            playable_file=f"videos/{model.pk}-{prompt.pk}.mp4",
            status=Video.Status.READY,
        )
        for model in models
        for prompt in prompts
    )
    user_model = get_user_model()
    annotators = user_model.objects.bulk_create(
        user_model(username=f"perf-annotator-{i:02d}") for i in range(N_ANNOTATORS)
    )
    video_of = {(v.model_id, v.prompt_id): v.pk for v in videos}
    return benchmark, prompts, models, annotators, video_of


def load_judgments(args, benchmark, prompts, models, annotators, video_of) -> tuple[float, int]:
    """The 1M pairwise judgments, one campaign per pair of models. Returns (seconds, rows)."""
    import numpy as np

    from annotation.models import AnnotatorExclusion, Campaign, CampaignModel
    from generation.models import Refusal
    from metrics.stats.ratings import simulate_battles

    started = time.perf_counter()
    n_models = len(models)
    true_ratings = np.linspace(800, 1200, n_models)
    first, second, outcome = simulate_battles(true_ratings, args.judgments, tie_prob=0.2, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    prompt_index = rng.integers(0, len(prompts), args.judgments)
    annotator_index = rng.integers(0, len(annotators), args.judgments)
    campaigns: dict[tuple[int, int], int] = {}
    for i in range(n_models):
        for j in range(i + 1, n_models):
            campaign = Campaign.objects.create(
                name=f"perf pair {i}-{j}", kind=Campaign.Kind.PAIRWISE, benchmark=benchmark
            )
            CampaignModel.objects.bulk_create(
                [
                    CampaignModel(campaign=campaign, model=models[i], position=0),
                    CampaignModel(campaign=campaign, model=models[j], position=1),
                ]
            )
            campaigns[(i, j)] = campaign.pk
    choices = np.array(["left", "tie", "right"])[outcome]
    from django.db import connection

    now = datetime.now(UTC)
    # SQLite stores Django's datetimes as naive UTC text.
    stamp = now if connection.vendor == "postgresql" else now.replace(tzinfo=None).isoformat(" ")
    columns = [
        "campaign_id",
        "annotator_id",
        "prompt_id",
        "source",
        "is_repeat",
        "choice",
        "left_model_id",
        "right_model_id",
        "left_video_id",
        "right_video_id",
        "duration_ms",
        "revision",
        "created_at",
        "updated_at",
    ]
    model_ids = [m.pk for m in models]
    prompt_ids = [p.pk for p in prompts]
    annotator_ids = [a.pk for a in annotators]
    batch = 50_000
    for start in range(0, args.judgments, batch):
        rows = []
        for k in range(start, min(start + batch, args.judgments)):
            a, b = int(first[k]), int(second[k])
            left, right = model_ids[a], model_ids[b]
            prompt = prompt_ids[prompt_index[k]]
            rows.append(
                (
                    campaigns[(min(a, b), max(a, b))],
                    annotator_ids[annotator_index[k]],
                    prompt,
                    "site",
                    k % 97 == 0,  # about 1% repeats, which the leaderboard leaves out
                    str(choices[k]),
                    left,
                    right,
                    video_of[(left, prompt)],
                    video_of[(right, prompt)],
                    4000 + k % 9000,
                    0,
                    stamp,
                    stamp,
                )
            )
        insert_rows("annotation_judgment", columns, rows)
    # A few things to leave out, so the leaderboard's exclusion conditions are exercised.
    some = list(campaigns.values())[:3]
    AnnotatorExclusion.objects.bulk_create(
        AnnotatorExclusion(campaign_id=c, annotator=annotators[n], reason="perf") for n, c in enumerate(some)
    )
    # Refused by models outside the three of the results-page campaigns, which keep all 128 prompts.
    Refusal.objects.bulk_create(
        Refusal(model=models[-1 - n], prompt=prompts[n], reason="perf") for n in range(3)
    )
    return time.perf_counter() - started, args.judgments


def build_goal_campaigns(benchmark, models, annotators):
    """128 prompts x 3 models x 6 annotators: a rubric campaign (every annotator, the three videos together)
    and three pairwise campaigns among the three models."""
    import numpy as np

    from annotation.campaigns import CampaignSpec, create_campaign
    from annotation.models import Campaign, Judgment, RubricScore

    rng = np.random.default_rng(7)
    three, six = models[:3], annotators[:6]
    built = []
    rubric = create_campaign(
        CampaignSpec(
            name="perf rubric 3 models",
            kind=Campaign.Kind.RUBRIC,
            benchmark=benchmark,
            models=three,
            annotators=six,
            overlap=Campaign.Overlap.EVERY_ANNOTATOR,
            rubric_layout=Campaign.RubricLayout.TOGETHER,
        )
    )
    items = list(rubric.items.prefetch_related("item_videos__video").order_by("position"))
    judgments = Judgment.objects.bulk_create(
        Judgment(campaign=rubric, item=item, annotator=person, prompt_id=item.prompt_id)
        for item in items
        for person in six
    )
    scores = []
    for judgment, (item, _) in zip(judgments, [(i, p) for i in items for p in six], strict=True):
        for slot, entry in enumerate(item.item_videos.all()):
            values = np.clip(rng.normal(3 + 0.3 * slot, 1.0, 4).round(), 1, 5).astype(int)
            scores.append(
                RubricScore(
                    judgment=judgment,
                    model_id=entry.video.model_id,
                    video=entry.video,
                    shown_position=slot,
                    instruction_following=values[0],
                    motion_smoothness=values[1],
                    physical_plausibility=values[2],
                    aesthetic_appeal=values[3],
                )
            )
    RubricScore.objects.bulk_create(scores, batch_size=5000)
    built.append(rubric)
    for first, second in ((0, 1), (0, 2), (1, 2)):
        campaign = create_campaign(
            CampaignSpec(
                name=f"perf pairwise {first}-{second}",
                kind=Campaign.Kind.PAIRWISE,
                benchmark=benchmark,
                models=[three[first], three[second]],
                annotators=six,
                overlap=Campaign.Overlap.EVERY_ANNOTATOR,
            )
        )
        rows = []
        for item in campaign.items.prefetch_related("item_videos__video").order_by("position"):
            slot0, slot1 = [entry.video for entry in item.item_videos.all()]
            for person in six:
                flip = rng.random() < 0.5
                left, right = (slot1, slot0) if flip else (slot0, slot1)
                rows.append(
                    Judgment(
                        campaign=campaign,
                        item=item,
                        annotator=person,
                        prompt_id=item.prompt_id,
                        choice=str(rng.choice(["left", "tie", "right"], p=[0.4, 0.2, 0.4])),
                        left_model_id=left.model_id,
                        right_model_id=right.model_id,
                        left_video=left,
                        right_video=right,
                    )
                )
        Judgment.objects.bulk_create(rows, batch_size=5000)
        built.append(campaign)
    return built


def timed_get(client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        sys.exit(f"{url} answered {response.status_code}")
    return elapsed


def verdict(seconds: float, goal: float) -> str:
    return f"{seconds * 1000:8.1f} ms  (goal < {goal * 1000:.0f} ms: {'met' if seconds < goal else 'MISSED'}, {seconds / goal:.2f}x of goal)"


def main() -> None:
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="perf-results-"))
    try:
        run(args, scratch)
    finally:
        if args.keep:
            print(f"\nscratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            if args.database_url:
                drop_scratch_database(args.database_url)


def run(args: argparse.Namespace, scratch: Path) -> None:
    url = prepare_database(args, scratch)
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from annotation.models import Judgment
    from metrics.human.judgments import JudgmentFilters, battle_counts, judgment_scope, judgments_fingerprint
    from metrics.human.leaderboard import battle_rows, fitted_ratings

    print(f"database: {connection.vendor} ({url.split('@')[-1]})")
    benchmark, prompts, models, annotators, video_of = build_library(args.models)
    load_s, n_rows = load_judgments(args, benchmark, prompts, models, annotators, video_of)
    print(
        f"loaded {n_rows:,} pairwise judgments among {len(models)} models in {load_s:.1f} s (not part of the timings)"
    )
    goal_campaigns = build_goal_campaigns(benchmark, models, annotators)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    total = Judgment.objects.count()
    print(f"judgments stored: {total:,}")

    manager = get_user_model().objects.create_user("perf-manager", password="x", is_staff=True)
    client = Client()
    client.force_login(manager)
    timed_get(client, "/metrics/")  # loads the URL conf, templates and middleware once

    scope = judgment_scope(JudgmentFilters())
    started = time.perf_counter()
    fingerprint = judgments_fingerprint()
    fingerprint_s = time.perf_counter() - started
    started = time.perf_counter()
    counts = battle_counts(scope)
    aggregate_s = time.perf_counter() - started
    started = time.perf_counter()
    rated = sorted({c.left_model_id for c in counts} | {c.right_model_id for c in counts})
    fitted_ratings(battle_rows(counts, {m: i for i, m in enumerate(rated)}), len(rated), rounds=1000, seed=1)
    fit_s = time.perf_counter() - started
    print(f"\nmachine load (1-minute average, {os.cpu_count()} cores): {os.getloadavg()[0]:.1f}")
    print("leaderboard parts:")
    print(f"  judgments fingerprint (cache key):           {fingerprint_s * 1000:7.1f} ms  {fingerprint}")
    print(
        f"  aggregation in the database:                 {aggregate_s * 1000:7.1f} ms -> {len(counts)} rows"
    )
    print(f"  Bradley-Terry fit + 1000 bootstrap rounds:   {fit_s * 1000:7.1f} ms")

    cache.clear()
    cold = timed_get(client, "/metrics/leaderboard/")
    warm = statistics.median(timed_get(client, "/metrics/leaderboard/") for _ in range(args.repeats))
    cache.clear()
    api_cold = timed_get(client, "/api/leaderboard/")
    print("leaderboard page, 1000 bootstrap rounds:")
    print(f"  cold (empty cache: aggregation + fit + page): {verdict(cold, LEADERBOARD_GOAL_S)}")
    print(f"  warm (median of {args.repeats}; counts and fit cached):  {verdict(warm, LEADERBOARD_GOAL_S)}")
    print(f"  API /api/leaderboard/ cold:                   {verdict(api_cold, LEADERBOARD_GOAL_S)}")

    print("\nresults pages, 128 prompts x 3 models x 6 annotators (1000 bootstrap rounds):")
    for campaign in goal_campaigns:
        page = f"/metrics/results/campaigns/{campaign.pk}/"
        cache.clear()
        cold = timed_get(client, page)
        warm = statistics.median(timed_get(client, page) for _ in range(args.repeats))
        print(f"  {campaign.name:<24} ({campaign.judgments.count():>4} judgments)")
        print(f"    cold: {cold * 1000:8.1f} ms")
        print(f"    warm: {verdict(warm, RESULTS_PAGE_GOAL_S)}")


if __name__ == "__main__":
    main()
