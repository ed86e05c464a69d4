"""Normalised media: clips of different sizes, rates and lengths re-encoded to one format (probed with
PyAV), the campaign service and job around it (resumable, refusing bad campaign states), and the media
URLs that serve the renditions."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.management import CommandError
from django.utils import timezone

from annotation.campaigns import CampaignError, CampaignSpec, create_campaign
from annotation.models import Assignment, Campaign, Rendition
from annotation.renditions import (
    NORMALISE_MEDIA_JOB,
    PREPARE_MEDIA_JOB,
    choose_normalised_format,
    media_variation,
    normalise_campaign_media,
    prepare_campaign_media,
    served_sizes,
    start_normalise_media,
)
from annotation.services import set_campaign_status
from evalsite.jobs import execute
from evalsite.models import Job
from generation.models import Video
from generation.services import add_video, create_video_model, media_path, process_video
from generation.videofiles import (
    DEFAULT_AQ_STRENGTH,
    DEFAULT_CRF,
    POSTER_JPEG_QUALITY,
    VideoRejected,
    pad_to_size,
    temporary_beside,
    transcode_for_browser,
    transcode_to_format,
)
from tests.campaign_fixtures import with_media_prepared

SECRET = "Zanzibar-Secret-Model"

# (width, height, fps, frames) of the four clips of the campaign below: landscape, portrait, larger,
# odd-sized; the common format is 48x48 at 12 fps for the portrait clip's 1.25 s (15 frames).
VARIED_CLIPS = [(64, 48, 12, 18), (48, 64, 24, 30), (80, 60, 15, 24), (66, 50, 12, 16)]
EXPECTED_FORMAT = {"width": 48, "height": 48, "fps": 12.0, "duration_s": 1.25}


def write_gray_ramp(path: Path, *, frames: int, fps: int, width: int = 32, height: int = 32) -> Path:
    """Frame k is a flat gray of level 10*k, so a decoded frame tells which source frame it shows."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            pixels = np.full((height, width, 3), 10 * index, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def container_facts(path: Path) -> dict:
    """What a player (or a curious annotator) can read from the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return {
            "size": (stream.codec_context.width, stream.codec_context.height),
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "frames": len(frames),
            "duration_s": float(stream.duration * stream.time_base),
            "audio_streams": len(container.streams.audio),
            "container_metadata": dict(container.metadata),
            "stream_metadata": dict(stream.metadata),
            "pixels": frames,
        }


def shape_of(facts: dict) -> tuple:
    return facts["size"], facts["rate"], facts["frames"], facts["duration_s"]


# --- the pure transcoder -------------------------------------------------------------------------------


def test_transcode_to_format_gives_clips_of_different_formats_one_shape(tmp_path, make_video):
    clips = [
        make_video(tmp_path / f"{SECRET}-{i}.mp4", width=w, height=h, fps=fps, frames=n, title=SECRET)
        for i, (w, h, fps, n) in enumerate(VARIED_CLIPS)
    ]
    facts = []
    for index, clip in enumerate(clips):
        info = transcode_to_format(
            clip, tmp_path / f"out{index}.mp4", tmp_path / f"out{index}.jpg", **EXPECTED_FORMAT
        )
        assert (info.width, info.height, info.fps, info.frame_count) == (48, 48, 12.0, 15)
        facts.append(container_facts(tmp_path / f"out{index}.mp4"))
    assert {shape_of(f) for f in facts} == {((48, 48), 12, 15, 1.25)}
    for index, fact in enumerate(facts):
        assert (fact["codec"], fact["pix_fmt"], fact["audio_streams"]) == ("h264", "yuv420p", 0)
        assert set(fact["container_metadata"]) <= {"major_brand", "minor_version", "compatible_brands"}
        assert not any(SECRET in value for value in fact["stream_metadata"].values())
        data = (tmp_path / f"out{index}.mp4").read_bytes()
        assert SECRET.encode() not in data
        assert data.index(b"moov") < data.index(b"mdat"), "fast start: the index comes first"
        with av.open(str(tmp_path / f"out{index}.jpg")) as poster:
            assert (poster.streams.video[0].width, poster.streams.video[0].height) == (48, 48)


def test_transcode_to_format_letterboxes_instead_of_stretching(tmp_path):
    wide = write_gray_ramp(tmp_path / "wide.mp4", frames=4, fps=12, width=64, height=32)
    tall = write_gray_ramp(tmp_path / "tall.mp4", frames=4, fps=12, width=32, height=64)
    for clip in (wide, tall):
        transcode_to_format(
            clip, tmp_path / f"{clip.stem}.out.mp4", tmp_path / f"{clip.stem}.jpg", width=32, height=32,
            fps=12, duration_s=4 / 12,
        )  # fmt: skip
    # Frame 3 is gray 30 over the whole picture; the bars around it are black.
    wide_frame = container_facts(tmp_path / "wide.out.mp4")["pixels"][3].mean(axis=2)
    tall_frame = container_facts(tmp_path / "tall.out.mp4")["pixels"][3].mean(axis=2)
    assert wide_frame[:6].mean() < 8 and wide_frame[-6:].mean() < 8
    assert abs(wide_frame[10:22].mean() - 30) < 4
    assert tall_frame[:, :6].mean() < 8 and tall_frame[:, -6:].mean() < 8
    assert abs(tall_frame[:, 10:22].mean() - 30) < 4


@pytest.mark.parametrize(
    ("source_fps", "source_frames", "expected_levels"),
    [
        (24, 20, [0, 20, 40, 60, 80, 100, 120, 140, 160]),  # twice as fast: every other frame
        (6, 6, [0, 0, 10, 10, 20, 20, 30, 30, 40]),  # half as fast: each frame twice
    ],
)
def test_transcode_to_format_resamples_frames_to_the_rate(
    tmp_path, source_fps, source_frames, expected_levels
):
    clip = write_gray_ramp(tmp_path / "ramp.mp4", frames=source_frames, fps=source_fps)
    transcode_to_format(
        clip, tmp_path / "out.mp4", tmp_path / "out.jpg", width=32, height=32, fps=12, duration_s=0.75
    )
    levels = [frame.mean() for frame in container_facts(tmp_path / "out.mp4")["pixels"]]
    assert len(levels) == len(expected_levels)
    assert np.allclose(levels, expected_levels, atol=4), levels


def test_transcode_to_format_rejects_a_short_source_or_an_impossible_format(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    clip = write_gray_ramp(folder / "short.mp4", frames=6, fps=12)
    out, poster = folder / "out.mp4", folder / "out.jpg"
    with pytest.raises(VideoRejected, match=r"short\.mp4: the video lasts 0\.5 s, shorter than the 1 s"):
        transcode_to_format(clip, out, poster, width=32, height=32, fps=12, duration_s=1.0)
    with pytest.raises(ValueError, match="even number of pixels"):
        transcode_to_format(clip, out, poster, width=33, height=32, fps=12, duration_s=0.25)
    with pytest.raises(ValueError, match="fewer than 2 frames"):
        transcode_to_format(clip, out, poster, width=32, height=32, fps=12, duration_s=0.05)
    assert sorted(p.name for p in folder.iterdir()) == ["short.mp4"]


# --- choosing the format -------------------------------------------------------------------------------


def measured(width, height, fps, duration_s) -> Video:
    return Video(width=width, height=height, fps=fps, duration_s=duration_s)


def test_format_is_the_smallest_even_sides_the_lowest_rate_and_the_shortest_whole_frames():
    videos = [measured(65, 120, 30.0, 5.0), measured(640, 37, 24.0, 4.1), measured(100, 100, 25.0, 9.0)]
    assert choose_normalised_format(videos) == {
        "width": 64,
        "height": 36,
        "fps": 24.0,
        "duration_s": 98 / 24,  # 4.1 s holds 98 whole frames at 24 fps
    }
    ntsc = choose_normalised_format([measured(64, 48, 30000 / 1001, 121 / (30000 / 1001))])
    assert ntsc["fps"] == 30000 / 1001 and ntsc["duration_s"] == 121 / (30000 / 1001)


@pytest.mark.parametrize(
    ("videos", "message"),
    [
        ([], "no videos"),
        ([measured(64, 48, 12.0, 1.0), measured(15, 48, 12.0, 1.0)], "14x48; each side must be at least 16"),
        ([measured(64, 48, 12.0, 1.0), measured(64, 48, 12.0, 0.1)], "fewer than 2 frames"),
        ([measured(64, 48, None, 1.0)], "no recorded size, frame rate or duration"),
    ],
)
def test_format_that_cannot_be_chosen_says_why(videos, message):
    with pytest.raises(CampaignError, match=message):
        choose_normalised_format(videos)


# --- the campaign service and job ----------------------------------------------------------------------


@pytest.fixture
def varied_campaign(db, make_benchmark, make_video, tmp_path, annotators):
    """A pairwise campaign over two prompts whose four videos all differ in size, rate and length, each
    original carrying its model's name in its metadata."""
    benchmark = make_benchmark(["a red kite", "a slow river"], slug="varied")
    models = [
        create_video_model(name=SECRET, version="v9.87-hidden"),
        create_video_model(name="Quokka-Model", version="v1"),
    ]
    clips = iter(VARIED_CLIPS)
    for prompt in benchmark.prompts.order_by("position"):
        for model in models:
            width, height, fps, frames = next(clips)
            path = make_video(
                tmp_path / "src" / f"{model.name}-{prompt.position}.mp4",
                width=width, height=height, fps=fps, frames=frames, title=model.name,
                seed=prompt.position,
            )  # fmt: skip
            video, _ = add_video(
                model=model, prompt=prompt, source_path=path, original_name=path.name, source="upload"
            )
            assert process_video(video).status == Video.Status.READY
    return create_campaign(
        CampaignSpec(
            name="varied", kind="pairwise", benchmark=benchmark, models=models, annotators=annotators(1)
        )
    )


def paused(campaign: Campaign) -> Campaign:
    return set_campaign_status(campaign, Campaign.Status.PAUSED)


def claim_by_hand(campaign: Campaign) -> Assignment:
    return Assignment.objects.create(
        campaign=campaign,
        item=campaign.items.first(),
        annotator=campaign.annotators.first(),
        presentation=[1, 0],
        expires_at=timezone.now() + timedelta(minutes=5),
    )


def test_normalising_gives_every_video_a_rendition_in_one_format(varied_campaign):
    summary = normalise_campaign_media(paused(varied_campaign))

    assert summary == {"format": EXPECTED_FORMAT, "videos": 4, "encoded": 4, "kept": 0}
    varied_campaign.refresh_from_db()
    assert varied_campaign.normalise_media and varied_campaign.normalised_format == EXPECTED_FORMAT
    renditions = list(varied_campaign.renditions.select_related("video"))
    assert {r.video.width for r in renditions} == {64, 48, 80, 66}  # the originals do differ
    shapes = set()
    for rendition in renditions:
        assert (rendition.width, rendition.height, rendition.fps, rendition.duration_s) == (
            48,
            48,
            12.0,
            1.25,
        )
        assert rendition.public_id != rendition.video.public_id
        assert rendition.public_id in rendition.playable_file and rendition.video.public_id not in (
            rendition.playable_file + rendition.poster_file
        )
        facts = container_facts(media_path(rendition.playable_file))
        shapes.add(shape_of(facts))
        assert set(facts["container_metadata"]) <= {"major_brand", "minor_version", "compatible_brands"}
        data = media_path(rendition.playable_file).read_bytes()
        assert SECRET.encode() not in data and b"Quokka" not in data
        assert media_path(rendition.poster_file).read_bytes()[:2] == b"\xff\xd8"
    assert shapes == {((48, 48), 12, 15, 1.25)}


def test_job_pauses_the_campaign_normalises_it_and_makes_it_active_again(
    varied_campaign, admin_user, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = start_normalise_media(varied_campaign, created_by=admin_user)
        assert Campaign.objects.get(pk=varied_campaign.pk).status == Campaign.Status.PAUSED
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.progress_total, job.created_by) == (4, 4, admin_user)
    assert job.result["encoded"] == 4 and job.result["format"] == EXPECTED_FORMAT
    varied_campaign.refresh_from_db()
    assert varied_campaign.status == Campaign.Status.ACTIVE and varied_campaign.normalise_media
    assert varied_campaign.renditions.count() == 4

    with pytest.raises(CampaignError, match="already normalised"):
        start_normalise_media(varied_campaign, created_by=admin_user)
    execute(str(job.pk), lambda run: pytest.fail("a finished job runs again"))
    assert Rendition.objects.count() == 4


class WorkerKilled(BaseException):
    """Stands for the worker process dying: not an error any handler catches."""


def test_a_crash_half_way_loses_nothing_and_running_again_makes_no_duplicates(varied_campaign, monkeypatch):
    import annotation.renditions as renditions

    real_transcode = renditions.transcode_to_format
    calls = []

    def killed_on_third(src, dst_mp4, dst_poster, **format):
        calls.append(dst_mp4)
        if len(calls) == 3:
            temporary_beside(Path(dst_mp4), ".mp4").write_bytes(b"half a video")
            raise WorkerKilled()
        return real_transcode(src, dst_mp4, dst_poster, **format)

    monkeypatch.setattr(renditions, "transcode_to_format", killed_on_third)
    with pytest.raises(WorkerKilled):
        normalise_campaign_media(paused(varied_campaign))
    varied_campaign.refresh_from_db()
    assert not varied_campaign.normalise_media and varied_campaign.normalised_format == {}
    first_two = list(varied_campaign.renditions.order_by("id")[:2])
    kept_files = {r.pk: media_path(r.playable_file).read_bytes() for r in first_two}

    monkeypatch.setattr(renditions, "transcode_to_format", real_transcode)
    summary = normalise_campaign_media(varied_campaign)
    assert (summary["encoded"], summary["kept"]) == (2, 2)
    assert varied_campaign.normalise_media
    for rendition in first_two:
        rendition.refresh_from_db()
        # Kept as encoded, then padded to the campaign's one size with the others.
        kept = media_path(rendition.playable_file).read_bytes()
        assert rendition.encoded_size == len(kept_files[rendition.pk])
        assert kept[: rendition.encoded_size] == kept_files[rendition.pk]
        assert kept[rendition.encoded_size + 4 : rendition.encoded_size + 8] == b"free"

    again = normalise_campaign_media(varied_campaign)
    assert (again["encoded"], again["kept"]) == (0, 4)
    assert Rendition.objects.count() == 4
    # Exactly the renditions' files: the killed attempt's partial file was cleared away.
    stored = sorted(str(p.relative_to(media_path(""))) for p in media_path("renditions").rglob("*"))
    expected = sorted(f for r in Rendition.objects.all() for f in (r.playable_file, r.poster_file))
    folders = sorted({str(Path(f).parent) for f in expected})
    assert stored == sorted(expected + folders)


def test_a_rendition_whose_file_went_missing_is_made_again(varied_campaign):
    normalise_campaign_media(paused(varied_campaign))
    lost = varied_campaign.renditions.first()
    media_path(lost.playable_file).unlink()
    summary = normalise_campaign_media(varied_campaign)
    assert (summary["encoded"], summary["kept"]) == (1, 3)
    assert container_facts(media_path(lost.playable_file))["frames"] == 15


def test_refuses_a_closed_a_running_or_an_already_shown_campaign_and_changes_nothing(
    varied_campaign, admin_user
):
    with pytest.raises(CampaignError, match="pause the campaign before normalising"):
        normalise_campaign_media(varied_campaign)

    claim_by_hand(varied_campaign)
    already_shown = "already been shown this campaign's original videos"
    with pytest.raises(CampaignError, match=already_shown):
        start_normalise_media(varied_campaign, admin_user)
    with pytest.raises(CampaignError, match=already_shown):
        normalise_campaign_media(paused(varied_campaign))
    Assignment.objects.all().delete()

    set_campaign_status(varied_campaign, Campaign.Status.CLOSED)
    with pytest.raises(CampaignError, match="the campaign is closed"):
        start_normalise_media(varied_campaign, admin_user)
    with pytest.raises(CampaignError, match="the campaign is closed"):
        normalise_campaign_media(varied_campaign)

    varied_campaign.refresh_from_db()
    assert not varied_campaign.normalise_media and varied_campaign.normalised_format == {}
    assert varied_campaign.status == Campaign.Status.CLOSED
    assert not Rendition.objects.exists() and not Job.objects.filter(kind=NORMALISE_MEDIA_JOB).exists()
    assert not media_path("renditions").exists()


def test_a_second_start_while_the_first_job_waits_is_refused(varied_campaign, admin_user):
    first = start_normalise_media(varied_campaign, admin_user)  # queued: on_commit never fires in a test
    with pytest.raises(CampaignError, match="already being normalised"):
        start_normalise_media(varied_campaign, admin_user)
    assert list(Job.objects.filter(kind=NORMALISE_MEDIA_JOB)) == [first]
    assert first.params == {"campaign_id": varied_campaign.pk, "resume": True}


def test_work_handed_out_while_encoding_fails_the_job_and_leaves_the_campaign_paused(
    varied_campaign, admin_user
):
    job = start_normalise_media(varied_campaign, admin_user)

    def annotator_gets_work_meanwhile(run):
        def progress(done, total=None, message=None):
            if done == 2:
                claim_by_hand(varied_campaign)
            run.progress(done, total, message)

        return normalise_campaign_media(varied_campaign, progress=progress, resume=True)

    execute(str(job.pk), annotator_gets_work_meanwhile)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "already been shown" in job.error
    varied_campaign.refresh_from_db()
    assert not varied_campaign.normalise_media and varied_campaign.status == Campaign.Status.PAUSED


def test_the_job_reports_a_campaign_closed_or_deleted_after_it_was_queued(varied_campaign, admin_user):
    from annotation.tasks import normalise_media

    job = start_normalise_media(varied_campaign, admin_user)
    set_campaign_status(varied_campaign, Campaign.Status.CLOSED)
    execute(str(job.pk), normalise_media.handler)
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.FAILED, "the campaign is closed")

    gone = Job.objects.create(kind=normalise_media.name, title="t", params={"campaign_id": 10**9})
    execute(str(gone.pk), normalise_media.handler)
    gone.refresh_from_db()
    assert (gone.status, gone.error) == (Job.Status.FAILED, "the campaign no longer exists")
    assert not Rendition.objects.exists()


def test_campaigns_draw_their_encoder_settings_apart_within_bounds_that_do_not_show():
    """Each campaign's variation is its secret's: within a point of the default quality factor, 0.2 of
    x264's aq strength and 5 of the JPEG quality; a margin under 3%; and over many campaigns nearly every
    one encodes with settings no other has."""
    variations = [media_variation(Campaign(shuffle_seed=f"seed {n}")) for n in range(400)]
    assert all(
        abs(v.crf - DEFAULT_CRF) <= 1 and abs(v.aq_strength - DEFAULT_AQ_STRENGTH) <= 0.2 + 1e-9
        for v in variations
    )
    assert all(abs(v.poster_quality - POSTER_JPEG_QUALITY) <= 5 and 0 <= v.margin < 0.03 for v in variations)
    assert len({v.filler_key for v in variations}) == 400
    settings = [(v.crf, v.aq_strength) for v in variations]
    # 400 draws from 8,241 settings: about 10 repeats by chance; from the 201 factors alone, ~227.
    assert len(settings) - len(set(settings)) < 30
    assert media_variation(Campaign(shuffle_seed="seed 7")) == variations[7]


def test_padding_keeps_the_video_and_poster_as_they_were_and_pads_again_from_the_content(
    tmp_path, make_video
):
    clip = make_video(tmp_path / "clip.mp4", frames=12)
    video, poster = tmp_path / "padded" / "out.mp4", tmp_path / "padded" / "out.jpg"
    transcode_for_browser(clip, video, poster)
    encoded, encoded_poster = video.read_bytes(), poster.read_bytes()
    before = container_facts(video)

    key = b"campaign one"
    pad_to_size(video, content_bytes=len(encoded), size=len(encoded) + 5000, filler_key=key)
    pad_to_size(poster, content_bytes=len(encoded_poster), size=len(encoded_poster) + 300, filler_key=key)

    assert video.stat().st_size == len(encoded) + 5000 and poster.stat().st_size == len(encoded_poster) + 300
    padded = container_facts(video)
    assert shape_of(padded) == shape_of(before)
    assert all(np.array_equal(a, b) for a, b in zip(padded["pixels"], before["pixels"], strict=True))
    with av.open(str(poster)) as image:
        assert next(image.decode(video=0)).width == 64
    # Padded to another size, from the same content (not on top of the first padding); again is a no-op.
    pad_to_size(video, content_bytes=len(encoded), size=len(encoded) + 64, filler_key=key)
    assert video.read_bytes()[: len(encoded)] == encoded and video.stat().st_size == len(encoded) + 64
    first = video.read_bytes()
    written = video.stat().st_mtime_ns, video.stat().st_ino
    pad_to_size(video, content_bytes=len(encoded), size=len(encoded) + 64, filler_key=key)
    assert (video.stat().st_mtime_ns, video.stat().st_ino) == written, "padding again rewrote the file"
    # Another campaign's key: the same content at the same size is other bytes, and plays the same.
    pad_to_size(video, content_bytes=len(encoded), size=len(encoded) + 64, filler_key=b"campaign two")
    second = video.read_bytes()
    assert len(second) == len(first) and second[: len(encoded)] == first[: len(encoded)]
    assert second != first
    assert all(
        np.array_equal(a, b) for a, b in zip(container_facts(video)["pixels"], before["pixels"], strict=True)
    )
    with pytest.raises(ValueError, match="cannot be padded"):
        pad_to_size(video, content_bytes=len(encoded), size=len(encoded) + 3, filler_key=key)  # no free box
    assert sorted(p.name for p in video.parent.iterdir()) == ["out.jpg", "out.mp4"]


def test_preparing_gives_every_video_its_own_rendition_in_its_own_format_at_one_size(varied_campaign):
    assert not varied_campaign.media_ready
    summary = prepare_campaign_media(varied_campaign)

    assert summary == {"videos": 4, "encoded": 4, "kept": 0}
    assert varied_campaign.media_ready and not varied_campaign.normalise_media
    video_size, poster_size = served_sizes(varied_campaign)
    for rendition in varied_campaign.renditions.select_related("video"):
        source = rendition.video
        facts = container_facts(media_path(rendition.playable_file))
        assert facts["size"] == (source.width + source.width % 2, source.height + source.height % 2)
        assert facts["frames"] == source.frame_count
        assert (rendition.fps, rendition.duration_s) == (source.fps, source.duration_s)
        assert media_path(rendition.playable_file).stat().st_size == video_size > rendition.encoded_size
        assert media_path(rendition.poster_file).stat().st_size == poster_size
        assert (
            media_path(rendition.playable_file).read_bytes() != media_path(source.playable_file).read_bytes()
        )
        assert SECRET.encode() not in media_path(rendition.playable_file).read_bytes()


def test_a_prepare_job_killed_half_way_is_taken_up_where_it_stopped(varied_campaign, monkeypatch):
    import annotation.renditions as renditions

    real_transcode, real_pad = renditions.transcode_for_browser, renditions.pad_to_size

    def killed_on_third(src, dst_mp4, dst_poster, **options):
        if varied_campaign.renditions.exclude(encoded_size=None).count() == 2:
            temporary_beside(Path(dst_mp4), ".mp4").write_bytes(b"half a video")
            raise WorkerKilled()
        return real_transcode(src, dst_mp4, dst_poster, **options)

    monkeypatch.setattr(renditions, "transcode_for_browser", killed_on_third)
    with pytest.raises(WorkerKilled):
        prepare_campaign_media(varied_campaign)
    varied_campaign.refresh_from_db()
    assert not varied_campaign.media_ready

    padded = []

    def killed_while_padding(path, **sizes):
        if len(padded) == 3:
            raise WorkerKilled()
        padded.append(path)
        return real_pad(path, **sizes)

    monkeypatch.setattr(renditions, "transcode_for_browser", real_transcode)
    monkeypatch.setattr(renditions, "pad_to_size", killed_while_padding)
    with pytest.raises(WorkerKilled):
        prepare_campaign_media(varied_campaign)
    assert not Campaign.objects.get(pk=varied_campaign.pk).media_ready

    monkeypatch.setattr(renditions, "pad_to_size", real_pad)
    summary = prepare_campaign_media(varied_campaign)
    assert (summary["encoded"], summary["kept"]) == (0, 4)
    assert varied_campaign.media_ready and Rendition.objects.count() == 4
    video_size, poster_size = served_sizes(varied_campaign)
    for rendition in varied_campaign.renditions.all():
        assert media_path(rendition.playable_file).stat().st_size == video_size
        assert media_path(rendition.poster_file).stat().st_size == poster_size
        assert container_facts(media_path(rendition.playable_file))["frames"] == rendition.video.frame_count
    stored = sorted(str(p.relative_to(media_path(""))) for p in media_path("renditions").rglob("*.*"))
    assert stored == sorted(f for r in Rendition.objects.all() for f in (r.playable_file, r.poster_file))


def test_the_prepare_job_leaves_a_campaign_being_normalised_to_the_normalise_job(varied_campaign, admin_user):
    from annotation.tasks import prepare_media

    prepare_job = Job.objects.get(kind=PREPARE_MEDIA_JOB, params__campaign_id=varied_campaign.pk)
    start_normalise_media(varied_campaign, admin_user)  # queued: on_commit never fires in a test
    execute(str(prepare_job.pk), prepare_media.handler)
    prepare_job.refresh_from_db()
    assert prepare_job.status == Job.Status.SUCCEEDED and "normalised" in prepare_job.result["skipped"]
    assert not Rendition.objects.exists()


# --- serving -------------------------------------------------------------------------------------------


def test_rendition_and_its_poster_are_served_to_the_campaigns_annotators_under_their_own_id(
    client, admin_client, varied_campaign
):
    normalise_campaign_media(paused(varied_campaign))
    rendition = varied_campaign.renditions.first()
    video_url, poster_url = f"/media/v/{rendition.public_id}.mp4", f"/media/p/{rendition.public_id}.jpg"

    assert client.get(video_url).status_code == 302  # to the login page

    client.force_login(varied_campaign.annotators.first())
    response = client.get(video_url)
    assert response.status_code == 200 and response["Content-Type"] == "video/mp4"
    assert b"".join(response.streaming_content) == media_path(rendition.playable_file).read_bytes()
    assert "Last-Modified" not in response and "Content-Disposition" not in response
    partial = client.get(video_url, HTTP_RANGE="bytes=0-99")
    assert partial.status_code == 206 and len(b"".join(partial.streaming_content)) == 100
    poster = client.get(poster_url)
    assert poster.status_code == 200 and poster["Content-Type"] == "image/jpeg"
    assert b"".join(poster.streaming_content) == media_path(rendition.poster_file).read_bytes()

    # The library video's own URL is for managers only; an unknown id is for nobody.
    assert client.get(f"/media/v/{rendition.video.public_id}.mp4").status_code == 404
    assert admin_client.get(f"/media/v/{rendition.video.public_id}.mp4").status_code == 200
    assert client.get(f"/media/v/{'0' * 32}.mp4").status_code == 404


def test_managers_start_normalising_from_the_campaign_page_and_the_api(
    varied_campaign, admin_client, celery_eager, django_capture_on_commit_callbacks
):
    page = admin_client.get(f"/campaigns/{varied_campaign.pk}/")
    assert b"Normalise media" in page.content and b"not normalised" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/campaigns/{varied_campaign.pk}/normalise-media/")
    assert response.status_code == 302 and "/jobs/" in response["Location"]
    varied_campaign.refresh_from_db()
    assert varied_campaign.normalise_media and varied_campaign.status == Campaign.Status.ACTIVE
    page = admin_client.get(f"/campaigns/{varied_campaign.pk}/")
    assert b"normalised to 48" in page.content and b"Normalise media" not in page.content
    again = admin_client.post(f"/api/campaigns/{varied_campaign.pk}/normalise-media/")
    assert again.status_code == 400 and "already normalised" in again.json()["detail"]


def test_annotators_cannot_start_normalising(varied_campaign, client, annotators):
    client.force_login(annotators(1, prefix="someone")[0])
    assert client.post(f"/api/campaigns/{varied_campaign.pk}/normalise-media/").status_code == 403
    assert not Campaign.objects.get(pk=varied_campaign.pk).normalise_media


def test_the_command_gives_a_campaign_from_before_renditions_its_own(campaign_factory):
    from django.core.management import call_command

    campaign = campaign_factory("pairwise", n_prompts=2, n_annotators=1)
    campaign.renditions.all().delete()  # as a campaign made before every campaign had renditions
    out = io.StringIO()

    call_command("prepare_campaign_media", "--all-without-renditions", stdout=out)

    campaign.refresh_from_db()
    assert campaign.media_ready and campaign.renditions.count() == campaign.media.count() == 4
    assert f"campaign {campaign.pk}:" in out.getvalue()
    with pytest.raises(CommandError, match="no campaign with the id 999999"):
        call_command("prepare_campaign_media", "999999")


def test_the_campaign_page_says_while_its_media_is_being_prepared(varied_campaign, admin_client):
    job = Job.objects.get(kind=PREPARE_MEDIA_JOB, params__campaign_id=varied_campaign.pk)
    page = admin_client.get(f"/campaigns/{varied_campaign.pk}/").content.decode()
    assert "being prepared" in page and f"/jobs/{job.pk}/" in page

    with_media_prepared(varied_campaign)
    page = admin_client.get(f"/campaigns/{varied_campaign.pk}/").content.decode()
    assert "being prepared" not in page
