"""Writes for preference exports: `create_export` records a new version and queues its job; `build_export`
(run by that job) loads the rows, calls `pairs.py` and `export.py`, and publishes the folder."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from annotation.models import Campaign
from evalsite.job_titles import job_title

from . import selectors
from .export import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ExportOptions,
    ExportOptionsError,
    data_files,
    dpo_record,
    pair_record,
    score_record,
    staged_folder,
    write_data_file,
    write_manifest,
)
from .models import EXPORT_NAME_HELP, EXPORT_NAME_PATTERN, PreferenceExport, export_folder
from .pairs import ANNOTATOR_HASH_LENGTH, SPLITS, aggregate_scores, build_pairs, partition, split_by_prompt

Progress = Callable[[int, int, str], None]

ANNOTATOR_ID_NOTE = (
    f"HMAC-SHA256 of the user id, keyed by a secret derived from the site's SECRET_KEY, first "
    f"{ANNOTATOR_HASH_LENGTH} hex characters: the same person has the same id in every export of this site"
)
LABEL_NOTE = (
    "1.0: the majority preferred `chosen`; 0.5: a tie kept as a tie (the order of the videos is arbitrary)"
)
SPLIT_NOTE = (
    "by prompt text: a prompt goes to validation when sha256(split_seed, its normalised text) read as a number "
    "in [0, 1) is below validation_fraction; the text is casefolded, stripped and its whitespace runs collapsed "
    "to one space, so identical prompt texts (in any benchmark) are on the same side"
)
LEFT_OUT_NOTE = (
    "the results pages' rules (annotation.left_out), counted by reason: repeats, judgments of annotators "
    "excluded from the campaign, every judgment of a prompt the campaign left out, of a prompt with a problem "
    "report on any of its items, of a prompt that a "
    "model compared in the campaign refused; then answers without stored videos"
)
PATH_NOTE = "file paths are relative to the site's MEDIA_ROOT; URLs are paths on the site (managers only)"


class ExportError(ValueError):
    """A request the export cannot carry out; the message is for the person who asked."""


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not re.match(EXPORT_NAME_PATTERN, name):
        raise ExportError(f"invalid export name {name!r}: {EXPORT_NAME_HELP}")
    return name


def _options(options: ExportOptions | Mapping[str, Any] | None) -> ExportOptions:
    if isinstance(options, ExportOptions):
        return options
    try:
        return ExportOptions.from_dict(options or {})
    except (ExportOptionsError, TypeError) as exc:
        raise ExportError(str(exc)) from None


def create_export(
    *,
    name: str,
    campaigns: Iterable[Campaign],
    options: ExportOptions | Mapping[str, Any] | None = None,
    user=None,
) -> PreferenceExport:
    """Record the next version of the export `name` and queue the job that builds it (queue "cpu").
    Raises ExportError, storing nothing, when the name, campaigns or options are bad."""
    name = _check_name(name)
    chosen = list(campaigns)
    if not chosen:
        raise ExportError("choose at least one campaign")
    if any(not isinstance(c, Campaign) or c.pk is None for c in chosen):
        raise ExportError("campaigns must be stored campaigns")
    export_options = _options(options)

    for _attempt in range(5):
        try:
            with transaction.atomic():
                latest = PreferenceExport.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
                export = PreferenceExport.objects.create(
                    name=name,
                    version=latest + 1,
                    options=export_options.to_dict(),
                    folder=export_folder(name, latest + 1),
                    created_by=user if user is not None and user.is_authenticated else None,
                )
                export.campaigns.set(chosen)
                export.job = _start_build_job(export, user)
                export.save(update_fields=["job"])
            return export
        except IntegrityError:
            # Someone else took this version number at the same moment: take the next one.
            continue
    raise ExportError(f"could not reserve a version number for {name!r}; try again")


def _start_build_job(export: PreferenceExport, user):
    from evalsite.jobs import start_job

    return start_job(
        "preference.tasks.build_preference_export",
        title=job_title("preference_export", name=export.name, version=export.version),
        params={"export_id": export.pk},
        created_by=user,
    )


def _campaign_entries(campaigns: Iterable[Campaign]) -> list[dict[str, Any]]:
    return [
        {
            "id": c.pk,
            "name": c.name,
            "kind": c.kind,
            "benchmark": c.benchmark.slug,
            "models": [str(cm.model) for cm in c.campaign_models.all()],
        }
        for c in sorted(campaigns, key=lambda c: (c.name, c.pk))
    ]


def build_export(export: PreferenceExport, progress: Progress | None = None) -> dict[str, Any]:
    """Build the export's files and publish its folder; returns the manifest (also stored on the row)."""
    report = progress or (lambda done, total, message: None)
    options = ExportOptions.from_dict(export.options)
    campaigns = list(export.campaigns.select_related("benchmark").prefetch_related("campaign_models__model"))
    steps_before_files = 3
    total = steps_before_files + 3 * len(SPLITS) * len(options.formats) + 1

    report(0, total, "loading judgments")
    votes = selectors.paired_votes(campaigns)
    scores_loaded = selectors.score_rows(campaigns)
    report(1, total, "pairing votes")
    pairs, counts = build_pairs(
        votes.rows, min_agreement=options.min_agreement, ties=options.ties, granularity=options.granularity
    )
    video_scores = aggregate_scores(scores_loaded.rows)
    prompt_ids = {p.prompt_id for p in pairs} | {s.prompt_id for s in video_scores}
    report(2, total, "reading prompts and videos")
    prompts = selectors.prompt_infos(prompt_ids)
    splits = split_by_prompt(
        {pid: prompts[pid].text for pid in prompt_ids},
        seed=options.split_seed,
        validation_fraction=options.validation_fraction,
    )
    videos = selectors.exported_videos(
        {p.chosen for p in pairs} | {p.rejected for p in pairs} | {s.video for s in video_scores}
    )
    pairs_by_split = partition(pairs, splits)
    scores_by_split = partition(video_scores, splits)
    datasets = {
        "pairs": {s: [pair_record(p, s, prompts, videos) for p in pairs_by_split[s]] for s in SPLITS},
        "dpo": {s: [dpo_record(p, prompts, videos) for p in pairs_by_split[s]] for s in SPLITS},
        "scores": {s: [score_record(v, s, prompts, videos) for v in scores_by_split[s]] for s in SPLITS},
    }
    report(3, total, "writing files")

    final = Path(settings.MEDIA_ROOT) / export.folder
    with staged_folder(final) as staging:
        entries = []
        for done, data_file in enumerate(data_files(datasets, options.formats), start=steps_before_files + 1):
            entries.append(write_data_file(staging, data_file))
            report(done, total, f"wrote {data_file.name}")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": export.name,
            "version": export.version,
            "options": options.to_dict(),
            "campaigns": _campaign_entries(campaigns),
            "counts": {
                "votes_used": counts.votes,
                "votes_left_out": votes.left_out_dict(),
                "pairs": counts.pairs,
                "tie_pairs": counts.tie_pairs,
                "below_min_agreement": counts.below_min_agreement,
                "dropped_ties": counts.dropped_ties,
                "records": {s: len(pairs_by_split[s]) for s in SPLITS},
                "prompts": {s: sum(1 for pid in splits if splits[pid] == s) for s in SPLITS},
                "score_rows_used": len(scores_loaded.rows),
                "score_rows_left_out": scores_loaded.left_out_dict(),
                "scored_videos": {s: len(scores_by_split[s]) for s in SPLITS},
            },
            "files": entries,
            "notes": {
                "annotator_ids": ANNOTATOR_ID_NOTE,
                "labels": LABEL_NOTE,
                "paths": PATH_NOTE,
                "split": SPLIT_NOTE,
                "left_out": LEFT_OUT_NOTE,
            },
        }
        write_manifest(staging, manifest)
        report(total - 1, total, f"wrote {MANIFEST_NAME}")
    PreferenceExport.objects.filter(pk=export.pk).update(
        manifest=manifest, status=PreferenceExport.Status.READY
    )
    export.manifest, export.status = manifest, PreferenceExport.Status.READY
    return manifest


def mark_export(export: PreferenceExport, status: str) -> None:
    PreferenceExport.objects.filter(pk=export.pk).update(status=status)
    export.status = status
