from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from evalsite.http import ranged_file_response
from evalsite.job_titles import translated_title
from evalsite.jobs import JobStateError
from evalsite.permissions import manager_required

from . import selectors
from .forms import ExportForm
from .services import ExportError, create_export

CONTENT_TYPES = {
    ".jsonl": "application/x-ndjson; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json; charset=utf-8",
}


def serve_export_file(request, export, filename: str):
    """A file of a finished export, as a download (managers only: callers check)."""
    path = selectors.export_file_path(export, filename)
    if path is None:
        raise Http404("no such file in this export")
    response = ranged_file_response(request, path, content_type=CONTENT_TYPES.get(path.suffix))
    response["Content-Disposition"] = f'attachment; filename="{export.name}-v{export.version}-{filename}"'
    return response


@manager_required
def export_list(request):
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            export = create_export(
                name=form.cleaned_data["name"],
                campaigns=form.cleaned_data["campaigns"],
                options=form.options(),
                user=request.user,
            )
        except ExportError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Started building %(export)s.") % {"export": export})
            return redirect("preference-export-detail", pk=export.pk)
    return render(request, "preference/export_list.html", {"exports": selectors.exports(), "form": form})


@manager_required
def export_detail(request, pk):
    export = get_object_or_404(selectors.exports(), pk=pk)
    return render(
        request,
        "preference/export_detail.html",
        {
            "export": export,
            "files": export.file_entries if export.is_ready else [],
            "counts": export.manifest.get("counts", {}),
            "other_versions": selectors.export_versions(export.name).exclude(pk=export.pk),
        },
    )


@manager_required
def export_file(request, pk, filename):
    return serve_export_file(request, get_object_or_404(selectors.exports(), pk=pk), filename)


# ------------------------------------------------------------------------------------------ training runs


@manager_required
def training_run_list(request):
    from .forms import TrainingRunForm
    from .models import TrainingRun
    from .training_runs import TrainingRunError, create_training_run

    form = TrainingRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = create_training_run(
                kind=form.cleaned_data["kind"],
                export=form.cleaned_data["export"],
                base_model=form.cleaned_data["base_model"],
                settings_given=form.cleaned_data["settings"] or {},
                user=request.user,
            )
        except TrainingRunError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                _("Queued %(kind)s run %(run)s on %(export)s.")
                % {"kind": run.get_kind_display(), "run": run.pk, "export": run.export},
            )
            return redirect("training-run-detail", pk=run.pk)
    runs = TrainingRun.objects.select_related("job", "export", "base_model", "tuned_model")
    refused = request.method == "POST"  # a valid request redirected above
    return render(
        request,
        "preference/training_run_list.html",
        {"runs": runs, "form": form},
        status=400 if refused else 200,
    )


@manager_required
def training_run_detail(request, pk):
    from .forms import EvaluateAgainstBaseForm, RewardScoringForm
    from .models import TrainingRun
    from .training_runs import (
        TrainingRunError,
        cancel_training_run,
        create_evaluation_campaign,
        evaluation_shares,
        figure_summary,
        retry_training_run,
        reward_evaluation_table,
        start_evaluation_generation,
        start_reward_scoring,
    )

    run = get_object_or_404(
        TrainingRun.objects.select_related(
            "job", "export", "base_model", "tuned_model", "evaluation_campaign"
        ),
        pk=pk,
    )
    evaluate_form = EvaluateAgainstBaseForm(
        request.POST if request.POST.get("action") == "generate" else None
    )
    score_form = RewardScoringForm(request.POST if request.POST.get("action") == "score" else None)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "cancel":
                cancel_training_run(run)
            elif action == "retry":
                retry_training_run(run)
            elif action == "generate" and evaluate_form.is_valid():
                start_evaluation_generation(
                    run,
                    benchmark=evaluate_form.cleaned_data["benchmark"],
                    noise_per_prompt=evaluate_form.cleaned_data["noise_per_prompt"],
                    user=request.user,
                )
            elif action == "score" and score_form.is_valid():
                job = start_reward_scoring(
                    run,
                    model=score_form.cleaned_data["model"],
                    benchmark=score_form.cleaned_data["benchmark"],
                    on_policy_export=score_form.cleaned_data["on_policy_export"] or "",
                    min_gap=score_form.cleaned_data["min_gap"],
                    user=request.user,
                )
                messages.success(request, _("Queued %(title)s.") % {"title": translated_title(job.title)})
            elif action == "campaign":
                create_evaluation_campaign(run, user=request.user)
            else:
                raise TrainingRunError("unknown or incomplete request")
        except (TrainingRunError, JobStateError) as exc:
            messages.error(request, str(exc))
        else:
            return redirect("training-run-detail", pk=run.pk)
    return render(
        request,
        "preference/training_run_detail.html",
        {
            "run": run,
            "evaluate_form": evaluate_form,
            "score_form": score_form,
            "shares": evaluation_shares(run),
            "evaluation_table": reward_evaluation_table(run),
            "summary_figures": figure_summary(run),
        },
    )
