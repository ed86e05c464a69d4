"""Frame formats shared by the video metrics (no Django).

Layouts used in `metrics.video`:
- **decoded frames** are uint8 tensors `(T, H, W, 3)` ("THWC", RGB, channel last), exactly as PyAV's
  `VideoFrame.to_ndarray(format="rgb24")` returns them (`metrics.video.decode` yields this layout);
- **metric inputs** are channel-first batches `(N, C, H, W)` of frames or `(B, T, C, H, W)` of videos, uint8
  (data range 255) or floating point in [0, 1] (data range 1); `thwc_to_tchw` turns decoded frames into
  this layout without a copy.

The data range follows the dtype unless given: 255 for uint8, 1.0 for floating point. Anything else (int16,
bool, ...) is refused rather than guessed.
"""

from __future__ import annotations

import torch

UINT8_DATA_RANGE = 255.0
FLOAT_DATA_RANGE = 1.0


def default_data_range(frames: torch.Tensor) -> float:
    """255 for uint8 frames, 1.0 for floating-point frames in [0, 1]."""
    if frames.dtype == torch.uint8:
        return UINT8_DATA_RANGE
    if frames.is_floating_point():
        return FLOAT_DATA_RANGE
    raise TypeError(f"frames must be uint8 (0..255) or floating point (0..1), got {frames.dtype}")


def resolve_data_range(frames: torch.Tensor, data_range: float | None) -> float:
    """`data_range` if given, else the dtype's default (see `default_data_range`)."""
    if data_range is None:
        return default_data_range(frames)
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    default_data_range(frames)  # refuses unsupported dtypes
    return float(data_range)


def check_pair(preds: torch.Tensor, target: torch.Tensor, ndim: int | tuple[int, ...]) -> None:
    """Both tensors have the same shape, dtype and device, and one of the allowed numbers of dimensions."""
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if preds.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(preds.shape)} vs {tuple(target.shape)}")
    if preds.dtype != target.dtype:
        raise ValueError(f"dtypes differ: {preds.dtype} vs {target.dtype}")
    if preds.device != target.device:
        raise ValueError(f"devices differ: {preds.device} vs {target.device}")
    if preds.ndim not in allowed:
        raise ValueError(
            f"expected {' or '.join(map(str, allowed))} dimensions, got shape {tuple(preds.shape)}"
        )


def thwc_to_tchw(frames: torch.Tensor) -> torch.Tensor:
    """`(..., H, W, C)` -> `(..., C, H, W)` as a view (no copy)."""
    if frames.ndim < 3 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected channel-last frames (..., H, W, 1|3), got shape {tuple(frames.shape)}")
    return frames.movedim(-1, -3)


def tchw_to_thwc(frames: torch.Tensor) -> torch.Tensor:
    """`(..., C, H, W)` -> `(..., H, W, C)` as a view (no copy)."""
    if frames.ndim < 3 or frames.shape[-3] not in (1, 3):
        raise ValueError(f"expected channel-first frames (..., 1|3, H, W), got shape {tuple(frames.shape)}")
    return frames.movedim(-3, -1)


def to_unit_float(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 frames -> floats in [0, 1] (x / 255); floating frames are only cast."""
    if frames.dtype == torch.uint8:
        return frames.to(dtype) / UINT8_DATA_RANGE
    if frames.is_floating_point():
        return frames.to(dtype)
    raise TypeError(f"frames must be uint8 or floating point, got {frames.dtype}")


def unit_float_to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] -> uint8, as `round(clamp(x, 0, 1) * 255)` (round half to even).

    Use it for a model's floating-point output before it is compared with decoded uint8 ground truth, so
    that both sides of a comparison are uint8 frames.
    """
    if not frames.is_floating_point():
        raise TypeError(f"expected floating-point frames in [0, 1], got {frames.dtype}")
    return torch.round(frames.clamp(0.0, 1.0) * UINT8_DATA_RANGE).to(torch.uint8)


# ITU-R BT.601 luma weights, as OpenCV's COLOR_RGB2GRAY uses them (here without rounding to uint8).
BT601_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_luma(frames: torch.Tensor) -> torch.Tensor:
    """Channel-first RGB `(..., 3, H, W)` floats -> luma `(..., 1, H, W)` with BT.601 weights."""
    if frames.shape[-3] != 3:
        raise ValueError(f"expected 3 channels in dimension -3, got shape {tuple(frames.shape)}")
    weights = torch.tensor(BT601_LUMA_WEIGHTS, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
    return (frames * weights).sum(dim=-3, keepdim=True)
