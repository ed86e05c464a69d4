"""Probe and transcode video files with PyAV (no Django, no ffmpeg binary).

`probe` decodes every frame, so a file it accepts is known to play, and `transcode_for_browser` turns an
accepted file into an anonymous H.264 MP4 (no metadata, no audio) plus a JPEG poster.

Rejection rules (every one raises `VideoRejected` with a message that starts with the file's name):
- the file is missing, empty (0 bytes), or larger than `max_bytes` (checked before anything is decoded);
- FFmpeg cannot open it as a media container (a text file, a truncated MP4 whose index is missing, ...);
- it is a still image (PNG/JPEG/... read through an image demuxer) or decodes to fewer than 2 frames;
- it has no video stream (audio-only files; cover art attached to an audio file does not count);
- it is corrupt: the decoder reports an error anywhere in the stream, no frame decodes, or fewer frames
  decode than the container lists (a truncated file). Corruption the decoder conceals without reporting
  an error cannot be seen here and is accepted;
- its dimensions are absurd (a side under MIN_SIDE or over MAX_SIDE pixels) or its frame rate is unknown
  or outside (0, MAX_FPS].
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from .video_writer import VideoWriter, write_frames

MIN_SIDE = 16
MAX_SIDE = 8192
MAX_FPS = 1000
MIN_FRAMES = 2
POSTER_POSITION = 0.1  # the poster is the frame at 10% of the clip: past fade-ins, still representative
DEFAULT_CRF = 20
DEFAULT_PRESET = "medium"
DEFAULT_AQ_STRENGTH = 1.0  # x264's own default strength of adaptive quantisation
POSTER_JPEG_QUALITY = 85

# Demuxers that read a picture ("png_pipe", "jpeg_pipe", ... also match) or render a text file as video.
_STILL_IMAGE_FORMATS = {"image2"}
_TEXT_FORMATS = {"tty"}
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError)


class VideoRejected(Exception):
    """The file is not a usable video; str(exc) is a message fit to show the person who supplied it."""


@dataclass(frozen=True)
class ProbedVideo:
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    codec: str
    has_audio: bool
    size_bytes: int


def probe(path: str | os.PathLike[str], *, max_bytes: int) -> ProbedVideo:
    """Check that `path` is a playable video by decoding all of its frames (one at a time, so memory stays
    bounded) and describe it. `duration_s` is frame_count / fps. Raises VideoRejected."""
    info, _rate = _probe(Path(path), max_bytes=max_bytes)
    return info


@contextmanager
def _atomic_outputs(src: Path, dst_mp4: Path, dst_poster_jpg: Path) -> Iterator[tuple[Path, Path]]:
    """Temporary files beside the video and poster to write, renamed over them when the block succeeds and
    removed when it fails (or is interrupted), so both outputs appear together or not at all."""
    temporaries: list[Path] = []
    try:
        tmp_mp4 = temporary_beside(dst_mp4, ".mp4")
        temporaries.append(tmp_mp4)
        tmp_poster = temporary_beside(dst_poster_jpg, ".jpg")
        temporaries.append(tmp_poster)
        yield tmp_mp4, tmp_poster
        try:
            os.replace(tmp_mp4, dst_mp4)
            os.replace(tmp_poster, dst_poster_jpg)
        except OSError as exc:
            raise VideoRejected(f"{src.name}: could not store the converted video ({exc.strerror})") from exc
    except BaseException:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise


def transcode_for_browser(
    src: str | os.PathLike[str],
    dst_mp4: str | os.PathLike[str],
    dst_poster_jpg: str | os.PathLike[str],
    *,
    crf: float = DEFAULT_CRF,
    max_side: int | None = None,
    preset: str = DEFAULT_PRESET,
    poster_quality: int = POSTER_JPEG_QUALITY,
    aq_strength: float = DEFAULT_AQ_STRENGTH,
) -> ProbedVideo:
    """Re-encode `src` to an H.264/yuv420p MP4 with the moov atom first (fast start), the source's average
    frame rate and every decoded frame re-timed to 0..N-1 at that rate, no audio and no metadata; and write
    the frame at 10% of the clip as a JPEG poster. Odd sides are padded by one pixel (the edge row/column
    repeated) so no pixel is resampled; with `max_side`, a larger video is scaled down (aspect kept, sides
    rounded to even) instead. Both outputs appear atomically or not at all. Returns the output's ProbedVideo.
    Raises VideoRejected (the source is checked with the same rules as `probe`, with no size limit)."""
    src, dst_mp4, dst_poster_jpg = Path(src), Path(dst_mp4), Path(dst_poster_jpg)
    if max_side is not None and max_side < MIN_SIDE:
        raise ValueError(f"max_side must be at least {MIN_SIDE}")
    source_info, rate = _probe(src, max_bytes=sys.maxsize)
    out_width, out_height = _output_size(source_info.width, source_info.height, max_side)
    poster_index = int(source_info.frame_count * POSTER_POSITION)

    with _atomic_outputs(src, dst_mp4, dst_poster_jpg) as (tmp_mp4, tmp_poster):
        try:
            _encode(src, tmp_mp4, rate, out_width, out_height, _x264(crf, preset, aq_strength))
            _write_poster(tmp_mp4, tmp_poster, poster_index, poster_quality)
        except _AV_ERRORS as exc:
            raise VideoRejected(
                f"{src.name}: could not be converted to a browser-playable video ({exc})"
            ) from exc
        try:
            output_info, _ = _probe(tmp_mp4, max_bytes=sys.maxsize, name=dst_mp4.name)
        except VideoRejected as exc:
            raise VideoRejected(f"{src.name}: the converted video failed its check ({exc})") from exc
        if output_info.frame_count != source_info.frame_count:
            raise VideoRejected(
                f"{src.name}: the converted video has {output_info.frame_count} frames, "
                f"the source {source_info.frame_count}"
            )
    return output_info


def _probe(path: Path, *, max_bytes: int, name: str | None = None) -> tuple[ProbedVideo, Fraction]:
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoRejected(f"{name}: the file could not be read ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise VideoRejected(f"{name}: not a file")
    if size == 0:
        raise VideoRejected(f"{name}: the file is empty (0 bytes)")
    if size > max_bytes:
        raise VideoRejected(
            f"{name}: the file is too large ({_megabytes(size)}; the limit is {_megabytes(max_bytes)})"
        )

    with _open_video(path, name) as container:
        stream = _video_stream(container, name)
        listed_frames = stream.frames
        has_audio = bool(container.streams.audio)
        codec = stream.codec_context.name
        _check_dimensions(stream.codec_context.width, stream.codec_context.height, name, allow_unknown=True)
        frame_count, width, height = 0, 0, 0
        first_time: float | None = None
        last_time: float | None = None
        try:
            for frame in container.decode(stream):
                if frame_count == 0:
                    width, height = frame.width, frame.height
                    _check_dimensions(width, height, name)
                if frame.time is not None:
                    first_time = frame.time if first_time is None else first_time
                    last_time = frame.time
                frame_count += 1
        except _AV_ERRORS as exc:
            raise VideoRejected(
                f"{name}: the video is corrupt (decoding failed after {frame_count} frames: {_reason(exc)})"
            ) from exc
        rate = _frame_rate(stream, frame_count, first_time, last_time)

    if frame_count == 0:
        raise VideoRejected(f"{name}: the video is corrupt (no frame could be decoded)")
    if frame_count < MIN_FRAMES:
        raise VideoRejected(f"{name}: not a video (it has a single frame; a still image is not a video)")
    if listed_frames and frame_count < listed_frames:
        raise VideoRejected(
            f"{name}: the video is corrupt or truncated (the file lists {listed_frames} frames "
            f"but only {frame_count} could be decoded)"
        )
    if rate is None or not 0 < rate <= MAX_FPS:
        shown = "unknown" if rate is None else f"{float(rate):g} fps"
        raise VideoRejected(f"{name}: the frame rate is unusable ({shown})")
    info = ProbedVideo(
        width=width,
        height=height,
        fps=float(rate),
        frame_count=frame_count,
        duration_s=frame_count / float(rate),
        codec=codec,
        has_audio=has_audio,
        size_bytes=size,
    )
    return info, rate


@contextmanager
def _open_video(path: Path, name: str) -> Iterator[av.container.InputContainer]:
    try:
        container = av.open(str(path), mode="r")
    except _AV_ERRORS as exc:
        raise VideoRejected(
            f"{name}: not a video file (the file could not be read as a video: {_reason(exc)})"
        ) from exc
    try:
        format_name = container.format.name
        if format_name in _TEXT_FORMATS:
            raise VideoRejected(f"{name}: not a video file (it is a text file)")
        if format_name in _STILL_IMAGE_FORMATS or format_name.endswith("_pipe"):
            kind = format_name.removesuffix("_pipe")
            raise VideoRejected(
                f"{name}: not a video file (it is a still image, {kind}; a single image is not a video)"
            )
        yield container
    finally:
        container.close()


def _video_stream(container: av.container.InputContainer, name: str) -> av.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise VideoRejected(f"{name}: not a video file (no video stream could be read)")
    stream = streams[0]
    stream.thread_type = "AUTO"
    return stream


def _check_dimensions(width: int, height: int, name: str, *, allow_unknown: bool = False) -> None:
    if allow_unknown and (width == 0 or height == 0):
        return
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise VideoRejected(
            f"{name}: the dimensions {width}x{height} are not plausible for a video "
            f"(each side must be {MIN_SIDE} to {MAX_SIDE} pixels)"
        )


def _frame_rate(
    stream: av.VideoStream, frame_count: int, first_time: float | None, last_time: float | None
) -> Fraction | None:
    """The stream's average rate; when the container has none, the one its timestamps imply."""
    for candidate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if candidate:
            return Fraction(candidate).limit_denominator(1_000_000)
    if frame_count >= 2 and first_time is not None and last_time is not None and last_time > first_time:
        return (Fraction(frame_count - 1) / Fraction(last_time - first_time)).limit_denominator(1001)
    return None


def _output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    return width + width % 2, height + height % 2


def _x264(crf: float, preset: str, aq_strength: float) -> dict[str, Any]:
    """VideoWriter's encoder arguments: x264's quality factor, preset and adaptive-quantisation strength."""
    return {"crf": crf, "preset": preset, "options": {"x264-params": f"aq-strength={aq_strength:.2f}"}}


def _encode(
    src: Path, dst: Path, rate: Fraction, out_width: int, out_height: int, encoder: dict[str, Any]
) -> None:
    # VideoWriter's bitexact keeps the muxer from writing its own "encoder" tag; nothing else is copied
    # from the source.
    with (
        av.open(str(src), mode="r") as source,
        VideoWriter(
            dst, width=out_width, height=out_height, rate=rate, container_format="mp4", **encoder
        ) as out,
    ):
        in_stream = _video_stream(source, src.name)
        for frame in source.decode(in_stream):
            out.write(_convert_frame(frame, out_width, out_height))


def _write_poster(video: Path, poster: Path, index: int, quality: int) -> None:
    """Frame `index` of the encoded `video` as a JPEG: the picture the viewer sees there, so the poster
    of a video re-encoded at another quality factor is other bytes as well."""
    with av.open(str(video), mode="r") as container:
        for at, frame in enumerate(container.decode(container.streams.video[0])):
            if at == index:
                frame.to_image().convert("RGB").save(poster, format="JPEG", quality=quality)
                return
    raise ValueError("the poster frame was not reached")


def _convert_frame(frame: av.VideoFrame, out_width: int, out_height: int) -> av.VideoFrame:
    width, height = frame.width, frame.height
    if (width, height) == (out_width, out_height):
        return frame.reformat(format="yuv420p")
    if out_width >= width and out_height >= height:
        rgb = frame.to_ndarray(format="rgb24")
        padded: np.ndarray[Any, np.dtype[np.uint8]] = np.pad(
            rgb, ((0, out_height - height), (0, out_width - width), (0, 0)), mode="edge"
        )
        return av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(format="yuv420p")
    return frame.reformat(width=out_width, height=out_height, format="yuv420p", interpolation="AREA")


GENERATED_CRF = (
    12  # generated originals are kept near-lossless; the library's playable copy is made from them
)


def encode_frames(
    frames: np.ndarray[Any, np.dtype[np.uint8]], fps: float, dst: str | os.PathLike[str]
) -> None:
    """Write (frames, height, width, 3) uint8 RGB frames as an H.264 4:4:4 MP4 with no metadata, atomically
    (a partial file never appears under `dst`). This is the original of a generated video."""
    dst = Path(dst)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"expected (frames, height, width, 3) uint8 frames, got {frames.shape} {frames.dtype}"
        )
    tmp = temporary_beside(dst, ".mp4")
    try:
        write_frames(
            tmp,
            frames,
            rate=Fraction(fps).limit_denominator(1001),
            container_format="mp4",
            pixel_format="yuv444p",
            crf=GENERATED_CRF,
            preset=DEFAULT_PRESET,
        )
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temporary_beside(destination: Path, suffix: str = "") -> Path:
    """An empty temporary file in the destination's folder, so os.replace onto it is atomic. Its name
    is derived from the destination's (never from a source), so a retry after a crash first removes
    the partial files an earlier attempt at the same destination left behind."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{destination.name}.partial-"
    for stale in destination.parent.glob(prefix + "*"):
        stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(dir=destination.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    return Path(name)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size} bytes"


# ---------------------------------------------------------------- one fixed format for every video shown


def transcode_to_format(
    src: str | os.PathLike[str],
    dst_mp4: str | os.PathLike[str],
    dst_poster_jpg: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    fps: float | Fraction,
    duration_s: float,
    crf: float = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    poster_quality: int = POSTER_JPEG_QUALITY,
    aq_strength: float = DEFAULT_AQ_STRENGTH,
) -> ProbedVideo:
    """Re-encode `src` to exactly `width`x`height` at `fps` for `duration_s`, so that clips of different
    sizes, rates and lengths come out indistinguishable in format: an H.264/yuv420p MP4 (fast start, no
    audio, no metadata) and a JPEG poster (the frame at 10% of the output).

    - Size: the picture is scaled to fit inside the frame, aspect kept, and centred on black (letterboxed
      or pillarboxed); width and height must be even.
    - Rate: output frame i shows the source frame on screen at time i / fps (source frames are timed
      0..N-1 at the source's average rate, as in `transcode_for_browser`), so a faster source drops
      frames and a slower one repeats them.
    - Length: `round(duration_s * fps)` frames; the rest of the source is cut. A source shorter than that
      is rejected rather than padded.
    A float `fps` is read as the nearest fraction with a denominator up to 1001 (29.97 is 30000/1001).
    Both outputs appear atomically or not at all. Returns the output's ProbedVideo. Raises ValueError for an
    impossible format and VideoRejected for a source that cannot fill it."""
    src, dst_mp4, dst_poster_jpg = Path(src), Path(dst_mp4), Path(dst_poster_jpg)
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    _check_target_format(width, height, rate)
    frame_count = round(duration_s * rate)
    if frame_count < MIN_FRAMES:
        raise ValueError(f"{duration_s:g} s at {float(rate):g} fps is fewer than {MIN_FRAMES} frames")
    source_info, source_rate = _probe(src, max_bytes=sys.maxsize)
    if _source_index(frame_count - 1, source_rate, rate) >= source_info.frame_count:
        raise VideoRejected(
            f"{src.name}: the video lasts {source_info.duration_s:.3g} s, shorter than the "
            f"{float(frame_count / rate):.3g} s it must fill"
        )

    with _atomic_outputs(src, dst_mp4, dst_poster_jpg) as (tmp_mp4, tmp_poster):
        try:
            encoder = _x264(crf, preset, aq_strength)
            _encode_to_format(src, tmp_mp4, source_rate, width, height, rate, frame_count, encoder)
            _write_poster(tmp_mp4, tmp_poster, int(frame_count * POSTER_POSITION), poster_quality)
        except _AV_ERRORS as exc:
            raise VideoRejected(f"{src.name}: could not be converted to the common format ({exc})") from exc
        output_info, output_rate = _probe(tmp_mp4, max_bytes=sys.maxsize, name=dst_mp4.name)
        got = (output_info.width, output_info.height, output_rate, output_info.frame_count)
        if got != (width, height, rate, frame_count):
            raise VideoRejected(
                f"{src.name}: the converted video is {got[0]}x{got[1]} at {float(got[2]):g} fps with "
                f"{got[3]} frames, not {width}x{height} at {float(rate):g} fps with {frame_count}"
            )
    return output_info


def _check_target_format(width: int, height: int, rate: Fraction) -> None:
    for side in (width, height):
        if side % 2 or not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"each side must be an even number of pixels from {MIN_SIDE} to {MAX_SIDE}")
    if not 0 < rate <= MAX_FPS:
        raise ValueError(f"the frame rate must be in (0, {MAX_FPS}]")


def _source_index(output_index: int, source_rate: Fraction, rate: Fraction) -> int:
    """The source frame on screen when output frame `output_index` starts."""
    return int(output_index * source_rate / rate)


def _encode_to_format(
    src: Path,
    dst: Path,
    source_rate: Fraction,
    width: int,
    height: int,
    rate: Fraction,
    frame_count: int,
    encoder: dict[str, Any],
) -> None:
    with (
        av.open(str(src), mode="r") as source,
        VideoWriter(dst, width=width, height=height, rate=rate, container_format="mp4", **encoder) as out,
    ):
        in_stream = _video_stream(source, src.name)
        written = 0
        for source_index, frame in enumerate(source.decode(in_stream)):
            if written == frame_count:
                break
            boxed: av.VideoFrame | None = None
            while written < frame_count and _source_index(written, source_rate, rate) == source_index:
                if boxed is None:
                    boxed = av.VideoFrame.from_ndarray(_letterbox(frame, width, height), format="rgb24")
                # reformat makes a new frame, so a repeated source frame gets a pts of its own.
                out.write(boxed.reformat(format="yuv420p"))
                written += 1
    if written != frame_count:
        raise ValueError(f"only {written} of {frame_count} frames could be made")


def _letterbox(frame: av.VideoFrame, width: int, height: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The frame scaled to fit inside width x height (aspect kept) and centred on black, as RGB."""
    scale = min(width / frame.width, height / frame.height)
    inner_width = min(width, max(2, round(frame.width * scale)))
    inner_height = min(height, max(2, round(frame.height * scale)))
    if (inner_width, inner_height) == (frame.width, frame.height):
        inner = frame.to_ndarray(format="rgb24")
    else:
        interpolation = "AREA" if scale < 1 else "BICUBIC"
        inner = frame.reformat(
            width=inner_width, height=inner_height, format="rgb24", interpolation=interpolation
        ).to_ndarray()
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - inner_height) // 2, (width - inner_width) // 2
    canvas[top : top + inner_height, left : left + inner_width] = inner
    return canvas


# ---------------------------------------------------------------- padding files to a size

PADDING_FLOOR = 1024  # bytes past the largest file: room for an MP4 free box whatever the margin


def padded_size(largest: int, margin: float) -> int:
    """The one size a set of files whose largest holds `largest` bytes is served at: a kibibyte more, and
    `margin` (a share, a campaign's own) of it on top, so the same files usually give another size
    elsewhere (not always: two sets can land on one size by chance)."""
    return largest + PADDING_FLOOR + int(largest * margin)


def pad_to_size(path: str | os.PathLike[str], *, content_bytes: int, size: int, filler_key: bytes) -> None:
    """Make the file exactly `size` bytes: its first `content_bytes` bytes (the file as encoded, before any
    earlier padding) followed by filler that players skip: for an MP4 a top-level `free` box (ISO/IEC
    14496-12 4.2, at least 8 bytes), for a JPEG bytes after its end-of-image marker. So files of different
    lengths can be served at one length, and padding again to another size starts from the same content.
    The filler's bytes are drawn from `filler_key` (a campaign's own), so one encoded file padded for two
    campaigns gives two different files even where the sizes coincide. Atomic (written beside, then
    renamed over). Raises ValueError when the file is shorter than `content_bytes` or cannot hold it
    within `size`."""
    path = Path(path)
    if not filler_key:
        raise ValueError("padding needs a filler key")
    current = path.stat().st_size
    if current == size and content_bytes <= size:
        with path.open("rb") as fh:
            if fh.read()[content_bytes:] == _filler(size - content_bytes, path.suffix.lower(), filler_key):
                return
    if current < content_bytes:
        raise ValueError(f"{path.name} holds {current} bytes, fewer than its {content_bytes} encoded")
    filler = size - content_bytes
    is_mp4 = path.suffix.lower() == ".mp4"
    if filler < 0 or (is_mp4 and 0 < filler < 8) or filler >= 2**32:
        raise ValueError(f"{path.name}: {content_bytes} bytes cannot be padded to {size}")
    with path.open("rb") as fh:
        content = fh.read(content_bytes)
    tmp = temporary_beside(path, path.suffix)
    try:
        tmp.write_bytes(content + _filler(filler, path.suffix.lower(), filler_key))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _filler(length: int, suffix: str, key: bytes) -> bytes:
    """`length` bytes of padding drawn from `key` (SHAKE-256 of it): in an MP4, a `free` box's header and
    body."""
    if not length:
        return b""
    if suffix == ".mp4":
        return length.to_bytes(4, "big") + b"free" + hashlib.shake_256(key).digest(length - 8)
    return hashlib.shake_256(key).digest(length)
