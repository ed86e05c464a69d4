from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evalsite.accounts import AccountsError, create_annotators, parse_usernames_csv
from evalsite.spreadsheet import csv_text


class Command(BaseCommand):
    help = "Create annotator accounts from a CSV of usernames (optional second column: email). Prints each password once."

    def add_arguments(self, parser):
        parser.add_argument("csv_path", type=Path)
        parser.add_argument(
            "--invite", action="store_true", help="print one-time invite links instead of passwords"
        )
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="site address for invite links"
        )

    def handle(self, *args, csv_path: Path, invite: bool, base_url: str, **options):
        try:
            rows = parse_usernames_csv(csv_path.read_text(encoding="utf-8-sig"))
            created = create_annotators(rows, invite=invite)
        except (AccountsError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        rows = [["username", "password" if not invite else "invite_link"]]
        for account in created:
            secret = account.password if not invite else base_url.rstrip("/") + account.invite_path
            rows.append([account.username, secret])
        self.stdout.write(csv_text(rows), ending="")
