import json
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.importing import extract_archive, plan_import, run_import
from generation.models import Benchmark
from generation.services import GenerationError


class Command(BaseCommand):
    help = (
        "Import videos from a folder, a manifest (CSV/JSONL) in it, or a zip archive. Everything is checked "
        "(each file decoded) before anything is written; --dry-run only reports."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", type=Path, help="folder or .zip archive")
        parser.add_argument(
            "--manifest",
            help="manifest file name inside the folder (default: manifest.csv/.jsonl if present)",
        )
        parser.add_argument("--benchmark", help="benchmark slug for rows that do not name one")
        parser.add_argument("--model", help="model name for a folder of <position>[_seed<N>].<ext> files")
        parser.add_argument("--create-models", action="store_true", help="create models the import names")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, source: Path, **options):
        if source.suffix.lower() != ".zip":
            return self._import(source, **options)
        with tempfile.TemporaryDirectory(prefix="evalsite-import-") as unpacked:  # removed however it ends
            try:
                folder = extract_archive(source, Path(unpacked) / "archive")
            except GenerationError as exc:
                raise CommandError(str(exc)) from exc
            return self._import(folder, **options)

    def _import(self, source: Path, *, manifest, benchmark, model, create_models, dry_run, **options):
        bench = None
        if benchmark:
            bench = Benchmark.objects.filter(slug=benchmark).first()
            if bench is None:
                raise CommandError(f"unknown benchmark {benchmark!r}")
        try:
            plan = plan_import(
                source, manifest=manifest, benchmark=bench, model_name=model, create_models=create_models
            )
        except GenerationError as exc:
            raise CommandError(str(exc)) from exc
        report = plan.report()
        for error in plan.errors:
            self.stderr.write(f"error: {error}")
        self.stdout.write(
            f"{report['would_import']} to import, {report['already_present']} already present, "
            f"{report['refusals']} refusals, {len(plan.errors)} problems"
        )
        if plan.errors:
            raise CommandError(f"{len(plan.errors)} problem(s) found; nothing imported")
        if dry_run:
            return
        try:
            summary = run_import(plan)
        except GenerationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(summary))
