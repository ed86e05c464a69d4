"""SSIM of reconstructed video frames against ground truth, batched on the tensors' device (no Django).

Definition (variant "wang", the default; Wang et al. 2004, as common_metrics_on_video_quality and
scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`
compute it):
- frames are RGB, uint8 with data range L = 255 or floating point in [0, 1] with L = 1 (`data_range`
  overrides); values are divided by L, so C1 = K1^2 and C2 = K2^2 with K1 = 0.01, K2 = 0.03;
- local means, variances and covariance are weighted by an 11x11 Gaussian window with sigma 1.5 (the
  normalised outer product of two 1-D windows, applied as two separable passes) and divided by the window's
  weight sum (population statistics, no N/(N-1));
- only the valid region is kept: windows that fit inside the frame, no padding, so an H x W frame gives an
  (H-10) x (W-10) SSIM map;
- SSIM(x, y) = mean over that map of ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
  computed per channel, then averaged over the channels, then over the frames of a video, then over videos.

Variants (`variant=`): "skimage" is scikit-image's `structural_similarity` default: a 7x7 uniform window and
sample covariance (N/(N-1) with N = 49), also on the valid region only. `grayscale=True` first converts RGB to
BT.601 luma (0.299 R + 0.587 G + 0.114 B, unrounded) and computes one channel.

Precision: the default `compute_dtype=torch.float32` stays within 1e-5 of a float64 computation (the tests
check it against scikit-image in float64): each frame and channel is centred on its mean before the second
moments are filtered, so E[x^2] - E[x]^2 loses little to cancellation. `compute_dtype=torch.float64` is
available for a reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from metrics.video.frames import check_pair, resolve_data_range, rgb_to_luma

SSIM_K1 = 0.01
SSIM_K2 = 0.03
DEFAULT_FRAMES_PER_PASS = 16

SsimVariant = Literal["wang", "skimage"]


@dataclass(frozen=True)
class SsimWindow:
    """The local window of an SSIM variant."""

    kind: Literal["gaussian", "uniform"]
    size: int
    sigma: float | None
    sample_covariance: bool

    def weights_1d(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """The normalised 1-D window; the 2-D window is its outer product with itself."""
        if self.kind == "uniform":
            return torch.full((self.size,), 1.0 / self.size, dtype=dtype, device=device)
        assert self.sigma is not None
        offsets = torch.arange(self.size, dtype=torch.float64) - (self.size - 1) / 2
        weights = torch.exp(-(offsets**2) / (2 * self.sigma**2))
        return (weights / weights.sum()).to(dtype=dtype, device=device)


SSIM_WINDOWS: dict[str, SsimWindow] = {
    "wang": SsimWindow(kind="gaussian", size=11, sigma=1.5, sample_covariance=False),
    "skimage": SsimWindow(kind="uniform", size=7, sigma=None, sample_covariance=True),
}


def _filter_valid(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Separable filtering of every channel of `(N, K, H, W)` with the window, valid region only."""
    channels = maps.shape[1]
    size = weights.numel()
    along_width = weights.view(1, 1, 1, size).expand(channels, 1, 1, size)
    along_height = weights.view(1, 1, size, 1).expand(channels, 1, size, 1)
    return F.conv2d(F.conv2d(maps, along_width, groups=channels), along_height, groups=channels)


def _ssim_of_frames(
    preds: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    window: SsimWindow,
    grayscale: bool,
    compute_dtype: torch.dtype,
) -> torch.Tensor:
    x = preds.to(compute_dtype, memory_format=torch.contiguous_format) / data_range
    y = target.to(compute_dtype, memory_format=torch.contiguous_format) / data_range
    if grayscale:
        x, y = rgb_to_luma(x), rgb_to_luma(y)
    channels = x.shape[1]
    # Variances and covariance do not change under a shift; centring each frame and channel keeps the
    # squares small, which is what lets float32 match float64 to 1e-5.
    shift = 0.5 * (x.mean(dim=(-2, -1), keepdim=True) + y.mean(dim=(-2, -1), keepdim=True))
    x = x - shift
    y = y - shift
    moments = _filter_valid(
        torch.cat([x, y, x * x, y * y, x * y], dim=1), window.weights_1d(compute_dtype, x.device)
    )
    mu_x, mu_y, xx, yy, xy = moments.split(channels, dim=1)
    covariance_norm = 1.0
    if window.sample_covariance:
        points = window.size * window.size
        covariance_norm = points / (points - 1)
    var_x = covariance_norm * (xx - mu_x * mu_x)
    var_y = covariance_norm * (yy - mu_y * mu_y)
    cov_xy = covariance_norm * (xy - mu_x * mu_y)
    mu_x = mu_x + shift
    mu_y = mu_y + shift
    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean(dim=(-2, -1)).mean(dim=1)


def ssim_per_frame(
    preds: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | None = None,
    variant: SsimVariant = "wang",
    grayscale: bool = False,
    compute_dtype: torch.dtype = torch.float32,
    frames_per_pass: int = DEFAULT_FRAMES_PER_PASS,
) -> torch.Tensor:
    """SSIM of each frame pair of `(N, C, H, W)` batches: a `(N,)` tensor (mean over channels).

    `frames_per_pass` bounds the working memory: about 5 * C * H * W values of `compute_dtype` per frame
    (float32 480x768 RGB: 22 MB per frame).
    """
    check_pair(preds, target, 4)
    if variant not in SSIM_WINDOWS:
        raise ValueError(f"unknown SSIM variant {variant!r}; choose from {sorted(SSIM_WINDOWS)}")
    window = SSIM_WINDOWS[variant]
    height, width = preds.shape[-2:]
    if height < window.size or width < window.size:
        raise ValueError(
            f"frames of {height}x{width} are smaller than the {window.size}x{window.size} window"
        )
    if grayscale and preds.shape[1] != 3:
        raise ValueError("grayscale=True needs RGB frames (3 channels)")
    scale = resolve_data_range(preds, data_range)
    results = [
        _ssim_of_frames(
            preds[start : start + frames_per_pass],
            target[start : start + frames_per_pass],
            scale,
            window,
            grayscale,
            compute_dtype,
        )
        for start in range(0, preds.shape[0], max(1, frames_per_pass))
    ]
    if not results:
        return torch.empty(0, dtype=compute_dtype, device=preds.device)
    return torch.cat(results)


def video_ssim(preds: torch.Tensor, target: torch.Tensor, **options: object) -> torch.Tensor:
    """Per-video SSIM of `(B, T, C, H, W)` batches: a `(B,)` tensor, the mean over each video's frames.

    Takes the keyword options of `ssim_per_frame`.
    """
    check_pair(preds, target, 5)
    batch, frames = preds.shape[:2]
    per_frame = ssim_per_frame(preds.flatten(0, 1), target.flatten(0, 1), **options)  # type: ignore[arg-type]
    return per_frame.view(batch, frames).mean(dim=1)


def ssim(preds: torch.Tensor, target: torch.Tensor, **options: object) -> torch.Tensor:
    """Mean SSIM: over frames for `(N, C, H, W)`, over frames then videos for `(B, T, C, H, W)`.

    Takes the keyword options of `ssim_per_frame`; returns a 0-d tensor.
    """
    check_pair(preds, target, (4, 5))
    if preds.ndim == 5:
        return video_ssim(preds, target, **options).mean()
    return ssim_per_frame(preds, target, **options).mean()  # type: ignore[arg-type]


def valid_region_size(height: int, width: int, variant: SsimVariant = "wang") -> tuple[int, int]:
    """Size of the SSIM map of an H x W frame (the valid region)."""
    size = SSIM_WINDOWS[variant].size
    return height - size + 1, width - size + 1


__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_WINDOWS",
    "SsimVariant",
    "SsimWindow",
    "ssim",
    "ssim_per_frame",
    "valid_region_size",
    "video_ssim",
]
