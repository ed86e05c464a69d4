"""Reconstruction metrics of video pairs, end to end: decode, SSIM, PSNR and rFVD features (no Django).

`evaluate_video_pairs` streams (ground truth, reconstruction) file pairs through `stream_video_pairs`
(threads decode, chunks go to the device), computes per-frame SSIM and PSNR on the device as chunks arrive,
prepares each chunk for the I3D, and runs the I3D on whole clips (every frame of a video unless
`fvd_max_frames` caps it) in batches, accumulating the rFVD statistics streaming. Memory is bounded by the
decode queue (see `metrics.video.decode`) plus, on the device, the prepared frames of the videos in flight
(`T * 3 * 224 * 224 * 4` bytes per video and side, 30 MB for 50 frames) and one I3D batch.

Aggregation (see `metrics.video.ssim` and `metrics.video.psnr` for the per-frame definitions): SSIM and PSNR
are averaged over each video's frames, then over videos; `psnr_video_mse` is the mean over videos of the
PSNR of each video's mean MSE. rFVD compares the reconstructions' I3D features with the ground truth's
(`metrics.video.fvd`); without an I3D it is None and `fvd_unavailable` says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from metrics.video.decode import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_PREFETCH_CHUNKS,
    DEFAULT_WORKERS,
    DecodeStats,
    LengthMismatch,
    PathLike,
    stream_video_pairs,
)
from metrics.video.frames import thwc_to_tchw
from metrics.video.fvd import FVDAccumulator, ResizeMode, clip_from_frames, i3d_features, preprocess_for_i3d
from metrics.video.psnr import mse_per_frame, psnr_from_mse, psnr_per_frame
from metrics.video.ssim import SsimVariant, ssim_per_frame

DEFAULT_CLIPS_PER_BATCH = 4


@dataclass(frozen=True)
class VideoPairScores:
    index: int
    frames: int
    ssim: float
    psnr: float
    psnr_video_mse: float


@dataclass
class StageTimes:
    """Seconds per stage. With `profile=True` the device is synchronised after each stage, so the device
    stages are measured; otherwise they only count the host's time to queue the work."""

    total_s: float = 0.0
    decode_worker_s: float = 0.0  # summed over decode threads
    decode_wait_s: float = 0.0  # the consumer waiting for decoded chunks
    transfer_s: float = 0.0  # host-to-device copies
    ssim_psnr_s: float = 0.0
    i3d_prepare_s: float = 0.0
    i3d_s: float = 0.0
    frames: int = 0


@dataclass
class ReconstructionMetrics:
    videos: list[VideoPairScores]
    ssim: float
    psnr: float
    psnr_video_mse: float
    fvd: float | None
    fvd_unavailable: str | None
    times: StageTimes = field(default_factory=StageTimes)


@dataclass
class _VideoState:
    frames: int = 0
    ssim_sum: torch.Tensor | None = None
    psnr_sum: torch.Tensor | None = None
    mse_sum: torch.Tensor | None = None
    truth_clip: list[torch.Tensor] = field(default_factory=list)
    recon_clip: list[torch.Tensor] = field(default_factory=list)


def _add(total: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    return value if total is None else total + value


def evaluate_video_pairs(
    pairs: Sequence[tuple[PathLike, PathLike]],
    *,
    device: torch.device | str = "cpu",
    i3d: nn.Module | None = None,
    fvd_unavailable: str | None = None,
    ssim_variant: SsimVariant = "wang",
    fvd_resize: ResizeMode = "short_side_crop",
    fvd_max_frames: int | None = None,
    clips_per_batch: int = DEFAULT_CLIPS_PER_BATCH,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    workers: int = DEFAULT_WORKERS,
    prefetch_chunks: int = DEFAULT_PREFETCH_CHUNKS,
    decoder_threads: int = 1,
    decode_processes: bool = False,
    on_length_mismatch: LengthMismatch = "error",
    profile: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReconstructionMetrics:
    """SSIM, PSNR and (with an `i3d`) rFVD of reconstructions against their ground truth.

    `pairs`: (ground-truth path, reconstruction path) per video. `i3d`: a module from
    `metrics.video.i3d.load_i3d` on `device`, or None (then `fvd_unavailable` is reported, e.g. the
    message of `I3DWeightsMissing`). rFVD needs at least two videos. `progress(done, total)` is called as
    videos finish. `workers`, `decoder_threads`, `decode_processes` (processes instead of threads, faster
    on many cores, not inside a daemonic process), `chunk_frames` and `prefetch_chunks` tune decoding
    (`metrics.video.decode.stream_video_pairs`); `profile=True` synchronises the device after each stage
    so that `times` attributes device time to stages.
    """
    if not pairs:
        raise ValueError("no video pairs to evaluate")
    target = torch.device(device)
    cuda = target.type == "cuda"

    def synchronize() -> None:
        if profile and cuda:
            torch.cuda.synchronize(target)

    times = StageTimes()
    decode_stats = DecodeStats()
    started = time.perf_counter()
    states: dict[int, _VideoState] = {}
    finished: dict[int, tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    fvd: FVDAccumulator | None = None
    pending_truth: list[torch.Tensor] = []
    pending_recon: list[torch.Tensor] = []

    def run_i3d() -> None:
        nonlocal fvd
        if i3d is None or not pending_truth:
            return
        began = time.perf_counter()
        with torch.no_grad():
            features = i3d(torch.stack(pending_truth + pending_recon)).float()
        if fvd is None:
            fvd = FVDAccumulator.create(dim=int(features.shape[1]), device=target)
        count = len(pending_truth)
        fvd.update(features[:count], features[count:])
        pending_truth.clear()
        pending_recon.clear()
        synchronize()
        times.i3d_s += time.perf_counter() - began

    for chunk in stream_video_pairs(
        pairs,
        device=target,
        chunk_frames=chunk_frames,
        workers=workers,
        prefetch_chunks=prefetch_chunks,
        decoder_threads=decoder_threads,
        processes=decode_processes,
        on_length_mismatch=on_length_mismatch,
        stats=decode_stats,
        sync_transfers=profile,
    ):
        state = states.setdefault(chunk.video_index, _VideoState())
        truth = thwc_to_tchw(chunk.ground_truth)
        recon = thwc_to_tchw(chunk.reconstruction)
        began = time.perf_counter()
        state.ssim_sum = _add(
            state.ssim_sum, ssim_per_frame(recon, truth, variant=ssim_variant).double().sum()
        )
        mse = mse_per_frame(recon, truth)
        state.psnr_sum = _add(state.psnr_sum, psnr_from_mse(mse).sum())
        state.mse_sum = _add(state.mse_sum, mse.sum())
        state.frames += int(truth.shape[0])
        synchronize()
        times.ssim_psnr_s += time.perf_counter() - began

        if i3d is not None:
            began = time.perf_counter()
            keep = truth.shape[0]
            if fvd_max_frames is not None:
                keep = max(0, min(keep, fvd_max_frames - chunk.first_frame))
            if keep:
                state.truth_clip.append(preprocess_for_i3d(truth[:keep], resize=fvd_resize))
                state.recon_clip.append(preprocess_for_i3d(recon[:keep], resize=fvd_resize))
            synchronize()
            times.i3d_prepare_s += time.perf_counter() - began

        if chunk.is_last:
            del states[chunk.video_index]
            assert state.ssim_sum is not None and state.psnr_sum is not None and state.mse_sum is not None
            finished[chunk.video_index] = (state.frames, state.ssim_sum, state.psnr_sum, state.mse_sum)
            if i3d is not None and state.truth_clip:
                truth_clip = clip_from_frames(torch.cat(state.truth_clip))
                recon_clip = clip_from_frames(torch.cat(state.recon_clip))
                if pending_truth and pending_truth[0].shape != truth_clip.shape:
                    run_i3d()
                pending_truth.append(truth_clip)
                pending_recon.append(recon_clip)
                if len(pending_truth) >= clips_per_batch:
                    run_i3d()
            if progress is not None:
                progress(len(finished), len(pairs))
    run_i3d()

    order = sorted(finished)
    frames = [finished[i][0] for i in order]
    sums = torch.stack([torch.stack([finished[i][1], finished[i][2], finished[i][3]]) for i in order]).cpu()
    counts = torch.tensor(frames, dtype=torch.float64)
    ssim_means = sums[:, 0] / counts
    psnr_means = sums[:, 1] / counts
    psnr_video_mse = psnr_from_mse(sums[:, 2] / counts)
    videos = [
        VideoPairScores(i, frames[k], float(ssim_means[k]), float(psnr_means[k]), float(psnr_video_mse[k]))
        for k, i in enumerate(order)
    ]

    fvd_value: float | None = None
    if i3d is not None:
        if fvd is not None and fvd.ground_truth.count >= 2:
            fvd_value = fvd.compute()
        else:
            fvd_unavailable = "rFVD needs at least two videos"
    elif fvd_unavailable is None:
        fvd_unavailable = "no I3D model was given"

    times.total_s = time.perf_counter() - started
    times.decode_worker_s = decode_stats.decode_worker_s
    times.decode_wait_s = decode_stats.wait_s
    times.transfer_s = decode_stats.transfer_s
    times.frames = decode_stats.frames
    return ReconstructionMetrics(
        videos=videos,
        ssim=float(ssim_means.mean()),
        psnr=float(psnr_means.mean()),
        psnr_video_mse=float(psnr_video_mse.mean()),
        fvd=fvd_value,
        fvd_unavailable=None if fvd_value is not None else fvd_unavailable,
        times=times,
    )


__all__ = ["ReconstructionMetrics", "StageTimes", "VideoPairScores", "evaluate_video_pairs"]


def measure_pair(
    truth: torch.Tensor, recon: torch.Tensor, *, device: torch.device | str, i3d: nn.Module | None
) -> dict[str, Any]:
    """SSIM, PSNR and (with an I3D) the I3D features of one ground-truth clip and its reconstruction, both
    uint8 (T, H, W, 3) already decoded (a VAE's output, say), with the same definitions as
    `evaluate_video_pairs`. The features are float32 numpy arrays, or None without an I3D."""
    truth_frames = thwc_to_tchw(truth.to(device))
    recon_frames = thwc_to_tchw(recon.to(device))
    figures: dict[str, Any] = {
        "frames": int(truth.shape[0]),
        "height": int(truth.shape[1]),
        "width": int(truth.shape[2]),
        "ssim": float(ssim_per_frame(recon_frames, truth_frames).double().mean()),
        "psnr": float(psnr_per_frame(recon_frames, truth_frames).mean()),
        "truth_features": None,
        "reconstruction_features": None,
    }
    if i3d is not None:
        clips = torch.stack(
            [
                clip_from_frames(preprocess_for_i3d(truth_frames)),
                clip_from_frames(preprocess_for_i3d(recon_frames)),
            ]
        )
        features = i3d_features(i3d, clips, clips_per_batch=2).cpu().numpy()
        figures["truth_features"], figures["reconstruction_features"] = features[0], features[1]
    return figures
