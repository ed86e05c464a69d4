"""Reconstruction metrics of videos, streamed chunk by chunk: SSIM, PSNR and I3D features for rFVD (no Django).

Two entry points yield one `VideoPairScores` per video as soon as it is measured; the VAE-evaluation job
calls them, and `perf/video_metrics.py` times them:
- `measure_video_pairs`: (ground truth, reconstruction) file pairs, decoded by `stream_video_pairs`
  (threads or processes, chunks copied to the device as they come);
- `measure_vae_reconstructions`: ground-truth files reconstructed by a video VAE (`metrics.video.vae`), each
  decoded with `iter_frame_chunks` in chunks of the VAE's `chunk_frames` and reconstructed chunk by chunk.

Per chunk, per-frame SSIM and PSNR are computed on the device and summed, and the frames are prepared for
the I3D (`preprocess_for_i3d`: frames are independent); at a video's end its prepared frames make one I3D
clip, run in batches of `clips_per_batch` clips. `evaluate_video_pairs` aggregates `measure_video_pairs`
into a whole table (with the rFVD).

Memory, however long the videos are:
- host: `measure_video_pairs` holds the decoded frames of `stream_video_pairs`, at most
  `metrics.video.decode.host_pair_buffer_bound(H, W, ...)` bytes with threads (17 chunk pairs of
  2 x 16 x H x W x 3 bytes with the defaults), a fixed shared-memory ring with processes;
  `measure_vae_reconstructions` holds one decoded chunk, `chunk_frames * H * W * 3` bytes, and its
  reconstruction (without `chunk_frames` the VAE reconstructs the clip in one piece, so the clip is held
  whole: it is the VAE's input);
- device: per video in flight, one chunk pair and, with an I3D, its prepared frames
  (`T * 3 * 224 * 224 * 4` bytes per side: 30 MB for 50 frames; `fvd_max_frames` caps T), plus one batch
  of I3D clips.

Aggregation (see `metrics.video.ssim` and `metrics.video.psnr` for the per-frame definitions): SSIM and PSNR
are averaged over each video's frames, then over videos; `psnr_video_mse` is the mean over videos of the
PSNR of each video's mean MSE. rFVD compares the reconstructions' I3D features with the ground truth's
(`metrics.video.fvd`); without an I3D it is None and `fvd_unavailable` says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from metrics.video.decode import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_PREFETCH_CHUNKS,
    DEFAULT_WORKERS,
    DecodeStats,
    LengthMismatch,
    PathLike,
    VideoFailed,
    iter_frame_chunks,
    processes_allowed,
    stream_video_pairs,
)
from metrics.video.frames import thwc_to_tchw
from metrics.video.fvd import FVDAccumulator, ResizeMode, clip_from_frames, preprocess_for_i3d
from metrics.video.psnr import mse_per_frame, psnr_from_mse
from metrics.video.ssim import SsimVariant, ssim_per_frame

if TYPE_CHECKING:
    from metrics.video.vae import VideoVae

DEFAULT_CLIPS_PER_BATCH = 4


@dataclass(frozen=True)
class VideoPairScores:
    """One video's figures. `height`/`width`: the compared frames (a VAE's centre crop). The I3D features
    `(D,)` float32 of the whole ground-truth and reconstructed clips are on the device, None without an I3D."""

    index: int
    frames: int
    ssim: float
    psnr: float
    psnr_video_mse: float
    height: int
    width: int
    truth_features: torch.Tensor | None = field(default=None, repr=False)
    reconstruction_features: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class StageTimes:
    """Seconds per stage. With `profile=True` the device is synchronised after each stage, so the device
    stages are measured; otherwise they only count the host's time to queue the work."""

    total_s: float = 0.0
    decode_worker_s: float = 0.0  # summed over decode threads
    decode_wait_s: float = 0.0  # the consumer waiting for decoded chunks
    transfer_s: float = 0.0  # host-to-device copies
    reconstruct_s: float = 0.0  # a VAE's encode + decode
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


class _Stages:
    """Adds the seconds of each stage to a `StageTimes`, synchronising a CUDA device first when profiling."""

    def __init__(self, times: StageTimes, device: torch.device, profile: bool) -> None:
        self.times = times
        self.sync = profile and device.type == "cuda"
        self.device = device

    def add(self, stage: str, began: float) -> None:
        if self.sync:
            torch.cuda.synchronize(self.device)
        setattr(self.times, stage, getattr(self.times, stage) + time.perf_counter() - began)


@dataclass(frozen=True)
class _Options:
    ssim_variant: SsimVariant
    fvd_resize: ResizeMode
    fvd_max_frames: int | None
    with_i3d: bool


@dataclass
class _VideoSums:
    """Running sums of one video's per-frame figures, and its frames prepared for the I3D."""

    frames: int = 0
    height: int = 0
    width: int = 0
    ssim_sum: torch.Tensor | None = None
    psnr_sum: torch.Tensor | None = None
    mse_sum: torch.Tensor | None = None
    truth_prepared: list[torch.Tensor] = field(default_factory=list)
    recon_prepared: list[torch.Tensor] = field(default_factory=list)

    def add_chunk(
        self,
        truth_thwc: torch.Tensor,
        recon_thwc: torch.Tensor,
        first_frame: int,
        options: _Options,
        stages: _Stages,
    ) -> None:
        """Add consecutive uint8 frames `(t, H, W, 3)` of the ground truth and the reconstruction."""
        truth, recon = thwc_to_tchw(truth_thwc), thwc_to_tchw(recon_thwc)
        began = time.perf_counter()
        ssim_sum = ssim_per_frame(recon, truth, variant=options.ssim_variant).double().sum()
        mse = mse_per_frame(recon, truth)
        self.ssim_sum = ssim_sum if self.ssim_sum is None else self.ssim_sum + ssim_sum
        psnr_sum, mse_sum = psnr_from_mse(mse).sum(), mse.sum()
        self.psnr_sum = psnr_sum if self.psnr_sum is None else self.psnr_sum + psnr_sum
        self.mse_sum = mse_sum if self.mse_sum is None else self.mse_sum + mse_sum
        self.frames += int(truth.shape[0])
        self.height, self.width = int(truth.shape[-2]), int(truth.shape[-1])
        stages.add("ssim_psnr_s", began)
        if options.with_i3d:
            began = time.perf_counter()
            keep = int(truth.shape[0])
            if options.fvd_max_frames is not None:
                keep = max(0, min(keep, options.fvd_max_frames - first_frame))
            if keep:
                self.truth_prepared.append(preprocess_for_i3d(truth[:keep], resize=options.fvd_resize))
                self.recon_prepared.append(preprocess_for_i3d(recon[:keep], resize=options.fvd_resize))
            stages.add("i3d_prepare_s", began)

    def scores(self, index: int) -> VideoPairScores:
        if self.ssim_sum is None or self.psnr_sum is None or self.mse_sum is None:
            raise ValueError("no video frames")
        ssim_sum, psnr_sum, mse_sum = torch.stack([self.ssim_sum, self.psnr_sum, self.mse_sum]).cpu()
        return VideoPairScores(
            index=index,
            frames=self.frames,
            ssim=float(ssim_sum / self.frames),
            psnr=float(psnr_sum / self.frames),
            psnr_video_mse=float(psnr_from_mse(mse_sum / self.frames)),
            height=self.height,
            width=self.width,
        )


class _I3DBatches:
    """Runs the I3D on whole clips, `clips_per_batch` videos at a time (a batch holds clips of one shape)."""

    def __init__(self, i3d: nn.Module | None, clips_per_batch: int, stages: _Stages) -> None:
        self.i3d = i3d
        self.clips_per_batch = max(1, clips_per_batch)
        self.stages = stages
        self.pending: list[tuple[VideoPairScores, torch.Tensor, torch.Tensor]] = []

    def add(self, scores: VideoPairScores, video: _VideoSums) -> list[VideoPairScores]:
        """The videos whose figures are complete now that this one is measured (in order of completion)."""
        if self.i3d is None or not video.truth_prepared:
            return [scores]
        truth_clip = clip_from_frames(torch.cat(video.truth_prepared))
        recon_clip = clip_from_frames(torch.cat(video.recon_prepared))
        done = self.flush() if self.pending and self.pending[0][1].shape != truth_clip.shape else []
        self.pending.append((scores, truth_clip, recon_clip))
        if len(self.pending) >= self.clips_per_batch:
            done += self.flush()
        return done

    def flush(self) -> list[VideoPairScores]:
        if self.i3d is None or not self.pending:
            return []
        began = time.perf_counter()
        clips = torch.stack([p[1] for p in self.pending] + [p[2] for p in self.pending])
        with torch.no_grad():
            features = self.i3d(clips).float()
        count = len(self.pending)
        done = [
            replace(scores, truth_features=features[k], reconstruction_features=features[count + k])
            for k, (scores, _, _) in enumerate(self.pending)
        ]
        self.pending.clear()
        self.stages.add("i3d_s", began)
        return done


def measure_video_pairs(
    pairs: Sequence[tuple[PathLike, PathLike]],
    *,
    device: torch.device | str = "cpu",
    i3d: nn.Module | None = None,
    ssim_variant: SsimVariant = "wang",
    fvd_resize: ResizeMode = "short_side_crop",
    fvd_max_frames: int | None = None,
    clips_per_batch: int = DEFAULT_CLIPS_PER_BATCH,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    workers: int = DEFAULT_WORKERS,
    prefetch_chunks: int = DEFAULT_PREFETCH_CHUNKS,
    decoder_threads: int = 1,
    decode_processes: bool | None = None,
    on_length_mismatch: LengthMismatch = "error",
    max_frames: int | None = None,
    profile: bool = False,
    times: StageTimes | None = None,
) -> Iterator[VideoPairScores]:
    """SSIM, PSNR and (with an `i3d`) the I3D features of each (ground truth, reconstruction) file pair,
    yielded per video as soon as it is measured (`index` says which pair; videos finish out of order).

    `i3d`: a module from `metrics.video.i3d.load_i3d` on `device`, or None. `max_frames` keeps the first
    frames of each file; `on_length_mismatch="truncate"` compares the common prefix of videos of different
    lengths. Decoding (`metrics.video.decode.stream_video_pairs`): `workers` threads, or processes with
    `decode_processes=True` (default: on a CUDA device when this process may start processes),
    `chunk_frames`, `prefetch_chunks`, `decoder_threads`. Memory: see the module docstring. A video that
    cannot be decoded or measured raises `VideoFailed` with its index. `times`, when given, receives the
    seconds per stage (`profile=True` synchronises the device after each stage so that they are exact).
    """
    target = torch.device(device)
    times = times if times is not None else StageTimes()
    stages = _Stages(times, target, profile)
    options = _Options(ssim_variant, fvd_resize, fvd_max_frames, with_i3d=i3d is not None)
    if decode_processes is None:
        decode_processes = target.type == "cuda" and processes_allowed()
    decode_stats = DecodeStats()
    batches = _I3DBatches(i3d, clips_per_batch, stages)
    videos: dict[int, _VideoSums] = {}
    started = time.perf_counter()
    try:
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
            max_frames=max_frames,
        ):
            video = videos.setdefault(chunk.video_index, _VideoSums())
            try:
                video.add_chunk(chunk.ground_truth, chunk.reconstruction, chunk.first_frame, options, stages)
                if chunk.is_last:
                    del videos[chunk.video_index]
                    yield from batches.add(video.scores(chunk.video_index), video)
            except ValueError as error:
                raise VideoFailed(pairs[chunk.video_index], chunk.video_index, error) from error
        yield from batches.flush()
    finally:
        times.total_s += time.perf_counter() - started
        times.decode_worker_s += decode_stats.decode_worker_s
        times.decode_wait_s += decode_stats.wait_s
        times.transfer_s += decode_stats.transfer_s
        times.frames += decode_stats.frames


def _vae_clip_chunks(
    vae: VideoVae, path: PathLike, *, chunk_frames: int | None, max_frames: int | None, decoder_threads: int
) -> Iterator[torch.Tensor]:
    """The ground-truth clip that `reconstruct(vae, frames, chunk_frames=...)` reconstructs, decoded as the
    consecutive chunks it reconstructs independently (one chunk, the whole clip, without `chunk_frames`)."""
    from metrics.video.vae import usable_clip

    if chunk_frames is None:
        chunks = list(iter_frame_chunks(path, max_frames=max_frames, decoder_threads=decoder_threads))
        if chunks:
            yield usable_clip(vae, torch.cat(chunks))
        return
    # Full chunks are valid VAE lengths as they are; the last, shorter one keeps its longest valid prefix.
    for chunk in iter_frame_chunks(
        path, chunk_frames=chunk_frames, max_frames=max_frames, decoder_threads=decoder_threads
    ):
        yield usable_clip(vae, chunk, chunk_frames=chunk_frames)


def measure_vae_reconstructions(
    paths: Sequence[PathLike],
    vae: VideoVae,
    *,
    device: torch.device | str | None = None,
    i3d: nn.Module | None = None,
    chunk_frames: int | None = None,
    max_frames: int | None = None,
    ssim_variant: SsimVariant = "wang",
    fvd_resize: ResizeMode = "short_side_crop",
    fvd_max_frames: int | None = None,
    clips_per_batch: int = DEFAULT_CLIPS_PER_BATCH,
    decoder_threads: int = 0,
    profile: bool = False,
    times: StageTimes | None = None,
) -> Iterator[VideoPairScores]:
    """SSIM, PSNR and (with an `i3d`) the I3D features of each ground-truth file against its reconstruction by
    `vae`, yielded per video (in order; features complete a batch of `clips_per_batch` videos at a time).

    The figures are those of `usable_clip(vae, frames, chunk_frames=...)` against
    `reconstruct(vae, frames, chunk_frames=...)` on the first `max_frames` frames (`metrics.video.vae`), but
    the video is decoded and reconstructed `chunk_frames` frames at a time (1 + frame_step * k; without it the
    VAE takes the whole clip at once). Metrics run on `device` (default: the VAE's). A video that cannot be
    decoded or measured raises `VideoFailed` with its index. Memory: see the module docstring.
    """
    from metrics.video.vae import reconstruct_chunk

    target = torch.device(device) if device is not None else vae.device
    times = times if times is not None else StageTimes()
    stages = _Stages(times, target, profile)
    options = _Options(ssim_variant, fvd_resize, fvd_max_frames, with_i3d=i3d is not None)
    batches = _I3DBatches(i3d, clips_per_batch, stages)
    started = time.perf_counter()
    try:
        for index, path in enumerate(paths):
            video = _VideoSums()
            try:
                for truth in _vae_clip_chunks(
                    vae,
                    path,
                    chunk_frames=chunk_frames,
                    max_frames=max_frames,
                    decoder_threads=decoder_threads,
                ):
                    began = time.perf_counter()
                    recon = reconstruct_chunk(vae, truth).to(target)
                    stages.add("reconstruct_s", began)
                    video.add_chunk(truth.to(target), recon, video.frames, options, stages)
                scores = video.scores(index)
            except ValueError as error:
                raise VideoFailed([path], index, error) from error
            times.frames += video.frames
            yield from batches.add(scores, video)
        yield from batches.flush()
    finally:
        times.total_s += time.perf_counter() - started


def evaluate_video_pairs(
    pairs: Sequence[tuple[PathLike, PathLike]],
    *,
    fvd_unavailable: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    **measure_options: Any,
) -> ReconstructionMetrics:
    """The whole table of `measure_video_pairs(pairs, **measure_options)`: per-video figures in pair order,
    their means and the rFVD of their I3D features (needs an `i3d` and at least two videos; otherwise
    `fvd_unavailable` says why). `progress(done, total)` is called as videos finish."""
    if not pairs:
        raise ValueError("no video pairs to evaluate")
    times = StageTimes()
    videos: list[VideoPairScores] = []
    fvd: FVDAccumulator | None = None
    for scores in measure_video_pairs(pairs, times=times, **measure_options):
        if scores.truth_features is not None and scores.reconstruction_features is not None:
            if fvd is None:
                fvd = FVDAccumulator.create(
                    dim=int(scores.truth_features.shape[0]), device=scores.truth_features.device
                )
            fvd.update(scores.truth_features[None], scores.reconstruction_features[None])
        videos.append(scores)
        if progress is not None:
            progress(len(videos), len(pairs))
    videos.sort(key=lambda scores: scores.index)
    fvd_value: float | None = None
    if measure_options.get("i3d") is not None:
        if fvd is not None and fvd.ground_truth.count >= 2:
            fvd_value = fvd.compute()
        else:
            fvd_unavailable = "rFVD needs at least two videos"
    elif fvd_unavailable is None:
        fvd_unavailable = "no I3D model was given"
    return ReconstructionMetrics(
        videos=videos,
        ssim=sum(v.ssim for v in videos) / len(videos),
        psnr=sum(v.psnr for v in videos) / len(videos),
        psnr_video_mse=sum(v.psnr_video_mse for v in videos) / len(videos),
        fvd=fvd_value,
        fvd_unavailable=None if fvd_value is not None else fvd_unavailable,
        times=times,
    )


__all__ = [
    "ReconstructionMetrics",
    "StageTimes",
    "VideoPairScores",
    "evaluate_video_pairs",
    "measure_vae_reconstructions",
    "measure_video_pairs",
]
