"""Automatic scores of generated video files, streamed: CLIP score and motion score per video (no Django).

`score_videos` decodes each file once, in `workers` threads, and converts to RGB only the frames a score
needs: the `evenly_spaced_indices` frames of the CLIP score (`metrics.video.clip_score`; the frame count is
read from the container's packets, checked against the decoded count, and the frames decoded again in
the rare case they differ) and every `stride`-th frame for the motion score (`MotionAccumulator` of
`metrics.video.motion`, fed one frame at a time). The figures are exactly those of
`ClipScorer.score(frames, prompt)` and `motion_score(frames, ...)` on the whole decoded video.

Memory, however long the videos are: at most `workers + 1` videos in flight, each holding the CLIP frames
(`clip_frames`, 8 by default) and one decoded frame, plus, per worker, the motion score's two resized
grayscale frames and its Farneback flow field; `scoring_memory_bound` adds them up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from metrics.video.clip_score import DEFAULT_NUM_FRAMES, ClipScorer, evenly_spaced_indices
from metrics.video.motion import (
    DEFAULT_SHORT_SIDE,
    DEFAULT_STRIDE,
    FarnebackParams,
    MotionAccumulator,
    MotionScore,
    resized_size,
)
from metrics.video.pyav_frames import PathLike, count_video_packets, iter_selected_frames

DEFAULT_SCORING_WORKERS = 2


@dataclass(frozen=True)
class VideoToScore:
    """A file to score: against `prompt` with the CLIP score (None: no CLIP score), and its motion."""

    path: PathLike
    prompt: str | None = None
    motion: bool = True


@dataclass(frozen=True)
class MotionOptions:
    stride: int = DEFAULT_STRIDE
    short_side: int | None = DEFAULT_SHORT_SIDE
    params: FarnebackParams = field(default_factory=FarnebackParams)


@dataclass(frozen=True)
class VideoScores:
    """The scores of video `index`. `error`: why it could not be decoded (then no score); `motion_error`:
    why it has no motion score (too few frames)."""

    index: int
    frames: int = 0
    clip: float | None = None
    motion: MotionScore | None = None
    motion_error: str | None = None
    error: str | None = None


@dataclass
class _Decoded:
    index: int
    frames: int = 0
    clip_frames: list[np.ndarray] = field(default_factory=list)
    motion: MotionScore | None = None
    motion_error: str | None = None
    error: str | None = None


def scoring_memory_bound(
    height: int,
    width: int,
    *,
    workers: int = DEFAULT_SCORING_WORKERS,
    clip_frames: int = DEFAULT_NUM_FRAMES,
    motion: MotionOptions | None = None,
) -> int:
    """Most bytes of frames `score_videos` holds at once for videos of H x W: `workers + 1` videos' CLIP
    frames and a decoded frame each (H * W * 3 bytes a frame), and per worker the motion score's grayscale
    frames (one at full size, two resized) and its flow arrays at the resized size (the initial guess and
    the flow, 2 float32 each, the squares, 2 float64, their sum and its root, float64: 50 bytes a pixel)."""
    motion = motion or MotionOptions()
    rgb = height * width * 3
    flow_height, flow_width = resized_size(height, width, motion.short_side)
    motion_bytes = height * width + flow_height * flow_width * (2 + 2 * 4 + 2 * 4 + 2 * 8 + 8 + 8)
    return (workers + 1) * (clip_frames + 1) * rgb + workers * motion_bytes


def decode_sampled_frames(
    path: PathLike,
    clip_count: int | None,
    motion: MotionAccumulator | None = None,
    *,
    decoder_threads: int = 0,
) -> tuple[int, list[np.ndarray]]:
    """Decode a file once: feed every `motion.stride`-th frame to `motion` (when given) and keep the
    `evenly_spaced_indices(T, clip_count)` frames (when `clip_count` is given). Returns (T, kept frames)."""
    clip_indices: set[int] = set()
    if clip_count is not None:
        clip_indices = set(evenly_spaced_indices(max(1, count_video_packets(path)), clip_count).tolist())
    seen = 0

    def wanted(frame_index: int) -> bool:
        nonlocal seen
        seen = frame_index + 1
        return frame_index in clip_indices or (motion is not None and frame_index % motion.stride == 0)

    kept = []
    for frame_index, frame in iter_selected_frames(path, wanted, decoder_threads=decoder_threads):
        if frame_index in clip_indices:
            # A copy: a decoded frame is a view that keeps FFmpeg's frame (and its buffers) alive.
            kept.append(frame.copy())
        if motion is not None and frame_index % motion.stride == 0:
            motion.add(frame)
    if seen == 0:
        raise ValueError(f"{path}: no video frames")
    if clip_count is not None:
        expected = set(evenly_spaced_indices(seen, clip_count).tolist())
        if expected != clip_indices:  # the container's packets miscounted the frames: decode them again
            kept = [frame.copy() for _, frame in iter_selected_frames(path, expected.__contains__)]
    return seen, kept


def clip_frames(path: PathLike, count: int = DEFAULT_NUM_FRAMES) -> torch.Tensor:
    """The frames a CLIP score looks at, `evenly_spaced_indices(T, count)`, as uint8 `(n, H, W, 3)`: the same
    as `decode_video(path)[evenly_spaced_indices(T, count)]`, holding only those frames."""
    _, kept = decode_sampled_frames(path, count)
    return torch.from_numpy(np.stack(kept))


def _decode_for_scores(
    index: int, video: VideoToScore, clip_count: int | None, motion: MotionOptions, decoder_threads: int
) -> _Decoded:
    accumulator = (
        MotionAccumulator(stride=motion.stride, short_side=motion.short_side, params=motion.params)
        if video.motion
        else None
    )
    try:
        frames, kept = decode_sampled_frames(
            video.path, clip_count, accumulator, decoder_threads=decoder_threads
        )
    except Exception as error:  # any decoding failure of this file; the other videos are still scored
        return _Decoded(index, error=str(error) or type(error).__name__)
    decoded = _Decoded(index, frames=frames, clip_frames=kept)
    if accumulator is not None:
        try:
            decoded.motion = accumulator.result(frames)
        except ValueError as error:
            decoded.motion_error = str(error)
    return decoded


def score_videos(
    videos: Sequence[VideoToScore],
    *,
    clip_scorer: ClipScorer | None = None,
    motion: MotionOptions | None = None,
    workers: int = DEFAULT_SCORING_WORKERS,
    decoder_threads: int = 0,
) -> Iterator[VideoScores]:
    """The CLIP score (when `clip_scorer` is given and the video has a prompt) and the motion score (when
    asked for) of each video, yielded in order. Threads decode the files and compute the motion score; the
    CLIP model runs here, on its device. A file that cannot be decoded gives `VideoScores.error`.
    Memory: `scoring_memory_bound`."""
    motion = motion or MotionOptions()
    clip_count = clip_scorer.num_frames if clip_scorer is not None else None

    def finish(decoded: _Decoded, video: VideoToScore) -> VideoScores:
        clip = None
        if decoded.error is None and clip_scorer is not None and video.prompt is not None:
            clip = clip_scorer.score(torch.from_numpy(np.stack(decoded.clip_frames)), video.prompt)
        return VideoScores(
            index=decoded.index,
            frames=decoded.frames,
            clip=clip,
            motion=decoded.motion,
            motion_error=decoded.motion_error,
            error=decoded.error,
        )

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="video-score") as pool:
        in_flight: deque[Future[_Decoded]] = deque()
        upcoming = iter(enumerate(videos))
        try:
            for index, video in upcoming:
                count = clip_count if video.prompt is not None else None
                in_flight.append(
                    pool.submit(_decode_for_scores, index, video, count, motion, decoder_threads)
                )
                if len(in_flight) >= max(1, workers):
                    decoded = in_flight.popleft().result()
                    yield finish(decoded, videos[decoded.index])
            while in_flight:
                decoded = in_flight.popleft().result()
                yield finish(decoded, videos[decoded.index])
        finally:
            for future in in_flight:
                future.cancel()


__all__ = [
    "DEFAULT_SCORING_WORKERS",
    "clip_frames",
    "decode_sampled_frames",
    "MotionOptions",
    "VideoScores",
    "VideoToScore",
    "score_videos",
    "scoring_memory_bound",
]
