"""The one video encoder of the code base: frames in, an H.264 file out (PyAV; no Django, no ffmpeg binary).

Everything that writes a video goes through `VideoWriter` (or `write_frames` for frames already in
memory): the library's browser copies and campaign renditions (`videofiles`), the demo clips, the metrics
library's `write_video` (for tests and synthetic benchmarks), the perf scripts and the tests' clips. It
lives in `generation/` beside `videofiles` because producing and storing videos is that app's job, and it
is a pure module (PyAV and NumPy only), so `metrics/video/` can use it and stay free of Django.

The defaults are what the site serves: H.264 in yuv420p, MP4 with the index at the front (`faststart`,
so a browser plays before the download ends) and `bitexact` (the muxer writes no encoder tag: nothing in
the file tells one encoder set-up from another). Frames get consecutive timestamps at `rate`.
`codec="libx264rgb"` (with `options={"qp": "0"}`) or `"ffv1"` store RGB losslessly, for round-trip tests;
any other FFmpeg video encoder (VP9, MPEG-4) writes yuv420p, for tests that need sources in other formats.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from fractions import Fraction
from types import TracebackType
from typing import Any

import av
import numpy as np

PIXEL_FORMATS = {"libx264": "yuv420p", "libx264rgb": "rgb24", "ffv1": "bgr0"}
MP4_LIKE = {"mp4", "mov", "m4v"}


class VideoWriter:
    """`with VideoWriter(path, width=w, height=h, rate=24) as out: out.write(frame)`.

    `write` takes an `av.VideoFrame` or a uint8 array: (H, W, 3) RGB, or a planar (H*3/2, W) yuv420p
    buffer with `pixel_format="yuv420p"`. The file is complete when the block ends without an error."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        rate: int | Fraction,
        codec: str = "libx264",
        crf: float | None = 18,
        preset: str | None = "veryfast",
        options: Mapping[str, str] | None = None,
        container_format: str | None = None,
        metadata: Mapping[str, str] | None = None,
        threads: int | None = None,
        pixel_format: str | None = None,
    ) -> None:
        # other codecs: tests' sources in other formats; `pixel_format` overrides (yuv444p originals)
        self.pix_fmt = pixel_format or PIXEL_FORMATS.get(codec, "yuv420p")
        if self.pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise ValueError(f"{codec} in yuv420p needs an even width and height, got {width}x{height}")
        self.rate = Fraction(rate)
        self.time_base = 1 / self.rate
        self.frames_written = 0
        fmt = container_format or os.fspath(path).rsplit(".", 1)[-1].lower()
        container_options = {"fflags": "+bitexact"}
        if fmt in MP4_LIKE:
            container_options["movflags"] = "+faststart"
        self.container = av.open(
            os.fspath(path), mode="w", format=container_format, options=container_options
        )
        try:
            for key, value in (metadata or {}).items():
                self.container.metadata[key] = value
            stream = self.container.add_stream(codec, rate=self.rate)
            if not isinstance(stream, av.video.stream.VideoStream):
                raise ValueError(f"{codec} is not a video codec")
            stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
            stream.codec_context.time_base = self.time_base
            codec_options: dict[str, Any] = {}
            if codec.startswith("libx264") and "qp" not in (options or {}):  # x264 prefers crf over qp
                if crf is not None:
                    codec_options["crf"] = str(crf)
                if preset is not None:
                    codec_options["preset"] = preset
            codec_options.update(options or {})
            if codec_options:
                stream.options = codec_options
            if threads is not None:
                stream.codec_context.thread_count = threads
        except BaseException:
            self.container.close()
            raise
        self.stream = stream

    def write(self, frame: av.VideoFrame | np.ndarray, *, pixel_format: str = "rgb24") -> None:
        if isinstance(frame, np.ndarray):
            if frame.dtype != np.uint8:
                raise ValueError(f"expected uint8 frames, got {frame.dtype}")
            frame = av.VideoFrame.from_ndarray(frame, format=pixel_format)
        if frame.format.name != self.pix_fmt:
            frame = frame.reformat(format=self.pix_fmt)
        frame.pts, frame.time_base = self.frames_written, self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.container.close()


def write_frames(
    path: str | os.PathLike[str],
    frames: np.ndarray | Iterable[np.ndarray],
    *,
    rate: int | Fraction,
    width: int | None = None,
    height: int | None = None,
    **options: Any,
) -> int:
    """Encode uint8 RGB frames ((T, H, W, 3) array or an iterable of (H, W, 3)) and return how many were
    written. `options` are VideoWriter's (codec, crf, preset, options, metadata, ...)."""
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
        height, width = int(frames.shape[1]), int(frames.shape[2])
    if width is None or height is None:
        raise ValueError("give width and height when frames are not one array")
    with VideoWriter(path, width=width, height=height, rate=rate, **options) as out:
        for frame in frames:
            out.write(frame)
    return out.frames_written
