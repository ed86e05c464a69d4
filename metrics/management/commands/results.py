"""Print a campaign's results (every table and plot, as on its page and in the API) as JSON on stdout."""

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Campaign
from metrics.human.results import ResultsError, campaign_results, check_rounds, parse_id


class Command(BaseCommand):
    help = "Print the results of a campaign (given by id or name) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="campaign id or exact name")
        parser.add_argument("--rounds", default=None, help="bootstrap rounds (default 1000)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")

    def handle(self, *args, campaign: str, rounds: str | None, seed: int, **options):
        found = Campaign.objects.filter(name=campaign).first()
        campaign_id = parse_id(campaign)
        if found is None and campaign_id is not None:
            found = Campaign.objects.filter(pk=campaign_id).first()
        if found is None:
            known = ", ".join(f"{c.pk}: {c.name}" for c in Campaign.objects.order_by("pk")[:20])
            raise CommandError(
                f"no campaign with the id or name {campaign!r}" + (f"; campaigns: {known}" if known else "")
            )
        try:
            results = campaign_results(found, rounds=check_rounds(rounds), seed=seed)
        except ResultsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(results, ensure_ascii=False, indent=1))
