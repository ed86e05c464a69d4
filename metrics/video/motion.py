"""Motion score: statistics of dense Farneback optical flow between sampled frames (no Django).

Step-Video-T2V's data pipeline scores motion with OpenCV's Farneback optical flow and keeps three
statistics, Motion_Mean, Motion_Max and Motion_Min. The report does not give the sampling rate, the frame
size or the Farneback parameters, so they are defined here and configurable:

1. Sample frames 0, k, 2k, ... (`stride` k; `stride_for_fps(fps, target_fps)` turns a target rate into k).
2. Convert each sampled RGB frame to grayscale (OpenCV's BT.601 weights) and resize it, with area
   interpolation, so that its short side is `short_side` pixels (default 256, aspect ratio kept; None keeps
   the original size).
3. For each pair of consecutive sampled frames compute Farneback flow (`FarnebackParams`, defaults are the
   OpenCV tutorial values) and its per-pixel magnitude sqrt(dx^2 + dy^2); the pair's motion is the mean
   magnitude over all pixels.
4. Motion_Mean, Motion_Max, Motion_Min are the mean, maximum and minimum of the per-pair motions.

Units: pixels of the resized frame per sampled-frame step. With the default fixed short side the score
does not depend on the video's resolution (a pan across the whole frame scores the same at 480p and
1080p); multiply by `MotionScore.to_original_pixels` for pixels of the original frame. Because a step is
k frames, the score grows about linearly with the stride (and with a lower target fps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

DEFAULT_SHORT_SIDE = 256
DEFAULT_STRIDE = 1


@dataclass(frozen=True)
class FarnebackParams:
    """Arguments of cv2.calcOpticalFlowFarneback, named as in OpenCV."""

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    flags: int = 0


@dataclass(frozen=True)
class MotionScore:
    """Motion statistics over the sampled frame pairs, in pixels of the resized frame per step."""

    mean: float
    max: float
    min: float
    pair_motions: list[float] = field(repr=False)
    stride: int
    resized_size: tuple[int, int]  # (height, width) the flow was computed at
    to_original_pixels: float  # original short side / resized short side

    def as_dict(self) -> dict[str, float]:
        return {"Motion_Mean": self.mean, "Motion_Max": self.max, "Motion_Min": self.min}


def stride_for_fps(fps: float, target_fps: float) -> int:
    """Frame stride that samples a video of `fps` at about `target_fps` (at least 1: never upsamples)."""
    if fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got fps={fps}, target_fps={target_fps}")
    return max(1, round(fps / target_fps))


def resized_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) with the short side scaled to `short_side` (rounded), or unchanged for None."""
    if short_side is None:
        return height, width
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _gray_resized(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if gray.shape != size:
        gray = cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return gray


def mean_flow_magnitude(previous: np.ndarray, following: np.ndarray, params: FarnebackParams) -> float:
    """Mean per-pixel Farneback flow magnitude between two grayscale uint8 frames of the same size."""
    flow = cv2.calcOpticalFlowFarneback(
        previous,
        following,
        np.zeros(
            (*previous.shape, 2), dtype=np.float32
        ),  # an initial guess only with OPTFLOW_USE_INITIAL_FLOW
        params.pyr_scale,
        params.levels,
        params.winsize,
        params.iterations,
        params.poly_n,
        params.poly_sigma,
        params.flags,
    )
    return float(np.sqrt(np.square(flow, dtype=np.float64).sum(axis=-1)).mean())


class MotionAccumulator:
    """Motion score of frames given one at a time: the sampled frames (0, k, 2k, ...) in order, uint8 RGB
    `(H, W, 3)`. Holds two resized grayscale frames, so a streamed video never needs to be in memory."""

    def __init__(
        self,
        *,
        stride: int = DEFAULT_STRIDE,
        short_side: int | None = DEFAULT_SHORT_SIDE,
        params: FarnebackParams | None = None,
    ) -> None:
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        self.stride = stride
        self.short_side = short_side
        self.params = params or FarnebackParams()
        self.pair_motions: list[float] = []
        self._previous: np.ndarray | None = None
        self._original_size: tuple[int, int] | None = None
        self._size: tuple[int, int] | None = None

    def add(self, frame: np.ndarray) -> None:
        """The next sampled frame."""
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if self._size is None:
            self._original_size = (int(frame.shape[0]), int(frame.shape[1]))
            self._size = resized_size(*self._original_size, self.short_side)
        elif frame.shape[:2] != self._original_size:
            raise ValueError(f"frame size changes from {self._original_size} to {frame.shape[:2]}")
        following = _gray_resized(frame, self._size)
        if self._previous is not None:
            self.pair_motions.append(mean_flow_magnitude(self._previous, following, self.params))
        self._previous = following

    def result(self, num_frames: int) -> MotionScore:
        """The score, once every sampled frame of the video's `num_frames` frames was added."""
        if not self.pair_motions:
            raise ValueError(
                f"{num_frames} frames at stride {self.stride} give fewer than two frames to compare"
            )
        assert self._size is not None and self._original_size is not None
        return MotionScore(
            mean=float(np.mean(self.pair_motions)),
            max=max(self.pair_motions),
            min=min(self.pair_motions),
            pair_motions=list(self.pair_motions),
            stride=self.stride,
            resized_size=self._size,
            to_original_pixels=min(self._original_size) / min(self._size),
        )


def motion_score(
    frames: np.ndarray | torch.Tensor,
    *,
    stride: int = DEFAULT_STRIDE,
    short_side: int | None = DEFAULT_SHORT_SIDE,
    params: FarnebackParams | None = None,
) -> MotionScore:
    """Motion_Mean/Max/Min of a video given as (T, H, W, 3) uint8 RGB frames (numpy, or a torch tensor).

    Needs at least two sampled frames (T > stride). Runs on the CPU (OpenCV), one frame pair at a time, so
    memory holds two resized grayscale frames besides the input; `MotionAccumulator` takes the frames one
    at a time instead (`metrics.video.scoring` streams them from the file).
    """
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    accumulator = MotionAccumulator(stride=stride, short_side=short_side, params=params)
    for index in range(0, frames.shape[0], stride):
        accumulator.add(frames[index])
    return accumulator.result(frames.shape[0])
