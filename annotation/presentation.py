"""What an annotator's browser receives. Everything here is in display terms (positions left to right):
no model, no canonical slot, no item id or position, no campaign name, seed, noise id or per-model
timestamp ever leaves this module, nor the campaign's kind (`shown_kind`). Video URLs carry only the
random id of the campaign's own rendition of each video (or, for a campaign whose media is not ready, its
own id for the video, CampaignMedia): never the video's public id, which other campaigns would show too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from generation.models import Video

from .assignment import annotator_done_and_total, claim_work
from .models import RUBRIC_DIMENSIONS, Assignment, Campaign, CampaignMedia, ItemVideo, Judgment, Rendition

# How a media URL reaches the annotator: (the URL, the file behind it under MEDIA_ROOT) -> the URL to give.
# The API passes evalsite.http.MediaLinks (signed links the front server checks by itself); plain URLs
# otherwise.
MediaLink = Callable[[str, str], str]


def plain_link(url: str, stored: str) -> str:
    return url


class MissingCampaignMedia(LookupError):
    """A video of the campaign has no CampaignMedia id (they are made with the campaign)."""


@dataclass(frozen=True)
class _Shown:
    """Under which ids a campaign shows its videos: its own id per video, or a normalised rendition."""

    ids: dict[int, str]  # video id -> CampaignMedia.public_id
    renditions: dict[int, Rendition]
    link: MediaLink = plain_link

    def _own_id(self, video: Video) -> str:
        try:
            return self.ids[video.pk]
        except KeyError:
            raise MissingCampaignMedia(f"{video} has no id of its campaign to be shown under") from None

    def _url(self, name: str, public_id: str, stored: str) -> str:
        """The URL of media view `name` for `public_id`, as `link` gives it (`stored`: the file behind it)."""
        return self.link(reverse(name, kwargs={"public_id": public_id}), stored)

    def _poster(self, video: Video) -> str | None:
        if not video.poster_file:
            return None
        return self._url("media-poster", self._own_id(video), video.poster_file)

    def media(self, video: Video) -> dict[str, Any]:
        rendition = self.renditions.get(video.pk)
        if rendition is not None:
            return {
                "url": self._url("media-video", rendition.public_id, rendition.playable_file),
                "poster": (
                    self._url("media-poster", rendition.public_id, rendition.poster_file)
                    if rendition.poster_file
                    else self._poster(video)
                ),
                "width": rendition.width,
                "height": rendition.height,
                "duration_s": rendition.duration_s,
            }
        playable = video.status == Video.Status.READY
        return {
            "url": self._url("media-video", self._own_id(video), video.playable_file) if playable else None,
            "poster": self._poster(video),
            "width": video.width,
            "height": video.height,
            "duration_s": video.duration_s,
        }


# What the annotator's page needs of a library video; nothing else is read (`media` and `_store` use these).
_VIDEO_FIELDS = (
    "video__id",
    "video__model_id",
    "video__status",
    "video__playable_file",
    "video__poster_file",
    "video__width",
    "video__height",
    "video__duration_s",
)


def _shown(campaign: Campaign, videos: list[Video], link: MediaLink = plain_link) -> _Shown:
    """How the campaign shows `videos`: its renditions (when its media is ready) and, only for the videos
    that need them (no rendition, or a rendition without a poster of its own), its own ids."""
    renditions = {}
    # Until a campaign's media is ready (and for campaigns made before every campaign had renditions)
    # its videos are shown under its own ids for the library's files.
    if campaign.media_ready and videos:
        rows = Rendition.objects.filter(campaign=campaign, video__in=videos).only(
            "video_id", "public_id", "playable_file", "poster_file", "width", "height", "duration_s"
        )
        renditions = {rendition.video_id: rendition for rendition in rows}
    own = [
        video
        for video in videos
        if video.pk not in renditions or (video.poster_file and not renditions[video.pk].poster_file)
    ]
    ids = {}
    if own:
        ids = dict(
            CampaignMedia.objects.filter(campaign=campaign, video__in=own).values_list(
                "video_id", "public_id"
            )
        )
    return _Shown(ids, renditions, link)


def shown_kind(campaign: Campaign) -> str:
    """What the annotator's page is told of the campaign's kind: which answers to offer, "paired" (left,
    tie, right) or "rubric" (scores), never the kind itself (seed preference or A/B with shared noise
    would say which videos come from one model, or from a baseline and its tuned version)."""
    return "rubric" if campaign.kind == Campaign.Kind.RUBRIC else "paired"


def _displayed(assignments: list[Assignment]) -> dict[int, list[Video]]:
    """Each assignment's videos in display order (left to right), by assignment id, in one query."""
    by_item: dict[int, dict[int, Video]] = {}
    rows = (
        ItemVideo.objects.filter(item_id__in={a.item_id for a in assignments})
        .select_related("video")
        .order_by()
    )
    for row in rows.only("item_id", "slot", *_VIDEO_FIELDS):
        by_item.setdefault(row.item_id, {})[row.slot] = row.video
    return {a.pk: [by_item[a.item_id][slot] for slot in a.presentation] for a in assignments}


def displayed_videos(assignment: Assignment) -> list[Video]:
    """The assignment's videos in display order (left to right)."""
    return _displayed([assignment])[assignment.pk]


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


@dataclass(frozen=True)
class _ShownItems:
    """Several assignments' videos in display order and how their campaign shows them, read together."""

    videos: dict[int, list[Video]]  # assignment id -> videos left to right
    shown: _Shown

    def media(self, assignment: Assignment) -> list[dict[str, Any]]:
        return [self.shown.media(video) for video in self.videos[assignment.pk]]


def _shown_items(
    campaign: Campaign, assignments: list[Assignment], link: MediaLink = plain_link
) -> _ShownItems:
    videos = _displayed(assignments)
    return _ShownItems(videos, _shown(campaign, [video for row in videos.values() for video in row], link))


def _judgment_of(assignment: Assignment) -> Judgment | None:
    if assignment.status != Assignment.Status.DONE:
        return None
    try:
        return assignment.judgment  # read with the assignment where the caller selected it
    except Judgment.DoesNotExist:
        return None


def assignment_view(
    assignment: Assignment, *, progress: dict[str, int] | None = None, items: _ShownItems
) -> dict[str, Any]:
    """Exactly what the annotator's page gets for one item, from `items` (its videos, read with the other
    items of the same answer: see `_shown_items`). `progress` may be passed in when the caller already
    computed it for this annotator."""
    campaign = assignment.campaign
    prompt = assignment.item.prompt
    media = items.media(assignment)
    judgment = _judgment_of(assignment)
    answered = judgment is not None
    return {
        "token": assignment.token,
        "kind": shown_kind(campaign),
        "prompt": {"text": prompt.text, "language": prompt.language},
        "videos": [{"position": position, **shown} for position, shown in enumerate(media)],
        "require_full_playback": campaign.require_full_playback,
        "progress": progress if progress is not None else progress_view(campaign, assignment.annotator),
        "is_answered": answered,
        "answer": answer_view(judgment) if answered else None,
    }


def assignment_views(
    campaign: Campaign,
    assignments: list[Assignment],
    *,
    progress: dict[str, int],
    link: MediaLink = plain_link,
) -> list[dict[str, Any]]:
    """`assignment_view` of several assignments of one annotator in `campaign`, their videos read at once."""
    items = _shown_items(campaign, assignments, link)
    return [assignment_view(a, progress=progress, items=items) for a in assignments]


def upcoming_view(assignment: Assignment | None, *, items: _ShownItems) -> dict[str, Any] | None:
    """Only what preloading needs: the video URLs of the next item, in display order (from `items`)."""
    if assignment is None:
        return None
    return {"videos": [shown["url"] for shown in items.media(assignment)]}


def next_view(
    campaign: Campaign,
    annotator: AbstractBaseUser,
    *,
    now: datetime | None = None,
    link: MediaLink = plain_link,
) -> dict[str, Any]:
    """The annotator's item on screen, the URLs to preload for the one after, and their progress, with
    media URLs as `link` gives them. `done` is true when nothing is left for them (not when others
    merely hold the last items for now). Raises AssignmentError when the annotator may not work in this
    campaign."""
    work = claim_work(campaign, annotator, now=now)
    progress = progress_view(campaign, annotator)
    current = work.current
    items = _shown_items(campaign, [a for a in (current, work.upcoming) if a is not None], link)
    return {
        "done": current is None and progress["done"] >= progress["total"],
        "assignment": assignment_view(current, progress=progress, items=items) if current else None,
        "upcoming": upcoming_view(work.upcoming, items=items),
        "progress": progress,
    }
