"""Probe and transcode on tiny videos written with PyAV into tmp_path."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from generation.videofiles import ProbedVideo, VideoRejected, probe, transcode_for_browser

LIMIT = 50_000_000
SECRET = b"SecretModel-X"


def write_video(
    path: Path,
    *,
    codec: str = "libx264",
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    fps: int | Fraction = 24,
    container_format: str | None = None,
    metadata: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    with_audio: bool = False,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Noise frames (so the encoded file has real size) with a bright bar that moves one column a frame."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=container_format, options=container_options or {}) as out:
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        audio = out.add_stream("aac", rate=8000) if with_audio else None
        for index in range(frames):
            pixels = rng.integers(0, 64, (height, width, 3), dtype=np.uint8)
            pixels[:, index % width] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            samples = np.zeros((1, 1024), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in audio.encode(frame):
                out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def decoded_stream_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "frames": len(frames),
            "size": (frames[0].width, frames[0].height),
            "audio_streams": len(container.streams.audio),
            "container_metadata": dict(container.metadata),
            "stream_metadata": dict(stream.metadata),
        }


# --- probe -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec", "container_format", "frames", "fps", "expected_codec"),
    [
        ("clip.mp4", "libx264", None, 20, 24, "h264"),
        ("clip.webm", "libvpx-vp9", None, 12, 30, "vp9"),
        ("clip.avi", "mpeg4", None, 15, 25, "mpeg4"),
        ("clip.mkv", "libx264", None, 10, Fraction(30000, 1001), "h264"),
    ],
)
def test_probe_reports_decoded_facts(tmp_path, name, codec, container_format, frames, fps, expected_codec):
    path = write_video(
        tmp_path / name, codec=codec, frames=frames, fps=fps, container_format=container_format
    )

    info = probe(path, max_bytes=LIMIT)

    assert info == ProbedVideo(
        width=64,
        height=48,
        fps=pytest.approx(float(fps)),
        frame_count=frames,
        duration_s=pytest.approx(frames / float(fps)),
        codec=expected_codec,
        has_audio=False,
        size_bytes=path.stat().st_size,
    )


def test_probe_sees_audio_and_odd_dimensions(tmp_path):
    path = write_video(
        tmp_path / "odd.mp4", width=65, height=49, frames=10, pix_fmt="yuv444p", with_audio=True
    )

    info = probe(path, max_bytes=LIMIT)

    assert (info.width, info.height, info.frame_count, info.has_audio) == (65, 49, 10, True)


# --- rejections ------------------------------------------------------------------------------------------


def assert_rejected(path: Path, *fragments: str, max_bytes: int = LIMIT) -> str:
    with pytest.raises(VideoRejected) as caught:
        probe(path, max_bytes=max_bytes)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ")
    for fragment in fragments:
        assert fragment in message
    return message


def test_rejects_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert_rejected(path, "empty (0 bytes)")


def test_rejects_missing_file(tmp_path):
    assert_rejected(tmp_path / "missing.mp4", "could not be read")


def test_rejects_text_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is a shopping list, not a video\n" * 20)
    assert_rejected(path, "not a video file")


def test_rejects_png_renamed_mp4_as_still_image(tmp_path):
    path = tmp_path / "picture.mp4"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, format="PNG")
    assert_rejected(path, "not a video file", "still image")


def test_rejects_single_frame_video(tmp_path):
    path = write_video(tmp_path / "one.mp4", frames=1)
    assert_rejected(path, "single frame")


def test_rejects_audio_only_file(tmp_path):
    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as out:
        audio = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*audio.encode(frame), *audio.encode()]:
            out.mux(packet)
    assert_rejected(path, "no video stream")


def test_rejects_oversized_file_before_decoding(tmp_path):
    path = write_video(tmp_path / "big.mp4")
    assert_rejected(path, "too large", max_bytes=path.stat().st_size - 1)


def test_rejects_absurd_dimensions(tmp_path):
    path = write_video(tmp_path / "tiny.mp4", width=8, height=8)
    assert_rejected(path, "8x8", "not plausible")


def test_rejects_mp4_cut_in_half(tmp_path):
    """Without faststart the index (moov) is at the end, so half a file cannot even be opened."""
    whole = write_video(tmp_path / "whole.mp4", frames=20).read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(whole[: len(whole) // 2])
    assert_rejected(path, "not a video file")


def test_rejects_faststart_mp4_cut_in_half(tmp_path):
    """With the index first, the decoder gets the first frames and then fails: any decode error rejects."""
    whole = write_video(tmp_path / "whole.mp4", frames=20, container_options={"movflags": "+faststart"})
    data = whole.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    assert_rejected(path, "corrupt")


def test_rejects_mp4_with_garbage_in_the_middle(tmp_path):
    data = bytearray(write_video(tmp_path / "whole.mp4", frames=20).read_bytes())
    middle = len(data) // 2
    data[middle - 2000 : middle + 2000] = (
        np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    )
    path = tmp_path / "garbled.mp4"
    path.write_bytes(bytes(data))
    assert_rejected(path, "corrupt")


# --- transcode -------------------------------------------------------------------------------------------


def test_transcode_produces_faststart_h264_with_same_frames_and_rate(tmp_path):
    src = write_video(tmp_path / "source.webm", codec="libvpx-vp9", frames=15, fps=30)
    dst, poster = tmp_path / "out" / "video.mp4", tmp_path / "out" / "poster.jpg"

    info = transcode_for_browser(src, dst, poster)

    data = dst.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")
    facts = decoded_stream_facts(dst)
    assert (facts["codec"], facts["pix_fmt"], facts["rate"], facts["frames"]) == ("h264", "yuv420p", 30, 15)
    assert facts["size"] == (64, 48)
    assert (info.codec, info.frame_count, info.fps, info.width, info.height) == ("h264", 15, 30.0, 64, 48)
    assert info.size_bytes == len(data)
    with Image.open(poster) as image:
        assert (image.format, image.size) == ("JPEG", (64, 48))
    assert sorted(p.name for p in dst.parent.iterdir()) == ["poster.jpg", "video.mp4"]


def test_poster_is_the_encoded_videos_frame_so_another_quality_factor_gives_another_poster(tmp_path):
    """The poster shows the picture the viewer sees at 10% of the clip (the encoded one, not the source's),
    so a clip encoded at two quality factors (two campaigns' renditions) has two posters, not one."""
    src = write_video(tmp_path / "source.webm", codec="libvpx-vp9", frames=20, fps=10)
    posters = {}
    for crf in (19.0, 21.0):
        dst, poster = tmp_path / f"{crf}.mp4", tmp_path / f"{crf}.jpg"
        transcode_for_browser(src, dst, poster, crf=crf)
        with av.open(str(dst)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        with Image.open(poster) as image:
            shown = np.asarray(image.convert("RGB"), dtype=np.int16)
        errors = [np.abs(shown - frame.astype(np.int16)).mean() for frame in frames]
        assert int(np.argmin(errors)) == 2, "the poster is frame 2 of 20 (10%)"
        posters[crf] = poster.read_bytes()
    assert posters[19.0] != posters[21.0]


def test_adaptive_quantisation_strength_changes_the_stream_and_is_named_in_its_settings(tmp_path):
    """At one quality factor, another aq strength (a campaign's own) is another H.264 stream."""
    src = write_video(tmp_path / "source.webm", codec="libvpx-vp9", frames=20, fps=10)
    streams = {}
    for strength in (1.0, 1.07):
        dst = tmp_path / f"{strength}.mp4"
        transcode_for_browser(src, dst, tmp_path / f"{strength}.jpg", crf=20, aq_strength=strength)
        data = dst.read_bytes()
        settings = data[data.find(b"x264 - core") :].split(b"\0", 1)[0]
        assert f"aq=1:{strength:.2f}".encode() in settings
        streams[strength] = data.replace(settings, b"")  # the bytes besides the settings string
    assert streams[1.0] != streams[1.07]


def test_transcode_keeps_fractional_rate_and_drops_audio(tmp_path):
    src = write_video(
        tmp_path / "ntsc.avi", codec="mpeg4", frames=10, fps=Fraction(30000, 1001), with_audio=True
    )
    dst, poster = tmp_path / "video.mp4", tmp_path / "poster.jpg"

    info = transcode_for_browser(src, dst, poster)

    facts = decoded_stream_facts(dst)
    assert facts["rate"] == Fraction(30000, 1001)
    assert (facts["frames"], facts["audio_streams"], info.has_audio) == (10, 0, False)


def test_transcode_pads_odd_dimensions_by_one_pixel(tmp_path):
    src = write_video(tmp_path / "odd.mp4", width=65, height=49, frames=10, pix_fmt="yuv444p")
    dst, poster = tmp_path / "video.mp4", tmp_path / "poster.jpg"

    info = transcode_for_browser(src, dst, poster)

    assert (info.width, info.height) == (66, 50)
    assert decoded_stream_facts(dst)["size"] == (66, 50)
    with Image.open(poster) as image:
        assert image.size == (66, 50)


def test_transcode_scales_down_to_max_side_with_even_sides(tmp_path):
    src = write_video(tmp_path / "wide.mp4", width=96, height=50, frames=10)

    info = transcode_for_browser(src, tmp_path / "video.mp4", tmp_path / "poster.jpg", max_side=64)

    assert (info.width, info.height) == (64, 34)


def test_transcode_retimes_variable_timestamps_to_a_constant_rate(tmp_path):
    src = tmp_path / "vfr.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, millis in enumerate([0, 40, 85, 120, 170, 210, 250, 300, 330, 375]):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), index * 20, dtype=np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = millis, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    dst = tmp_path / "video.mp4"

    info = transcode_for_browser(src, dst, tmp_path / "poster.jpg")

    source_info = probe(src, max_bytes=LIMIT)
    assert info.frame_count == source_info.frame_count == 10
    assert info.fps == pytest.approx(source_info.fps)
    with av.open(str(dst)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    steps = np.diff(sorted(times))
    assert np.allclose(steps, 1 / info.fps, atol=1e-3)


def test_transcode_strips_metadata_and_source_name(tmp_path):
    src = write_video(
        tmp_path / "SecretModel-X_seed42.mp4",
        frames=10,
        metadata={"title": "SecretModel-X", "comment": "made by SecretModel-X", "artist": "SecretModel-X"},
    )
    assert SECRET in src.read_bytes()
    dst, poster = tmp_path / "out" / "video.mp4", tmp_path / "out" / "poster.jpg"

    transcode_for_browser(src, dst, poster)

    assert SECRET not in dst.read_bytes()
    assert SECRET not in poster.read_bytes()
    facts = decoded_stream_facts(dst)
    assert not set(facts["container_metadata"]) - {"major_brand", "minor_version", "compatible_brands"}
    assert "encoder" not in facts["container_metadata"]
    assert not any("SecretModel" in value for value in facts["stream_metadata"].values())


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_rejected_transcode_leaves_nothing_behind(tmp_path, kind):
    src = tmp_path / "bad.mp4"
    if kind == "text":
        src.write_text("not a video\n" * 50)
    else:
        data = write_video(
            tmp_path / "whole.mp4", frames=20, container_options={"movflags": "+faststart"}
        ).read_bytes()
        src.write_bytes(data[: len(data) // 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    with pytest.raises(VideoRejected, match=r"^bad\.mp4: "):
        transcode_for_browser(src, out_dir / "video.mp4", out_dir / "poster.jpg")

    assert list(out_dir.iterdir()) == []


def test_failure_while_encoding_removes_temporaries_and_keeps_old_output(tmp_path, monkeypatch):
    import generation.videofiles as videofiles

    src = write_video(tmp_path / "source.mp4", frames=10)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "video.mp4").write_bytes(b"previous")

    def failing_encode(src, dst, *args):
        dst.write_bytes(b"half-written")
        raise av.error.InvalidDataError(1094995529, "simulated encoder failure")

    monkeypatch.setattr(videofiles, "_encode", failing_encode)

    with pytest.raises(VideoRejected, match="could not be converted"):
        transcode_for_browser(src, out_dir / "video.mp4", out_dir / "poster.jpg")

    assert sorted(p.name for p in out_dir.iterdir()) == ["video.mp4"]
    assert (out_dir / "video.mp4").read_bytes() == b"previous"
