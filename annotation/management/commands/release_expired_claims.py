from django.core.management.base import BaseCommand

from annotation.assignment import release_expired_claims


class Command(BaseCommand):
    help = (
        "Release every claim whose annotator left it unanswered past the campaign's timeout, so the items "
        "go back to the pool. Claims are also released lazily whenever work is asked for; run this from "
        "cron to keep the progress pages exact."
    )

    def handle(self, *args, **options):
        released = release_expired_claims()
        self.stdout.write(f"Released {released} expired claim{'s' if released != 1 else ''}.")
