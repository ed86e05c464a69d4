from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.importing import JudgmentImportError, find_campaign, import_judgments


class Command(BaseCommand):
    help = (
        "Import judgments collected elsewhere from a CSV into a campaign. Pairwise, seed-preference and A/B "
        "campaigns take prompt,annotator,left_model,right_model,choice (left/tie/right); rubric campaigns "
        "take prompt,model,annotator,instruction_following,motion_smoothness,physical_plausibility,"
        "aesthetic_appeal (1-5). A prompt is its position in the benchmark or its exact text; a model is "
        "'name version', 'name:version' or a name only one of the campaign's models has. All rows are checked "
        "first: with any problem nothing is imported. Rows imported before are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv_path", type=Path, metavar="CSV")
        parser.add_argument("--campaign", required=True, help="the campaign's exact name, or its id")
        parser.add_argument("--dry-run", action="store_true", help="check and report; store nothing")

    def handle(self, *args, csv_path: Path, campaign: str, dry_run: bool, **options):
        try:
            target = find_campaign(campaign)
        except JudgmentImportError as exc:
            raise CommandError(str(exc)) from exc
        try:
            data = csv_path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {csv_path}: {exc.strerror or exc}") from exc
        report = import_judgments(target, data, dry_run=dry_run)
        if not report.ok:
            for problem in report.errors:
                self.stderr.write(str(problem))
            raise CommandError(report.summary())
        self.stdout.write(report.summary())
