"""Pages of the automatic video metrics: VAE-reconstruction evaluations and automatic scores."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext

from evalsite.permissions import manager_required
from generation.models import Benchmark

from . import selectors
from .forms import AutoScoreRunForm, VaeEvaluationForm
from .services import MetricsError, start_auto_score_run, start_vae_evaluation


@manager_required
def metrics_home(request):
    return render(
        request,
        "metrics/home.html",
        {
            "evaluation_count": selectors.vae_evaluations().count(),
            "scored_benchmarks": selectors.scored_benchmarks(),
        },
    )


@manager_required
def vae_evaluation_list(request):
    form = VaeEvaluationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            evaluation = start_vae_evaluation(**form.cleaned_data, user=request.user)
        except MetricsError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, gettext("Started the evaluation of %(name)s.") % {"name": evaluation.name}
            )
            return redirect("vae-evaluation-detail", pk=evaluation.pk)
    return render(
        request, "metrics/vae_list.html", {"comparisons": selectors.vae_comparisons(), "form": form}
    )


@manager_required
def vae_evaluation_detail(request, pk):
    evaluation = get_object_or_404(selectors.vae_evaluations(), pk=pk)
    return render(
        request,
        "metrics/vae_detail.html",
        {"evaluation": evaluation, "rows": selectors.vae_evaluation_videos(evaluation)},
    )


@manager_required
def auto_scores(request):
    form = AutoScoreRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = start_auto_score_run(**form.cleaned_data, user=request.user)
        except MetricsError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                gettext("Started automatic scores of %(model)s on %(benchmark)s.")
                % {"model": run.model, "benchmark": run.benchmark},
            )
            return redirect(f"{request.path}?benchmark={run.benchmark.slug}")
    benchmarks = selectors.scored_benchmarks()
    slug = request.GET.get("benchmark")
    benchmark = get_object_or_404(Benchmark, slug=slug) if slug else benchmarks.first()
    summary = selectors.auto_score_summary(benchmark) if benchmark else None
    return render(
        request,
        "metrics/auto_scores.html",
        {
            "form": form,
            "benchmarks": benchmarks,
            "benchmark": benchmark,
            "summary": summary,
            "runs": selectors.auto_score_runs()[:20],
        },
    )
