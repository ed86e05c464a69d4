"""Speed of the reconstruction metrics (SSIM, PSNR, rFVD features) against reference implementations.

Prints figures and ratios measured side by side in one run on one machine:

1. `ssim`: SSIM+PSNR frame pairs per second at 480x768 (uint8 RGB, synthetic structured content) for
   - the per-frame OpenCV approach of common_metrics_on_video_quality (`calculate_ssim_function` and
     `img_psnr` imported from `--reference-dir`, a checkout of github.com/JunyaoHu/common_metrics_on_video_quality;
     without it, an equivalent per-frame cv2 re-implementation, labelled as such),
   - scikit-image (`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`
     and `peak_signal_noise_ratio`), frame by frame,
   - ours (`metrics.video.ssim` / `metrics.video.psnr`) batched on the CPU and, with CUDA, on the GPU (frames
     already on the device, and including the copy from pinned host memory),
   with the largest differences between our values and each reference's.
2. `fvd`: I3D feature extraction clips per second (uint8 frames on the device -> resize/crop -> I3D -> 400
   features). Without `--i3d-path` the I3D has random weights: fine for timing, and said in the output.
3. `workload`: the Table-13 workload end to end through the VAE-evaluation job's own entry point,
   `metrics.video.reconstruction.measure_video_pairs`, called as the job calls it (same defaults; decoding
   options given here override them): `--videos` ground-truth/reconstruction pairs of `--video-frames`
   frames at HxW (synthetic H.264 videos written first to `--cache-dir`, not timed; reconstructions are the
   same scenes with blocky noise), streamed, SSIM + PSNR + I3D features, rFVD from the features as the
   job's summary computes it; prints where the time goes.
4. `vae`: the job's VAE mode, `measure_vae_reconstructions`, on `--vae-videos` of those ground-truth files
   (a tiny random-weight Wan VAE without `--vae-path`: the pipeline's cost, not a real VAE's).
5. `scores`: the automatic-score job's entry point, `metrics.video.scoring.score_videos` (CLIP frames and
   motion at the job's settings) on the ground-truth files (a random-weight CLIP without `--clip-model`).

Defaults follow the device: on CUDA the full Table-13 workload (1000 pairs x 50 frames); on a CPU a small
one (8 pairs x 16 frames) that runs in a few minutes on two cores. Decoding defaults are the job's: threads,
or processes on CUDA where the process may start them (inside Celery's prefork pool the job decodes in
threads). The reference checkout is not part of this repository: fetch it anywhere (e.g. into the
git-ignored `.ref/`) and pass its path.

Examples:
    python perf/video_metrics.py --reference-dir .ref/common_metrics_on_video_quality                # CPU, small
    python perf/video_metrics.py --reference-dir .ref/common_metrics_on_video_quality --videos 20    # CPU, larger
    python perf/video_metrics.py --device cuda --reference-dir .ref/common_metrics_on_video_quality  # Table 13
    python perf/video_metrics.py --sections workload,vae,scores --height 64 --width 96 --videos 4 \
        --video-frames 9 --vae-videos 2                                                              # jobs, tiny CPU
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.video.decode import probe_video, processes_allowed
from metrics.video.fvd import clip_from_frames, fvd_from_features, preprocess_for_i3d
from metrics.video.i3d import I3D, load_i3d
from metrics.video.psnr import psnr_per_frame
from metrics.video.reconstruction import (
    StageTimes,
    VideoPairScores,
    measure_vae_reconstructions,
    measure_video_pairs,
)
from metrics.video.scoring import VideoToScore, score_videos
from metrics.video.ssim import ssim_per_frame

# ---------------------------------------------------------------------------------------------- content


def structured_frames(count: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth (smooth gradients, edges, texture, moving) and a degraded copy (blur + noise), uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    truth = np.empty((count, height, width, 3), dtype=np.uint8)
    recon = np.empty_like(truth)
    for t in range(count):
        base = 127.5 + 90 * np.sin(xx / (17 + t % 5) + t) * np.cos(yy / 23 - t / 3)
        edges = 60.0 * ((((xx + 4 * t) // 32) + (yy // 32)) % 2)
        texture = rng.normal(0, 12, size=(height, width)).astype(np.float32)
        frame = np.stack([base + edges, base - edges + texture, 255 - base + texture / 2], axis=-1)
        truth[t] = np.clip(frame, 0, 255).astype(np.uint8)
        blurred = cv2.GaussianBlur(truth[t], (3, 3), 0.8).astype(np.float32)
        recon[t] = np.clip(blurred + rng.normal(0, 4, size=blurred.shape), 0, 255).astype(np.uint8)
    return truth, recon


# ------------------------------------------------------------------------------------------- references


def load_reference(
    reference_dir: str | None,
) -> tuple[str, Callable[[np.ndarray, np.ndarray], tuple[float, float]]]:
    """Per-frame SSIM+PSNR of common_metrics_on_video_quality, called on (3, H, W) floats in [0, 1] as its
    calculate_ssim/calculate_psnr call them; or an equivalent cv2 re-implementation when no checkout is given."""
    if reference_dir:
        root = Path(reference_dir)
        if importlib.util.find_spec("tqdm") is None:  # the reference imports tqdm only for progress bars
            sys.modules["tqdm"] = types.SimpleNamespace(tqdm=lambda x, *a, **k: x)  # type: ignore[assignment]
        modules = {}
        for name in ("calculate_ssim", "calculate_psnr"):
            spec = importlib.util.spec_from_file_location(f"reference_{name}", root / f"{name}.py")
            if spec is None or spec.loader is None:
                raise SystemExit(f"cannot import {name}.py from {root}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules[name] = module
        ssim_fn = modules["calculate_ssim"].calculate_ssim_function
        psnr_fn = modules["calculate_psnr"].img_psnr

        def reference(truth_chw01: np.ndarray, recon_chw01: np.ndarray) -> tuple[float, float]:
            return float(ssim_fn(truth_chw01, recon_chw01)), float(psnr_fn(truth_chw01, recon_chw01))

        return f"common_metrics_on_video_quality per-frame OpenCV (imported from {root})", reference

    kernel = cv2.getGaussianKernel(11, 1.5)
    window = kernel @ kernel.T

    def channel_ssim(x: np.ndarray, y: np.ndarray) -> float:
        x, y = x.astype(np.float64), y.astype(np.float64)
        c1, c2 = 0.01**2, 0.03**2
        mu_x = cv2.filter2D(x, -1, window)[5:-5, 5:-5]
        mu_y = cv2.filter2D(y, -1, window)[5:-5, 5:-5]
        var_x = cv2.filter2D(x * x, -1, window)[5:-5, 5:-5] - mu_x**2
        var_y = cv2.filter2D(y * y, -1, window)[5:-5, 5:-5] - mu_y**2
        cov = cv2.filter2D(x * y, -1, window)[5:-5, 5:-5] - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
            (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        )
        return float(ssim_map.mean())

    def fallback(truth_chw01: np.ndarray, recon_chw01: np.ndarray) -> tuple[float, float]:
        ssim_value = float(np.mean([channel_ssim(truth_chw01[c], recon_chw01[c]) for c in range(3)]))
        mse = float(np.mean((truth_chw01 - recon_chw01) ** 2))
        return ssim_value, 100.0 if mse < 1e-10 else 20 * np.log10(1 / np.sqrt(mse))

    return (
        "per-frame OpenCV, equivalent re-implementation (no --reference-dir given; NOT the reference code)",
        fallback,
    )


def skimage_pair(truth_hwc: np.ndarray, recon_hwc: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ssim_value = structural_similarity(
        truth_hwc,
        recon_hwc,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    return float(ssim_value), float(peak_signal_noise_ratio(truth_hwc, recon_hwc, data_range=255))


# ---------------------------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    run()
    synchronize(device)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def ours_values(truth: torch.Tensor, recon: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame SSIM and PSNR of NHWC uint8 frames already on their device, `batch` frames at a time."""
    ssim_parts, psnr_parts = [], []
    for start in range(0, truth.shape[0], batch):
        t = truth[start : start + batch].permute(0, 3, 1, 2)
        r = recon[start : start + batch].permute(0, 3, 1, 2)
        ssim_parts.append(ssim_per_frame(r, t, frames_per_pass=batch))
        psnr_parts.append(psnr_per_frame(r, t))
    return torch.cat(ssim_parts), torch.cat(psnr_parts)


def section_ssim(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    print(f"\n== SSIM+PSNR at {args.height}x{args.width} (uint8 RGB frame pairs) ==")
    reference_count = args.reference_frames
    ours_count = args.ssim_frames
    truth, recon = structured_frames(
        max(reference_count, min(ours_count, 64)), args.height, args.width, seed=1
    )
    reference_name, reference = load_reference(args.reference_dir)

    truth01 = [f.transpose(2, 0, 1).astype(np.float32) / 255 for f in truth[:reference_count]]
    recon01 = [f.transpose(2, 0, 1).astype(np.float32) / 255 for f in recon[:reference_count]]
    began = time.perf_counter()
    reference_values = np.array([reference(a, b) for a, b in zip(truth01, recon01, strict=True)])
    reference_fps = reference_count / (time.perf_counter() - began)

    began = time.perf_counter()
    skimage_values = np.array(
        [skimage_pair(a, b) for a, b in zip(truth[:reference_count], recon[:reference_count], strict=True)]
    )
    skimage_fps = reference_count / (time.perf_counter() - began)

    rows = [(reference_name, reference_fps), ("scikit-image, frame by frame (float64)", skimage_fps)]
    results = {"reference": reference_name, "reference_fps": reference_fps, "skimage_fps": skimage_fps}

    cpu = torch.device("cpu")
    cpu_truth = torch.from_numpy(truth[:reference_count])
    cpu_recon = torch.from_numpy(recon[:reference_count])
    cpu_batch = min(args.cpu_batch_frames, reference_count)
    cpu_seconds = median_seconds(lambda: ours_values(cpu_truth, cpu_recon, cpu_batch), cpu, repeats=2)
    cpu_fps = reference_count / cpu_seconds
    rows.append((f"ours on CPU, float32, {torch.get_num_threads()} threads, batches of {cpu_batch}", cpu_fps))
    ours_ssim, ours_psnr = (v.double().numpy() for v in ours_values(cpu_truth, cpu_recon, cpu_batch))
    results["ours_cpu_fps"] = cpu_fps
    differences = {
        "cpu_vs_reference": (
            np.abs(ours_ssim - reference_values[:, 0]).max(),
            np.abs(ours_psnr - reference_values[:, 1]).max(),
        ),
        "cpu_vs_skimage": (
            np.abs(ours_ssim - skimage_values[:, 0]).max(),
            np.abs(ours_psnr - skimage_values[:, 1]).max(),
        ),
    }

    if device.type == "cuda":
        # Repeat the distinct frames up to `ours_count` on the device; uint8 NHWC as decoding yields them.
        distinct = torch.from_numpy(truth), torch.from_numpy(recon)
        repeats = -(-ours_count // distinct[0].shape[0])
        gpu_truth = distinct[0].to(device).repeat(repeats, 1, 1, 1)[:ours_count]
        gpu_recon = distinct[1].to(device).repeat(repeats, 1, 1, 1)[:ours_count]
        batch = args.gpu_batch_frames
        seconds = median_seconds(lambda: ours_values(gpu_truth, gpu_recon, batch), device, repeats=5)
        gpu_fps = ours_count / seconds
        rows.append(
            (
                f"ours on {torch.cuda.get_device_name(device)}, frames on the device, batches of {batch}",
                gpu_fps,
            )
        )
        pinned_truth = gpu_truth.cpu().pin_memory()
        pinned_recon = gpu_recon.cpu().pin_memory()

        def with_transfer() -> None:
            for start in range(0, ours_count, batch):
                t = pinned_truth[start : start + batch].to(device, non_blocking=True)
                r = pinned_recon[start : start + batch].to(device, non_blocking=True)
                ours_values(t, r, batch)

        transfer_fps = ours_count / median_seconds(with_transfer, device, repeats=3)
        rows.append(("ours on the GPU, including the copy from pinned host memory", transfer_fps))
        gpu_ssim, gpu_psnr = (
            v.double().cpu().numpy()
            for v in ours_values(gpu_truth[:reference_count], gpu_recon[:reference_count], batch)
        )
        differences["gpu_vs_reference"] = (
            np.abs(gpu_ssim - reference_values[:, 0]).max(),
            np.abs(gpu_psnr - reference_values[:, 1]).max(),
        )
        differences["gpu_vs_skimage"] = (
            np.abs(gpu_ssim - skimage_values[:, 0]).max(),
            np.abs(gpu_psnr - skimage_values[:, 1]).max(),
        )
        results.update(ours_gpu_fps=gpu_fps, ours_gpu_with_transfer_fps=transfer_fps)

    gpu_note = f", ours on the GPU on {ours_count}" if device.type == "cuda" else ""
    print(f"timed on {reference_count} frame pairs (references and ours on the CPU){gpu_note}")
    for name, fps in rows:
        print(f"  {fps:12.1f} frame pairs/s  {fps / reference_fps:9.1f}x reference  {name}")
    for name, (ssim_diff, psnr_diff) in differences.items():
        print(f"  largest difference {name}: SSIM {ssim_diff:.2e}, PSNR {psnr_diff:.2e} dB")
    print(
        f"  mean SSIM {reference_values[:, 0].mean():.6f}, mean PSNR {reference_values[:, 1].mean():.4f} dB (reference)"
    )
    results["max_differences"] = {
        k: {"ssim": float(a), "psnr_db": float(b)} for k, (a, b) in differences.items()
    }
    report["ssim_psnr"] = results


# ------------------------------------------------------------------------------------------------- I3D


def make_i3d(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, str]:
    if args.i3d_path:
        model = load_i3d(args.i3d_path, device=device)
        return model, f"I3D from {args.i3d_path} ({model.source})"
    torch.manual_seed(0)
    return I3D().eval().to(device), "I3D with RANDOM weights (timing only; rFVD values are meaningless)"


def section_fvd(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    model, label = make_i3d(args, device)
    frames, batch = args.fvd_frames, args.fvd_batch
    print(f"\n== rFVD features: {label} ==")
    print(
        f"clips of {frames} frames at {args.height}x{args.width} uint8 -> resize/crop to 224 -> I3D, batches of {batch}"
    )
    generator = torch.Generator(device=device).manual_seed(0)
    raw = torch.randint(
        0,
        256,
        (batch, frames, args.height, args.width, 3),
        dtype=torch.uint8,
        device=device,
        generator=generator,
    )

    def prepare() -> torch.Tensor:
        return torch.stack([clip_from_frames(preprocess_for_i3d(clip.permute(0, 3, 1, 2))) for clip in raw])

    prepared = prepare()

    def forward() -> None:
        with torch.no_grad():
            model(prepared)

    def both() -> None:
        with torch.no_grad():
            model(prepare())

    repeats = args.fvd_repeats
    forward_s = median_seconds(forward, device, repeats)
    total_s = median_seconds(both, device, repeats)
    print(f"  {batch / total_s:10.2f} clips/s  preprocessing + I3D forward")
    print(f"  {batch / forward_s:10.2f} clips/s  I3D forward only")
    report["fvd"] = {
        "label": label,
        "frames": frames,
        "batch": batch,
        "clips_per_s": batch / total_s,
        "forward_clips_per_s": batch / forward_s,
    }


# -------------------------------------------------------------------------------------------- workload


def _canvas(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    fx, fy, phase = rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 2 * np.pi)
    plane = 127.5 + 90 * np.sin(2 * np.pi * fx * xx + phase) * np.cos(2 * np.pi * fy * yy)
    for _ in range(4):  # a few hard-edged boxes
        top, left = rng.integers(0, height - height // 4), rng.integers(0, width - width // 4)
        plane[top : top + height // 5, left : left + width // 6] = rng.uniform(20, 235)
    return np.clip(plane, 0, 255).astype(np.uint8)


def synthesize_pair(job: tuple[int, str, int, int, int]) -> float:
    """Write gt_{i}.mp4 and rc_{i}.mp4: a panning synthetic scene, and the same with blocky noise (H.264)."""
    from generation.video_writer import VideoWriter

    index, folder, frames, height, width = job
    began = time.perf_counter()
    rng = np.random.default_rng(1000 + index)
    # Canvases with room for the pan: the luma offset moves by up to 2 pixels a frame from 2 * frames.
    pad = 4 * frames
    luma = _canvas(rng, height + pad, width + pad)
    chroma_u = _canvas(rng, height // 2 + pad // 2, width // 2 + pad // 2)
    chroma_v = _canvas(rng, height // 2 + pad // 2, width // 2 + pad // 2)
    block = 4
    noise = rng.integers(
        -6, 7, size=((height + pad) // block + 1, (width + pad) // block + 1), dtype=np.int16
    )
    noise = np.repeat(np.repeat(noise, block, axis=0), block, axis=1)[: height + pad, : width + pad]
    noisy_luma = np.clip(luma.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    dx, dy = int(rng.integers(-2, 3)), int(rng.choice([-2, -1, 1, 2]))
    for name, plane in (("gt", luma), ("rc", noisy_luma)):
        final_path = os.path.join(folder, f"{name}_{index:05d}.mp4")
        partial_path = final_path + ".partial.mp4"  # renamed when complete, so a crash leaves no half file
        with VideoWriter(
            partial_path,
            width=width,
            height=height,
            rate=25,
            crf=18,
            preset="ultrafast",
            threads=1,
            container_format="mp4",
        ) as out:
            for t in range(frames):
                y0, x0 = 2 * frames + dy * t, 2 * frames + dx * t
                buffer = np.empty((height * 3 // 2, width), dtype=np.uint8)
                buffer[:height] = plane[y0 : y0 + height, x0 : x0 + width]
                cy, cx = y0 // 2, x0 // 2
                quarter = height // 4
                buffer[height : height + quarter] = chroma_u[
                    cy : cy + height // 2, cx : cx + width // 2
                ].reshape(quarter, width)
                buffer[height + quarter :] = chroma_v[cy : cy + height // 2, cx : cx + width // 2].reshape(
                    quarter, width
                )
                out.write(buffer, pixel_format="yuv420p")
        os.replace(partial_path, final_path)
    return time.perf_counter() - began


def ensure_videos(args: argparse.Namespace) -> list[tuple[str, str]]:
    folder = Path(args.cache_dir) / f"{args.video_frames}f_{args.height}x{args.width}"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(str(folder / f"gt_{i:05d}.mp4"), str(folder / f"rc_{i:05d}.mp4")) for i in range(args.videos)]
    missing = [i for i, (a, b) in enumerate(pairs) if not (os.path.exists(a) and os.path.exists(b))]
    if missing:
        began = time.perf_counter()
        jobs = [(i, str(folder), args.video_frames, args.height, args.width) for i in missing]
        with multiprocessing.get_context("spawn").Pool(args.gen_workers) as pool:
            for done, _ in enumerate(pool.imap_unordered(synthesize_pair, jobs, chunksize=2), 1):
                if done % max(1, len(jobs) // 10) == 0:
                    print(f"  generated {done}/{len(jobs)} pairs", flush=True)
        seconds = time.perf_counter() - began
        print(
            f"generated {len(missing)} pairs in {seconds:.1f} s with {args.gen_workers} processes (not counted)"
        )
    else:
        print(f"using {len(pairs)} cached pairs in {folder}")
    info = probe_video(pairs[0][0])
    assert (info.width, info.height) == (args.width, args.height), info
    return pairs


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The decoding options given on the command line; the others keep the job's defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _print_times(times: StageTimes, seconds: float, videos: int, args: argparse.Namespace) -> None:
    frames = times.frames
    print(
        f"  total {seconds:.2f} s for {frames} frame pairs: {frames / seconds:.0f} pairs/s, {videos / seconds:.2f} videos/s"
    )
    sync_note = "measured with device syncs" if args.profile else "host time only (no --profile)"
    print(
        f"  decode: {times.decode_worker_s:.2f} worker-s; consumer waited {times.decode_wait_s:.2f} s for frames; "
        f"host-to-device copies {times.transfer_s:.2f} s; VAE {times.reconstruct_s:.2f} s; SSIM+PSNR {times.ssim_psnr_s:.2f} s; "
        f"I3D preprocessing {times.i3d_prepare_s:.2f} s; I3D forward {times.i3d_s:.2f} s ({sync_note})"
    )


def _rfvd(measured: list[VideoPairScores]) -> float | None:
    """rFVD from the per-video features, as the job's summary computes it from the stored rows."""
    if len(measured) < 2 or measured[0].truth_features is None:
        return None
    truth = torch.stack([m.truth_features for m in measured]).cpu()  # type: ignore[misc]
    recon = torch.stack([m.reconstruction_features for m in measured]).cpu()  # type: ignore[misc]
    return fvd_from_features(truth, recon)


def section_workload(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    """The VAE-evaluation job's reconstruction mode: `measure_video_pairs`, called as the job calls it."""
    print(
        f"\n== Table-13 workload: {args.videos} video pairs x {args.video_frames} frames at {args.height}x{args.width} =="
    )
    pairs = ensure_videos(args)
    model, label = make_i3d(args, device)
    options = dict(
        device=device,
        i3d=model,
        on_length_mismatch="truncate",  # as the job calls it
        profile=args.profile,
        **_given(args, "chunk_frames", "workers", "prefetch_chunks", "decoder_threads", "decode_processes"),
        **_given(args, "clips_per_batch"),
    )
    processes = options.get("decode_processes")
    if processes is None:
        processes = device.type == "cuda" and processes_allowed()
    print(
        f"measure_video_pairs (the VAE-evaluation job's entry point), rFVD features with {label}; decoding in "
        f"{'processes' if processes else 'threads'} (the job decodes in threads inside Celery's prefork pool); "
        f"options: { {k: v for k, v in options.items() if k not in ('device', 'i3d')} }"
    )
    # Warm-up on a few pairs (CUDA context, cuDNN autotuning for the batch shape), not counted.
    list(measure_video_pairs(pairs[: 4 if device.type == "cuda" else 1], **options))  # type: ignore[arg-type]
    times = StageTimes()
    began = time.perf_counter()
    measured = list(measure_video_pairs(pairs, times=times, **options))  # type: ignore[arg-type]
    seconds = time.perf_counter() - began
    _print_times(times, seconds, len(pairs), args)
    ssim = sum(m.ssim for m in measured) / len(measured)
    psnr = sum(m.psnr for m in measured) / len(measured)
    fvd = _rfvd(measured)
    print(f"  SSIM {ssim:.5f}  PSNR {psnr:.3f} dB  rFVD {fvd} ({label.split(' (')[0]})")
    if (len(pairs), args.video_frames, args.height, args.width) == (1000, 50, 480, 768):
        verdict = "meets" if seconds < 120.0 else "misses"
        print(f"  {verdict} the goal of under 2 minutes for the Table-13 workload ({seconds:.1f} s)")
    report["workload"] = {
        "entry_point": "metrics.video.reconstruction.measure_video_pairs",
        "videos": len(pairs),
        "frames_per_video": args.video_frames,
        "size": [args.height, args.width],
        "total_s": seconds,
        "videos_per_s": len(pairs) / seconds,
        "decode_processes": processes,
        "stages": {k: v for k, v in vars(times).items()},
        "ssim": ssim,
        "psnr": psnr,
        "fvd": fvd,
        "i3d_weights": args.i3d_path or "random",
        "profile": args.profile,
    }


def make_vae(args: argparse.Namespace, device: torch.device) -> tuple[Any, str]:
    from metrics.video.vae import VideoVae, load_video_vae, vae_geometry

    if args.vae_path:
        vae = load_video_vae(args.vae_path, device=device)
        return vae, f"{vae.class_name} from {args.vae_path}"
    import diffusers

    torch.manual_seed(0)
    model = diffusers.AutoencoderKLWan(
        base_dim=8, z_dim=4, dim_mult=[1, 1, 1], num_res_blocks=1, temperal_downsample=[True, True]
    )
    model = model.to(device).eval()
    vae = VideoVae(model=model, class_name="AutoencoderKLWan", geometry=vae_geometry(model), source="random")
    return vae, "a tiny AutoencoderKLWan with RANDOM weights (timing of the pipeline only)"


def section_vae(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    """The VAE-evaluation job's VAE mode: `measure_vae_reconstructions` over the ground-truth files."""
    pairs = ensure_videos(args)
    truths = [truth for truth, _ in pairs[: args.vae_videos]]
    vae, label = make_vae(args, device)
    model, i3d_label = make_i3d(args, device)
    chunk = args.vae_chunk_frames
    print(
        f"\n== VAE evaluation: {len(truths)} videos x {args.video_frames} frames at {args.height}x{args.width}, "
        f"{label}, chunks of {chunk} frames, rFVD features with {i3d_label} =="
    )
    options = dict(device=device, i3d=model, chunk_frames=chunk, profile=args.profile)
    list(measure_vae_reconstructions(truths[:1], vae, **options))  # type: ignore[arg-type]  # warm-up
    times = StageTimes()
    began = time.perf_counter()
    measured = list(measure_vae_reconstructions(truths, vae, times=times, **options))  # type: ignore[arg-type]
    seconds = time.perf_counter() - began
    _print_times(times, seconds, len(truths), args)
    report["vae"] = {
        "entry_point": "metrics.video.reconstruction.measure_vae_reconstructions",
        "vae": label,
        "videos": len(truths),
        "chunk_frames": chunk,
        "total_s": seconds,
        "videos_per_s": len(truths) / seconds,
        "frames": sum(m.frames for m in measured),
        "stages": {k: v for k, v in vars(times).items()},
    }


def make_clip_scorer(args: argparse.Namespace, device: torch.device) -> tuple[Any, str]:
    from metrics.video.clip_score import load_clip_scorer

    if args.clip_model:
        return load_clip_scorer(args.clip_model, device=device), args.clip_model
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    from metrics.video.clip_score import ClipScorer

    torch.manual_seed(0)
    if device.type == "cuda":
        model = open_clip.create_model("ViT-B-32", pretrained=None, device=device)
        return ClipScorer(model, open_clip.get_tokenizer("ViT-B-32")), "ViT-B-32 with RANDOM weights"
    tiny = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
    }
    model = open_clip.CLIP(**tiny).to(device)
    preprocess = {"size": 32, "mean": (0.5,) * 3, "std": (0.25,) * 3}
    scorer = ClipScorer(model, SimpleTokenizer(context_length=16), preprocess_cfg=preprocess)
    return scorer, "a tiny CLIP with RANDOM weights (timing of the pipeline only)"


def section_scores(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    """The automatic-score job: `score_videos` (CLIP frames + motion stride) over the ground-truth files."""
    pairs = ensure_videos(args)
    requests = [VideoToScore(truth, prompt=f"prompt {i % 4}") for i, (truth, _) in enumerate(pairs)]
    scorer, label = make_clip_scorer(args, device)
    print(
        f"\n== Automatic scores: {len(requests)} videos x {args.video_frames} frames at {args.height}x{args.width}, "
        f"CLIP: {label}; motion: Farneback at the job's settings (stride 1, short side 256) =="
    )
    list(score_videos(requests[:1], clip_scorer=scorer))  # warm-up
    began = time.perf_counter()
    scored = list(score_videos(requests, clip_scorer=scorer))
    seconds = time.perf_counter() - began
    print(
        f"  total {seconds:.2f} s: {len(scored) / seconds:.2f} videos/s, "
        f"{sum(s.frames for s in scored) / seconds:.0f} frames/s (score_videos, the job's entry point)"
    )
    report["scores"] = {
        "entry_point": "metrics.video.scoring.score_videos",
        "clip": label,
        "videos": len(scored),
        "total_s": seconds,
        "videos_per_s": len(scored) / seconds,
    }


# ------------------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    cores = os.cpu_count() or 2
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument(
        "--sections",
        default="ssim,fvd,workload,vae,scores",
        help="comma-separated: ssim, fvd, workload, vae, scores",
    )
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument(
        "--reference-dir",
        help="checkout of common_metrics_on_video_quality (calculate_ssim.py, calculate_psnr.py)",
    )
    parser.add_argument(
        "--reference-frames", type=int, default=16, help="frame pairs timed for the per-frame references"
    )
    parser.add_argument("--ssim-frames", type=int, default=512, help="frame pairs timed for ours on the GPU")
    parser.add_argument("--gpu-batch-frames", type=int, default=32)
    parser.add_argument("--cpu-batch-frames", type=int, default=4)
    parser.add_argument(
        "--i3d-path", help="i3d_torchscript.pt or an I3D state dict; random weights without it"
    )
    parser.add_argument("--fvd-frames", type=int, default=50 if cuda else 16)
    parser.add_argument("--fvd-batch", type=int, default=8 if cuda else 1)
    parser.add_argument("--fvd-repeats", type=int, default=5 if cuda else 2)
    parser.add_argument("--videos", type=int, default=1000 if cuda else 8)
    parser.add_argument("--video-frames", type=int, default=50 if cuda else 16)
    parser.add_argument("--cache-dir", default="/tmp/video-metrics-perf")
    parser.add_argument("--gen-workers", type=int, default=cores)
    # Decoding options: unset, they keep the job's defaults (metrics.video.decode), so the figure is the job's.
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--decoder-threads", type=int, default=None)
    parser.add_argument(
        "--decode-processes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode in processes instead of threads (default: processes on CUDA where allowed, as the job)",
    )
    parser.add_argument("--chunk-frames", type=int, default=None)
    parser.add_argument("--prefetch-chunks", type=int, default=None)
    parser.add_argument("--clips-per-batch", type=int, default=None)
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="sync the device per stage to time it (slows the total a little)",
    )
    parser.add_argument("--vae-path", help="a diffusers video VAE folder; a tiny random Wan VAE without it")
    parser.add_argument("--vae-videos", type=int, default=4, help="videos reconstructed in the vae section")
    parser.add_argument("--vae-chunk-frames", type=int, default=9, help="1 + 4k for Wan")
    parser.add_argument("--clip-model", help="open_clip name or local-dir: folder; a random CLIP without it")
    parser.add_argument("--json-out", help="also write the figures as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    report: dict = {"device": str(device), "torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    if "ssim" in sections:
        section_ssim(args, device, report)
    if "fvd" in sections:
        section_fvd(args, device, report)
    if "workload" in sections:
        section_workload(args, device, report)
    if "vae" in sections:
        section_vae(args, device, report)
    if "scores" in sections:
        section_scores(args, device, report)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
