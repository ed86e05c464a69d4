"""Campaigns with real videos, built through the real services. Transcoding is the slow part, so a few
distinct clips are processed once per test and their files shared by the other Video rows (the unique
constraints are per model and prompt, so rows may share a file)."""

import functools

import pytest


@pytest.fixture
def library(make_video, tmp_path, make_benchmark):
    """`library(prompts, model_names, seeds=1, noise=False, missing=(), refused=(), models=None)` →
    (benchmark, models). `models` (VideoModel rows made beforehand, say with chosen primary keys) replaces
    the new models named `model_names`. Every (model, prompt) pair gets `seeds` ready videos (seeds
    0..n-1), except the (model index, prompt position) pairs in `missing`, and `refused` ones, which are
    marked refused. With `noise=True`, seed k of every model shares the noise id `noise-<prompt>-<k>`."""
    from generation.models import Video
    from generation.services import add_video, create_video_model, mark_refused, process_video

    templates: dict[int, Video] = {}
    built = []

    def template(seed: int, model, prompt) -> Video:
        path = make_video(tmp_path / "clips" / f"clip{seed}.mp4", seed=100 + seed)
        video, _ = add_video(
            model=model, prompt=prompt, source_path=path, original_name=path.name, source="upload", seed=seed
        )
        return process_video(video)

    def build(
        prompts, model_names=("Alpha", "Beta"), *, seeds=1, noise=False, missing=(), refused=(), models=None
    ):
        built.append(prompts)
        benchmark = make_benchmark(list(prompts), slug=f"bench{len(built)}")
        if models is None:
            models = [create_video_model(name=name, version=f"v{len(built)}") for name in model_names]
        models = list(models)
        for prompt in benchmark.prompts.order_by("position"):
            for index, model in enumerate(models):
                if (index, prompt.position) in missing:
                    continue
                if (index, prompt.position) in refused:
                    mark_refused(model=model, prompt=prompt, reason="policy")
                    continue
                for seed in range(seeds):
                    noise_id = f"noise-{prompt.position}-{seed}" if noise else ""
                    if seed not in templates:
                        video = template(seed, model, prompt)
                        templates[seed] = video
                        if noise_id:
                            Video.objects.filter(pk=video.pk).update(noise_id=noise_id)
                        continue
                    source = templates[seed]
                    Video.objects.create(
                        model=model,
                        prompt=prompt,
                        seed=seed,
                        noise_id=noise_id,
                        source=Video.Source.UPLOAD,
                        content_sha256=source.content_sha256,
                        original_file=source.original_file,
                        playable_file=source.playable_file,
                        poster_file=source.poster_file,
                        status=Video.Status.READY,
                        width=source.width,
                        height=source.height,
                        fps=source.fps,
                        frame_count=source.frame_count,
                        duration_s=source.duration_s,
                        size_bytes=source.size_bytes,
                    )
        return benchmark, models

    return build


ANNOTATOR_PASSWORD = "pw-annotate-1"


@functools.cache
def annotator_password_hash() -> str:
    """Hashed once per run: hashing is deliberately slow, and every annotator shares the password."""
    from django.contrib.auth.hashers import make_password

    return make_password(ANNOTATOR_PASSWORD)


@pytest.fixture
def annotators(django_user_model):
    """`annotators(count, prefix="annotator")` → new active users whose password is ANNOTATOR_PASSWORD."""

    def make(count: int, prefix: str = "annotator"):
        return [
            django_user_model.objects.create(username=f"{prefix}{i}", password=annotator_password_hash())
            for i in range(count)
        ]

    return make


@pytest.fixture
def campaign_factory(library, annotators):
    """`campaign_factory(kind="pairwise", n_prompts=4, n_annotators=3, *, annotators=None, **spec)` → a
    campaign with real videos, made by `create_campaign`. `annotators` is a count or a list of users
    (default: `n_annotators` new ones, in `campaign.annotators`). Library options (seeds, noise, missing,
    refused, model_names, models) pass through; other keyword arguments go to CampaignSpec (overlap,
    judgments_per_item, rubric_layout, require_full_playback, repeat_fraction, claim_timeout_s, ...).
    Each call makes its own benchmark, models and users, so a test may build several campaigns."""
    from annotation.campaigns import CampaignSpec, create_campaign

    make_annotators = annotators
    calls = []

    def make(kind="pairwise", n_prompts=4, n_annotators=3, *, model_names=None, name=None, **options):
        calls.append(kind)
        library_options = {
            k: options.pop(k) for k in ("seeds", "noise", "missing", "refused", "models") if k in options
        }
        if kind == "seed_preference":
            library_options.setdefault("seeds", 3)
            model_names = model_names or ("Alpha",)
        if kind == "ab_shared_noise":
            library_options.setdefault("noise", True)
        prompts = [f"prompt number {i} 一只猫" for i in range(1, n_prompts + 1)]
        benchmark, models = library(prompts, model_names or ("Alpha", "Beta"), **library_options)
        people = options.pop("annotators", None)
        if people is None or isinstance(people, int):
            count = n_annotators if people is None else people
            people = make_annotators(count, prefix=f"{kind[:4]}{len(calls)}-ann")
        spec = CampaignSpec(
            name=name or f"{kind} campaign {len(calls)}",
            kind=kind,
            benchmark=benchmark,
            models=models,
            annotators=people,
            **options,
        )
        return with_media_prepared(create_campaign(spec))

    return make


def with_media_prepared(campaign, *, wait_s: float = 120):
    """Run the job `create_campaign` queued (a test's transaction never commits, so it would wait), as a
    worker would: the campaign's own renditions are made and it hands out work. Where a real worker took
    the job already (tests with a committed database), wait for it instead."""
    import time

    from annotation.tasks import prepare_media
    from evalsite.jobs import JobBusyElsewhere, execute
    from evalsite.models import Job

    job = Job.objects.get(kind=prepare_media.name, params__campaign_id=campaign.pk)
    try:
        execute(str(job.pk), prepare_media.handler)
    except JobBusyElsewhere:
        pass
    deadline = time.monotonic() + wait_s
    job.refresh_from_db()
    while not job.is_finished and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    campaign.refresh_from_db()
    return campaign


def shown_id(campaign, video) -> str:
    """The id under which `campaign` shows `video` to annotators (its rendition's, not the video's own)."""
    from annotation.models import Rendition

    return Rendition.objects.get(campaign=campaign, video=video).public_id


def video_shown_at(url: str):
    """The Video behind a media URL an annotator was given: a campaign's own id for it (CampaignMedia),
    a normalised rendition of it, or (managers' pages) the video's own public id."""
    from annotation.models import CampaignMedia, Rendition
    from generation.models import Video

    public_id = url.rsplit("/", 1)[1].removesuffix(".mp4").removesuffix(".jpg")
    for model in (CampaignMedia, Rendition):
        row = model.objects.select_related("video").filter(public_id=public_id).first()
        if row is not None:
            return row.video
    return Video.objects.get(public_id=public_id)
