"""rFVD: Fréchet distance between I3D features of ground-truth and reconstructed clips (no Django).

Definition (StyleGAN-V's FVD as common_metrics_on_video_quality runs it, `method="styleganv"`):
1. Each clip (by default every frame of a video, `max_frames` caps it) is turned into the I3D input by
   `preprocess_for_i3d`: uint8 RGB -> float32 / 255; bilinear resize (align_corners=False, no antialias)
   so that the short side is 224 and the long side ceil(long * 224 / short), then a centre crop of
   224 x 224 starting at ((H - 224) // 2, (W - 224) // 2); then x * 2 - 1 into [-1, 1]. `resize="squash"`
   resizes straight to 224 x 224 instead (aspect ratio not kept).
2. Features: the I3D's 400 Kinetics logits averaged over time (`metrics.video.i3d`), float32.
3. Per set, the mean and the covariance with the N - 1 denominator, accumulated streaming in float64
   (`FeatureStatistics`: running count, mean and centred scatter matrix merged batch by batch, Chan et al.),
   so memory does not grow with the number of clips.
4. FVD = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2)), in float64. The trace of the matrix
   square root is computed stably as the sum of sqrt(eigenvalues) of the symmetric PSD matrix
   S_1^(1/2) S_2 S_1^(1/2) (same eigenvalues as S_1 S_2), with negative round-off eigenvalues clamped to 0;
   the result is clamped at 0. scipy.linalg.sqrtm gives the same value (checked in the tests).

Without I3D weights, rFVD is unavailable: `metrics.video.i3d.load_i3d` raises `I3DWeightsMissing`, whose
message says where to put the file. No value is made up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from metrics.video.frames import to_unit_float
from metrics.video.i3d import I3D_INPUT_SIZE

ResizeMode = Literal["short_side_crop", "squash"]
RESIZE_MODES: tuple[str, ...] = ("short_side_crop", "squash")
DEFAULT_CLIPS_PER_BATCH = 8


def short_side_resize_size(height: int, width: int, size: int = I3D_INPUT_SIZE) -> tuple[int, int]:
    """(H, W) after scaling the short side to `size`, the long side rounded up (the reference's rule)."""
    scale = size / min(height, width)
    if height < width:
        return size, math.ceil(width * scale)
    return math.ceil(height * scale), size


def preprocess_for_i3d(
    frames: torch.Tensor, *, resize: ResizeMode = "short_side_crop", size: int = I3D_INPUT_SIZE
) -> torch.Tensor:
    """Frames `(T, 3, H, W)` (uint8, or floats in [0, 1]) -> `(T, 3, size, size)` float32 in [-1, 1].

    Frames are independent, so a clip can be prepared chunk by chunk as it is decoded; `clip_from_frames`
    then arranges the frames as the I3D's `(3, T, size, size)` input.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected (T, 3, H, W) frames, got shape {tuple(frames.shape)}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize!r}; choose from {RESIZE_MODES}")
    x = to_unit_float(frames, torch.float32)
    height, width = x.shape[-2:]
    if resize == "squash":
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    else:
        target = short_side_resize_size(height, width, size)
        if target != (height, width):
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        top = (x.shape[-2] - size) // 2
        left = (x.shape[-1] - size) // 2
        x = x[..., top : top + size, left : left + size]
    return x * 2 - 1


def clip_from_frames(frames: torch.Tensor) -> torch.Tensor:
    """Prepared frames `(T, 3, S, S)` -> one I3D input clip `(3, T, S, S)` (contiguous)."""
    return frames.transpose(0, 1).contiguous()


@torch.no_grad()
def i3d_features(
    model: nn.Module, clips: torch.Tensor, *, clips_per_batch: int = DEFAULT_CLIPS_PER_BATCH
) -> torch.Tensor:
    """Features `(B, D)` float32 of prepared clips `(B, 3, T, S, S)`, `clips_per_batch` clips at a time."""
    if clips.ndim != 5:
        raise ValueError(f"expected (B, 3, T, S, S) clips, got shape {tuple(clips.shape)}")
    outputs = [
        model(clips[i : i + clips_per_batch]).float() for i in range(0, clips.shape[0], clips_per_batch)
    ]
    return torch.cat(outputs) if outputs else torch.empty(0, 0, device=clips.device)


class FeatureStatistics:
    """Running mean and covariance of feature vectors in float64, merged batch by batch.

    Holds a count, a mean and a centred scatter matrix (sum of outer products of deviations from the
    mean): memory is O(D^2) whatever the number of clips. Batches are merged with Chan et al.'s update,
    which avoids the cancellation of E[x x^T] - mu mu^T.
    """

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        self.dim = dim
        self.count = 0
        self.mean_vector = torch.zeros(dim, dtype=torch.float64, device=device)
        self.scatter = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def update(self, features: torch.Tensor) -> None:
        """Add a batch `(N, D)` of feature vectors."""
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected (N, {self.dim}) features, got shape {tuple(features.shape)}")
        batch = features.detach().to(device=self.mean_vector.device, dtype=torch.float64)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(dim=0)
        centred = batch - batch_mean
        batch_scatter = centred.T @ centred
        total = self.count + n
        delta = batch_mean - self.mean_vector
        self.scatter += batch_scatter + torch.outer(delta, delta) * (self.count * n / total)
        self.mean_vector += delta * (n / total)
        self.count = total

    def merge(self, other: FeatureStatistics) -> None:
        """Add another set's statistics (for statistics gathered in parallel)."""
        if other.dim != self.dim:
            raise ValueError(f"feature sizes differ: {self.dim} vs {other.dim}")
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean_vector.to(self.mean_vector.device) - self.mean_vector
        self.scatter += other.scatter.to(self.scatter.device) + torch.outer(delta, delta) * (
            self.count * other.count / total
        )
        self.mean_vector += delta * (other.count / total)
        self.count = total

    @property
    def mean(self) -> torch.Tensor:
        return self.mean_vector

    @property
    def covariance(self) -> torch.Tensor:
        """Covariance with the N - 1 denominator (needs at least 2 vectors)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, have {self.count}")
        return self.scatter / (self.count - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (matrix + matrix.T))
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> float:
    """tr((S_1 S_2)^(1/2)) for covariance matrices, in float64, via eigendecompositions (clamped)."""
    s1 = sigma1.to(device="cpu", dtype=torch.float64)
    s2 = sigma2.to(device="cpu", dtype=torch.float64)
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eigenvalues = torch.linalg.eigvalsh(0.5 * (middle + middle.T))
    return float(eigenvalues.clamp(min=0).sqrt().sum())


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2), in float64, clamped at 0."""
    m1 = torch.as_tensor(mu1).to(device="cpu", dtype=torch.float64)
    m2 = torch.as_tensor(mu2).to(device="cpu", dtype=torch.float64)
    s1 = torch.as_tensor(sigma1).to(device="cpu", dtype=torch.float64)
    s2 = torch.as_tensor(sigma2).to(device="cpu", dtype=torch.float64)
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.numel(), m1.numel()):
        raise ValueError(
            f"shapes do not fit: mu {tuple(m1.shape)}, {tuple(m2.shape)}; sigma {tuple(s1.shape)}, {tuple(s2.shape)}"
        )
    mean_term = float(((m1 - m2) ** 2).sum())
    value = mean_term + float(torch.trace(s1) + torch.trace(s2)) - 2.0 * trace_sqrt_product(s1, s2)
    return max(value, 0.0)


def fvd_from_statistics(first: FeatureStatistics, second: FeatureStatistics) -> float:
    """FVD between two sets summarised by `FeatureStatistics`."""
    return frechet_distance(first.mean, first.covariance, second.mean, second.covariance)


def fvd_from_features(first: torch.Tensor, second: torch.Tensor) -> float:
    """FVD between two sets of feature vectors `(N1, D)` and `(N2, D)` (each N >= 2)."""
    stats = []
    for features in (first, second):
        statistics = FeatureStatistics(features.shape[1])
        statistics.update(features)
        stats.append(statistics)
    return fvd_from_statistics(stats[0], stats[1])


@dataclass
class FVDAccumulator:
    """Streaming rFVD: feature statistics of the ground-truth and the reconstructed clips."""

    ground_truth: FeatureStatistics
    reconstruction: FeatureStatistics

    @classmethod
    def create(cls, dim: int = 400, device: torch.device | str = "cpu") -> FVDAccumulator:
        return cls(FeatureStatistics(dim, device), FeatureStatistics(dim, device))

    def update(self, ground_truth_features: torch.Tensor, reconstruction_features: torch.Tensor) -> None:
        self.ground_truth.update(ground_truth_features)
        self.reconstruction.update(reconstruction_features)

    def compute(self) -> float:
        return fvd_from_statistics(self.reconstruction, self.ground_truth)


__all__ = [
    "FVDAccumulator",
    "FeatureStatistics",
    "RESIZE_MODES",
    "ResizeMode",
    "clip_from_frames",
    "frechet_distance",
    "fvd_from_features",
    "fvd_from_statistics",
    "i3d_features",
    "preprocess_for_i3d",
    "short_side_resize_size",
    "trace_sqrt_product",
]
