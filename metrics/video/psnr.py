"""PSNR of reconstructed video frames against ground truth, batched on the tensors' device (no Django).

Definition (as common_metrics_on_video_quality computes it):
- per frame, MSE over all pixels of all channels (RGB), in units of the data range L (255 for uint8,
  1 for floats in [0, 1]); PSNR = 10 log10(L^2 / MSE) dB;
- identical frames (MSE = 0) and any PSNR above it score `PSNR_CAP_DB` = 100 dB (the reference returns 100
  when MSE < 1e-10 in [0, 1] units, i.e. exactly where PSNR would exceed 100 dB);
- the mean over the frames of a video, then over videos.

Option `per_video_mse=True` (in `video_psnr`): one MSE per video over all its frames, then one PSNR per video
(capped the same way), then the mean over videos.

Squared errors are summed in float64, so the result does not depend on the device or the batch.
"""

from __future__ import annotations

import torch

from metrics.video.frames import check_pair, resolve_data_range

PSNR_CAP_DB = 100.0


def mse_per_frame(
    preds: torch.Tensor, target: torch.Tensor, *, data_range: float | None = None
) -> torch.Tensor:
    """Mean squared error of each frame pair of `(N, C, H, W)` batches in data-range units: `(N,)` float64."""
    check_pair(preds, target, 4)
    scale = resolve_data_range(preds, data_range)
    if preds.dtype == torch.uint8:
        # float32 holds uint8 differences and their squares (< 2^24) exactly; the sum is float64.
        difference = preds.to(torch.float32) - target.to(torch.float32)
        sums = (difference * difference).sum(dim=(1, 2, 3), dtype=torch.float64)
    else:
        difference = preds.to(torch.float64) - target.to(torch.float64)
        sums = (difference * difference).sum(dim=(1, 2, 3))
    return sums / (preds[0].numel() if preds.shape[0] else 1) / (scale * scale)


def psnr_from_mse(mse: torch.Tensor, cap_db: float = PSNR_CAP_DB) -> torch.Tensor:
    """PSNR in dB of MSEs given in data-range units (L = 1), capped at `cap_db` (MSE = 0 gives the cap)."""
    mse = mse.to(torch.float64)
    psnr = 10.0 * torch.log10(1.0 / mse)  # +inf where mse == 0
    return torch.clamp(psnr, max=cap_db)


def psnr_per_frame(
    preds: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | None = None,
    cap_db: float = PSNR_CAP_DB,
) -> torch.Tensor:
    """PSNR in dB of each frame pair of `(N, C, H, W)` batches: `(N,)` float64."""
    return psnr_from_mse(mse_per_frame(preds, target, data_range=data_range), cap_db)


def video_psnr(
    preds: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | None = None,
    per_video_mse: bool = False,
    cap_db: float = PSNR_CAP_DB,
) -> torch.Tensor:
    """Per-video PSNR of `(B, T, C, H, W)` batches: `(B,)` float64.

    Default: mean over frames of per-frame PSNR. `per_video_mse=True`: PSNR of the video's mean MSE.
    """
    check_pair(preds, target, 5)
    batch, frames = preds.shape[:2]
    mse = mse_per_frame(preds.flatten(0, 1), target.flatten(0, 1), data_range=data_range).view(batch, frames)
    if per_video_mse:
        return psnr_from_mse(mse.mean(dim=1), cap_db)
    return psnr_from_mse(mse, cap_db).mean(dim=1)


def psnr(
    preds: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | None = None,
    per_video_mse: bool = False,
    cap_db: float = PSNR_CAP_DB,
) -> torch.Tensor:
    """Mean PSNR: over frames for `(N, C, H, W)`, over frames then videos for `(B, T, C, H, W)`. 0-d float64."""
    check_pair(preds, target, (4, 5))
    if preds.ndim == 5:
        return video_psnr(
            preds, target, data_range=data_range, per_video_mse=per_video_mse, cap_db=cap_db
        ).mean()
    if per_video_mse:
        raise ValueError("per_video_mse needs (B, T, C, H, W) videos")
    return psnr_per_frame(preds, target, data_range=data_range, cap_db=cap_db).mean()


__all__ = ["PSNR_CAP_DB", "mse_per_frame", "psnr", "psnr_from_mse", "psnr_per_frame", "video_psnr"]
