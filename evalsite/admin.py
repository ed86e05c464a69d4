from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.shortcuts import render
from django.urls import path

from .accounts import AccountsError, create_annotators, parse_usernames_csv
from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "kind",
        "queue",
        "status",
        "progress_done",
        "progress_total",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", "queue", "kind"]
    search_fields = ["title", "kind"]
    readonly_fields = [f.name for f in Job._meta.fields]


class AnnotatorCsvForm(forms.Form):
    usernames = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "cols": 60}),
        help_text="One account per line: username[,email]. A header line 'username,email' is optional.",
    )
    invite = forms.BooleanField(required=False, help_text="Give one-time invite links instead of passwords.")


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class SiteUserAdmin(UserAdmin):
    change_list_template = "admin/evalsite/user_changelist.html"

    def get_urls(self):
        extra = [
            path(
                "create-annotators/",
                self.admin_site.admin_view(self.create_annotators_view),
                name="create-annotators",
            )
        ]
        return extra + super().get_urls()

    def create_annotators_view(self, request):
        form = AnnotatorCsvForm(request.POST or None)
        created = None
        if request.method == "POST" and form.is_valid():
            try:
                rows = parse_usernames_csv(form.cleaned_data["usernames"])
                created = create_annotators(rows, invite=form.cleaned_data["invite"])
            except AccountsError as exc:
                form.add_error("usernames", str(exc))
            else:
                messages.success(
                    request,
                    f"Created {len(created)} annotator accounts. Copy the credentials now: they are not shown again.",
                )
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "created": created,
            "title": "Create annotators",
            "base_url": request.build_absolute_uri("/").rstrip("/"),
        }
        return render(request, "admin/evalsite/create_annotators.html", context)
