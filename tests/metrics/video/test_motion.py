"""Motion score on synthetic videos whose true motion is known."""

import cv2
import numpy as np
import pytest
import torch

from metrics.video.motion import FarnebackParams, motion_score, resized_size, stride_for_fps

HEIGHT, WIDTH = 96, 128


def panning_video(pixels_per_frame: int, frames: int = 9, seed: int = 0) -> np.ndarray:
    """A smooth random texture seen through a window that slides right, so content moves left by
    `pixels_per_frame` pixels each frame (no wrap-around: new texture enters at the right edge)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(HEIGHT, WIDTH + pixels_per_frame * frames)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), sigmaX=2.0)
    texture = np.rint(255 * (texture - texture.min()) / (texture.max() - texture.min())).astype(np.uint8)
    windows = [texture[:, t * pixels_per_frame : t * pixels_per_frame + WIDTH] for t in range(frames)]
    return np.repeat(np.stack(windows)[..., None], 3, axis=-1)


# Farneback recovers these translations to within 0.6% here (the strip where new texture enters is
# guessed from its neighbours); 3% leaves room for other OpenCV builds.
RELATIVE_TOLERANCE = 0.03
# Farneback reports about 0.001 px of flow between identical frames.
STATIC_TOLERANCE = 0.01


def test_translation_gives_its_speed_in_pixels_of_the_resized_frame():
    video = panning_video(pixels_per_frame=2)
    at_full_size = motion_score(video, short_side=None)
    assert at_full_size.mean == pytest.approx(2.0, rel=RELATIVE_TOLERANCE)
    assert at_full_size.min == pytest.approx(2.0, rel=RELATIVE_TOLERANCE)
    assert at_full_size.max == pytest.approx(2.0, rel=RELATIVE_TOLERANCE)
    assert len(at_full_size.pair_motions) == 8 and at_full_size.resized_size == (HEIGHT, WIDTH)

    at_half_size = motion_score(video, short_side=HEIGHT // 2)
    assert at_half_size.resized_size == (HEIGHT // 2, WIDTH // 2)
    assert at_half_size.to_original_pixels == 2.0
    assert at_half_size.mean == pytest.approx(1.0, rel=RELATIVE_TOLERANCE)
    assert at_half_size.mean * at_half_size.to_original_pixels == pytest.approx(2.0, rel=RELATIVE_TOLERANCE)


def test_static_video_scores_zero():
    video = np.repeat(panning_video(pixels_per_frame=1, frames=1), 6, axis=0)
    score = motion_score(video, short_side=None)
    assert score.mean == pytest.approx(0.0, abs=STATIC_TOLERANCE)
    assert score.max == pytest.approx(0.0, abs=STATIC_TOLERANCE)


def test_stride_scales_the_motion_per_step():
    video = panning_video(pixels_per_frame=1, frames=13)
    one = motion_score(video, stride=1, short_side=None)
    three = motion_score(video, stride=3, short_side=None)
    assert len(one.pair_motions) == 12 and len(three.pair_motions) == 4
    assert one.mean == pytest.approx(1.0, rel=RELATIVE_TOLERANCE)
    assert three.mean == pytest.approx(3.0, rel=RELATIVE_TOLERANCE)


def test_max_and_min_pick_the_fastest_and_slowest_pairs():
    slow, fast = panning_video(1, frames=4, seed=1), panning_video(3, frames=4, seed=1)
    video = np.concatenate([slow, fast[[0]], fast])  # 3 slow pairs, a cut, a repeated frame, 3 fast pairs
    score = motion_score(video, short_side=None)
    assert len(score.pair_motions) == 8
    assert score.pair_motions[:3] == pytest.approx([1.0] * 3, rel=RELATIVE_TOLERANCE)
    assert score.pair_motions[-3:] == pytest.approx([3.0] * 3, rel=RELATIVE_TOLERANCE)
    assert score.min == pytest.approx(0.0, abs=STATIC_TOLERANCE)  # the repeated frame
    assert score.max == max(score.pair_motions) >= 3.0 * (1 - RELATIVE_TOLERANCE)
    assert score.mean == pytest.approx(np.mean(score.pair_motions))
    assert score.min <= score.mean <= score.max
    assert score.as_dict() == {"Motion_Mean": score.mean, "Motion_Max": score.max, "Motion_Min": score.min}


def test_default_resize_and_torch_input_and_parameters():
    video = panning_video(pixels_per_frame=2, frames=4)
    from_numpy = motion_score(video)
    assert from_numpy.resized_size == (256, round(WIDTH * 256 / HEIGHT))
    assert motion_score(torch.from_numpy(video)) == from_numpy
    finer = motion_score(video, params=FarnebackParams(winsize=21, levels=4))
    assert finer.mean == pytest.approx(from_numpy.mean, rel=0.2)


def test_sampling_helpers_and_rejections():
    assert stride_for_fps(24, 8) == 3 and stride_for_fps(30, 8) == 4 and stride_for_fps(8, 16) == 1
    assert resized_size(720, 1280, 256) == (256, 455) and resized_size(50, 40, None) == (50, 40)
    with pytest.raises(ValueError, match="two frames"):
        motion_score(panning_video(1, frames=3), stride=3)
    with pytest.raises(ValueError, match="uint8"):
        motion_score(np.zeros((4, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        stride_for_fps(0, 8)
