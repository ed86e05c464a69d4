from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .jobs import JobStateError, cancel_job, retry_job
from .models import Job
from .next_steps import next_steps
from .permissions import is_manager, manager_required
from .query import parse_choice
from .selectors import jobs_queryset


@login_required
def home(request):
    if not is_manager(request.user):
        from annotation.views.annotate import annotator_tasks

        return render(request, "evalsite/annotator_home.html", {"tasks": annotator_tasks(request.user)})
    from generation.models import Benchmark, Video, VideoModel

    context = {
        "benchmark_count": Benchmark.objects.count(),
        "model_count": VideoModel.objects.count(),
        "video_count": Video.objects.filter(status=Video.Status.READY).count(),
        "active_jobs": jobs_queryset(active=True)[:10],
        "recent_jobs": jobs_queryset()[:5],
        "next_steps": next_steps(),
    }
    return render(request, "evalsite/home.html", context)


@manager_required
def job_list(request):
    status = parse_choice(request.GET, "status", Job.Status.values)
    return render(
        request, "evalsite/job_list.html", {"jobs": jobs_queryset(status=status)[:200], "status": status}
    )


@manager_required
def job_detail(request, job_id):
    job = get_object_or_404(Job.objects.select_related("created_by"), pk=job_id)
    return render(request, "evalsite/job_detail.html", {"job": job})


@manager_required
@require_POST
def job_action(request, job_id, action):
    actions = {"cancel": cancel_job, "retry": retry_job}
    if action not in actions:
        raise Http404("unknown action")
    job = get_object_or_404(Job, pk=job_id)
    try:
        actions[action](job)
    except JobStateError as exc:
        messages.error(request, str(exc))
    return redirect("job-detail", job_id=job.pk)
