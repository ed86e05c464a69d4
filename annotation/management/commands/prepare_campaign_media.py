from django.core.management.base import BaseCommand, CommandError

from annotation.campaigns import CampaignError
from annotation.models import Campaign
from annotation.renditions import prepare_campaign_media


class Command(BaseCommand):
    help = (
        "Give campaigns their own renditions of their videos, here and now (new campaigns get them from a "
        "job when they are created). For campaigns made before every campaign had renditions, which are "
        "shown the library's files until this is run. No work is handed out in a campaign while its "
        "media is prepared; answers to items already on screen are still taken."
    )

    def add_arguments(self, parser):
        parser.add_argument("campaign_ids", nargs="*", type=int, metavar="ID")
        parser.add_argument(
            "--all-without-renditions",
            action="store_true",
            help="every campaign that is not closed and has a video without a rendition of its own",
        )

    def handle(self, *args, campaign_ids: list[int], all_without_renditions: bool, **options):
        campaigns = list(Campaign.objects.filter(pk__in=campaign_ids))
        missing = set(campaign_ids) - {c.pk for c in campaigns}
        if missing:
            raise CommandError(f"no campaign with the id {', '.join(map(str, sorted(missing)))}")
        if all_without_renditions:
            open_campaigns = Campaign.objects.exclude(status=Campaign.Status.CLOSED)
            campaigns += [c for c in open_campaigns if c.media.count() > c.renditions.count()]
        if not campaigns:
            raise CommandError("name campaigns by id, or pass --all-without-renditions")
        for campaign in dict.fromkeys(campaigns):
            Campaign.objects.filter(pk=campaign.pk).update(media_ready=False)
            try:
                summary = prepare_campaign_media(campaign)
            except CampaignError as exc:
                raise CommandError(f"campaign {campaign.pk}: {exc}") from exc
            self.stdout.write(
                f"campaign {campaign.pk}: {summary['encoded']} videos encoded, {summary['kept']} kept"
            )
