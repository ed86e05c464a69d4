"""A newcomer's walk through the demo in Chromium: every manager page of a demo site whose model, campaign
and benchmark names are as long as the site allows (one of them starting with a right-to-left override)
fits the window without sideways scrolling, logs no console error, and in the Chinese UI shows no
English outside names and data; at phone width (390 px) the annotator's pages fit too."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.demo import load_demo_campaigns
from annotation.models import Campaign
from evalsite.middleware import save_user_language
from evalsite.models import Job
from generation.demo import load_demo
from generation.models import Benchmark, GenerationItem, GenerationRun, Prompt, Video, VideoModel
from generation.runs.planning import refresh_run_status
from tests.browser.test_browser import chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MANAGER_PASSWORD = "pw-123456789"
LONG_MODEL = "\u202e" + "LongModelName" * 15  # one word as long as a name may be, under a bidi override
LONG_CAMPAIGN = "Demo:" + "LongCampaignName" * 12
LONG_BENCHMARK = "LongBenchmarkName" * 11
PROMPTS = ["一只熊猫在竹林里吃竹子", "海浪拍打礁石", "城市夜景延时摄影", "小猫追逐毛线球"]

# English that may stay in the Chinese UI: names of methods, formats and units, and the site's name.
KEPT_IN_CHINESE = {
    "API",
    "Arena",
    "Bench",
    "Bonferroni",
    "Bradley",
    "CI",
    "CLIP",
    "CPU",
    "CSV",
    "Celery",
    "Chatbot",
    "Cohen",
    "Ctrl",
    "DPO",
    "EVALSITE_IMPORT_ROOTS",
    "Elo",
    "English",
    "Eval",
    "Excel",
    "FVD",
    "Farneback",
    "Fleiss",
    "GB",
    "GPU",
    "Gen",
    "Holm",
    "ID",
    "JSON",
    "JSONL",
    "KB",
    "Krippendorff",
    "LoRA",
    "MB",
    "MP4",
    "Mac",
    "Metric",
    "Motion_Max",
    "Motion_Mean",
    "Motion_Min",
    "Movie",
    "OpenAPI",
    "PATH",
    "PSNR",
    "RGB",
    "SHA",
    "Parquet",
    "Redoc",
    "SQLite",
    "SSIM",
    "Step",
    "Swagger",
    "T2V",
    "Terry",
    "UTF",
    "VAE",
    "Video",
    "Video-DPO",
    "Wilcoxon",
    "Wilson",
    "XLSX",
    "alpha",
    "fps",
    "kappa",
    "load_benchmark",
    "manage",
    "mp4",
    "ms",
    "px",
    "py",
    "python",
    "rFVD",
    "setup_site",
    "zip",
}


# The page's prose: what a reader sees, less code, file names and settings shown as written (code, pre, kbd).
NOT_PROSE = "code, pre, kbd, script, style, textarea"
VISIBLE_PROSE = f"""() => {{
    document.querySelectorAll({NOT_PROSE!r}).forEach((el) => {{ el.style.display = "none"; }});
    return document.body.innerText;
}}"""
# Identifiers shown as they are typed or sent: setting names, backend names, option values, the group name.
IDENTIFIERS = {
    "cpu",  # the job queues
    "gpu",
    "guidance_scale",
    "steps",
    "sampler",
    "euler",
    "beta",
    "learning_rate",
    "max_steps",
    "csv",
    "jsonl",
    "parquet",
    "manifest",
    "Hub",
    "drop",
    "label",
    "pair",
    "judgment",
    "annotators",
    "prompt",
    "chosen",
    "rejected",
    "loss",  # a training run's figure names, as its trainer logs them
    "implicit_accuracy",
    "config",  # a VAE folder's files, named in the form's help
    "json",
    "vae",
}


@pytest.fixture
def demo_site(make_benchmark, django_user_model):
    benchmark = make_benchmark(PROMPTS, slug="step-video-t2v-eval", name="Step-Video-T2V-Eval")
    load_demo(benchmark, prompts=3)
    load_demo_campaigns(benchmark)
    VideoModel.objects.filter(name="Demo model B").update(name=LONG_MODEL)
    Campaign.objects.filter(kind=Campaign.Kind.PAIRWISE).update(name=LONG_CAMPAIGN)
    Benchmark.objects.filter(pk=benchmark.pk).update(name=LONG_BENCHMARK)
    manager = django_user_model.objects.create_superuser("boss", password=MANAGER_PASSWORD)
    add_finished_work(Benchmark.objects.get(pk=benchmark.pk), manager)
    return {"benchmark": Benchmark.objects.get(pk=benchmark.pk), "manager": manager}


def run_job_here(job) -> None:
    """Run a queued job's handler in this process, as a worker would."""
    from evalsite.jobs import execute, job_task_named

    execute(str(job.pk), job_task_named(job.kind).handler)


def add_finished_work(benchmark: Benchmark, manager) -> None:
    """What a site shows once some work is done, made by the site's own services and job handlers where they
    are cheap on the demo clips (VAE figures of the demo models' clips against each other, motion scores,
    a preference export of the demo judgments), and as stored rows where they would train or generate."""
    from evalsite.job_titles import job_title
    from metrics.automatic.services import start_auto_score_run, start_vae_evaluation
    from preference.models import TrainingRun
    from preference.services import create_export
    from preference.training_runs import record_step, record_warning

    model_a = VideoModel.objects.get(name="Demo model A")
    model_b = VideoModel.objects.get(name=LONG_MODEL)
    evaluation = start_vae_evaluation(
        name="Demo reconstructions",
        test_model=model_a,
        reconstruction_model=model_b,
        downsample_label="4x8x8",
    )
    run_job_here(evaluation.job)
    scores = start_auto_score_run(model=model_a, benchmark=benchmark, user=manager)
    run_job_here(scores.job)
    paired = Campaign.objects.filter(kind__in=Campaign.PAIRED_KINDS)
    export = create_export(name="demo-pairs", campaigns=paired, user=manager)
    run_job_here(export.job)
    export.refresh_from_db()

    now = timezone.now()
    finished_job = {
        "status": Job.Status.SUCCEEDED,
        "finished_at": now,
        "progress_done": 3,
        "progress_total": 3,
    }
    report = {
        head: {
            "counts": {"comparisons": 12, "ties": 2},
            "reward_model": {"accuracy": 0.75, "accuracy_with_ties": 0.7, "tie_threshold": 0.1},
            "clip_score": {"accuracy": 0.6, "accuracy_with_ties": 0.55, "tie_threshold": 0.2},
            "chance": {"accuracy": 0.5, "accuracy_with_ties": 0.4, "tie_threshold": None},
        }
        for head in ("instruction_following", "motion_smoothness", "overall")
    }
    for kind, figures in (
        (TrainingRun.Kind.REWARD_MODEL, {"validation": report, "videos": 6, "train_pairs": 4}),
        (TrainingRun.Kind.VIDEO_DPO, {"last": {"loss": 0.41, "implicit_accuracy": 0.8}, "validation": {}}),
    ):
        job = Job.objects.create(kind="preference.tasks.train_preference_model", title="", **finished_job)
        run = TrainingRun.objects.create(
            kind=kind,
            export=export,
            export_sha256="0" * 64,
            base_model=model_a,
            config={"max_steps": 3, "learning_rate": 1e-4},
            figures=figures,
            status=TrainingRun.Status.SUCCEEDED,
            job=job,
            folder=f"training/run-{kind}",
            finished_at=now,
        )
        for step in (1, 2, 3):
            record_step(run, step, {"loss": 0.7 - 0.1 * step})
        record_step(run, 3, {"loss": 0.5}, "validation")
        if kind == TrainingRun.Kind.VIDEO_DPO:
            record_warning(run, 2, "the chosen error keeps rising with the rejected one")
        title_kind = "reward_model_run" if kind == TrainingRun.Kind.REWARD_MODEL else "video_dpo_run"
        Job.objects.filter(pk=job.pk).update(title=job_title(title_kind, run=run.pk, export=export))

    generation = GenerationRun.objects.create(
        model=model_a,
        benchmark=benchmark,
        backend="diffusers",
        checkpoint="/checkpoints/demo",
        finished_at=now,
    )
    for seed, (prompt, status) in enumerate(
        zip(benchmark.prompts.order_by("position"), GenerationItem.Status.values, strict=False)
    ):
        GenerationItem.objects.create(
            run=generation,
            model=model_a,
            prompt=prompt,
            seed=seed,
            settings={"steps": 4},
            settings_hash=f"demo-{seed}",
            status=status,
            steps_done=2 if status == "running" else 0,
            steps_total=4,
            attempts=2 if status == "failed" else 1,
            error="CUDA out of memory" if status == "failed" else "",
        )
    refresh_run_status(generation)


def manager_pages(benchmark: Benchmark) -> list[str]:
    from metrics.automatic.models import VaeEvaluation
    from preference.models import PreferenceExport, TrainingRun

    campaign = Campaign.objects.get(kind=Campaign.Kind.PAIRWISE)
    model = VideoModel.objects.get(name=LONG_MODEL)
    video = Video.objects.filter(model=model).first()
    prompt = Prompt.objects.filter(benchmark=benchmark).first()
    pages = [
        reverse("home"),
        reverse("benchmark-list"),
        reverse("benchmark-detail", args=[benchmark.slug]),
        reverse("prompt-detail", args=[benchmark.slug, prompt.position]),
        reverse("model-list"),
        reverse("model-detail", args=[model.pk]),
        reverse("video-list"),
        reverse("video-detail", args=[video.pk]),
        reverse("video-import"),
        reverse("run-list"),
        reverse("run-new"),
        reverse("campaign-list"),
        reverse("campaign-new"),
        reverse("metrics-home"),
        reverse("results-list"),
        reverse("leaderboard") + "?rounds=100",
        reverse("preference-export-list"),
        reverse("training-run-list"),
        reverse("job-list"),
        reverse("password_change"),
        reverse("password_change_done"),
        reverse("vae-evaluation-list"),
        reverse("auto-scores"),
        *(reverse("vae-evaluation-detail", args=[e.pk]) for e in VaeEvaluation.objects.all()),
        *(reverse("preference-export-detail", args=[e.pk]) for e in PreferenceExport.objects.all()),
        *(reverse("training-run-detail", args=[r.pk]) for r in TrainingRun.objects.all()),
        *(reverse("run-detail", args=[r.pk]) for r in GenerationRun.objects.all()),
    ]
    for each in Campaign.objects.all():
        pages += [
            reverse("campaign-detail", args=[each.pk]),
            reverse("campaign-items", args=[each.pk]),
            reverse("campaign-quality", args=[each.pk]),
            reverse("campaign-import", args=[each.pk]),
            reverse("campaign-results", args=[each.pk]) + "?rounds=100",
        ]
    one_job_of_each_kind = {job.kind: job for job in Job.objects.order_by("-created_at")}.values()
    pages += [reverse("job-detail", args=[job.pk]) for job in one_job_of_each_kind]
    assert campaign.pk
    return pages


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def open_page(browser, width: int, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def sideways_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def job_title_names(title: str) -> list[str]:
    from evalsite.job_titles import PHRASES

    found = PHRASES.match(title)
    return list(found[1].values()) if found else []


def data_words() -> set[str]:
    """Words of the site's data (names, prompts, usernames, descriptions): they stay as they were written."""
    from django.contrib.auth import get_user_model

    from annotation.demo import INSTRUCTIONS
    from generation.demo import DEMO_DESCRIPTION

    texts = [
        *VideoModel.objects.values_list("name", flat=True),
        *Campaign.objects.values_list("name", flat=True),
        *Benchmark.objects.values_list("name", flat=True),
        *Benchmark.objects.values_list("slug", flat=True),
        *get_user_model().objects.values_list("username", flat=True),
        *Video.objects.values_list("original_name", flat=True),
        *Benchmark.objects.values_list("source", flat=True),
        INSTRUCTIONS,
        DEMO_DESCRIPTION,
        # the names a job title was filled in with when the job started (campaigns renamed since); the
        # titles' own words are translated (tests/evalsite/test_job_titles.py)
        *(name for title in Job.objects.values_list("title", flat=True) for name in job_title_names(title)),
    ]
    return {word for text in texts for word in re.findall(r"[A-Za-z_]+", text)}


def english_words(text: str, allowed: set[str]) -> list[str]:
    return sorted({w for w in re.findall(r"[A-Za-z][A-Za-z_]+", text) if w not in allowed and len(w) > 1})


def layout_problems(page, path: str) -> list[str]:
    """What is wrong with the page on screen: sideways scrolling and the console errors it logged."""
    problems = [f"{path}: scrolls {extra}px sideways"] if (extra := sideways_overflow(page)) > 0 else []
    problems += [f"{path}: {error}" for error in page.errors]
    page.errors.clear()
    return problems


def test_every_manager_page_fits_logs_no_error_and_speaks_chinese(browser, live_server, demo_site):
    """One demo site for both walks (setting it up renders the demo clips): first in English at 1280 px,
    for sideways scrolling and console errors, then in the Chinese UI, for English left untranslated."""
    page = open_page(browser, 1280)
    log_in(page, live_server, "boss", MANAGER_PASSWORD)
    pages = manager_pages(demo_site["benchmark"])
    problems = []
    for path in pages:
        page.goto(live_server.url + path)
        page.wait_for_load_state("load")
        problems += layout_problems(page, path)
    # The API's browsable docs (Swagger UI, served from the site's static files) and the admin: their
    # words are their makers' (Swagger UI speaks English only), but they fit and log no error.
    for path, drawn in ((reverse("api-docs"), ".opblock"), (reverse("admin:index"), ".app-annotation")):
        page.goto(live_server.url + path)
        page.wait_for_selector(drawn)  # the docs page draws the schema's operations
        problems += layout_problems(page, path)
    assert not problems, "\n".join(problems)

    page.goto(live_server.url + reverse("model-list"))
    name = page.locator("a", has_text="LongModelName").first
    assert name.evaluate("el => getComputedStyle(el).unicodeBidi") == "isolate"  # the override stays inside

    # The new-campaign form shows only the chosen kind's fields.
    page.goto(live_server.url + reverse("campaign-new"))
    page.select_option("select[name=kind]", "seed_preference")
    assert page.locator("select[name=model_b]").is_hidden()
    assert page.locator("input[name=generate_count]").is_visible()
    page.select_option("select[name=kind]", "rubric")
    assert page.locator("select[name=more_models]").is_visible()
    assert page.locator("input[name=generate_count]").is_hidden()

    from generation.backends import BACKENDS

    save_user_language(demo_site["manager"], "zh-hans")
    from metrics.video.vae import SUPPORTED_VAE_CLASSES

    # the VAE classes' names, as diffusers spells them, are the VAE kinds' choices
    allowed = (
        KEPT_IN_CHINESE | IDENTIFIERS | set(BACKENDS) | set(SUPPORTED_VAE_CLASSES.values()) | data_words()
    )
    for path in pages:
        page.goto(live_server.url + path)
        assert page.locator("html").get_attribute("lang") == "zh-hans", path
        if words := english_words(page.evaluate(VISIBLE_PROSE), allowed):
            problems.append(f"{path}: {' '.join(words)}")
    assert not problems, "\n".join(problems)


def log_in_as_demo_annotator(page, live_server, username: str = "annotator3") -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=username)
    user.set_password(MANAGER_PASSWORD)
    user.save()
    log_in(page, live_server, username, MANAGER_PASSWORD)


def open_demo_task(page, live_server, kind: str) -> None:
    campaign = Campaign.objects.get(kind=kind)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/annotate/")
    page.wait_for_function("document.documentElement.dataset.annotateReady === 'true'", timeout=15000)
    page.wait_for_selector("#stage video")


def test_annotator_pages_fit_a_phone_and_the_rubric_submit_is_on_screen_at_1440_by_900(
    browser, live_server, demo_site
):
    page = open_page(browser, 390, 844)
    log_in_as_demo_annotator(page, live_server)
    assert sideways_overflow(page) <= 0, "annotator home"
    for kind in (Campaign.Kind.PAIRWISE, Campaign.Kind.RUBRIC, Campaign.Kind.AB_SHARED_NOISE):
        open_demo_task(page, live_server, kind)
        assert sideways_overflow(page) <= 0, kind
        answers = "#score-grid" if kind == Campaign.Kind.RUBRIC else ".choices"
        box = page.locator(answers).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (kind, box)
    assert not page.errors, page.errors

    page.set_viewport_size({"width": 1440, "height": 900})
    open_demo_task(page, live_server, Campaign.Kind.RUBRIC)
    box = page.locator("#submit").bounding_box()
    assert box["y"] + box["height"] <= 900, box
    on_top = page.evaluate(
        f"document.elementFromPoint({box['x'] + box['width'] / 2}, {box['y'] + box['height'] / 2}).id"
    )
    assert on_top == "submit"  # nothing covers it
