from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render

from evalsite.http import ranged_file_response
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
            messages.success(request, f"Started building {export}.")
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
