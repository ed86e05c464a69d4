"""What an annotator's browser receives. Everything here is in display terms (positions left to right):
no model, no canonical slot, no item id or position, no campaign name, seed, noise id or per-model
timestamp ever leaves this module, nor the campaign's kind (`shown_kind`). Video URLs carry only the
random id of the campaign's own rendition of each video (or, for a campaign whose media is not ready, its
own id for the video, CampaignMedia): never the video's public id, which other campaigns would show too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from generation.models import Video

from .assignment import annotator_done_and_total, claim_work
from .models import RUBRIC_DIMENSIONS, Assignment, Campaign, CampaignMedia, ItemVideo, Judgment, Rendition


class MissingCampaignMedia(LookupError):
    """A video of the campaign has no CampaignMedia id (they are made with the campaign)."""


@dataclass(frozen=True)
class _Shown:
    """Under which ids a campaign shows its videos: its own id per video, or a normalised rendition."""

    ids: dict[int, str]  # video id -> CampaignMedia.public_id
    renditions: dict[int, Rendition]

    def _own_id(self, video: Video) -> str:
        try:
            return self.ids[video.pk]
        except KeyError:
            raise MissingCampaignMedia(f"{video} has no id of its campaign to be shown under") from None

    def _poster(self, video: Video) -> str | None:
        if not video.poster_file:
            return None
        return reverse("media-poster", kwargs={"public_id": self._own_id(video)})

    def media(self, video: Video) -> dict[str, Any]:
        rendition = self.renditions.get(video.pk)
        if rendition is not None:
            return {
                "url": reverse("media-video", kwargs={"public_id": rendition.public_id}),
                "poster": (
                    reverse("media-poster", kwargs={"public_id": rendition.public_id})
                    if rendition.poster_file
                    else self._poster(video)
                ),
                "width": rendition.width,
                "height": rendition.height,
                "duration_s": rendition.duration_s,
            }
        playable = video.status == Video.Status.READY
        return {
            "url": reverse("media-video", kwargs={"public_id": self._own_id(video)}) if playable else None,
            "poster": self._poster(video),
            "width": video.width,
            "height": video.height,
            "duration_s": video.duration_s,
        }


def _shown(campaign: Campaign, videos: list[Video]) -> _Shown:
    ids = dict(
        CampaignMedia.objects.filter(campaign=campaign, video__in=videos).values_list("video_id", "public_id")
    )
    renditions = {}
    # Until a campaign's media is ready (and for campaigns made before every campaign had renditions)
    # its videos are shown under its own ids for the library's files.
    if campaign.media_ready:
        rows = Rendition.objects.filter(campaign=campaign, video__in=videos)
        renditions = {rendition.video_id: rendition for rendition in rows}
    return _Shown(ids, renditions)


def shown_kind(campaign: Campaign) -> str:
    """What the annotator's page is told of the campaign's kind: which answers to offer, "paired" (left,
    tie, right) or "rubric" (scores), never the kind itself (seed preference or A/B with shared noise
    would say which videos come from one model, or from a baseline and its tuned version)."""
    return "rubric" if campaign.kind == Campaign.Kind.RUBRIC else "paired"


def displayed_videos(assignment: Assignment) -> list[Video]:
    """The assignment's videos in display order (left to right)."""
    by_slot = {
        row.slot: row.video
        for row in ItemVideo.objects.filter(item_id=assignment.item_id).select_related("video")
    }
    return [by_slot[slot] for slot in assignment.presentation]


def shown_durations(assignment: Assignment) -> list[float | None]:
    """Length in seconds of each video as shown (the campaign's rendition when it normalises media)."""
    videos = displayed_videos(assignment)
    shown = _shown(assignment.campaign, videos)
    return [shown.media(video)["duration_s"] for video in videos]


def answer_view(judgment: Judgment) -> dict[str, Any]:
    """A stored answer as the annotator gave it: the choice as seen, or the scores by display position."""
    if judgment.choice:
        return {"choice": judgment.choice, "revision": judgment.revision}
    scores = [
        {"position": score.shown_position, **{dim: getattr(score, dim) for dim in RUBRIC_DIMENSIONS}}
        for score in sorted(judgment.scores.all(), key=lambda s: s.shown_position)
    ]
    return {"scores": scores, "revision": judgment.revision}


def progress_view(campaign: Campaign, annotator: AbstractBaseUser) -> dict[str, int]:
    done, total = annotator_done_and_total(campaign, annotator)
    return {"done": done, "total": total}


def assignment_view(assignment: Assignment, *, progress: dict[str, int] | None = None) -> dict[str, Any]:
    """Exactly what the annotator's page gets for one item. `progress` may be passed in when the caller
    already computed it for this annotator."""
    campaign = assignment.campaign
    prompt = assignment.item.prompt
    videos = displayed_videos(assignment)
    shown = _shown(campaign, videos)
    judgment = (
        Judgment.objects.filter(assignment=assignment).first()
        if assignment.status == Assignment.Status.DONE
        else None
    )
    answered = judgment is not None
    return {
        "token": assignment.token,
        "kind": shown_kind(campaign),
        "prompt": {"text": prompt.text, "language": prompt.language},
        "videos": [{"position": position, **shown.media(video)} for position, video in enumerate(videos)],
        "require_full_playback": campaign.require_full_playback,
        "progress": progress if progress is not None else progress_view(campaign, assignment.annotator),
        "is_answered": answered,
        "answer": answer_view(judgment) if answered else None,
    }


def upcoming_view(assignment: Assignment | None) -> dict[str, Any] | None:
    """Only what preloading needs: the video URLs of the next item, in display order."""
    if assignment is None:
        return None
    videos = displayed_videos(assignment)
    shown = _shown(assignment.campaign, videos)
    return {"videos": [shown.media(video)["url"] for video in videos]}


def next_view(
    campaign: Campaign, annotator: AbstractBaseUser, *, now: datetime | None = None
) -> dict[str, Any]:
    """The annotator's item on screen, the URLs to preload for the one after, and their progress.
    `done` is true when nothing is left for them (not when others merely hold the last items for now).
    Raises AssignmentError when the annotator may not work in this campaign."""
    work = claim_work(campaign, annotator, now=now)
    progress = progress_view(campaign, annotator)
    current = work.current
    return {
        "done": current is None and progress["done"] >= progress["total"],
        "assignment": assignment_view(current, progress=progress) if current else None,
        "upcoming": upcoming_view(work.upcoming),
        "progress": progress,
    }
