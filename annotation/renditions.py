"""Normalised media: the versions of a campaign's videos that annotators are shown when resolution, frame
rate or length could give a model away.

The common format (`choose_normalised_format`) is the most every video of the campaign can fill without
inventing picture or time:
- width and height: the smallest width and the smallest height among the videos, each rounded down to
  an even number (H.264 in 4:2:0 needs even sides). Every video is scaled to fit inside that frame with
  its aspect ratio kept and centred on black bars, so no picture is cropped or stretched;
- frame rate: the lowest among the videos (faster videos drop frames; none has to repeat any);
- duration: the shortest among the videos, rounded down to whole frames at that rate (longer videos are
  cut at the end).

`normalise_campaign_media` re-encodes every video of the campaign's items to that format as a `Rendition`
(a random public id of its own, so its URL and file name say nothing of the original). It is resumable:
files are written under a temporary name and renamed when complete, and a rendition whose files are
complete is skipped, so a job killed half-way loses only the video it was encoding. Work must not be
handed out meanwhile (an annotator would see an original), so the campaign has to be paused and nobody
may have been shown any of its items; `start_normalise_media` pauses an active campaign and the job makes
it active again once its media is normalised."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fractions import Fraction
from math import floor
from pathlib import Path
from typing import Any

from django.db import transaction

from evalsite.models import Job
from generation.models import Video
from generation.services import media_path
from generation.videofiles import MAX_FPS, MIN_FRAMES, MIN_SIDE, VideoRejected, transcode_to_format

from .campaigns import CampaignError
from .models import Assignment, Campaign, ItemVideo, Rendition

Progress = Callable[[int, int, str], None]
NORMALISE_MEDIA_JOB = "annotation.tasks.normalise_media"

# A duration recorded as frames / fps can come back a hair under the whole number of frames it holds.
_FRAME_TOLERANCE = 1e-6


def rendition_paths(public_id: str) -> tuple[str, str]:
    """The rendition's video and poster, under MEDIA_ROOT, named after its own public id only."""
    folder = f"renditions/{public_id[:2]}"
    return f"{folder}/{public_id}.mp4", f"{folder}/{public_id}.jpg"


def choose_normalised_format(videos: Iterable[Video]) -> dict[str, Any]:
    """`{"width", "height", "fps", "duration_s"}` that every video can be shown in (see the module's
    docstring for the rules). Raises CampaignError when a video lacks its measurements or the videos
    are too small or too short to share a format."""
    videos = list(videos)
    if not videos:
        raise CampaignError("the campaign has no videos to normalise")
    for video in videos:
        if not (video.width and video.height and video.fps and video.duration_s):
            raise CampaignError(f"{video} has no recorded size, frame rate or duration; process it again")
    width = min(v.width for v in videos) // 2 * 2
    height = min(v.height for v in videos) // 2 * 2
    if min(width, height) < MIN_SIDE:
        raise CampaignError(
            f"the smallest videos would make the common format {width}x{height}; each side must be at "
            f"least {MIN_SIDE} pixels"
        )
    fps = min(v.fps for v in videos)
    rate = Fraction(fps).limit_denominator(1001)
    if not 0 < rate <= MAX_FPS:
        raise CampaignError(f"the lowest frame rate, {fps:g} fps, is unusable")
    shortest = min(v.duration_s for v in videos)
    frames = floor(shortest * rate + _FRAME_TOLERANCE)
    if frames < MIN_FRAMES:
        raise CampaignError(f"the shortest video ({shortest:.3g} s) holds fewer than {MIN_FRAMES} frames")
    return {"width": width, "height": height, "fps": float(rate), "duration_s": float(frames / rate)}


def campaign_videos(campaign: Campaign) -> list[Video]:
    """Every video the campaign's items show, once each, in item and slot order."""
    video_ids = ItemVideo.objects.filter(item__campaign=campaign).order_by("item__position", "slot")
    ordered = list(dict.fromkeys(video_ids.values_list("video_id", flat=True)))
    by_id = Video.objects.in_bulk(ordered)
    return [by_id[pk] for pk in ordered]


def _source_file(video: Video) -> Path:
    """The original (full quality, exact size); the playable copy if the original is gone."""
    for relative in (video.original_file, video.playable_file):
        if relative and media_path(relative).is_file():
            return media_path(relative)
    raise CampaignError(f"{video} has no stored file to re-encode")


def _is_complete(rendition: Rendition, fmt: dict[str, Any]) -> bool:
    facts = (rendition.width, rendition.height, rendition.fps, rendition.duration_s)
    return (
        facts == (fmt["width"], fmt["height"], fmt["fps"], fmt["duration_s"])
        and bool(rendition.playable_file and rendition.poster_file)
        and media_path(rendition.playable_file).is_file()
        and media_path(rendition.poster_file).is_file()
    )


def _check_not_started(campaign: Campaign) -> None:
    if campaign.status == Campaign.Status.CLOSED:
        raise CampaignError("the campaign is closed")
    if Assignment.objects.filter(campaign=campaign).exists():
        raise CampaignError(
            "annotators have already been shown this campaign's original videos; normalising now would "
            "show them two versions. Create a new campaign and normalise it before work is handed out"
        )


def _render(campaign: Campaign, video: Video, fmt: dict[str, Any]) -> bool:
    """Make sure the video has a complete rendition in `fmt`; True when it had to be encoded."""
    rendition = Rendition.objects.filter(campaign=campaign, video=video).first()
    if rendition is not None and _is_complete(rendition, fmt):
        return False
    if rendition is None:
        rendition = Rendition(campaign=campaign, video=video)
    # The row is written before its files, so a crash leaves a row whose files are missing (redone on
    # the next run) rather than files no row points to.
    rendition.playable_file, rendition.poster_file = rendition_paths(rendition.public_id)
    rendition.width, rendition.height = fmt["width"], fmt["height"]
    rendition.fps, rendition.duration_s = fmt["fps"], fmt["duration_s"]
    rendition.save()
    try:
        transcode_to_format(
            _source_file(video),
            media_path(rendition.playable_file),
            media_path(rendition.poster_file),
            width=fmt["width"],
            height=fmt["height"],
            fps=fmt["fps"],
            duration_s=fmt["duration_s"],
        )
    except (VideoRejected, ValueError) as exc:
        raise CampaignError(f"{video} could not be normalised: {exc}") from exc
    return True


def normalise_campaign_media(
    campaign: Campaign, progress: Progress | None = None, *, resume: bool = False
) -> dict[str, Any]:
    """Give every video of the campaign a rendition in the common format, then record
    `normalise_media=True` and the format on the campaign (and, with `resume`, make a paused campaign
    active again). Safe to run again: complete renditions are kept, and on a campaign already normalised
    only missing files are made, in the format it already has. Returns the format and counts.

    Raises CampaignError, with the campaign left as it was, when the campaign is closed, is not paused,
    or has been shown to annotators (unless it is already normalised), or a video cannot be re-encoded."""
    campaign.refresh_from_db()
    already = campaign.normalise_media
    if already:
        if campaign.status == Campaign.Status.CLOSED:
            raise CampaignError("the campaign is closed")
    else:
        _check_not_started(campaign)
        if campaign.status != Campaign.Status.PAUSED:
            raise CampaignError(
                "pause the campaign before normalising its media, so that nobody is shown an original "
                "video meanwhile"
            )
    videos = campaign_videos(campaign)
    fmt = campaign.normalised_format if already and campaign.normalised_format else None
    fmt = fmt or choose_normalised_format(videos)
    encoded = 0
    for done, video in enumerate(videos):
        if progress is not None:
            progress(done, len(videos), f"normalising video {done + 1} of {len(videos)}")
        encoded += _render(campaign, video, fmt)
    if progress is not None:
        progress(len(videos), len(videos), "recording the format")
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not already:
            # Checked again under the lock: work handed out while encoding showed originals.
            _check_not_started(locked)
        locked.normalise_media, locked.normalised_format = True, fmt
        if resume and locked.status == Campaign.Status.PAUSED:
            locked.status = Campaign.Status.ACTIVE
        locked.save(update_fields=["normalise_media", "normalised_format", "status"])
    campaign.refresh_from_db()
    return {"format": fmt, "videos": len(videos), "encoded": encoded, "kept": len(videos) - encoded}


def start_normalise_media(campaign: Campaign, created_by=None) -> Job:
    """Queue the job that normalises the campaign's media. An active campaign is paused until the job
    has finished (and made active again by it). Raises CampaignError, changing nothing, when the campaign
    is closed, already normalised, already being normalised, or has been shown to annotators, or when its
    videos cannot share a format."""
    from evalsite.jobs import start_job

    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.normalise_media:
            raise CampaignError("the campaign's media is already normalised")
        _check_not_started(locked)
        pending = Job.objects.filter(
            kind=NORMALISE_MEDIA_JOB,
            params__campaign_id=locked.pk,
            status__in=[Job.Status.QUEUED, Job.Status.RUNNING],
        )
        if pending.exists():
            raise CampaignError("the campaign's media is already being normalised")
        choose_normalised_format(campaign_videos(locked))
        earlier_attempts = Job.objects.filter(kind=NORMALISE_MEDIA_JOB, params__campaign_id=locked.pk)
        # A campaign paused by an earlier attempt that failed is made active again as that one would have.
        resume = locked.status == Campaign.Status.ACTIVE or (
            locked.status == Campaign.Status.PAUSED and earlier_attempts.filter(params__resume=True).exists()
        )
        if resume:
            locked.status = Campaign.Status.PAUSED
            locked.save(update_fields=["status"])
        job = start_job(
            NORMALISE_MEDIA_JOB,
            title=f"Normalise the media of campaign {locked.name}",
            params={"campaign_id": locked.pk, "resume": resume},
            created_by=created_by,
        )
    campaign.status = locked.status
    return job
