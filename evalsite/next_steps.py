"""What a manager does next, read from the site's state: the manager home lists it so a newcomer sees
the path from an empty site to a leaderboard (benchmark, videos, campaign, annotators, results)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .accounts import ANNOTATORS_GROUP


@dataclass(frozen=True)
class Step:
    text: str
    url: str
    link: str


def next_steps() -> list[Step]:
    """The steps still open, first the one to do now; the last step (read the results) stays once a
    campaign has judgments."""
    from annotation.models import Campaign, Judgment
    from generation.models import Benchmark, Video

    if not Benchmark.objects.exists():
        return [
            Step(
                _("Load a prompt benchmark: `python manage.py load_benchmark PATH` (or setup_site)."),
                reverse("benchmark-list"),
                _("Benchmarks"),
            )
        ]
    steps = []
    if not Video.objects.filter(status=Video.Status.READY).exists():
        steps.append(
            Step(
                _("Add videos: import a folder or upload clips, or generate them."),
                reverse("video-import"),
                _("Import"),
            )
        )
    if not get_user_model().objects.filter(groups__name=ANNOTATORS_GROUP).exists():
        steps.append(
            Step(_("Create annotator accounts."), reverse("admin:create-annotators"), _("Create annotators"))
        )
    if not Campaign.objects.exists():
        steps.append(
            Step(
                _("Create a campaign: choose its kind, the models to compare and the annotators."),
                reverse("campaign-new"),
                _("New campaign"),
            )
        )
    elif not Judgment.objects.exists():
        steps.append(
            Step(
                _("Give the annotators their accounts: each sees their campaigns on logging in."),
                reverse("campaign-list"),
                _("Campaigns"),
            )
        )
    else:
        from annotation.selectors import campaigns_with_demo_judgments

        if campaigns_with_demo_judgments().exists():
            steps.append(
                Step(
                    _(
                        "The demo campaigns hold made-up demo judgments. Try the annotator's side: log in as a "
                        "demo annotator (setup_site printed their passwords) in another browser."
                    ),
                    reverse("campaign-list"),
                    _("Campaigns"),
                )
            )
        steps.append(
            Step(
                _(
                    "Read the results: each campaign's tables and plots, the leaderboard and annotator quality."
                ),
                reverse("results-list"),
                _("Results"),
            )
        )
    return steps
