"""Export files for DPO and reward-model training: records, their JSONL and Parquet forms, the manifest, and
publishing a finished folder in one step. No Django here: the site builds the rows, this writes the bytes.

The same data gives the same bytes. Records are sorted before they get here; JSON is written with sorted
keys, no ASCII escaping and fixed separators; Parquet has a fixed schema per file kind, one fixed
compression (zstd, level 3), no pandas metadata, and no timestamps anywhere. pyarrow records its own
version in `created_by`, which is stable for a given installation.

Files (each split gets its own file, so no prompt is on both sides):
- `pairs-<split>.*`: full records (prompt, chosen and rejected videos with model, checkpoint, seed, noise id
  and generation settings, votes, agreement, hashed annotator ids, source campaigns).
- `dpo-<split>.*`: what DPO trainers read directly: prompt text, chosen and rejected file paths (relative
  to MEDIA_ROOT), label (1.0, or 0.5 for a kept tie) and the record id to join back to `pairs`.
- `scores-<split>.*`: per-video Metric-2 scores for reward-model training.
- `manifest.json`: counts, options, source campaigns, each file's name, size and sha256, schema version.

In Parquet, `generation_settings` is a JSON string (its keys differ from model to model); `read_parquet`
decodes it, so both formats read back to the same records.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .pairs import (
    DIMENSIONS,
    SPLITS,
    PairsError,
    PreferencePair,
    Split,
    VideoScores,
    check_options,
    check_split,
)

SCHEMA_VERSION = 2  # 2: left-out counts by the shared rules' reasons; the split by prompt text
FORMATS: tuple[str, ...] = ("jsonl", "parquet")
DATASETS: tuple[str, ...] = ("pairs", "dpo", "scores")
MANIFEST_NAME = "manifest.json"
PARQUET_COMPRESSION = "zstd"
PARQUET_COMPRESSION_LEVEL = 3
JSON_SEPARATORS = (",", ":")


class ExportOptionsError(PairsError):
    """Bad export options; the message says which and why."""


@dataclass(frozen=True)
class ExportOptions:
    min_agreement: float = 0.0
    ties: str = "drop"  # "drop" or "label" (kept with label 0.5)
    granularity: str = "pair"  # "pair" (votes aggregated) or "judgment"
    validation_fraction: float = 0.1
    split_seed: str = "0"
    formats: tuple[str, ...] = FORMATS

    def __post_init__(self) -> None:
        try:
            check_options(min_agreement=self.min_agreement, ties=self.ties, granularity=self.granularity)
            check_split(seed=self.split_seed, validation_fraction=self.validation_fraction)
        except PairsError as exc:
            raise ExportOptionsError(str(exc)) from None
        formats = tuple(self.formats) if not isinstance(self.formats, str) else (self.formats,)
        if not formats or any(f not in FORMATS for f in formats):
            raise ExportOptionsError(
                f"formats must be one or more of {', '.join(FORMATS)}; got {list(formats)!r}"
            )
        # One spelling per choice of formats, so equal options give equal manifests.
        object.__setattr__(self, "formats", tuple(f for f in FORMATS if f in formats))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["formats"] = list(self.formats)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportOptions:
        unknown = sorted(set(data) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise ExportOptionsError(f"unknown export options: {', '.join(unknown)}")
        values = dict(data)
        try:
            if "min_agreement" in values:
                values["min_agreement"] = float(values["min_agreement"])
            if "validation_fraction" in values:
                values["validation_fraction"] = float(values["validation_fraction"])
        except (TypeError, ValueError):
            raise ExportOptionsError("min_agreement and validation_fraction must be numbers") from None
        if "split_seed" in values:
            values["split_seed"] = str(values["split_seed"])
        if "formats" in values and (
            isinstance(values["formats"], str) or not isinstance(values["formats"], Sequence)
        ):
            raise ExportOptionsError("formats must be a list, e.g. ['jsonl', 'parquet']")
        return cls(**values)


@dataclass(frozen=True)
class PromptInfo:
    id: int
    text: str
    benchmark: str
    position: int
    category: str | None


@dataclass(frozen=True)
class ExportedVideo:
    video_id: str  # the video's public id
    original_file: str  # relative to MEDIA_ROOT
    playable_file: str  # relative to MEDIA_ROOT
    url: str | None  # the site's playable URL (a path on the site)
    original_url: str | None
    model: str
    model_version: str
    checkpoint: str
    seed: int | None
    noise_id: str
    generation_settings: dict[str, Any] = field(default_factory=dict)


def _prompt_dict(prompt: PromptInfo) -> dict[str, Any]:
    return asdict(prompt)


def _video_dict(video: ExportedVideo) -> dict[str, Any]:
    return asdict(video)


def pair_record(
    pair: PreferencePair, split: Split, prompts: Mapping[int, PromptInfo], videos: Mapping[str, ExportedVideo]
) -> dict[str, Any]:
    return {
        "record_id": pair.record_id,
        "pair_id": pair.pair_id,
        "split": split,
        "prompt": _prompt_dict(prompts[pair.prompt_id]),
        "chosen": _video_dict(videos[pair.chosen]),
        "rejected": _video_dict(videos[pair.rejected]),
        "label": pair.label,
        "votes_chosen": pair.votes_chosen,
        "votes_rejected": pair.votes_rejected,
        "votes_tie": pair.votes_tie,
        "votes_total": pair.votes_total,
        "agreement": pair.agreement,
        "annotators": list(pair.annotators),
        "campaigns": list(pair.campaigns),
    }


def dpo_record(
    pair: PreferencePair, prompts: Mapping[int, PromptInfo], videos: Mapping[str, ExportedVideo]
) -> dict[str, Any]:
    return {
        "prompt": prompts[pair.prompt_id].text,
        "chosen": videos[pair.chosen].original_file,
        "rejected": videos[pair.rejected].original_file,
        "label": pair.label,
        "record_id": pair.record_id,
    }


def score_record(
    scores: VideoScores, split: Split, prompts: Mapping[int, PromptInfo], videos: Mapping[str, ExportedVideo]
) -> dict[str, Any]:
    return {
        "split": split,
        "prompt": _prompt_dict(prompts[scores.prompt_id]),
        "video": _video_dict(videos[scores.video]),
        "n": scores.n,
        **{f"{dim}_mean": scores.means[i] for i, dim in enumerate(DIMENSIONS)},
        "by_annotator": [
            {"annotator": annotator, **{dim: values[i] for i, dim in enumerate(DIMENSIONS)}}
            for annotator, values in scores.by_annotator
        ],
    }


_PROMPT_TYPE = pa.struct(
    [
        ("id", pa.int64()),
        ("text", pa.string()),
        ("benchmark", pa.string()),
        ("position", pa.int64()),
        ("category", pa.string()),
    ]
)
_VIDEO_TYPE = pa.struct(
    [
        ("video_id", pa.string()),
        ("original_file", pa.string()),
        ("playable_file", pa.string()),
        ("url", pa.string()),
        ("original_url", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.string()),
        ("checkpoint", pa.string()),
        ("seed", pa.int64()),
        ("noise_id", pa.string()),
        ("generation_settings", pa.string()),  # JSON text
    ]
)
SCHEMAS: dict[str, pa.Schema] = {
    "pairs": pa.schema(
        [
            ("record_id", pa.string()),
            ("pair_id", pa.string()),
            ("split", pa.string()),
            ("prompt", _PROMPT_TYPE),
            ("chosen", _VIDEO_TYPE),
            ("rejected", _VIDEO_TYPE),
            ("label", pa.float64()),
            ("votes_chosen", pa.int64()),
            ("votes_rejected", pa.int64()),
            ("votes_tie", pa.int64()),
            ("votes_total", pa.int64()),
            ("agreement", pa.float64()),
            ("annotators", pa.list_(pa.string())),
            ("campaigns", pa.list_(pa.string())),
        ]
    ),
    "dpo": pa.schema(
        [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("label", pa.float64()),
            ("record_id", pa.string()),
        ]
    ),
    "scores": pa.schema(
        [
            ("split", pa.string()),
            ("prompt", _PROMPT_TYPE),
            ("video", _VIDEO_TYPE),
            ("n", pa.int64()),
            *[(f"{dim}_mean", pa.float64()) for dim in DIMENSIONS],
            (
                "by_annotator",
                pa.list_(pa.struct([("annotator", pa.string()), *[(dim, pa.int64()) for dim in DIMENSIONS]])),
            ),
        ]
    ),
}
_VIDEO_COLUMNS = {"pairs": ("chosen", "rejected"), "dpo": (), "scores": ("video",)}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=JSON_SEPARATORS, allow_nan=False)


def write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(canonical_json(record))
            out.write("\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _encode_settings(dataset: str, record: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(record)
    for column in _VIDEO_COLUMNS[dataset]:
        video = dict(row[column])
        video["generation_settings"] = canonical_json(video["generation_settings"])
        row[column] = video
    return row


def write_parquet(path: Path, dataset: str, records: Sequence[Mapping[str, Any]]) -> None:
    schema = SCHEMAS[dataset]
    rows = [_encode_settings(dataset, r) for r in records]
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    pq.write_table(
        table,
        path,
        compression=PARQUET_COMPRESSION,
        compression_level=PARQUET_COMPRESSION_LEVEL,
        version="2.6",
        data_page_version="1.0",
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    )


def read_parquet(path: Path, dataset: str) -> list[dict[str, Any]]:
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        for column in _VIDEO_COLUMNS[dataset]:
            row[column]["generation_settings"] = json.loads(row[column]["generation_settings"])
    return rows


def file_name(dataset: str, split: str, fmt: str) -> str:
    return f"{dataset}-{split}.{fmt}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class DataFile:
    """One file to write: a dataset's records of one split, in one format."""

    dataset: str
    split: str
    fmt: str
    records: Sequence[Mapping[str, Any]]

    @property
    def name(self) -> str:
        return file_name(self.dataset, self.split, self.fmt)


def data_files(
    datasets: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], formats: Sequence[str]
) -> list[DataFile]:
    """Every (dataset, split, format) file in a fixed order; empty splits still get a file, so an export
    always has the same file names."""
    return [
        DataFile(dataset, split, fmt, datasets[dataset][split])
        for dataset in DATASETS
        for split in SPLITS
        for fmt in FORMATS
        if fmt in formats
    ]


def write_data_file(folder: Path, data_file: DataFile) -> dict[str, Any]:
    """Write one file; returns its manifest entry."""
    path = folder / data_file.name
    if data_file.fmt == "jsonl":
        write_jsonl(path, data_file.records)
    else:
        write_parquet(path, data_file.dataset, data_file.records)
    return {
        "name": data_file.name,
        "dataset": data_file.dataset,
        "split": data_file.split,
        "format": data_file.fmt,
        "records": len(data_file.records),
        "bytes": path.stat().st_size,
        "sha256": sha256_of(path),
    }


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    text = json.dumps(manifest, sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False)
    (folder / MANIFEST_NAME).write_text(text + "\n", encoding="utf-8")


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A hidden temporary folder beside `final`, renamed to `final` when the block succeeds and removed when
    it fails, so readers only ever see a finished export. A `final` left by an earlier attempt at the same
    export (a worker killed after the rename) is replaced."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        yield staging
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
