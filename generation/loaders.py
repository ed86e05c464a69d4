"""Parsers for benchmark prompt files. Plain functions on text: no Django, no database.

Formats:
- `step-video`: the upstream Step-Video-T2V-Eval file, 128 prompts one per line; categories come from
  the published order and counts (Step-Video-T2V report, Table 7).
- `moviegen`: the upstream MovieGenVideoBenchWithTag.csv (`prompt,concept,motion_level`); concept tags
  are grouped as in the report's Table 12.
- `lines`: any UTF-8 file with one prompt per line.
- `csv` / `jsonl`: generic files with a `prompt` (or `text`) field and optional `category`, `tags`
  (a list, or a string separated by commas or semicolons), `motion_level` and `language`.
Errors name the line they are on.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("step-video", "moviegen", "lines", "csv", "jsonl")

# (category, count) in file order, from the Step-Video-T2V report's Table 7.
STEP_VIDEO_EVAL_CATEGORIES: tuple[tuple[str, int], ...] = (
    ("Sports", 12),
    ("Food", 11),
    ("Scenery", 12),
    ("Animals", 12),
    ("Festivals", 11),
    ("Combined Concepts", 12),
    ("Surreal", 11),
    ("People", 12),
    ("3D Animation", 12),
    ("Cinematography", 11),
    ("Style", 12),
)
STEP_VIDEO_EVAL_SIZE = sum(count for _, count in STEP_VIDEO_EVAL_CATEGORIES)

# The report's Table 12 groups Movie Gen's concept tags; a prompt with several tags counts in each group.
MOVIEGEN_TAG_GROUPS: tuple[tuple[str, str], ...] = (
    ("human - ", "human"),
    ("physics - ", "physics"),
    ("unusual activity", "unusual activity & subject"),
    ("unusual subject", "unusual activity & subject"),
    ("animal", "animal"),
    ("scene", "scene"),
    ("sequential motion", "sequential motion"),
    ("camera motion", "camera motion"),
)
MOTION_LEVELS = ("low", "medium", "high")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class FileFormatError(ValueError):
    """A text file that does not match its format; the message names the line."""


class BenchmarkFormatError(FileFormatError):
    """A prompt file that does not match its format; the message names the file and line."""


@dataclass(frozen=True)
class ParsedPrompt:
    position: int
    text: str
    language: str
    category: str = ""
    tags: tuple[str, ...] = ()
    motion_level: str = ""


@dataclass
class ParsedBenchmark:
    format: str
    prompts: list[ParsedPrompt] = field(default_factory=list)
    tag_groups: dict[str, str] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        seen: dict[str, None] = {}
        for prompt in self.prompts:
            if prompt.category:
                seen.setdefault(prompt.category, None)
        return list(seen)


def detect_language(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def moviegen_tag_group(tag: str) -> str:
    for prefix, group in MOVIEGEN_TAG_GROUPS:
        if tag == prefix.strip(" -") or tag.startswith(prefix):
            return group
    return ""


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.startswith("step-video-t2v-eval"):
        return "step-video"
    if name.startswith("moviegenvideobenchwithtag"):
        return "moviegen"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".txt"):
        return "lines"
    raise BenchmarkFormatError(
        f"{path.name}: cannot tell the format from the name; pass --format ({', '.join(FORMATS)})"
    )


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BenchmarkFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BenchmarkFormatError(f"{path.name}, line {line}: not UTF-8 text") from exc


def parse_benchmark_file(path: Path, fmt: str | None = None) -> ParsedBenchmark:
    fmt = fmt or detect_format(path)
    parsers = {
        "step-video": parse_step_video_eval,
        "moviegen": parse_moviegen_csv,
        "lines": parse_lines,
        "csv": parse_prompt_csv,
        "jsonl": parse_prompt_jsonl,
    }
    if fmt not in parsers:
        raise BenchmarkFormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        return parsers[fmt](read_text(path))
    except BenchmarkFormatError as exc:
        raise BenchmarkFormatError(f"{path.name}: {exc}") from exc


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a trailing newline ends the last line; it does not start an empty one
    return [line.rstrip("\r") for line in lines]


def parse_lines(text: str) -> ParsedBenchmark:
    prompts = []
    for number, line in enumerate(_lines(text), start=1):
        prompt = line.strip()
        if not prompt:
            raise BenchmarkFormatError(f"line {number}: empty line (one prompt per line expected)")
        prompts.append(ParsedPrompt(position=number, text=prompt, language=detect_language(prompt)))
    if not prompts:
        raise BenchmarkFormatError("no prompts found")
    return ParsedBenchmark(format="lines", prompts=prompts)


def parse_step_video_eval(text: str) -> ParsedBenchmark:
    plain = parse_lines(text)
    if len(plain.prompts) != STEP_VIDEO_EVAL_SIZE:
        raise BenchmarkFormatError(
            f"expected {STEP_VIDEO_EVAL_SIZE} prompts (one per line) as published, found {len(plain.prompts)}; "
            "categories are assigned from the published order, so the file must be unchanged"
        )
    categories = [name for name, count in STEP_VIDEO_EVAL_CATEGORIES for _ in range(count)]
    prompts = [
        ParsedPrompt(position=p.position, text=p.text, language=p.language, category=category)
        for p, category in zip(plain.prompts, categories, strict=True)
    ]
    return ParsedBenchmark(format="step-video", prompts=prompts)


def _split_tags(value: object, where: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        if not all(isinstance(t, str) for t in value):
            raise BenchmarkFormatError(f"{where}: tags must be strings")
        items = value
    elif isinstance(value, str):
        items = re.split(r"[,;]", value)
    else:
        raise BenchmarkFormatError(f"{where}: tags must be a list or a comma-separated string")
    return tuple(dict.fromkeys(t.strip() for t in items if t.strip()))


def _motion_level(value: object, where: str) -> str:
    level = str(value or "").strip().lower()
    if level and level not in MOTION_LEVELS:
        raise BenchmarkFormatError(
            f"{where}: motion_level must be one of {', '.join(MOTION_LEVELS)}, got {value!r}"
        )
    return level


def _prompt_from_record(record: dict, position: int, where: str) -> ParsedPrompt:
    text = record.get("prompt", record.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise BenchmarkFormatError(f"{where}: missing prompt text (a 'prompt' or 'text' field)")
    text = text.strip()
    language = str(record.get("language") or "").strip() or detect_language(text)
    category = record.get("category") or ""
    if not isinstance(category, str):
        raise BenchmarkFormatError(f"{where}: category must be a string")
    return ParsedPrompt(
        position=position,
        text=text,
        language=language,
        category=category.strip(),
        tags=_split_tags(record.get("tags"), where),
        motion_level=_motion_level(record.get("motion_level"), where),
    )


def csv_records(text: str, *, required_any: set[str]) -> list[tuple[int, dict]]:
    """(line number, row) for each CSV row; the header must name one of `required_any`."""
    reader = csv.DictReader(io.StringIO(text))
    header = set(reader.fieldnames or [])
    if not header & required_any:
        raise FileFormatError(
            f"line 1: header must name a {' or '.join(sorted(required_any))} column, got {sorted(header)}"
        )
    rows = []
    try:
        for record in reader:
            if None in record:
                raise FileFormatError(f"line {reader.line_num}: more fields than the header has")
            rows.append((reader.line_num, record))
    except csv.Error as exc:
        raise FileFormatError(f"line {reader.line_num}: {exc}") from exc
    if not rows:
        raise FileFormatError("no rows found")
    return rows


def jsonl_records(text: str) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON Lines file."""
    rows = []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise FileFormatError(f"line {number}: each line must be a JSON object")
        rows.append((number, record))
    if not rows:
        raise FileFormatError("no rows found")
    return rows


def _records(reader, *args, **kwargs) -> list[tuple[int, dict]]:
    try:
        return reader(*args, **kwargs)
    except FileFormatError as exc:
        raise BenchmarkFormatError(str(exc)) from exc


def parse_prompt_csv(text: str) -> ParsedBenchmark:
    rows = _records(csv_records, text, required_any={"prompt", "text"})
    prompts = [
        _prompt_from_record(record, i, f"line {line}") for i, (line, record) in enumerate(rows, start=1)
    ]
    return ParsedBenchmark(format="csv", prompts=prompts)


def parse_moviegen_csv(text: str) -> ParsedBenchmark:
    rows = _records(csv_records, text, required_any={"prompt"})
    missing = {"prompt", "concept", "motion_level"} - set(rows[0][1])
    if missing:
        raise BenchmarkFormatError(
            f"line 1: Movie Gen header needs prompt,concept,motion_level; missing {sorted(missing)}"
        )
    prompts, groups = [], {}
    for position, (line, record) in enumerate(rows, start=1):
        where = f"line {line}"
        tags = _split_tags(record["concept"], where)
        for tag in tags:
            group = moviegen_tag_group(tag)
            if not group:
                raise BenchmarkFormatError(f"{where}: unknown Movie Gen concept tag {tag!r}")
            groups[tag] = group
        if not record["motion_level"].strip():
            raise BenchmarkFormatError(f"{where}: motion_level is empty")
        prompt = _prompt_from_record(
            {"prompt": record["prompt"], "motion_level": record["motion_level"]}, position, where
        )
        prompts.append(
            ParsedPrompt(prompt.position, prompt.text, prompt.language, "", tags, prompt.motion_level)
        )
    return ParsedBenchmark(format="moviegen", prompts=prompts, tag_groups=groups)


def parse_prompt_jsonl(text: str) -> ParsedBenchmark:
    records = _records(jsonl_records, text)
    prompts = [
        _prompt_from_record(record, i, f"line {line}") for i, (line, record) in enumerate(records, start=1)
    ]
    return ParsedBenchmark(format="jsonl", prompts=prompts)
