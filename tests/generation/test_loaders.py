"""Prompt-file parsers, on the real upstream files and on broken ones."""

import json

import pytest

from generation.loaders import (
    STEP_VIDEO_EVAL_CATEGORIES,
    BenchmarkFormatError,
    moviegen_tag_group,
    parse_benchmark_file,
)


def test_step_video_eval_has_128_prompts_in_the_published_categories(shared_benchmarks):
    parsed = parse_benchmark_file(shared_benchmarks / "Step-Video-T2V-Eval")
    assert len(parsed.prompts) == 128
    counts = {}
    for prompt in parsed.prompts:
        counts[prompt.category] = counts.get(prompt.category, 0) + 1
    assert list(counts.items()) == list(STEP_VIDEO_EVAL_CATEGORIES)
    assert parsed.prompts[0].category == "Sports" and parsed.prompts[11].category == "Sports"
    assert parsed.prompts[12].category == "Food"
    assert parsed.prompts[-1].category == "Style" and parsed.prompts[-1].position == 128
    assert all(p.language == "zh" for p in parsed.prompts)
    assert parsed.prompts[0].text.startswith("一名足球运动员")


def test_moviegen_csv_has_1003_prompts_with_tags_groups_and_motion(shared_benchmarks):
    parsed = parse_benchmark_file(shared_benchmarks / "MovieGenVideoBenchWithTag.csv")
    assert len(parsed.prompts) == 1003
    assert {p.motion_level for p in parsed.prompts} == {"low", "medium", "high"}
    assert parsed.prompts[0].tags == ("human - activity",)
    assert parsed.tag_groups["human - emotion"] == "human"
    assert parsed.tag_groups["physics - fluid dynamics"] == "physics"
    assert parsed.tag_groups["unusual subject"] == "unusual activity & subject"
    assert set(parsed.tag_groups.values()) == {
        "human",
        "physics",
        "unusual activity & subject",
        "animal",
        "scene",
        "sequential motion",
        "camera motion",
    }


def test_moviegen_plain_text_is_read_as_one_prompt_per_line(shared_benchmarks):
    parsed = parse_benchmark_file(shared_benchmarks / "MovieGenVideoBench.txt")
    assert len(parsed.prompts) == 1003 and parsed.prompts[0].language == "en"


def test_tag_group_of_unknown_tag_is_empty():
    assert moviegen_tag_group("human - hand") == "human"
    assert moviegen_tag_group("weather") == ""


def test_step_video_file_with_a_missing_line_is_refused(tmp_path, shared_benchmarks):
    lines = (shared_benchmarks / "Step-Video-T2V-Eval").read_text(encoding="utf-8").split("\n")
    broken = tmp_path / "Step-Video-T2V-Eval"
    broken.write_text("\n".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match="expected 128 prompts.*found 127"):
        parse_benchmark_file(broken)


def test_empty_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a cat\n\na dog\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=r"prompts.txt: line 2: empty line"):
        parse_benchmark_file(path)


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes("a cat\n一只狗\n".encode("gbk"))
    with pytest.raises(BenchmarkFormatError, match="line 2: not UTF-8"):
        parse_benchmark_file(path)


def test_generic_csv_with_category_tags_and_bad_motion_level(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        'prompt,category,tags,motion_level\n"a red car",Vehicles,"fast; city",high\n', encoding="utf-8"
    )
    parsed = parse_benchmark_file(path)
    assert parsed.prompts[0].category == "Vehicles" and parsed.prompts[0].tags == ("fast", "city")
    path.write_text(
        'prompt,category,tags,motion_level\n"a red car",Vehicles,"fast",extreme\n', encoding="utf-8"
    )
    with pytest.raises(BenchmarkFormatError, match="line 2: motion_level must be one of"):
        parse_benchmark_file(path)


def test_generic_csv_without_prompt_column_is_refused(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("caption\nhello\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match="line 1: header must name a prompt or text column"):
        parse_benchmark_file(path)


def test_jsonl_reports_bad_json_and_missing_text_by_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "一只猫", "tags": ["animal"]}) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match="line 2: not valid JSON"):
        parse_benchmark_file(path)
    path.write_text(
        json.dumps({"prompt": "一只猫", "tags": ["animal"]}) + "\n" + json.dumps({"category": "x"}) + "\n"
    )
    with pytest.raises(BenchmarkFormatError, match="line 2: missing prompt text"):
        parse_benchmark_file(path)
    path.write_text(json.dumps({"prompt": "一只猫", "tags": ["animal"]}) + "\n")
    prompt = parse_benchmark_file(path).prompts[0]
    assert prompt.language == "zh" and prompt.tags == ("animal",)


def test_unknown_extension_asks_for_a_format(tmp_path):
    path = tmp_path / "prompts.dat"
    path.write_text("x")
    with pytest.raises(BenchmarkFormatError, match="pass --format"):
        parse_benchmark_file(path)
