"""The one video encoder: what it writes (H.264/yuv420p, faststart MP4, no encoder tag, timestamps at the
rate), lossless variants for round trips, and that no other product code encodes video itself."""

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from generation.video_writer import VideoWriter, write_frames

ROOT = Path(__file__).resolve().parents[2]


def frames(count=10, height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 255, size=(count, height, width, 3), dtype=np.uint8)


def test_writes_a_faststart_h264_mp4_without_an_encoder_tag(tmp_path):
    path = tmp_path / "clip.mp4"
    assert write_frames(path, frames(), rate=Fraction(30000, 1001)) == 10
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # the index first: a browser plays before the end
    assert b"Lavf" not in data and b"x264 - core" in data  # bitexact: no muxer tag (x264 keeps its SEI)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert stream.average_rate == Fraction(30000, 1001)
        assert sum(1 for _ in container.decode(stream)) == 10
        assert "encoder" not in container.metadata


def test_timestamps_are_consecutive_at_the_rate(tmp_path):
    path = tmp_path / "clip.mp4"
    write_frames(path, frames(6), rate=12)
    with av.open(str(path)) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    assert times == pytest.approx([i / 12 for i in range(6)])


def test_lossless_rgb_round_trips_exactly(tmp_path):
    original = frames(4)
    for codec, options, name in [("libx264rgb", {"qp": "0"}, "a.mkv"), ("ffv1", None, "b.mkv")]:
        write_frames(tmp_path / name, original, rate=10, codec=codec, options=options)
        with av.open(str(tmp_path / name)) as container:
            decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        assert np.array_equal(decoded, original), codec


def test_takes_planar_yuv_buffers_and_av_frames(tmp_path):
    height, width = 32, 48
    planar = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    with VideoWriter(tmp_path / "y.mp4", width=width, height=height, rate=25) as out:
        out.write(planar, pixel_format="yuv420p")
        out.write(av.VideoFrame.from_ndarray(frames(1, height, width)[0], format="rgb24"))
    assert out.frames_written == 2
    with av.open(str(tmp_path / "y.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2


def test_refuses_odd_sizes_and_wrong_arrays(tmp_path):
    with pytest.raises(ValueError, match="even width and height"):
        VideoWriter(tmp_path / "odd.mp4", width=63, height=48, rate=10)
    with pytest.raises(ValueError, match="uint8"):
        write_frames(tmp_path / "f.mp4", frames().astype(np.float32), rate=10)


def test_no_other_product_code_encodes_video():
    """One H.264 writer: outside generation/video_writer.py, product code and perf scripts never add an
    output stream themselves."""
    offenders = []
    for folder in ("evalsite", "generation", "annotation", "metrics", "preference", "perf"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "video_writer.py":
                continue
            if re.search(r"\.add_stream\(", path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
