import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

STEP_VIDEO_FILE = "Step-Video-T2V-Eval"


class Command(BaseCommand):
    help = (
        "First-run setup: load Step-Video-T2V-Eval (from EVALSITE_BENCHMARKS_DIR, or --benchmark PATH), "
        "create a manager account and print its credentials, and with --demo add synthetic demo clips. "
        "Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--benchmark", type=Path, help=f"path of the {STEP_VIDEO_FILE} prompt file")
        parser.add_argument("--manager", default="manager", help="manager username (default: manager)")
        parser.add_argument("--demo", action="store_true", help="add demo models with synthetic clips")

    def handle(self, *args, benchmark: Path | None, manager: str, demo: bool, **options):
        path = benchmark or Path(settings.EVALSITE_BENCHMARKS_DIR) / STEP_VIDEO_FILE
        if path.is_file():
            call_command("load_benchmark", str(path), "--format", "step-video", stdout=self.stdout)
        elif benchmark is not None:
            raise CommandError(f"{benchmark}: no such file")
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"No {STEP_VIDEO_FILE} file at {path}; set EVALSITE_BENCHMARKS_DIR or pass --benchmark PATH "
                    "(or load it later with `manage.py load_benchmark PATH`)."
                )
            )
        User = get_user_model()
        user = User.objects.filter(username=manager).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username=manager, email="", password=password)
            self.stdout.write(
                self.style.SUCCESS(f"Manager account created. Username: {manager}  Password: {password}")
            )
        else:
            self.stdout.write(
                f"Manager account {manager!r} already exists (password unchanged; "
                f"`python manage.py changepassword {manager}` sets a new one)."
            )
        if demo:
            call_command("load_demo", stdout=self.stdout)
            self._demo_campaigns()

    def _demo_campaigns(self) -> None:
        from annotation.demo import load_demo_campaigns
        from generation.models import Benchmark

        benchmark = Benchmark.objects.filter(slug="step-video-t2v-eval").first()
        if benchmark is None:
            return
        result = load_demo_campaigns(benchmark)
        for name in result["campaigns"]:
            self.stdout.write(f"Demo campaign created: {name}")
        if result["judgments"]:
            self.stdout.write(
                f"Demo judgments made up for the demo annotators (demo data, not people's answers): "
                f"{result['judgments']}"
            )
        for username, password in result["passwords"].items():
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo annotator account created. Username: {username}  Password: {password}"
                )
            )
