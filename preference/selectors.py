"""Reads for preference exports: the judgments and scores that count, turned into the plain rows of
`pairs.py`, the prompt and video facts the records carry, and the exports themselves.

What counts: paired judgments (left/tie/right) and rubric scores of the chosen campaigns, except what every
analysis leaves out (`annotation.left_out`, the same rules as the results pages: repeats, judgments of
annotators a manager excluded from that campaign, every judgment of a prompt the campaign left out, of a
prompt with a problem report on any of its items, of a prompt that a model compared in that campaign
refused), and answers
without stored videos (imported ones may name only the models)."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse

from annotation.left_out import REASONS, left_out_rules
from annotation.models import Campaign, Judgment, RubricScore
from generation.models import Prompt, Video
from generation.selectors import playable_url

from .export import MANIFEST_NAME, ExportedVideo, PromptInfo
from .models import PreferenceExport
from .pairs import ScoreRow, Vote, hash_annotator

NO_VIDEO = "no_video"
LEFT_OUT_REASONS = (*REASONS, NO_VIDEO)
CHUNK = 500  # ids per IN (...) query: well below SQLite's limit on query parameters
ITERATOR_CHUNK = 5000


def annotator_hash_key() -> bytes:
    """The HMAC key for annotator ids: derived from SECRET_KEY (so ids are stable across exports of one site
    and differ between sites), never the SECRET_KEY itself."""
    return hmac.new(
        settings.SECRET_KEY.encode("utf-8"), b"preference-export/annotator-id", hashlib.sha256
    ).digest()


@dataclass
class Loaded:
    """Rows that count, and how many were left out, by reason."""

    rows: list = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)

    def left_out_dict(self) -> dict[str, int]:
        return {reason: self.left_out.get(reason, 0) for reason in LEFT_OUT_REASONS}


class _Filters:
    """The left-out rules of the module docstring, for judgments of the given campaigns, and the hashed
    annotator ids."""

    def __init__(self, campaign_ids: Sequence[int]):
        self.rules = left_out_rules(campaign_ids)
        self.key = annotator_hash_key()
        self._hashes: dict[int, str] = {}

    def reason(
        self, *, campaign_id: int, annotator_id: int, prompt_id: int, is_repeat: bool, videos: Sequence
    ) -> str:
        reason = self.rules.reason(
            campaign_id=campaign_id, annotator_id=annotator_id, prompt_id=prompt_id, is_repeat=is_repeat
        )
        if not reason and any(v is None for v in videos):
            return NO_VIDEO
        return reason

    def annotator(self, user_id: int) -> str:
        if user_id not in self._hashes:
            self._hashes[user_id] = hash_annotator(user_id, self.key)
        return self._hashes[user_id]


def _ids(campaigns: Iterable[Campaign]) -> list[int]:
    return sorted({c.pk for c in campaigns})


def paired_votes(campaigns: Iterable[Campaign]) -> Loaded:
    """The paired judgments that count, as `Vote` rows (videos by public id, annotators hashed)."""
    campaign_ids = _ids(campaigns)
    filters = _Filters(campaign_ids)
    loaded = Loaded()
    rows = (
        Judgment.objects.filter(campaign_id__in=campaign_ids, choice__in=Judgment.Choice.values)
        .order_by("id")
        .values_list(
            "id",
            "campaign_id",
            "campaign__name",
            "annotator_id",
            "is_repeat",
            "prompt_id",
            "choice",
            "left_video__public_id",
            "right_video__public_id",
        )
    )
    for jid, cid, cname, annotator_id, is_repeat, prompt_id, choice, left, right in rows.iterator(
        chunk_size=ITERATOR_CHUNK
    ):
        reason = filters.reason(
            campaign_id=cid,
            annotator_id=annotator_id,
            prompt_id=prompt_id,
            is_repeat=is_repeat,
            videos=(left, right),
        )
        if reason:
            loaded.left_out[reason] += 1
            continue
        loaded.rows.append(
            Vote(
                judgment_id=jid,
                campaign=cname,
                prompt_id=prompt_id,
                left_video=left,
                right_video=right,
                choice=choice,
                annotator=filters.annotator(annotator_id),
            )
        )
    return loaded


def score_rows(campaigns: Iterable[Campaign]) -> Loaded:
    """The Metric-2 scores that count, as `ScoreRow`s (one per annotator and video)."""
    campaign_ids = _ids(campaigns)
    filters = _Filters(campaign_ids)
    loaded = Loaded()
    rows = (
        RubricScore.objects.filter(judgment__campaign_id__in=campaign_ids)
        .order_by("id")
        .values_list(
            "judgment__campaign_id",
            "judgment__annotator_id",
            "judgment__is_repeat",
            "judgment__prompt_id",
            "video__public_id",
            *RubricScore.DIMENSIONS,
        )
    )
    for cid, annotator_id, is_repeat, prompt_id, video, *scores in rows.iterator(chunk_size=ITERATOR_CHUNK):
        reason = filters.reason(
            campaign_id=cid,
            annotator_id=annotator_id,
            prompt_id=prompt_id,
            is_repeat=is_repeat,
            videos=(video,),
        )
        if reason:
            loaded.left_out[reason] += 1
            continue
        loaded.rows.append(
            ScoreRow(
                video=video,
                prompt_id=prompt_id,
                annotator=filters.annotator(annotator_id),
                scores=tuple(scores),
            )
        )
    return loaded


def _chunks(values: Iterable, size: int = CHUNK) -> Iterator[list]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def prompt_infos(prompt_ids: Iterable[int]) -> dict[int, PromptInfo]:
    infos: dict[int, PromptInfo] = {}
    for chunk in _chunks(prompt_ids):
        for prompt in Prompt.objects.filter(pk__in=chunk).select_related("benchmark", "category"):
            infos[prompt.pk] = PromptInfo(
                id=prompt.pk,
                text=prompt.text,
                benchmark=prompt.benchmark.slug,
                position=prompt.position,
                category=prompt.category.name if prompt.category else None,
            )
    return infos


def exported_videos(public_ids: Iterable[str]) -> dict[str, ExportedVideo]:
    infos: dict[str, ExportedVideo] = {}
    for chunk in _chunks(public_ids):
        for video in Video.objects.filter(public_id__in=chunk).select_related("model"):
            infos[video.public_id] = ExportedVideo(
                video_id=video.public_id,
                original_file=video.original_file,
                playable_file=video.playable_file,
                url=playable_url(video),
                original_url=reverse("media-original", kwargs={"public_id": video.public_id}),
                model=video.model.name,
                model_version=video.model.version,
                checkpoint=video.model.checkpoint,
                seed=video.seed,
                noise_id=video.noise_id,
                generation_settings=video.generation_settings or {},
            )
    return infos


def exportable_campaigns() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("benchmark").order_by("name")


def exports() -> QuerySet[PreferenceExport]:
    return PreferenceExport.objects.select_related("job", "created_by").prefetch_related("campaigns")


def export_versions(name: str) -> QuerySet[PreferenceExport]:
    return exports().filter(name=name).order_by("-version")


def downloadable_names(export: PreferenceExport) -> list[str]:
    """The files of a finished export: its data files, then its manifest."""
    if not export.is_ready:
        return []
    return [entry["name"] for entry in export.file_entries] + [MANIFEST_NAME]


def export_file_path(export: PreferenceExport, filename: str) -> Path | None:
    """Where a downloadable file of the export is, or None: only names the manifest lists are served,
    so no request can reach outside the export's folder."""
    if filename not in downloadable_names(export):
        return None
    path = Path(settings.MEDIA_ROOT) / export.folder / filename
    return path if path.is_file() else None
