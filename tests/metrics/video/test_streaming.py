"""The streaming entry points the jobs call (`measure_video_pairs`, `measure_vae_reconstructions`,
`score_videos`) give the figures of decoding each whole video, and hold no more decoded frames than their
stated bounds on a long video. Host frame buffers are NumPy-allocated, so `tracemalloc` sees them."""

from __future__ import annotations

import tracemalloc
import weakref

import numpy as np
import pytest
import torch

from metrics.video import scoring
from metrics.video.clip_score import load_clip_scorer
from metrics.video.decode import VideoFailed, decode_video, host_pair_buffer_bound, write_video
from metrics.video.frames import thwc_to_tchw
from metrics.video.fvd import clip_from_frames, i3d_features, preprocess_for_i3d
from metrics.video.i3d import I3D, I3DConfig
from metrics.video.motion import motion_score
from metrics.video.psnr import psnr_per_frame
from metrics.video.reconstruction import measure_vae_reconstructions, measure_video_pairs
from metrics.video.scoring import MotionOptions, VideoToScore, score_videos, scoring_memory_bound
from metrics.video.ssim import ssim_per_frame
from metrics.video.vae import load_video_vae, reconstruct, usable_clip
from tests.metrics.video.conftest import degrade, structured_frames

# Python objects the pipelines allocate besides frames (queues, generator frames, PyAV wrappers).
PYTHON_SLACK_BYTES = 256 * 1024


def whole_video_figures(truth: torch.Tensor, recon: torch.Tensor, i3d: torch.nn.Module | None) -> dict:
    """The figures as the jobs computed them before streaming: from the whole decoded videos at once."""
    truth_frames, recon_frames = thwc_to_tchw(truth), thwc_to_tchw(recon)
    figures = {
        "frames": int(truth.shape[0]),
        "ssim": float(ssim_per_frame(recon_frames, truth_frames).double().mean()),
        "psnr": float(psnr_per_frame(recon_frames, truth_frames).mean()),
    }
    if i3d is not None:
        clips = torch.stack([clip_from_frames(preprocess_for_i3d(f)) for f in (truth_frames, recon_frames)])
        figures["features"] = i3d_features(i3d, clips, clips_per_batch=2).numpy()
    return figures


def assert_same_figures(scores, expected: dict) -> None:
    """SSIM to 1e-7 (float32 per frame), PSNR to 1e-9 dB (float64), I3D features to float32 rounding."""
    assert scores.ssim == pytest.approx(expected["ssim"], abs=1e-7)
    assert scores.psnr == pytest.approx(expected["psnr"], abs=1e-9)
    assert scores.truth_features is not None and scores.reconstruction_features is not None
    np.testing.assert_allclose(scores.truth_features.numpy(), expected["features"][0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        scores.reconstruction_features.numpy(), expected["features"][1], rtol=1e-4, atol=1e-6
    )


@pytest.fixture
def tiny_i3d(single_torch_thread):
    torch.manual_seed(0)
    return I3D(I3DConfig(num_classes=6, width_divisor=16)).eval()


def test_streamed_pair_figures_equal_those_of_the_whole_decoded_videos(tmp_path, tiny_i3d):
    pairs = []
    for index, (truth_frames, recon_frames) in enumerate([(11, 11), (9, 7)]):
        truth = structured_frames(truth_frames, 40, 56, seed=index)
        write_video(tmp_path / f"gt{index}.mp4", truth)
        write_video(tmp_path / f"rc{index}.mp4", degrade(truth)[:recon_frames])
        pairs.append((tmp_path / f"gt{index}.mp4", tmp_path / f"rc{index}.mp4"))
    streamed = {
        s.index: s
        for s in measure_video_pairs(
            pairs, i3d=tiny_i3d, chunk_frames=4, workers=2, on_length_mismatch="truncate", max_frames=10
        )
    }
    assert sorted(streamed) == [0, 1]
    for index, (truth_path, recon_path) in enumerate(pairs):
        truth, recon = decode_video(truth_path, max_frames=10), decode_video(recon_path, max_frames=10)
        count = min(truth.shape[0], recon.shape[0])
        expected = whole_video_figures(truth[:count], recon[:count], tiny_i3d)
        scores = streamed[index]
        assert (scores.frames, scores.height, scores.width) == (expected["frames"], 40, 56)
        assert_same_figures(scores, expected)
    assert [s.frames for s in map(streamed.get, (0, 1))] == [10, 7]


def test_a_pair_that_cannot_be_measured_names_its_index(tmp_path):
    write_video(tmp_path / "gt.mp4", structured_frames(5, 32, 48))
    write_video(tmp_path / "small.mp4", structured_frames(5, 8, 8))
    with pytest.raises(VideoFailed, match="smaller than the 11x11 window") as failure:
        list(measure_video_pairs([(tmp_path / "small.mp4", tmp_path / "small.mp4")]))
    assert failure.value.video_index == 0


@pytest.mark.parametrize("chunk_frames", [None, 5])
def test_streamed_vae_figures_equal_those_of_the_whole_decoded_video(
    tmp_path, tiny_vae_dir, tiny_i3d, chunk_frames
):
    vae = load_video_vae(tiny_vae_dir)
    paths = []
    for index, frames in enumerate([12, 9]):
        paths.append(tmp_path / f"v{index}.mp4")
        write_video(paths[-1], structured_frames(frames, 34, 50, seed=index))
    streamed = list(
        measure_vae_reconstructions(paths, vae, i3d=tiny_i3d, chunk_frames=chunk_frames, max_frames=11)
    )
    assert [s.index for s in streamed] == [0, 1]
    for scores, path in zip(streamed, paths, strict=True):
        frames = decode_video(path, max_frames=11)
        truth = usable_clip(vae, frames, chunk_frames=chunk_frames)
        expected = whole_video_figures(truth, reconstruct(vae, frames, chunk_frames=chunk_frames), tiny_i3d)
        assert (scores.frames, scores.height, scores.width) == (expected["frames"], 32, 48)
        assert_same_figures(scores, expected)
    # 11 frames: 1 + 4k gives 9; chunks of 5 give 5 + 5 + 1 (and 9 frames 5 + 1).
    assert [s.frames for s in streamed] == ([9, 9] if chunk_frames is None else [11, 6])


@pytest.fixture
def scored_files(tmp_path):
    """Videos of 13, 5 and 1 frames, and a file that is no video."""
    paths = []
    for index, frames in enumerate([13, 5, 1]):
        paths.append(tmp_path / f"s{index}.mp4")
        write_video(paths[-1], structured_frames(frames, 32, 48, seed=index))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"no longer a video")
    return [*paths, broken]


@pytest.mark.parametrize("miscounted", [False, True])
def test_streamed_clip_and_motion_scores_equal_those_of_the_whole_decoded_video(
    scored_files, tiny_clip_folder, single_torch_thread, monkeypatch, miscounted
):
    if miscounted:  # a container whose packets do not count the frames: the CLIP frames are decoded again
        monkeypatch.setattr(scoring, "count_video_packets", lambda path: 3)
    scorer = load_clip_scorer(f"local-dir:{tiny_clip_folder}")
    motion = MotionOptions(stride=2, short_side=24)
    requests = [VideoToScore(path, prompt=f"prompt {i}") for i, path in enumerate(scored_files)]
    requests[1] = VideoToScore(scored_files[1], prompt=None)  # motion only
    results = list(score_videos(requests, clip_scorer=scorer, motion=motion, workers=2))
    assert [r.index for r in results] == [0, 1, 2, 3]
    for request, result in zip(requests[:2], results[:2], strict=True):
        frames = decode_video(request.path)
        expected = motion_score(frames, stride=2, short_side=24)
        assert result.error is None and result.frames == frames.shape[0]
        assert result.motion is not None and result.motion.pair_motions == expected.pair_motions
        if request.prompt is None:
            assert result.clip is None
        else:
            assert result.clip == pytest.approx(scorer.score(frames, request.prompt), abs=1e-6)
    one_frame = results[2]
    assert one_frame.motion is None and "fewer than two frames" in (one_frame.motion_error or "")
    assert one_frame.clip == pytest.approx(scorer.score(decode_video(scored_files[2]), "prompt 2"), abs=1e-6)
    assert results[3].error and results[3].clip is None and results[3].motion is None


def long_pair(tmp_path, frames: int, height: int, width: int):
    truth = structured_frames(frames, height, width)
    write_video(tmp_path / "long_gt.mp4", truth)
    write_video(tmp_path / "long_rc.mp4", degrade(truth))
    return tmp_path / "long_gt.mp4", tmp_path / "long_rc.mp4"


def traced_peak(run) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_a_long_pair_streams_within_the_stated_host_memory_bound(tmp_path, single_torch_thread):
    frames, height, width = 240, 64, 96
    pair = long_pair(tmp_path, frames, height, width)
    options = {"chunk_frames": 4, "workers": 1, "prefetch_chunks": 2}
    bound = host_pair_buffer_bound(height, width, **options)
    whole_videos = 2 * frames * height * width * 3
    assert whole_videos > 4 * bound  # so a whole decode could not pass unnoticed

    list(measure_video_pairs([pair], **options))  # warm-up: lazy imports, the SSIM window
    results: list = []
    peak = traced_peak(lambda: results.extend(measure_video_pairs([pair], **options)))
    assert results[0].frames == frames
    print(f"pair stream: traced peak {peak} bytes, bound {bound}, whole videos {whole_videos}")
    assert peak < bound + PYTHON_SLACK_BYTES, (peak, bound)
    # The measurement sees a whole decode: the same file decoded at once needs more than the bound.
    assert traced_peak(lambda: decode_video(pair[0])) > bound + PYTHON_SLACK_BYTES


def test_a_long_video_is_scored_within_the_stated_memory_bound(tmp_path, single_torch_thread, monkeypatch):
    frames, height, width = 240, 64, 96
    path, _ = long_pair(tmp_path, frames, height, width)
    motion = MotionOptions(stride=3, short_side=None)
    bound = scoring_memory_bound(height, width, workers=1, motion=motion, clip_frames=8)
    assert frames * height * width * 3 > 4 * bound

    class Scorer:  # stands in for the CLIP model: keeps the frames it was given, as the model's input
        num_frames = 8

        def score(self, clip_frames, prompt):
            assert clip_frames.shape[0] == 8
            return 0.0

    live = {"now": 0, "most": 0}
    decode_frames = scoring.iter_selected_frames

    def counted(*args, **kwargs):  # how many decoded frames are alive at once
        for index, frame in decode_frames(*args, **kwargs):
            live["now"] += 1
            live["most"] = max(live["most"], live["now"])
            holder = frame.view()
            weakref.finalize(holder, lambda: live.__setitem__("now", live["now"] - 1))
            yield index, holder

    monkeypatch.setattr(scoring, "iter_selected_frames", counted)
    request = [VideoToScore(path, prompt="a prompt")]
    list(score_videos(request, clip_scorer=Scorer(), motion=motion, workers=1))  # warm-up
    live["most"] = 0
    results: list = []
    peak = traced_peak(
        lambda: results.extend(score_videos(request, clip_scorer=Scorer(), motion=motion, workers=1))
    )
    assert results[0].frames == frames and results[0].motion is not None
    print(f"scoring: traced peak {peak} bytes, bound {bound}, whole video {frames * height * width * 3}")
    assert peak < bound + PYTHON_SLACK_BYTES, (peak, bound)
    assert live["most"] <= 2, live  # decoded frames are used and dropped, never gathered


def test_a_long_video_is_reconstructed_by_a_vae_within_one_decoded_chunk(
    tmp_path, tiny_vae_dir, single_torch_thread
):
    frames, height, width, chunk_frames = 81, 64, 96, 5
    path = tmp_path / "long.mp4"
    write_video(path, structured_frames(frames, height, width))
    vae = load_video_vae(tiny_vae_dir)
    bound = chunk_frames * height * width * 3  # the decoded chunk; the VAE's output lives in torch
    assert frames * height * width * 3 > 4 * (bound + PYTHON_SLACK_BYTES)

    list(measure_vae_reconstructions([path], vae, chunk_frames=chunk_frames, max_frames=chunk_frames))
    results: list = []
    peak = traced_peak(
        lambda: results.extend(measure_vae_reconstructions([path], vae, chunk_frames=chunk_frames))
    )
    assert results[0].frames == frames
    assert peak < bound + PYTHON_SLACK_BYTES, (peak, bound)
