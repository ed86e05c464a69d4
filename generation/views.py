from django import forms
from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_POST

from evalsite.http import ranged_file_response
from evalsite.permissions import is_manager, manager_required
from evalsite.query import parse_choice, parse_id

from . import selectors
from .forms import GenerationRunForm, ImportForm, RefusalForm, UploadForm, VideoModelForm
from .models import Benchmark, GenerationRun, Prompt, Video, VideoModel
from .runs.planning import cancel_run, plan_run, retry_failed, run_progress, start_run
from .services import GenerationError, create_video_model, mark_refused, media_path
from .uploads import UploadError, start_import, upload_video


@manager_required
def benchmark_list(request):
    return render(
        request, "generation/benchmark_list.html", {"benchmarks": selectors.benchmarks_with_counts()}
    )


@manager_required
def benchmark_detail(request, slug):
    benchmark = get_object_or_404(selectors.benchmarks_with_counts(), slug=slug)
    category, tag = request.GET.get("category") or None, request.GET.get("tag") or None
    prompts = selectors.prompts_for(benchmark, category=category, tag=tag)
    page = Paginator(prompts, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "generation/benchmark_detail.html",
        {
            "benchmark": benchmark,
            "tag_groups": selectors.tag_groups(benchmark),
            "page": page,
            "category": category,
            "tag": tag,
            "refusals": selectors.refusals_for(benchmark),
        },
    )


@manager_required
def prompt_detail(request, slug, position):
    prompt = get_object_or_404(
        Prompt.objects.select_related("benchmark", "category"), benchmark__slug=slug, position=position
    )
    videos = selectors.videos_queryset(prompt=prompt.pk).order_by("model__name", "seed")
    return render(
        request,
        "generation/prompt_detail.html",
        {"prompt": prompt, "videos": videos, "refusals": prompt.refusals.select_related("model")},
    )


@manager_required
def model_list(request):
    form = VideoModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = create_video_model(**form.cleaned_data)
        except GenerationError as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(request, f"Added model {model}.")
            return redirect("model-list")
    return render(
        request, "generation/model_list.html", {"models": selectors.video_models_with_counts(), "form": form}
    )


@manager_required
def model_detail(request, pk):
    model = get_object_or_404(VideoModel, pk=pk)
    form = RefusalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        prompt = Prompt.objects.filter(
            benchmark=form.cleaned_data["benchmark"], position=form.cleaned_data["prompt_position"]
        ).first()
        if prompt is None:
            form.add_error("prompt_position", "no prompt at that position")
        else:
            try:
                mark_refused(model=model, prompt=prompt, reason=form.cleaned_data["reason"])
            except GenerationError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Marked prompt {prompt.position} as refused by {model}.")
                return redirect("model-detail", pk=model.pk)
    videos = selectors.videos_queryset(model=model.pk)
    page = Paginator(videos, 48).get_page(request.GET.get("page"))
    return render(
        request,
        "generation/model_detail.html",
        {
            "model": model,
            "page": page,
            "refusals": model.refusals.select_related("prompt__benchmark"),
            "form": form,
        },
    )


@manager_required
def video_list(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            video, job = upload_video(
                uploaded=data["file"],
                model=data["model"],
                prompt=data["prompt"],
                seed=data.get("seed"),
                noise_id=data.get("noise_id") or "",
                generation_settings=data.get("generation_settings"),
                user=request.user,
            )
        except (UploadError, GenerationError) as exc:
            form.add_error("file", str(exc))
        else:
            messages.success(
                request,
                "Video added; it is being transcoded." if job else "This video was already in the library.",
            )
            return redirect("video-detail", pk=video.pk)
    params = request.GET
    videos = selectors.videos_queryset(
        model=parse_id(params, "model"),
        benchmark=params.get("benchmark") or None,
        status=parse_choice(params, "status", Video.Status.values),
    )
    page = Paginator(videos, 48).get_page(params.get("page"))
    return render(
        request,
        "generation/video_list.html",
        {
            "page": page,
            "form": form,
            "models": VideoModel.objects.order_by("name"),
            "benchmarks": Benchmark.objects.order_by("name"),
            "filters": params,
        },
    )


@manager_required
def video_detail(request, pk):
    video = get_object_or_404(selectors.videos_queryset(), pk=pk)
    return render(request, "generation/video_detail.html", {"video": video})


@manager_required
def import_videos(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = start_import(
                archive=form.cleaned_data.get("archive"),
                root=form.cleaned_data.get("root"),
                options=form.options(),
                user=request.user,
            )
        except (UploadError, GenerationError) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("job-detail", job_id=job.pk)
    return render(request, "generation/import.html", {"form": form})


@manager_required
@require_POST
def import_for_real(request, job_id):
    """Start the import that a successful dry run checked, with the same options."""
    from evalsite.job_titles import import_title_of_check
    from evalsite.jobs import start_job
    from evalsite.models import Job

    from .uploads import IMPORT_VIDEOS_JOB

    checked = get_object_or_404(Job, pk=job_id, kind=IMPORT_VIDEOS_JOB, status=Job.Status.SUCCEEDED)
    if not checked.params.get("dry_run"):
        raise Http404("not a dry run")
    params = {**checked.params, "dry_run": False}
    job = start_job(
        IMPORT_VIDEOS_JOB,
        title=import_title_of_check(checked.title),
        params=params,
        created_by=request.user,
    )
    return redirect("job-detail", job_id=job.pk)


def _media(request, public_id, field, content_type, *, shown_to_annotators=False):
    """A video's file by its public id, for managers; with `shown_to_annotators`, also the file behind an
    id a campaign shows, for managers and that campaign's annotators. Anyone else gets a 404, as for an
    unknown id (a 403 would confirm the id exists)."""
    relative = ""
    if shown_to_annotators:
        relative, annotates = _campaign_file(public_id, field, request.user)
        if relative and not (annotates or is_manager(request.user)):
            relative = ""
    if not relative and is_manager(request.user):
        video = Video.objects.filter(public_id=public_id).only(field, "status").first()
        relative = getattr(video, field, "") if video else ""
    if not relative:
        raise Http404("no such media")
    response = ranged_file_response(request, media_path(relative), content_type=content_type)
    if shown_to_annotators:
        # A file's date tells when it was made, and videos of one model tend to be made together; the
        # stored file's name need not be the URL's (videos with the same content share one file).
        del response["Last-Modified"]
        del response["Content-Disposition"]
    return response


def _campaign_file(public_id: str, field: str, user) -> tuple[str, bool]:
    """The file behind an id that a campaign shows annotators, and whether `user` is an annotator of
    that campaign (read in the same query: the only people besides managers it shows media to). The
    file is the campaign's own rendition (annotation.Rendition, a copy re-encoded for it), or, for a
    campaign whose media is not ready (or was made before every campaign had renditions), the file of
    the library video behind the campaign's own id for it, when it has no rendition there
    (annotation.CampaignMedia). Looked up through the app registry: the video library does not depend
    on the annotation app."""
    if not apps.is_installed("annotation"):
        return "", False
    rendition_model = apps.get_model("annotation", "Rendition")
    membership = apps.get_model("annotation", "Campaign").annotators.through.objects.filter(
        campaign_id=OuterRef("campaign_id"), user_id=user.pk
    )
    rendition = (
        rendition_model.objects.filter(public_id=public_id)
        .annotate(annotates=Exists(membership))
        .values_list(field, "annotates")
        .first()
    )
    if rendition and rendition[0]:
        return rendition
    campaign_media_model = apps.get_model("annotation", "CampaignMedia")
    shown = (
        campaign_media_model.objects.filter(public_id=public_id)
        .annotate(annotates=Exists(membership))
        .values_list("video_id", "campaign_id", "campaign__media_ready", f"video__{field}", "annotates")
    )
    row = shown.first()
    if row is None:
        return "", False
    video_id, campaign_id, media_ready, relative, annotates = row
    if media_ready and rendition_model.objects.filter(campaign_id=campaign_id, video_id=video_id).exists():
        return "", False  # the campaign shows its rendition of this video, not the library's file
    return relative or "", annotates


@login_required
def media_video(request, public_id):
    return _media(request, public_id, "playable_file", "video/mp4", shown_to_annotators=True)


@login_required
def media_poster(request, public_id):
    return _media(request, public_id, "poster_file", "image/jpeg", shown_to_annotators=True)


@manager_required
def media_original(request, public_id):
    return _media(request, public_id, "original_file", None)


# ---------------------------------------------------------------- generation runs


@manager_required
def run_list(request):
    runs = selectors.runs_with_counts()
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(request, "generation/run_list.html", {"page": page})


@manager_required
def run_new(request):
    """The form shows the plan (videos, steps, estimate) on "Preview"; "Start" plans again and queues."""
    form = GenerationRunForm(request.POST or None, initial={"model": request.GET.get("model")})
    plan = None
    if request.method == "POST" and form.is_valid():
        try:
            spec = form.spec()
            if request.POST.get("action") == "start":
                run = start_run(spec, user=request.user)
                messages.success(request, f"Started run {run.pk}.")
                return redirect("run-detail", pk=run.pk)
            plan = plan_run(spec).report()
        except forms.ValidationError as exc:
            form.add_error(None, exc)
        except GenerationError as exc:
            form.add_error(None, str(exc))
    return render(request, "generation/run_new.html", {"form": form, "plan": plan})


# A run's counts, written by the page and again by its script (generation/run_progress.js) as they change.
RUN_COUNTS = gettext_noop(
    "%(done)s done, %(running)s running, %(queued)s queued, %(failed)s failed, %(refused)s refused, "
    "%(cancelled)s cancelled"
)


@manager_required
def run_detail(request, pk):
    run = get_object_or_404(GenerationRun.objects.select_related("model", "benchmark"), pk=pk)
    items = run.items.select_related("prompt", "video").order_by("id")
    status = request.GET.get("status") or None
    if status:
        items = items.filter(status=status)
    page = Paginator(items, 100).get_page(request.GET.get("page"))
    progress = run_progress(run)
    counts_sentence = gettext(RUN_COUNTS)
    context = {
        "run": run,
        "progress": progress,
        "counts_text": counts_sentence % {str(key): n for key, n in progress["counts"].items()},
        "script_strings": {"counts": counts_sentence},
        "page": page,
        "status_filter": status,
    }
    return render(request, "generation/run_detail.html", context)


@manager_required
@require_POST
def run_action(request, pk, action):
    run = get_object_or_404(GenerationRun, pk=pk)
    acts = {"cancel": cancel_run, "retry": lambda r: retry_failed(r, user=request.user)}
    if action not in acts:
        raise Http404("no such action")
    try:
        acts[action](run)
    except GenerationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, "Cancelling the run." if action == "cancel" else "Queued the failed videos again."
        )
    return redirect("run-detail", pk=run.pk)
