"""load_benchmark writes prompts, categories and tags once; loading again changes nothing."""

import io

import pytest
from django.core.management import CommandError, call_command

from generation.models import Benchmark, Category, Prompt, Tag
from generation.services import GenerationError, load_benchmark

pytestmark = pytest.mark.django_db


def test_step_video_eval_loads_with_categories_and_is_idempotent(shared_benchmarks):
    out = io.StringIO()
    call_command("load_benchmark", str(shared_benchmarks / "Step-Video-T2V-Eval"), stdout=out)
    assert "128 prompts, 11 categories" in out.getvalue()
    benchmark = Benchmark.objects.get(slug="step-video-t2v-eval")
    counts = {c.name: c.prompts.count() for c in benchmark.categories.all()}
    assert counts["Sports"] == 12 and counts["Food"] == 11 and counts["Style"] == 12 and len(counts) == 11
    before = (
        Prompt.objects.count(),
        Category.objects.count(),
        list(Prompt.objects.values_list("id", "text")),
    )
    out = io.StringIO()
    call_command("load_benchmark", str(shared_benchmarks / "Step-Video-T2V-Eval"), stdout=out)
    assert "Already loaded, unchanged" in out.getvalue()
    assert (
        Prompt.objects.count(),
        Category.objects.count(),
        list(Prompt.objects.values_list("id", "text")),
    ) == before


def test_moviegen_loads_tags_with_report_groups(shared_benchmarks):
    result = load_benchmark(shared_benchmarks / "MovieGenVideoBenchWithTag.csv")
    benchmark = result.benchmark
    assert benchmark.prompts.count() == 1003
    assert Tag.objects.get(benchmark=benchmark, name="physics - gravity").group == "physics"
    first = benchmark.prompts.get(position=1)
    assert [t.name for t in first.tags.all()] == ["human - activity"] and first.motion_level == "low"
    multi = benchmark.prompts.filter(tags__group="human").distinct().count()
    assert multi == benchmark.prompts.filter(tags__name__startswith="human - ").distinct().count() > 0
    assert load_benchmark(shared_benchmarks / "MovieGenVideoBenchWithTag.csv").created is False


def test_different_prompts_under_the_same_slug_are_refused(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("a cat\na dog\n", encoding="utf-8")
    load_benchmark(path)
    path.write_text("a cat\na horse\n", encoding="utf-8")
    with pytest.raises(GenerationError, match="already loaded with different prompts"):
        load_benchmark(path)
    assert list(Prompt.objects.values_list("text", flat=True)) == ["a cat", "a dog"]
    assert load_benchmark(path, slug="mine-v2").benchmark.prompts.count() == 2


def test_bad_file_gives_a_command_error_naming_the_line_and_writes_nothing(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "ok"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(CommandError, match="broken.jsonl: line 2: each line must be a JSON object"):
        call_command("load_benchmark", str(path))
    assert Benchmark.objects.count() == 0 and Prompt.objects.count() == 0
