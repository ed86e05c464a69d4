"""Decoding in chunks, pairing ground truth with reconstructions, streaming to a device, and the end-to-end
evaluation, on small videos written with PyAV: lossless codecs (FFV1, libx264rgb at qp 0) so that round
trips can be compared exactly, and libx264 (yuv420p) as generated videos usually are."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics.video.decode import (
    DecodeStats,
    VideoPairMismatch,
    decode_video,
    iter_frame_chunks,
    iter_paired_chunks,
    probe_video,
    stream_video_pairs,
    write_video,
)
from metrics.video.frames import thwc_to_tchw
from metrics.video.i3d import I3D, I3DConfig
from metrics.video.psnr import psnr_per_frame
from metrics.video.reconstruction import evaluate_video_pairs
from metrics.video.ssim import ssim_per_frame
from tests.metrics.video.conftest import degrade, random_frames, structured_frames

LOSSLESS = {"ffv1": None, "libx264rgb": {"qp": "0"}}


@pytest.mark.parametrize("codec", sorted(LOSSLESS))
def test_lossless_round_trip_is_exact(tmp_path, codec):
    frames = random_frames(7, 36, 52, seed=1)
    path = tmp_path / f"clip-{codec}.mkv"
    write_video(path, frames, codec=codec, options=LOSSLESS[codec])
    decoded = decode_video(path)
    assert decoded.dtype == torch.uint8 and decoded.shape == (7, 36, 52, 3)
    assert torch.equal(decoded, torch.from_numpy(frames))
    info = probe_video(path)
    assert (info.width, info.height) == (52, 36)


def test_libx264_round_trip_is_close_and_chunks_concatenate_to_the_whole_video(tmp_path):
    # Smooth content: 4:2:0 chroma subsampling and a low CRF lose little of it.
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack(
        [np.stack([2 * xx + t, 3 * yy + t, np.full_like(xx, 100 + 5 * t)], axis=-1) for t in range(10)]
    ).astype(np.uint8)
    path = tmp_path / "clip.mp4"
    write_video(path, frames, options={"crf": "10"})
    whole = decode_video(path)
    assert whole.shape == (10, 48, 64, 3)
    assert float(psnr_per_frame(thwc_to_tchw(whole), thwc_to_tchw(torch.from_numpy(frames))).min()) > 35
    chunks = list(iter_frame_chunks(path, chunk_frames=4))
    assert [c.shape[0] for c in chunks] == [4, 4, 2]
    assert torch.equal(torch.cat(chunks), whole)
    assert torch.equal(decode_video(path, max_frames=5), whole[:5])
    assert [c.shape[0] for c in iter_frame_chunks(path, chunk_frames=3, max_frames=7)] == [3, 3, 1]


def test_paired_chunks_hold_the_same_frame_indices(tmp_path):
    truth = random_frames(9, 24, 32, seed=3)
    recon = degrade(truth)
    write_video(tmp_path / "gt.mkv", truth, codec="ffv1")
    write_video(tmp_path / "rc.mkv", recon, codec="ffv1")
    pairs = list(iter_paired_chunks(tmp_path / "gt.mkv", tmp_path / "rc.mkv", chunk_frames=4))
    assert [p[0].shape[0] for p in pairs] == [4, 4, 1]
    assert torch.equal(torch.cat([p[0] for p in pairs]), torch.from_numpy(truth))
    assert torch.equal(torch.cat([p[1] for p in pairs]), torch.from_numpy(recon))


def test_pairs_that_do_not_match_are_refused_or_truncated(tmp_path):
    write_video(tmp_path / "long.mkv", random_frames(9, 24, 32), codec="ffv1")
    write_video(tmp_path / "short.mkv", random_frames(6, 24, 32), codec="ffv1")
    write_video(tmp_path / "wide.mkv", random_frames(9, 24, 40), codec="ffv1")
    with pytest.raises(VideoPairMismatch, match="reconstruction ends after 6 frames"):
        list(iter_paired_chunks(tmp_path / "long.mkv", tmp_path / "short.mkv", chunk_frames=4))
    truncated = list(
        iter_paired_chunks(
            tmp_path / "long.mkv", tmp_path / "short.mkv", chunk_frames=4, on_length_mismatch="truncate"
        )
    )
    assert sum(p[0].shape[0] for p in truncated) == 6
    with pytest.raises(VideoPairMismatch, match="frame sizes differ"):
        list(iter_paired_chunks(tmp_path / "long.mkv", tmp_path / "wide.mkv"))


@pytest.fixture
def video_pairs(tmp_path):
    """Five lossless pairs of different lengths; reconstruction k is the truth plus k grey levels."""
    pairs, originals = [], []
    for k in range(5):
        truth = np.clip(structured_frames(5 + k, 40, 56, seed=k), 0, 250).astype(np.uint8)
        recon = (truth + k).astype(np.uint8)
        write_video(tmp_path / f"gt{k}.mkv", truth, codec="ffv1")
        write_video(tmp_path / f"rc{k}.mkv", recon, codec="ffv1")
        pairs.append((tmp_path / f"gt{k}.mkv", tmp_path / f"rc{k}.mkv"))
        originals.append((truth, recon))
    return pairs, originals


@pytest.mark.parametrize(("workers", "prefetch"), [(1, 1), (3, 2)])
def test_streamed_chunks_reassemble_every_video_in_order(video_pairs, workers, prefetch):
    pairs, originals = video_pairs
    stats = DecodeStats()
    received: dict[int, list] = {i: [] for i in range(len(pairs))}
    last_flags: dict[int, int] = dict.fromkeys(range(len(pairs)), 0)
    for chunk in stream_video_pairs(
        pairs, chunk_frames=3, workers=workers, prefetch_chunks=prefetch, stats=stats
    ):
        assert chunk.first_frame == sum(c[0].shape[0] for c in received[chunk.video_index])
        assert last_flags[chunk.video_index] == 0
        received[chunk.video_index].append((chunk.ground_truth, chunk.reconstruction))
        last_flags[chunk.video_index] += int(chunk.is_last)
    assert all(count == 1 for count in last_flags.values())
    for index, (truth, recon) in enumerate(originals):
        assert torch.equal(torch.cat([c[0] for c in received[index]]), torch.from_numpy(truth))
        assert torch.equal(torch.cat([c[1] for c in received[index]]), torch.from_numpy(recon))
    assert stats.frames == sum(len(t) for t, _ in originals)


def test_decoding_processes_deliver_the_same_chunks_through_a_small_ring(video_pairs):
    pairs, originals = video_pairs
    received: dict[int, list] = {i: [] for i in range(len(pairs))}
    last_flags = dict.fromkeys(range(len(pairs)), 0)
    # 0.1 MiB slots hold 7 frame pairs of 40x56x3, so chunks are cut at 7 frames, not at chunk_frames=16.
    for chunk in stream_video_pairs(pairs, workers=2, processes=True, ring_slots=3, slot_megabytes=0.1):
        assert chunk.first_frame == sum(c[0].shape[0] for c in received[chunk.video_index])
        assert chunk.ground_truth.shape[0] <= 7
        received[chunk.video_index].append((chunk.ground_truth, chunk.reconstruction))
        last_flags[chunk.video_index] += int(chunk.is_last)
    assert all(count == 1 for count in last_flags.values())
    for index, (truth, recon) in enumerate(originals):
        assert torch.equal(torch.cat([c[0] for c in received[index]]), torch.from_numpy(truth))
        assert torch.equal(torch.cat([c[1] for c in received[index]]), torch.from_numpy(recon))


def test_a_failing_video_is_reported_with_its_paths(video_pairs, tmp_path):
    pairs, _ = video_pairs
    broken = [*pairs[:2], (tmp_path / "missing.mp4", pairs[2][1])]
    with pytest.raises(RuntimeError, match="missing.mp4"):
        list(stream_video_pairs(broken, workers=2))
    with pytest.raises(RuntimeError, match="missing.mp4"):
        list(stream_video_pairs(broken, workers=2, processes=True, slot_megabytes=1))


def test_end_to_end_ssim_and_psnr_of_decoded_pairs(video_pairs):
    pairs, originals = video_pairs
    result = evaluate_video_pairs(pairs, chunk_frames=4, workers=2)
    assert [v.frames for v in result.videos] == [5, 6, 7, 8, 9]
    assert result.videos[0].psnr == 100.0 and result.videos[0].ssim == pytest.approx(1.0, abs=1e-6)
    for k in range(1, 5):
        assert result.videos[k].psnr == pytest.approx(20 * math.log10(255 / k), abs=1e-9)
        assert result.videos[k].psnr_video_mse == pytest.approx(20 * math.log10(255 / k), abs=1e-9)
    expected_ssim = [
        float(
            ssim_per_frame(thwc_to_tchw(torch.from_numpy(recon)), thwc_to_tchw(torch.from_numpy(truth)))
            .double()
            .mean()
        )
        for truth, recon in originals
    ]
    np.testing.assert_allclose([v.ssim for v in result.videos], expected_ssim, rtol=0, atol=1e-6)
    assert result.ssim == pytest.approx(np.mean(expected_ssim), abs=1e-6)
    assert result.psnr == pytest.approx(np.mean([v.psnr for v in result.videos]), abs=1e-12)
    assert result.fvd is None and "no I3D" in (result.fvd_unavailable or "")


def test_end_to_end_rfvd_with_a_random_tiny_i3d(video_pairs, single_torch_thread):
    pairs, _ = video_pairs
    torch.manual_seed(0)
    i3d = I3D(I3DConfig(num_classes=6, width_divisor=16)).eval()
    result = evaluate_video_pairs(
        pairs, i3d=i3d, chunk_frames=4, workers=2, clips_per_batch=2, fvd_max_frames=4
    )
    assert result.fvd is not None and result.fvd > 0 and result.fvd_unavailable is None
    same = evaluate_video_pairs([(a, a) for a, _ in pairs], i3d=i3d, chunk_frames=4, fvd_max_frames=4)
    assert same.fvd == pytest.approx(0.0, abs=1e-6)
    missing = evaluate_video_pairs(pairs[:2], fvd_unavailable="rFVD is unavailable: put the file there")
    assert missing.fvd is None and missing.fvd_unavailable == "rFVD is unavailable: put the file there"
