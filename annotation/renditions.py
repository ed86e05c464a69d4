"""A campaign's own media: the only files its annotators are shown.

Every campaign shows its own renditions (`Rendition`), made by a job when the campaign is created
(`start_prepare_media`; no work is handed out until they are ready, `Campaign.media_ready`). A library
clip served byte-identical in two campaigns would let an annotator of both recognise it (a seed-preference
campaign shows one model only, so its clips would name that model's side in every pairwise item), so:
- each campaign re-encodes its videos with an encoder variation of its own (`media_variation`: the x264
  quality factor and adaptive-quantisation strength and the poster's JPEG quality, drawn from the
  campaign's secret), so one source gives different bytes and sizes in different campaigns; no
  container metadata is written;
- every video of a campaign is then padded to one size (the largest rendition plus a kibibyte and a
  random share under 3% of the campaign's, as an MP4 `free` box players skip), and every poster
  likewise, so a file's size says nothing of which model made it, within a campaign or across
  campaigns (two campaigns' sizes can coincide by chance, which says nothing either: each campaign
  serves all its videos at its one size). The padding's bytes are drawn from the campaign's secret,
  so one clip is never the same file in two campaigns, whatever the sizes. What the padding does not
  change is the encoded part before it: two campaigns that draw the same x264 settings (one pair in
  8,241: 201 quality factors x 41 strengths) encode a clip alike, which a reader of raw bytes who
  strips the padding could match; the poster is taken from the campaign's own encoding, so it is alike
  only where the JPEG quality matches too (one pair in 90,651). The cost is bandwidth and disk: each
  file is as large as the campaign's largest (`perf/campaign_media.py` measures it);
- durations, sides and frame rates stay each video's own unless the campaign normalises media (below):
  a video's length is part of what it shows and cannot be hidden without cutting it.
What cannot be hidden this way is the picture itself: an annotator who remembers a clip from a
seed-preference campaign can recognise it by eye in a pairwise one.

Normalised media: the versions of a campaign's videos that annotators are shown when resolution, frame
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

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from math import floor
from pathlib import Path
from typing import Any

from django.db import transaction

from evalsite.job_titles import job_title
from evalsite.models import Job
from generation.models import Video
from generation.services import media_path
from generation.videofiles import (
    DEFAULT_AQ_STRENGTH,
    DEFAULT_CRF,
    MAX_FPS,
    MIN_FRAMES,
    MIN_SIDE,
    POSTER_JPEG_QUALITY,
    VideoRejected,
    pad_to_size,
    padded_size,
    transcode_for_browser,
    transcode_to_format,
)

from .campaigns import CampaignError
from .models import Assignment, Campaign, ItemVideo, Rendition

Progress = Callable[[int, int, str], None]
NORMALISE_MEDIA_JOB = "annotation.tasks.normalise_media"
PREPARE_MEDIA_JOB = "annotation.tasks.prepare_media"

# A duration recorded as frames / fps can come back a hair under the whole number of frames it holds.
_FRAME_TOLERANCE = 1e-6


def rendition_paths(public_id: str) -> tuple[str, str]:
    """The rendition's video and poster, under MEDIA_ROOT, named after its own public id only."""
    folder = f"renditions/{public_id[:2]}"
    return f"{folder}/{public_id}.mp4", f"{folder}/{public_id}.jpg"


@dataclass(frozen=True)
class MediaVariation:
    """How one campaign's renditions are encoded and padded; secret like the campaign's shuffle seed."""

    crf: float  # within one of the site's default (20): no visible difference, other bytes and sizes
    aq_strength: float  # x264's adaptive quantisation, within 0.2 of its default: other bytes again
    poster_quality: int  # JPEG quality of the posters, within 5 of the site's default
    margin: float  # share of the largest file added past it (below 3%), after a kibibyte (a free box)
    filler_key: bytes  # what the padding's bytes are drawn from, so no two campaigns' files are alike


def media_variation(campaign: Campaign) -> MediaVariation:
    """The campaign's encoder variation, drawn from its secret shuffle seed (so a job run again, or
    resumed, encodes alike)."""
    digest = hmac.new(campaign.shuffle_seed.encode(), b"campaign media", hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big")
    return MediaVariation(
        crf=DEFAULT_CRF + (number % 201 - 100) / 100,
        aq_strength=DEFAULT_AQ_STRENGTH + ((number >> 24) % 41 - 20) / 100,
        poster_quality=POSTER_JPEG_QUALITY + (number >> 8) % 11 - 5,
        margin=(number >> 16) % 3000 / 100_000,
        filler_key=digest[8:],
    )


def own_format(video: Video) -> dict[str, Any]:
    """The format a video is shown in when its campaign does not normalise media: its own, with an odd
    side padded by a pixel as the library's playable copy is."""
    if not (video.width and video.height and video.fps and video.duration_s):
        raise CampaignError(f"{video} has no recorded size, frame rate or duration; process it again")
    return {
        "width": video.width + video.width % 2,
        "height": video.height + video.height % 2,
        "fps": video.fps,
        "duration_s": video.duration_s,
    }


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
        and rendition.encoded_size is not None
        and rendition.poster_encoded_size is not None
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


_Made = dict[tuple[Path, tuple], Rendition]  # (source file, format) -> this campaign's complete rendition


def _render(campaign: Campaign, video: Video, fmt: dict[str, Any], *, normalised: bool, made: _Made) -> bool:
    """Make sure the video has a complete rendition in `fmt`; True when it had to be encoded. Videos of
    the campaign made from one file (`made`) share the first one's rendition files."""
    source = _source_file(video)
    key = (source, tuple(sorted(fmt.items())))
    rendition = Rendition.objects.filter(campaign=campaign, video=video).first()
    if rendition is not None and _is_complete(rendition, fmt):
        made.setdefault(key, rendition)
        return False
    if rendition is None:
        rendition = Rendition(campaign=campaign, video=video)
    twin = made.get(key)
    rendition.width, rendition.height = fmt["width"], fmt["height"]
    rendition.fps, rendition.duration_s = fmt["fps"], fmt["duration_s"]
    if twin is not None:
        rendition.playable_file, rendition.poster_file = twin.playable_file, twin.poster_file
        rendition.encoded_size, rendition.poster_encoded_size = twin.encoded_size, twin.poster_encoded_size
        rendition.save()
        return False
    # The row is written before its files, with no encoded size, so a crash leaves a row that is redone on
    # the next run rather than files no row points to (or an old file taken for a new one).
    rendition.playable_file, rendition.poster_file = rendition_paths(rendition.public_id)
    rendition.encoded_size = rendition.poster_encoded_size = None
    rendition.save()
    variation = media_variation(campaign)
    video_file, poster_file = media_path(rendition.playable_file), media_path(rendition.poster_file)
    try:
        if normalised:
            transcode_to_format(
                source,
                video_file,
                poster_file,
                width=fmt["width"],
                height=fmt["height"],
                fps=fmt["fps"],
                duration_s=fmt["duration_s"],
                crf=variation.crf,
                aq_strength=variation.aq_strength,
                poster_quality=variation.poster_quality,
            )
        else:
            transcode_for_browser(
                source,
                video_file,
                poster_file,
                crf=variation.crf,
                aq_strength=variation.aq_strength,
                poster_quality=variation.poster_quality,
            )
    except (VideoRejected, ValueError) as exc:
        verb = "normalised" if normalised else "re-encoded for the campaign"
        raise CampaignError(f"{video} could not be {verb}: {exc}") from exc
    rendition.encoded_size = video_file.stat().st_size
    rendition.poster_encoded_size = poster_file.stat().st_size
    rendition.save(update_fields=["encoded_size", "poster_encoded_size"])
    made[key] = rendition
    return True


def _render_all(
    campaign: Campaign,
    videos: list[Video],
    format_of: Callable[[Video], dict[str, Any]],
    progress: Progress | None,
    *,
    normalised: bool,
) -> int:
    """Render every video, then pad the campaign's files to their common sizes; the number encoded."""
    made: _Made = {}
    encoded = 0
    verb = "normalising" if normalised else "preparing"
    for done, video in enumerate(videos):
        if progress is not None:
            progress(done, len(videos), f"{verb} video {done + 1} of {len(videos)}")
        encoded += _render(campaign, video, format_of(video), normalised=normalised, made=made)
    if progress is not None:
        progress(len(videos), len(videos), "padding the files to one size")
    pad_campaign_media(campaign)
    return encoded


def served_sizes(campaign: Campaign) -> tuple[int, int]:
    """The size in bytes of every video and of every poster the campaign serves: its largest of each, as
    encoded, plus a kibibyte and the campaign's own share of it (so the same files give other sizes in
    another campaign)."""
    variation = media_variation(campaign)
    sizes = list(campaign.renditions.values_list("encoded_size", "poster_encoded_size"))
    if not sizes or any(video is None or poster is None for video, poster in sizes):
        raise CampaignError("the campaign's renditions are not all encoded yet")
    largest_video = max(video for video, _ in sizes)
    largest_poster = max(poster for _, poster in sizes)
    return padded_size(largest_video, variation.margin), padded_size(largest_poster, variation.margin)


def pad_campaign_media(campaign: Campaign) -> None:
    """Pad each rendition file of the campaign to its served size (files already padded are kept)."""
    video_size, poster_size = served_sizes(campaign)
    filler_key = media_variation(campaign).filler_key
    files = {}
    for rendition in campaign.renditions.all():
        files[rendition.playable_file] = (rendition.encoded_size, video_size)
        files[rendition.poster_file] = (rendition.poster_encoded_size, poster_size)
    for relative, (content_bytes, size) in files.items():
        pad_to_size(media_path(relative), content_bytes=content_bytes, size=size, filler_key=filler_key)


def prepare_campaign_media(campaign: Campaign, progress: Progress | None = None) -> dict[str, Any]:
    """Give every video of the campaign its own rendition (in the campaign's normalised format if it has
    one, else the video's own), pad them to one size and record the campaign's media as ready, so work
    can be handed out. Safe to run again: complete renditions are kept, and a run cut short is taken up
    where it stopped. Raises CampaignError when the campaign is closed or a video cannot be re-encoded."""
    campaign.refresh_from_db()
    if campaign.status == Campaign.Status.CLOSED:
        raise CampaignError("the campaign is closed")
    videos = campaign_videos(campaign)
    fmt = campaign.normalised_format if campaign.normalise_media else None
    normalised = bool(fmt)
    encoded = _render_all(
        campaign, videos, (lambda _video: fmt) if fmt else own_format, progress, normalised=normalised
    )
    Campaign.objects.filter(pk=campaign.pk).update(media_ready=True)
    campaign.refresh_from_db()
    return {"videos": len(videos), "encoded": encoded, "kept": len(videos) - encoded}


def start_prepare_media(campaign: Campaign, created_by=None) -> Job:
    """Queue the job that prepares the campaign's media (`create_campaign` does, for every campaign);
    until it has finished no work is handed out."""
    from evalsite.jobs import start_job

    Campaign.objects.filter(pk=campaign.pk).update(media_ready=False)
    campaign.media_ready = False
    return start_job(
        PREPARE_MEDIA_JOB,
        title=job_title("prepare_media", name=campaign.name),
        params={"campaign_id": campaign.pk},
        created_by=created_by,
    )


def latest_media_job(campaign: Campaign) -> Job | None:
    """The campaign's latest job that prepares or normalises its media (for its page)."""
    jobs = Job.objects.filter(
        kind__in=[PREPARE_MEDIA_JOB, NORMALISE_MEDIA_JOB], params__campaign_id=campaign.pk
    )
    return jobs.order_by("-created_at").first()


def normalising_pending(campaign: Campaign) -> bool:
    """A normalise job of the campaign is queued or running (it makes every rendition itself)."""
    return Job.objects.filter(
        kind=NORMALISE_MEDIA_JOB,
        params__campaign_id=campaign.pk,
        status__in=[Job.Status.QUEUED, Job.Status.RUNNING],
    ).exists()


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
    encoded = _render_all(campaign, videos, lambda _video: fmt, progress, normalised=True)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not already:
            # Checked again under the lock: work handed out while encoding showed originals.
            _check_not_started(locked)
        locked.normalise_media, locked.normalised_format, locked.media_ready = True, fmt, True
        if resume and locked.status == Campaign.Status.PAUSED:
            locked.status = Campaign.Status.ACTIVE
        locked.save(update_fields=["normalise_media", "normalised_format", "media_ready", "status"])
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
        if normalising_pending(locked):
            raise CampaignError("the campaign's media is already being normalised")
        preparing = Job.objects.filter(
            kind=PREPARE_MEDIA_JOB, params__campaign_id=locked.pk, status=Job.Status.RUNNING
        )
        if preparing.exists():
            raise CampaignError("the campaign's media is being prepared; normalise it once that job is done")
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
            title=job_title("normalise_media", name=locked.name),
            params={"campaign_id": locked.pk, "resume": resume},
            created_by=created_by,
        )
    campaign.status = locked.status
    return job
