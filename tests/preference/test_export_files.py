"""Writing the export files without the site: JSONL and Parquet give the same records back, the same
records give the same bytes, options are checked, and a failed build leaves no folder behind."""

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from preference.export import (
    DATASETS,
    FORMATS,
    ExportedVideo,
    ExportOptions,
    ExportOptionsError,
    PromptInfo,
    data_files,
    dpo_record,
    pair_record,
    read_jsonl,
    read_parquet,
    score_record,
    staged_folder,
    write_data_file,
)
from preference.pairs import SPLITS, ScoreRow, Vote, aggregate_scores, build_pairs

PROMPTS = {
    1: PromptInfo(id=1, text="一只猫在草地上奔跑", benchmark="bench", position=1, category="动物"),
    2: PromptInfo(id=2, text="a red car at night", benchmark="bench", position=2, category=None),
}


def video(public_id, model, seed, settings):
    return ExportedVideo(
        video_id=public_id,
        original_file=f"originals/{public_id[:2]}/{public_id}.mp4",
        playable_file=f"playable/{public_id[:2]}/{public_id}.mp4",
        url=f"/media/v/{public_id}.mp4",
        original_url=f"/media/o/{public_id}",
        model=model,
        model_version="v1",
        checkpoint="hub/org-model",
        seed=seed,
        noise_id=f"noise-{seed}" if seed is not None else "",
        generation_settings=settings,
    )


VIDEOS = {
    "aa01": video("aa01", "Alpha", 0, {"steps": 50, "cfg": 7.5}),
    "bb02": video("bb02", "Beta", 1, {}),
    "cc03": video("cc03", "Alpha", None, {"sampler": "ddim", "nested": {"eta": 0.0}}),
    "dd04": video("dd04", "Beta", 4, {"steps": 30}),
}


def datasets():
    votes = [
        Vote(1, "camp", 1, "aa01", "bb02", "left", "h1"),
        Vote(2, "camp", 1, "bb02", "aa01", "right", "h2"),
        Vote(3, "camp", 1, "aa01", "bb02", "right", "h3"),
        Vote(4, "camp", 2, "cc03", "dd04", "tie", "h1"),
        Vote(5, "camp", 2, "cc03", "dd04", "tie", "h2"),
    ]
    pairs, _ = build_pairs(votes, ties="label")
    scores = aggregate_scores(
        [ScoreRow("aa01", 1, "h1", (5, 4, 3, 2)), ScoreRow("dd04", 2, "h2", (1, 2, 3, 4))]
    )
    splits = {1: "train", 2: "validation"}
    return {
        "pairs": {
            s: [pair_record(p, s, PROMPTS, VIDEOS) for p in pairs if splits[p.prompt_id] == s] for s in SPLITS
        },
        "dpo": {
            s: [dpo_record(p, PROMPTS, VIDEOS) for p in pairs if splits[p.prompt_id] == s] for s in SPLITS
        },
        "scores": {
            s: [score_record(v, s, PROMPTS, VIDEOS) for v in scores if splits[v.prompt_id] == s]
            for s in SPLITS
        },
    }


def write_all(folder):
    folder.mkdir(parents=True)
    return [write_data_file(folder, f) for f in data_files(datasets(), FORMATS)]


def test_jsonl_and_parquet_read_back_to_the_same_records(tmp_path):
    entries = write_all(tmp_path / "out")
    built = datasets()
    assert {e["name"] for e in entries} == {f"{d}-{s}.{f}" for d in DATASETS for s in SPLITS for f in FORMATS}
    for dataset in DATASETS:
        for split in SPLITS:
            from_jsonl = read_jsonl(tmp_path / "out" / f"{dataset}-{split}.jsonl")
            from_parquet = read_parquet(tmp_path / "out" / f"{dataset}-{split}.parquet", dataset)
            assert from_jsonl == built[dataset][split]
            assert from_parquet == built[dataset][split]
    train = read_jsonl(tmp_path / "out" / "pairs-train.jsonl")[0]
    assert train["chosen"]["generation_settings"] == {"steps": 50, "cfg": 7.5}
    assert train["prompt"]["text"] == "一只猫在草地上奔跑"
    dpo = read_jsonl(tmp_path / "out" / "dpo-validation.jsonl")[0]
    assert set(dpo) == {"prompt", "chosen", "rejected", "label", "record_id"} and dpo["label"] == 0.5


def test_jsonl_is_canonical_text(tmp_path):
    write_all(tmp_path / "out")
    line = (tmp_path / "out" / "dpo-train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    record = json.loads(line)
    assert line == json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert "一只猫" in line  # not escaped


def test_the_same_records_give_the_same_bytes(tmp_path):
    first = write_all(tmp_path / "one")
    second = write_all(tmp_path / "two")
    assert first == second
    for entry in first:
        one = (tmp_path / "one" / entry["name"]).read_bytes()
        assert one == (tmp_path / "two" / entry["name"]).read_bytes()
        assert hashlib.sha256(one).hexdigest() == entry["sha256"]


def test_parquet_has_the_fixed_schema_and_compression_even_when_empty(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    empty = {d: {s: [] for s in SPLITS} for d in DATASETS}
    entries = [write_data_file(folder, f) for f in data_files(empty, ["parquet"])]
    assert all(e["records"] == 0 for e in entries)
    filled = tmp_path / "filled"
    write_all(filled)
    for dataset in DATASETS:
        empty_schema = pq.read_schema(folder / f"{dataset}-train.parquet")
        assert empty_schema.equals(pq.read_schema(filled / f"{dataset}-train.parquet"))
    metadata = pq.ParquetFile(filled / "pairs-train.parquet").metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert b"pandas" not in (metadata.metadata or {})


def test_export_options_are_checked_and_normalised():
    options = ExportOptions.from_dict(
        {"min_agreement": "0.5", "formats": ["parquet", "jsonl"], "split_seed": 3}
    )
    assert (
        options.min_agreement == 0.5 and options.formats == ("jsonl", "parquet") and options.split_seed == "3"
    )
    assert ExportOptions.from_dict(options.to_dict()) == options
    for bad, message in [
        ({"colour": "red"}, "unknown export options: colour"),
        ({"formats": ["csv"]}, "formats must be one or more"),
        ({"formats": []}, "formats must be one or more"),
        ({"formats": "jsonl"}, "formats must be a list"),
        ({"validation_fraction": 1}, "validation fraction"),
        ({"min_agreement": "lots"}, "must be numbers"),
        ({"ties": "keep"}, "ties must be one of"),
    ]:
        with pytest.raises(ExportOptionsError, match=message):
            ExportOptions.from_dict(bad)


def test_a_failed_build_leaves_no_folder_and_a_good_one_appears_whole(tmp_path):
    final = tmp_path / "exports" / "x" / "v1"
    with pytest.raises(RuntimeError), staged_folder(final) as staging:
        (staging / "pairs-train.jsonl").write_text("{}\n")
        raise RuntimeError("crash mid-export")
    assert not final.exists()
    assert list((tmp_path / "exports" / "x").iterdir()) == []

    with staged_folder(final) as staging:
        (staging / "pairs-train.jsonl").write_text("{}\n")
        assert not final.exists()  # nothing is visible until the block ends
    assert [p.name for p in final.iterdir()] == ["pairs-train.jsonl"]
    assert [p.name for p in final.parent.iterdir()] == ["v1"]
