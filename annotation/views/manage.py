"""Managers' pages: campaigns (list, set-up, progress), items and gold answers, quality control with
exclusions, and importing judgments. Managers are not blind: these pages name the models."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from evalsite.permissions import manager_required

from .. import importing, quality, selectors, services
from ..campaigns import CampaignError, create_campaign
from ..forms import AddAnnotatorsForm, CampaignForm, ExclusionForm, GoldForm, ImportJudgmentsForm, StatusForm
from ..models import Campaign, Item
from ..rubric import dimension_title

TEMPLATES = "annotation/manage/"
PROBLEMS_SHOWN = 50
ITEMS_PER_PAGE = 50


def _form_errors(form) -> str:
    return "; ".join(
        f"{'' if name == '__all__' else name + ': '}{' '.join(e)}" for name, e in form.errors.items()
    )


@manager_required
def campaign_list(request):
    return render(
        request, TEMPLATES + "campaign_list.html", {"campaigns": selectors.campaigns_with_progress()}
    )


@manager_required
def campaign_new(request):
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and request.POST.get("action") == "generate":
        from generation.services import GenerationError

        from ..generation_needs import start_campaign_generation

        try:
            runs = start_campaign_generation(
                form.to_spec(), count=form.cleaned_data.get("generate_count") or 1, user=request.user
            )
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            videos = sum(run.items.count() for run in runs)
            started = ngettext(
                "Started %(runs)d generation run", "Started %(runs)d generation runs", len(runs)
            ) % {"runs": len(runs)}
            count = ngettext("%(videos)d video", "%(videos)d videos", videos) % {"videos": videos}
            messages.success(
                request,
                _("%(started)s, %(count)s; create the campaign once they are done.")
                % {"started": started, "count": count},
            )
            return redirect("run-list")
    elif request.method == "POST" and form.is_valid():
        try:
            campaign = create_campaign(form.to_spec(), created_by=request.user)
        except CampaignError as exc:
            form.add_error(None, str(exc))
        else:
            items = campaign.items.count()
            messages.success(
                request,
                ngettext(
                    "Created campaign %(name)s with %(items)d item.",
                    "Created campaign %(name)s with %(items)d items.",
                    items,
                )
                % {"name": campaign.name, "items": items},
            )
            return redirect("campaign-detail", pk=campaign.pk)
    return render(request, TEMPLATES + "campaign_form.html", {"form": form})


@manager_required
def campaign_detail(request, pk):
    from ..renditions import latest_media_job

    campaign = get_object_or_404(selectors.campaigns_with_progress(), pk=pk)
    return render(
        request,
        TEMPLATES + "campaign_detail.html",
        {
            "campaign": campaign,
            "model_roles": selectors.model_roles(campaign),
            "annotators": selectors.progress_per_annotator(campaign),
            "time": selectors.time_per_item(campaign),
            "excluded_prompts": selectors.excluded_prompts(campaign),
            "problems": selectors.problem_reports(campaign)[:PROBLEMS_SHOWN],
            "problem_count": selectors.problem_reports(campaign).count(),
            "add_form": AddAnnotatorsForm(campaign=campaign),
            "statuses": Campaign.Status,
            "media_job": None if campaign.media_ready else latest_media_job(campaign),
        },
    )


@manager_required
@require_POST
def campaign_status(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        try:
            services.set_campaign_status(campaign, form.cleaned_data["status"])
        except CampaignError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"The campaign is now {campaign.status}.")
    return redirect("campaign-detail", pk=campaign.pk)


@manager_required
@require_POST
def campaign_normalise_media(request, pk):
    from ..renditions import start_normalise_media

    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        job = start_normalise_media(campaign, created_by=request.user)
    except CampaignError as exc:
        messages.error(request, str(exc))
        return redirect("campaign-detail", pk=campaign.pk)
    messages.success(request, "Normalising the campaign's media; it is paused until the job has finished.")
    return redirect("job-detail", job_id=job.pk)


@manager_required
@require_POST
def campaign_add_annotators(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    form = AddAnnotatorsForm(request.POST, campaign=campaign)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        try:
            added = services.add_annotators(campaign, form.chosen())
        except CampaignError as exc:
            messages.error(request, str(exc))
        else:
            names = ", ".join(u.get_username() for u in added)
            messages.success(request, f"Added {names}.")
    return redirect("campaign-detail", pk=campaign.pk)


@manager_required
def campaign_items(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    page = Paginator(selectors.item_progress(campaign), ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    durations = selectors.median_duration_by_item(item.pk for item in page)
    rows = [(item, durations.get(item.pk)) for item in page]
    return render(
        request,
        TEMPLATES + "campaign_items.html",
        {
            "campaign": campaign,
            "page": page,
            "rows": rows,
            "gold_choices": GoldForm().fields["gold_answer"].choices,
        },
    )


@manager_required
@require_POST
def item_gold(request, pk, item_id):
    # campaign__pk, not campaign_id: an id beyond the database's integers is then a 404, not an error
    item = get_object_or_404(Item.objects.select_related("campaign"), pk=item_id, campaign__pk=pk)
    form = GoldForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        try:
            services.set_gold_answer(item, form.cleaned_data["gold_answer"])
        except CampaignError as exc:
            messages.error(request, str(exc))
        else:
            state = f"gold ({item.get_gold_answer_display()})" if item.gold_answer else "not gold"
            messages.success(request, f"Item {item.position} is {state}.")
    target = reverse("campaign-items", kwargs={"pk": pk})
    page = request.POST.get("page", "")
    return redirect(f"{target}?page={page}" if page.isdecimal() else target)


@manager_required
def campaign_quality(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    agreement = quality.campaign_agreement(campaign)
    return render(
        request,
        TEMPLATES + "campaign_quality.html",
        {
            "campaign": campaign,
            "figures": quality.annotator_quality(campaign),
            "agreement": agreement,
            "dimension_agreement": [
                (dimension_title(d.dimension, get_language()), d) for d in agreement.by_dimension
            ],
            "contradictions": quality.contradictions(campaign),
            "gap": quality.CONTRADICTION_GAP,
            "demo_data": selectors.campaigns_with_demo_judgments(Campaign.objects.filter(pk=pk)).exists(),
        },
    )


@manager_required
@require_POST
def annotator_exclude(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    form = ExclusionForm(request.POST, people=selectors.campaign_people(campaign))
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        annotator = form.cleaned_data["annotator"]
        try:
            services.exclude_annotator(
                campaign, annotator, reason=form.cleaned_data["reason"], by=request.user
            )
        except CampaignError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{annotator.get_username()} is excluded; their judgments are kept.")
    return redirect("campaign-quality", pk=campaign.pk)


@manager_required
@require_POST
def annotator_include(request, pk, user_id):
    campaign = get_object_or_404(Campaign, pk=pk)
    annotator = get_object_or_404(get_user_model(), pk=user_id)
    try:
        services.include_annotator(campaign, annotator)
    except CampaignError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{annotator.get_username()} counts again.")
    return redirect("campaign-quality", pk=campaign.pk)


@manager_required
def campaign_import(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    form = ImportJudgmentsForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        report = importing.import_judgments(
            campaign, form.cleaned_data["file"].read(), dry_run=form.cleaned_data["dry_run"]
        )
        if report.ok and not report.dry_run:
            messages.success(request, report.summary())
    return render(
        request,
        TEMPLATES + "campaign_import.html",
        {
            "campaign": campaign,
            "form": form,
            "report": report,
            "columns": importing.PAIRWISE_COLUMNS if campaign.is_paired else importing.SCORE_COLUMNS,
        },
    )


urlpatterns = [
    path("", campaign_list, name="campaign-list"),
    path("new/", campaign_new, name="campaign-new"),
    path("<int:pk>/", campaign_detail, name="campaign-detail"),
    path("<int:pk>/status/", campaign_status, name="campaign-status"),
    path("<int:pk>/annotators/", campaign_add_annotators, name="campaign-add-annotators"),
    path("<int:pk>/normalise-media/", campaign_normalise_media, name="campaign-normalise-media"),
    path("<int:pk>/items/", campaign_items, name="campaign-items"),
    path("<int:pk>/items/<int:item_id>/gold/", item_gold, name="campaign-item-gold"),
    path("<int:pk>/quality/", campaign_quality, name="campaign-quality"),
    path("<int:pk>/exclusions/", annotator_exclude, name="campaign-exclude"),
    path("<int:pk>/exclusions/<int:user_id>/delete/", annotator_include, name="campaign-include"),
    path("<int:pk>/import/", campaign_import, name="campaign-import"),
]
