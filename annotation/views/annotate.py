"""The annotator's page and the per-user language switch.

The page is a shell: after it loads, everything (the next item, answers, playback events, problem
reports, recent answers) goes through the JSON API in `annotation.api.annotate`, so submitting an
answer never reloads the page. The shell shows a campaign only by its id and a neutral kind label:
managers may write model names into campaign names."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_POST

from evalsite.middleware import LanguageError, save_user_language
from evalsite.permissions import is_manager

from ..assignment import annotator_done_and_total
from ..models import Campaign
from ..presentation import shown_kind
from ..rubric import rubric_for_display

# What annotators see instead of Campaign.Kind's labels, which speak of DPO and baselines.
KIND_LABELS = {
    Campaign.Kind.PAIRWISE: gettext_lazy("Pairwise comparison"),
    Campaign.Kind.RUBRIC: gettext_lazy("Rubric scoring"),
    Campaign.Kind.SEED_PREFERENCE: gettext_lazy("Preference"),
    Campaign.Kind.AB_SHARED_NOISE: gettext_lazy("A/B preference"),
}

# The three answers of the paired kinds, as (API value, key hint, label) for comparisons...
COMPARISON_CHOICES = [
    ("left", "1 / ←", pgettext_lazy("pairwise answer", "Left is better")),
    ("tie", "2 / ↓", pgettext_lazy("pairwise answer", "Similar")),
    ("right", "3 / →", pgettext_lazy("pairwise answer", "Right is better")),
]
# ...and for the preference kinds, where neither side is meant to be "better".
PREFERENCE_CHOICES = [
    ("left", "1 / ←", pgettext_lazy("preference answer", "Prefer left")),
    ("tie", "2 / ↓", pgettext_lazy("preference answer", "No preference")),
    ("right", "3 / →", pgettext_lazy("preference answer", "Prefer right")),
]


def task_title(campaign: Campaign) -> str:
    """The only name an annotator sees for a campaign."""
    return gettext("Task %(id)s — %(kind)s") % {"id": campaign.pk, "kind": KIND_LABELS[campaign.kind]}


def may_annotate(user: AbstractBaseUser, campaign: Campaign) -> bool:
    return campaign.annotators.filter(pk=user.pk).exists()


def answer_choices(campaign: Campaign) -> list:
    """The (API value, key hint, label) answers of a paired campaign; none for rubric scoring."""
    if not campaign.is_paired:
        return []
    return COMPARISON_CHOICES if campaign.kind == Campaign.Kind.PAIRWISE else PREFERENCE_CHOICES


@dataclass(frozen=True)
class AnnotatorTask:
    """One campaign on an annotator's home page."""

    campaign_id: int
    title: str
    description: str
    status: str
    done: int
    total: int
    url: str
    media_ready: bool = True

    @property
    def is_open(self) -> bool:
        return self.status == Campaign.Status.ACTIVE and self.media_ready


def annotator_tasks(user: AbstractBaseUser) -> list[AnnotatorTask]:
    """The campaigns `user` annotates (closed ones aside), newest first, with their progress in each."""
    campaigns = Campaign.objects.filter(annotators=user).exclude(status=Campaign.Status.CLOSED)
    tasks = []
    for campaign in campaigns.order_by("-created_at", "-pk"):
        done, total = annotator_done_and_total(campaign, user)
        tasks.append(
            AnnotatorTask(
                campaign_id=campaign.pk,
                title=task_title(campaign),
                description=campaign.description,
                status=campaign.status,
                done=done,
                total=total,
                url=reverse("annotate-page", kwargs={"campaign_id": campaign.pk}),
                media_ready=campaign.media_ready,
            )
        )
    return tasks


def _key_legend(campaign: Campaign) -> list[tuple[str, str]]:
    if campaign.is_paired:
        answer_keys = [(keys, label) for _, keys, label in answer_choices(campaign)]
    else:
        answer_keys = [
            ("a s d f", gettext("choose a dimension (row)")),
            ("↑ ↓", gettext("previous / next dimension")),
            ("← → / Tab", gettext("previous / next video")),
            ("1 – 5", gettext("score the chosen cell (then moves on)")),
        ]
    return [
        *answer_keys,
        ("Enter", gettext("submit")),
        (gettext("Space"), gettext("play / pause")),
        (", / .", gettext("one frame back / forward")),
        ("[ / ]", gettext("slower / faster")),
        ("L", gettext("loop on / off")),
        ("R", gettext("replay from the start")),
        ("H / ?", gettext("show the rubric")),
        ("P", gettext("report a problem")),
        ("Esc", gettext("close / back from an enlarged video")),
    ]


def _page_strings() -> dict[str, str]:
    """Every text the page's script writes, translated into the active language."""
    return {
        "left": gettext("Left"),
        "right": gettext("Right"),
        "video_n": gettext("Video %(n)s"),
        "video": gettext("Video"),
        "progress": gettext("%(done)s of %(total)s"),
        "submit": gettext("Submit (Enter)"),
        "save_revision": gettext("Save revision (Enter)"),
        "saving": gettext("Saving…"),
        "choose_answer": gettext("Choose an answer (1, 2 or 3)"),
        "scores_missing": gettext("Score every dimension: %(missing)s missing"),
        "watch_to_end": gettext("Watch to the end first: %(videos)s"),
        "played_through": gettext("played through"),
        "all_done": gettext("All done: there is nothing left for you in this task. Thank you!"),
        "server_error": gettext("The server answered with an error (%(status)s). Please try again."),
        "network_error": gettext("The server could not be reached. Check your connection and try again."),
        "revising": gettext("You are revising an earlier answer."),
        "back_to_current": gettext("Back to the current item"),
        "waiting": gettext(
            "Other annotators hold the last items right now. This page checks again every 30 seconds."
        ),
        "revise": gettext("revise"),
        "no_recent": gettext("No answers yet."),
        "problem_sent": gettext("Thank you: the problem was reported and the item set aside."),
        "revised": gettext("Revision saved."),
        "play": gettext("Play"),
        "pause": gettext("Pause"),
        "enlarge": gettext("Click to enlarge; Esc to go back"),
        "dimension": gettext("Dimension"),
        "video_error": gettext("%(video)s could not be loaded. If this persists, report a problem (P)."),
    }


def _api_urls(campaign: Campaign) -> dict[str, str]:
    """The API the page talks to; the script puts each assignment's token where `{token}` stands."""
    placeholder = "__token__"
    by_token = {
        name: reverse(f"api:annotate-{name}", kwargs={"token": placeholder}).replace(placeholder, "{token}")
        for name in ("answer", "playback", "problem")
    }
    return {
        "next": reverse("api:annotate-next", kwargs={"campaign_id": campaign.pk}),
        "recent": reverse("api:annotate-recent", kwargs={"campaign_id": campaign.pk}),
        **by_token,
    }


@login_required
def annotate_page(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    member = may_annotate(request.user, campaign)
    if not member and not is_manager(request.user):
        return render(
            request,
            "annotation/annotate/forbidden.html",
            {"title": task_title(campaign)},
            status=403,
        )
    language = translation.get_language() or settings.LANGUAGE_CODE
    rubric = rubric_for_display(language)
    config = {
        "kind": shown_kind(campaign),
        "paired": campaign.is_paired,
        "api": _api_urls(campaign),
        "home": reverse("home"),
        # Frame stepping: a normalising campaign shows every video at one known rate.
        "fps": campaign.normalised_format.get("fps") if campaign.normalise_media else None,
        "choices": {value: str(label) for value, _, label in answer_choices(campaign)},
        "dimensions": [
            {"key": row["key"], "shortcut": row["shortcut"], "title": row["title"]} for row in rubric
        ],
        # Level texts by dimension and score: the active language, and the other one shown beneath.
        "rubric_levels": {
            row["key"]: {str(lv["score"]): lv["text"] for lv in row["levels"]} for row in rubric
        },
        "rubric_levels_other": {
            row["key"]: {str(lv["score"]): lv["other_text"] for lv in row["levels"]} for row in rubric
        },
        "rubric_other_lang": rubric[0]["other_lang"],
    }
    context = {
        "campaign_id": campaign.pk,
        "title": task_title(campaign),
        "description": campaign.description,
        "kind": shown_kind(campaign),
        "paired": campaign.is_paired,
        "status": campaign.status,
        "preview": not member,
        "choices": answer_choices(campaign),
        "rubric": rubric,
        "legend": _key_legend(campaign),
        "config": config,
        "strings": _page_strings(),
    }
    return render(request, "annotation/annotate/page.html", context)


@login_required
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Store the user's UI language (it follows them to any browser) and go back where they were."""
    try:
        language = save_user_language(request.user, request.POST.get("language", ""))
    except LanguageError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    next_url = request.POST.get("next") or request.headers.get("referer") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("home")
    response = redirect(next_url)
    # The cookie keeps the language on the login page after logging out.
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response


urlpatterns = [
    path("<int:campaign_id>/annotate/", annotate_page, name="annotate-page"),
    path("language/", set_language, name="set-user-language"),
]
