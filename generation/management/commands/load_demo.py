from django.core.management.base import BaseCommand, CommandError

from generation.demo import DEMO_PROMPTS, load_demo
from generation.models import Benchmark


class Command(BaseCommand):
    help = "Add two demo models with synthetic clips (clearly labelled) for the first prompts of a benchmark."

    def add_arguments(self, parser):
        parser.add_argument("--benchmark", default="step-video-t2v-eval", help="benchmark slug")
        parser.add_argument("--prompts", type=int, default=DEMO_PROMPTS)

    def handle(self, *args, benchmark: str, prompts: int, **options):
        bench = Benchmark.objects.filter(slug=benchmark).first()
        if bench is None:
            raise CommandError(f"unknown benchmark {benchmark!r}; load it first (load_benchmark)")
        result = load_demo(bench, prompts=prompts)
        self.stdout.write(f"Demo models {', '.join(result['models'])}: {result['videos_created']} new clips.")
