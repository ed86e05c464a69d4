"""Exports built from stored judgments, end to end: the job writes JSONL and Parquet that read back to
the judgments, leaves out what does not count, gives the same bytes for the same data, reports progress,
publishes nothing when it fails or is cancelled, and only managers can start or download one."""

import hashlib
from pathlib import Path

import pytest
from django.urls import reverse

from evalsite.models import Job
from generation.models import Prompt, Refusal, Video
from preference import services
from preference.export import DATASETS, FORMATS, MANIFEST_NAME, read_jsonl, read_parquet
from preference.models import PreferenceExport
from preference.pairs import SPLITS, hash_annotator, split_of
from preference.selectors import annotator_hash_key
from preference.services import ExportError, create_export

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


def export_now(capture, **kwargs) -> PreferenceExport:
    """create_export, with its job run on commit (eagerly) as a worker would."""
    with capture(execute=True):
        export = create_export(**kwargs)
    export.refresh_from_db()
    return export


def folder_of(export: PreferenceExport, settings) -> Path:
    return Path(settings.MEDIA_ROOT) / export.folder


def records(folder: Path, dataset: str, fmt: str = "jsonl") -> dict[str, list[dict]]:
    read = read_jsonl if fmt == "jsonl" else (lambda path: read_parquet(path, dataset))
    return {split: read(folder / f"{dataset}-{split}.{fmt}") for split in SPLITS}


def seed_with_both_splits(prompt_texts, fraction=0.5) -> str:
    """A split seed that puts these prompt texts on both sides (so the test sees a real split)."""
    for n in range(200):
        sides = {split_of(text, seed=f"s{n}", validation_fraction=fraction) for text in prompt_texts}
        if sides == {"train", "validation"}:
            return f"s{n}"
    raise AssertionError("no seed splits these prompts")


def scenario_prompt_ids(scenario) -> set[int]:
    return {key[1] for key in scenario.expected_pairs} | set(
        Video.objects.filter(public_id__in=scenario.expected_scores).values_list("prompt_id", flat=True)
    )


def scenario_prompt_texts(scenario) -> set[str]:
    return set(Prompt.objects.filter(pk__in=scenario_prompt_ids(scenario)).values_list("text", flat=True))


def test_round_trip_counts_and_pairs_match_the_judgments(
    scenario, django_capture_on_commit_callbacks, settings, admin_user
):
    split_seed = seed_with_both_splits(scenario_prompt_texts(scenario))
    export = export_now(
        django_capture_on_commit_callbacks,
        name="dpo-data",
        campaigns=scenario.campaigns,
        options={"validation_fraction": 0.5, "split_seed": split_seed},
        user=admin_user,
    )
    assert export.status == PreferenceExport.Status.READY and export.version == 1
    folder = folder_of(export, settings)
    assert folder == Path(settings.MEDIA_ROOT) / "exports" / "dpo-data" / "v1"

    pairs = records(folder, "pairs")
    for dataset in DATASETS:
        assert records(folder, dataset, "parquet") == records(folder, dataset, "jsonl")
    found = {}
    for split, rows in pairs.items():
        for row in rows:
            assert row["split"] == split
            assert split_of(row["prompt"]["text"], seed=split_seed, validation_fraction=0.5) == split
            key = (
                row["campaigns"][0],
                row["prompt"]["id"],
                row["chosen"]["video_id"],
                row["rejected"]["video_id"],
            )
            found[key] = (row["votes_chosen"], row["votes_rejected"], row["votes_tie"], row["agreement"])
            assert row["label"] == 1.0 and row["votes_total"] == sum(found[key][:3])
    assert found.keys() == scenario.expected_pairs.keys()
    for key, (chosen, rejected, tie, agreement) in scenario.expected_pairs.items():
        assert found[key][:3] == (chosen, rejected, tie)
        assert found[key][3] == pytest.approx(agreement)

    # No prompt on both sides, in any file.
    prompts_by_split = {
        split: {
            row["prompt"]["id"] for dataset in ("pairs", "scores") for row in records(folder, dataset)[split]
        }
        for split in SPLITS
    }
    assert prompts_by_split["train"] and prompts_by_split["validation"]
    assert not prompts_by_split["train"] & prompts_by_split["validation"]
    texts_by_split = {
        split: {
            row["prompt"]["text"]
            for dataset in ("pairs", "scores")
            for row in records(folder, dataset)[split]
        }
        for split in SPLITS
    }
    assert not texts_by_split["train"] & texts_by_split["validation"]

    # The record's facts are the stored ones; the DPO form points at the same files.
    videos = {v.public_id: v for v in Video.objects.select_related("model", "prompt", "prompt__benchmark")}
    dpo = records(folder, "dpo")
    for split in SPLITS:
        assert len(dpo[split]) == len(pairs[split])
        for full, short in zip(pairs[split], dpo[split], strict=True):
            chosen, rejected = videos[full["chosen"]["video_id"]], videos[full["rejected"]["video_id"]]
            assert full["prompt"]["text"] == chosen.prompt.text == short["prompt"]
            assert full["prompt"]["benchmark"] == chosen.prompt.benchmark.slug
            assert full["prompt"]["position"] == chosen.prompt.position
            assert full["chosen"]["model"] == chosen.model.name and full["rejected"]["seed"] == rejected.seed
            assert full["chosen"]["url"] == reverse("media-video", kwargs={"public_id": chosen.public_id})
            assert (short["chosen"], short["rejected"]) == (chosen.original_file, rejected.original_file)
            assert (Path(settings.MEDIA_ROOT) / short["chosen"]).is_file()
            assert short["record_id"] == full["record_id"]

    # Annotators appear only as keyed hashes of their ids.
    key = annotator_hash_key()
    p = scenario.people["pairwise"]
    expected_hashes = sorted(hash_annotator(person.pk, key) for person in p[:3])
    first_pair = next(row for rows in pairs.values() for row in rows if row["votes_total"] == 3)
    assert first_pair["annotators"] == expected_hashes
    raw = b"".join((folder / f"{d}-{s}.jsonl").read_bytes() for d in DATASETS for s in SPLITS)
    assert all(person.username.encode() not in raw for person in p)

    # Per-video Metric-2 scores.
    scores = {row["video"]["video_id"]: row for rows in records(folder, "scores").values() for row in rows}
    assert scores.keys() == scenario.expected_scores.keys()
    for video_id, given in scenario.expected_scores.items():
        row = scores[video_id]
        assert row["n"] == len(given)
        for d, dim in enumerate(
            ("instruction_following", "motion_smoothness", "physical_plausibility", "aesthetic_appeal")
        ):
            assert row[f"{dim}_mean"] == pytest.approx(sum(v[d] for v in given) / len(given))
        assert sorted(
            tuple(
                a[d]
                for d in (
                    "instruction_following",
                    "motion_smoothness",
                    "physical_plausibility",
                    "aesthetic_appeal",
                )
            )
            for a in row["by_annotator"]
        ) == sorted(given)

    manifest = export.manifest
    assert manifest == __import__("json").loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert counts["votes_left_out"] == scenario.left_out_votes
    assert counts["score_rows_left_out"] == scenario.left_out_scores
    assert counts["votes_used"] == 3 + 3 + 3 + 6
    assert counts["pairs"] == len(scenario.expected_pairs) + len(scenario.expected_tie_pairs)
    assert counts["dropped_ties"] == len(scenario.expected_tie_pairs)
    assert sum(counts["records"].values()) == len(scenario.expected_pairs)
    assert {c["name"] for c in manifest["campaigns"]} == {c.name for c in scenario.campaigns}
    assert manifest["options"]["split_seed"] == split_seed
    assert len(manifest["files"]) == len(DATASETS) * len(SPLITS) * len(FORMATS)
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def split_by_prompt_id(prompt_id: int, seed: str, fraction: float) -> str:
    """The rule the split by text replaced (sha256 of the seed and the prompt id)."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt_id}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2**64 < fraction else "train"


def test_identical_prompt_texts_in_different_benchmarks_share_a_side(
    scenario, django_capture_on_commit_callbacks, settings
):
    """The three campaigns have their own benchmarks with the same prompt texts: the pairwise and the rubric
    campaigns both have "prompt number 1 一只猫", as different prompts. The seed is one under which a split
    by prompt id would have put them on different sides."""
    by_text: dict[str, set[int]] = {}
    for prompt_id, text in Prompt.objects.filter(pk__in=scenario_prompt_ids(scenario)).values_list(
        "pk", "text"
    ):
        by_text.setdefault(text, set()).add(prompt_id)
    shared = {text: ids for text, ids in by_text.items() if len(ids) > 1}
    assert shared
    split_seed = next(
        f"s{n}"
        for n in range(200)
        if any(len({split_by_prompt_id(pid, f"s{n}", 0.5) for pid in ids}) > 1 for ids in shared.values())
    )
    export = export_now(
        django_capture_on_commit_callbacks,
        name="mixed-benchmarks",
        campaigns=scenario.campaigns,
        options={"validation_fraction": 0.5, "split_seed": split_seed, "formats": ["jsonl"]},
    )
    folder = folder_of(export, settings)
    sides: dict[str, set[str]] = {}
    benchmarks: dict[str, set[str]] = {}
    for dataset in ("pairs", "scores"):
        for split, rows in records(folder, dataset).items():
            for row in rows:
                sides.setdefault(row["prompt"]["text"], set()).add(split)
                benchmarks.setdefault(row["prompt"]["text"], set()).add(row["prompt"]["benchmark"])
    assert any(len(found) > 1 for found in benchmarks.values())
    assert all(len(found) == 1 for found in sides.values()), sides
    assert "normalised text" in export.manifest["notes"]["split"]


def test_prompts_refused_by_a_compared_model_are_left_out_as_in_the_results(
    scenario, django_capture_on_commit_callbacks, settings
):
    """Beta refused the prompt of item 1 (after the answers were given): the export leaves out its votes,
    counts them under their own reason, and keeps exactly the judgments the results page analyses."""
    from metrics.human.judgments import load_campaign
    from preference.selectors import paired_votes

    item = scenario.pairwise.items.get(position=1)
    beta = scenario.pairwise.campaign_models.get(position=1).model
    Refusal.objects.create(model=beta, prompt=item.prompt, reason="content policy")
    export = export_now(
        django_capture_on_commit_callbacks,
        name="no-refused",
        campaigns=[scenario.pairwise],
        options={"validation_fraction": 0.0, "formats": ["jsonl"]},
    )
    # Item 1's three counted votes and the imported answer on its prompt; the excluded annotator's and the
    # repeat stay under their first reason.
    assert export.manifest["counts"]["votes_left_out"] == {
        "repeat": 1,
        "excluded_annotator": 2,
        "prompt_not_in_campaign": 0,
        "problem_prompt": 2,
        "refused_prompt": 4,
        "no_video": 0,
    }
    rows = records(folder_of(export, settings), "pairs")["train"]
    assert rows and all(r["prompt"]["id"] != item.prompt_id for r in rows)
    assert "refused" in export.manifest["notes"]["left_out"]
    analysed = {j.judgment_id for j in load_campaign(scenario.pairwise).paired}
    exported = {vote.judgment_id for vote in paired_votes([scenario.pairwise]).rows}
    assert analysed == exported


def test_ties_as_half_labels_and_min_agreement(scenario, django_capture_on_commit_callbacks, settings):
    export = export_now(
        django_capture_on_commit_callbacks,
        name="with-ties",
        campaigns=scenario.campaigns,
        options={"ties": "label", "min_agreement": 0.6, "validation_fraction": 0.0, "formats": ["jsonl"]},
    )
    folder = folder_of(export, settings)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{d}-{s}.jsonl" for d in DATASETS for s in SPLITS] + [MANIFEST_NAME]
    )
    rows = records(folder, "pairs")
    assert rows["validation"] == []
    kept = {
        (r["campaigns"][0], r["prompt"]["id"], r["chosen"]["video_id"], r["rejected"]["video_id"]): r
        for r in rows["train"]
    }
    # Agreement at least 0.6: the 2-1 and 3-0 pairwise pairs, the 2-0 seed pair, and the 2/3 pairwise tie.
    decided = {k for k in scenario.expected_pairs if scenario.expected_pairs[k][3] >= 0.6}
    assert {k for k, r in kept.items() if r["label"] == 1.0} == decided
    ties = [r for r in kept.values() if r["label"] == 0.5]
    tie_keys = {k for k, v in scenario.expected_tie_pairs.items() if v[1] >= 0.6}
    assert {
        (
            r["campaigns"][0],
            r["prompt"]["id"],
            frozenset({r["chosen"]["video_id"], r["rejected"]["video_id"]}),
        )
        for r in ties
    } == tie_keys
    assert all(r["votes_tie"] == 2 for r in ties)
    counts = export.manifest["counts"]
    assert counts["below_min_agreement"] == 2  # the 1-0-1 seed pair and the 1-1 seed tie
    assert counts["dropped_ties"] == 0


def test_per_judgment_records(scenario, django_capture_on_commit_callbacks, settings):
    export = export_now(
        django_capture_on_commit_callbacks,
        name="per-judgment",
        campaigns=[scenario.pairwise],
        options={"granularity": "judgment", "validation_fraction": 0.0},
    )
    rows = records(folder_of(export, settings), "pairs")["train"]
    # Items 1 and 2 give one record per counted judgment (3 each); the tie item's one decided vote remains.
    assert len(rows) == 3 + 3 + 1
    assert all(len(r["annotators"]) == 1 for r in rows)
    assert len({r["record_id"] for r in rows}) == len(rows)
    minority = [r for r in rows if r["votes_chosen"] == 1 and r["votes_rejected"] == 2]
    assert len(minority) == 1 and minority[0]["agreement"] == pytest.approx(2 / 3)
    assert export.manifest["counts"]["dropped_ties"] == 2


def test_a_second_export_of_unchanged_data_is_byte_identical(
    scenario, django_capture_on_commit_callbacks, settings
):
    first = export_now(django_capture_on_commit_callbacks, name="nightly", campaigns=scenario.campaigns)
    second = export_now(django_capture_on_commit_callbacks, name="nightly", campaigns=scenario.campaigns)
    assert (first.version, second.version) == (1, 2)
    one, two = folder_of(first, settings), folder_of(second, settings)
    assert one != two and one.is_dir() and two.is_dir()
    assert [e["sha256"] for e in first.manifest["files"]] == [e["sha256"] for e in second.manifest["files"]]
    for entry in first.manifest["files"]:
        assert (one / entry["name"]).read_bytes() == (two / entry["name"]).read_bytes()
    assert {**first.manifest, "version": None} == {**second.manifest, "version": None}


def test_excluded_annotators_problem_items_and_repeats_are_left_out(
    scenario, django_capture_on_commit_callbacks, settings
):
    export = export_now(
        django_capture_on_commit_callbacks,
        name="clean",
        campaigns=[scenario.pairwise, scenario.rubric],
        options={"granularity": "judgment", "ties": "label", "validation_fraction": 0.0},
    )
    folder = folder_of(export, settings)
    rows = records(folder, "pairs")["train"]
    key = annotator_hash_key()
    p = scenario.people["pairwise"]
    excluded = hash_annotator(p[3].pk, key)
    assert all(excluded not in r["annotators"] for r in rows)
    problem_prompt = scenario.pairwise.items.get(position=4).prompt_id
    assert all(r["prompt"]["id"] != problem_prompt for r in rows)
    # p0 judged items 1-3 once each and repeated item 1: only the three first showings count.
    assert sum(r["annotators"] == [hash_annotator(p[0].pk, key)] for r in rows) == 3
    assert len(rows) == 9
    scores = records(folder, "scores")["train"]
    r1 = hash_annotator(scenario.people["rubric"][1].pk, key)
    assert all(sum(a["annotator"] == r1 for a in row["by_annotator"]) == 1 for row in scores)
    assert export.manifest["counts"]["votes_left_out"] == scenario.left_out_votes


def test_the_job_reports_progress_and_returns_the_manifest(scenario, django_capture_on_commit_callbacks):
    export = export_now(django_capture_on_commit_callbacks, name="job-path", campaigns=[scenario.pairwise])
    job = Job.objects.get(pk=export.job_id)
    assert job.status == Job.Status.SUCCEEDED and job.queue == "cpu"
    assert job.kind == "preference.tasks.build_preference_export"
    files = len(DATASETS) * len(SPLITS) * len(FORMATS)
    assert job.progress_total == 3 + files + 1
    assert job.progress_done == job.progress_total
    assert job.result["export_id"] == export.pk and job.result["version"] == 1
    assert job.result["manifest"] == export.manifest


def test_a_crash_mid_export_publishes_nothing(
    scenario, django_capture_on_commit_callbacks, settings, monkeypatch
):
    real_write = services.write_data_file
    written = []

    def write_then_crash(folder, data_file):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(data_file.name)
        return real_write(folder, data_file)

    monkeypatch.setattr(services, "write_data_file", write_then_crash)
    export = export_now(django_capture_on_commit_callbacks, name="crashy", campaigns=[scenario.pairwise])
    assert export.status == PreferenceExport.Status.FAILED and export.manifest == {}
    job = Job.objects.get(pk=export.job_id)
    assert job.status == Job.Status.FAILED and "disk full" in job.error
    name_folder = Path(settings.MEDIA_ROOT) / "exports" / "crashy"
    assert list(name_folder.iterdir()) == []  # neither v1 nor a half-written hidden folder


def test_cancelling_stops_at_the_next_progress_report(
    scenario, django_capture_on_commit_callbacks, settings, monkeypatch
):
    real_write = services.write_data_file
    written = []

    def write_then_cancel(folder, data_file):
        Job.objects.filter(status=Job.Status.RUNNING).update(cancel_requested=True)
        written.append(data_file.name)
        return real_write(folder, data_file)

    monkeypatch.setattr(services, "write_data_file", write_then_cancel)
    export = export_now(django_capture_on_commit_callbacks, name="cancelled", campaigns=[scenario.pairwise])
    job = Job.objects.get(pk=export.job_id)
    assert job.status == Job.Status.CANCELLED
    assert export.status == PreferenceExport.Status.CANCELLED
    # The report after the first file saw the request; no second file was started.
    assert len(written) == 1 and job.progress_done == 4
    assert list((Path(settings.MEDIA_ROOT) / "exports" / "cancelled").iterdir()) == []


def test_a_job_cancelled_while_queued_shows_the_export_as_cancelled(
    scenario, django_capture_on_commit_callbacks
):
    from evalsite.jobs import cancel_job

    with django_capture_on_commit_callbacks(execute=False):
        export = create_export(name="queued", campaigns=[scenario.pairwise])
    cancel_job(export.job)
    export = PreferenceExport.objects.select_related("job").get(pk=export.pk)
    assert export.status == PreferenceExport.Status.BUILDING
    assert export.current_status == PreferenceExport.Status.CANCELLED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "../escape"}, "invalid export name"),
        ({"name": ""}, "invalid export name"),
        ({"campaigns": []}, "at least one campaign"),
        ({"options": {"ties": "maybe"}}, "ties must be one of"),
        ({"options": {"validation_fraction": 1.5}}, "validation fraction"),
        ({"options": {"shuffle": True}}, "unknown export options"),
    ],
)
def test_bad_requests_store_nothing(scenario, django_capture_on_commit_callbacks, kwargs, message):
    arguments = {"name": "ok", "campaigns": [scenario.pairwise], **kwargs}
    jobs_before = Job.objects.count()  # the campaigns' prepare-media jobs
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ExportError, match=message):
        create_export(**arguments)
    assert not PreferenceExport.objects.exists()
    assert Job.objects.count() == jobs_before
