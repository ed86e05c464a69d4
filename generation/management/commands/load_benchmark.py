from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.loaders import FORMATS, BenchmarkFormatError
from generation.services import GenerationError, load_benchmark


class Command(BaseCommand):
    help = (
        "Load a benchmark prompt file: the upstream Step-Video-T2V-Eval file, Movie Gen's "
        "MovieGenVideoBenchWithTag.csv, a text file of one prompt per line, or a CSV/JSONL of prompts. "
        "Running it twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
        parser.add_argument("--slug", help="benchmark slug (default: from the format or file name)")
        parser.add_argument("--name", help="display name")

    def handle(self, *args, path: Path, format: str | None, slug: str | None, name: str | None, **options):
        try:
            result = load_benchmark(path, fmt=format, slug=slug, name=name)
        except (BenchmarkFormatError, GenerationError) as exc:
            raise CommandError(str(exc)) from exc
        benchmark = result.benchmark
        verb = "Loaded" if result.created else "Already loaded, unchanged:"
        categories = benchmark.categories.count()
        self.stdout.write(
            f"{verb} {benchmark.name} ({benchmark.slug}): {result.prompt_count} prompts"
            + (f", {categories} categories" if categories else "")
            + (f", {benchmark.tags.count()} tags" if benchmark.tags.exists() else "")
        )
