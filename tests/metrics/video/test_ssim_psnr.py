"""SSIM and PSNR against independent references: scikit-image (float64) and OpenCV filtering.

Tolerances: float32 SSIM within 1e-5 (absolute) of scikit-image's float64 value; float64 SSIM within 1e-10;
PSNR within 1e-9 dB (both sum squared errors exactly or in float64).

scikit-image settings that give Wang et al.'s SSIM (our default): `gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255 (or 1.0), channel_axis=-1`. Its Gaussian filter is truncated at
3.5 sigma, i.e. an 11-tap window, and it averages the SSIM map after cropping (11 - 1) / 2 = 5 pixels from
every border, which is exactly the valid region (its 'reflect' border mode only touches cropped pixels).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from metrics.video.frames import (
    BT601_LUMA_WEIGHTS,
    default_data_range,
    tchw_to_thwc,
    thwc_to_tchw,
    to_unit_float,
    unit_float_to_uint8,
)
from metrics.video.psnr import PSNR_CAP_DB, mse_per_frame, psnr, psnr_per_frame, video_psnr
from metrics.video.ssim import ssim, ssim_per_frame, valid_region_size, video_ssim
from tests.metrics.video.conftest import degrade, random_frames, structured_frames

FLOAT32_TOLERANCE = 1e-5
FLOAT64_TOLERANCE = 1e-10
PSNR_TOLERANCE_DB = 1e-9


def skimage_wang_ssim(x: np.ndarray, y: np.ndarray, data_range: float = 255) -> float:
    return structural_similarity(
        x,
        y,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=-1,
    )


def opencv_valid_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM of one channel with OpenCV's filter2D and an explicit valid-region crop."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = kernel @ kernel.T

    def local_mean(image: np.ndarray) -> np.ndarray:
        return cv2.filter2D(image, -1, window)[5:-5, 5:-5]

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def as_nchw(frames: np.ndarray) -> torch.Tensor:
    return thwc_to_tchw(torch.from_numpy(frames))


def frame_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    structured = structured_frames(3, 72, 96, seed=3)
    noise = random_frames(3, 40, 52, seed=4)
    dark = (structured // 16).astype(np.uint8)
    bright = (255 - dark).astype(np.uint8)
    return [
        ("structured vs degraded", structured, degrade(structured)),
        ("structured vs shifted", structured, np.roll(structured, 2, axis=2)),
        ("random vs random", noise, random_frames(3, 40, 52, seed=5)),
        ("random vs degraded", noise, degrade(noise, noise=30)),
        ("dark vs degraded", dark, degrade(dark, noise=2)),
        ("bright vs degraded", bright, degrade(bright, noise=2)),
    ]


PAIRS = frame_pairs()


@pytest.mark.parametrize(("name", "x", "y"), PAIRS, ids=[p[0] for p in PAIRS])
def test_ssim_matches_scikit_image_float64_within_1e_5(name, x, y):
    ours = ssim_per_frame(as_nchw(y), as_nchw(x)).double().numpy()
    reference = np.array([skimage_wang_ssim(a, b) for a, b in zip(x, y, strict=True)])
    np.testing.assert_allclose(ours, reference, rtol=0, atol=FLOAT32_TOLERANCE)


@pytest.mark.parametrize(("name", "x", "y"), PAIRS[:3], ids=[p[0] for p in PAIRS[:3]])
def test_ssim_float64_matches_scikit_image_and_opencv_to_1e_10(name, x, y):
    ours = ssim_per_frame(as_nchw(y), as_nchw(x), compute_dtype=torch.float64).numpy()
    reference = np.array([skimage_wang_ssim(a, b) for a, b in zip(x, y, strict=True)])
    np.testing.assert_allclose(ours, reference, rtol=0, atol=FLOAT64_TOLERANCE)
    per_channel_opencv = np.array(
        [
            np.mean([opencv_valid_ssim(a[..., c], b[..., c]) for c in range(3)])
            for a, b in zip(x, y, strict=True)
        ]
    )
    np.testing.assert_allclose(ours, per_channel_opencv, rtol=0, atol=FLOAT64_TOLERANCE)


def test_ssim_of_floats_in_unit_range_uses_data_range_1():
    x = structured_frames(2, 48, 64)
    y = degrade(x)
    ours = ssim_per_frame(as_nchw(y).double() / 255, as_nchw(x).double() / 255).numpy()
    reference = [skimage_wang_ssim(a / 255, b / 255, data_range=1.0) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=FLOAT32_TOLERANCE)
    uint8_result = ssim_per_frame(as_nchw(y), as_nchw(x)).numpy()
    np.testing.assert_allclose(ours, uint8_result, rtol=0, atol=FLOAT32_TOLERANCE)


def test_skimage_variant_matches_scikit_image_defaults():
    x = structured_frames(2, 50, 60, seed=7)
    y = degrade(x, seed=8)
    ours = ssim_per_frame(as_nchw(y), as_nchw(x), variant="skimage").numpy()
    reference = [
        structural_similarity(a, b, data_range=255, channel_axis=-1) for a, b in zip(x, y, strict=True)
    ]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=FLOAT32_TOLERANCE)


def test_grayscale_option_is_ssim_of_bt601_luma():
    x = structured_frames(2, 48, 64, seed=9)
    y = degrade(x, seed=10)
    weights = np.array(BT601_LUMA_WEIGHTS)
    ours = ssim_per_frame(as_nchw(y), as_nchw(x), grayscale=True).numpy()
    reference = [
        structural_similarity(
            a.astype(np.float64) @ weights,
            b.astype(np.float64) @ weights,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        for a, b in zip(x, y, strict=True)
    ]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=FLOAT32_TOLERANCE)


@pytest.mark.parametrize(
    "frames", [structured_frames(2, 30, 40), random_frames(2, 30, 40), np.full((1, 20, 20, 3), 77, np.uint8)]
)
def test_ssim_of_a_frame_with_itself_is_one(frames):
    values = ssim_per_frame(as_nchw(frames), as_nchw(frames))
    torch.testing.assert_close(values, torch.ones_like(values), rtol=0, atol=1e-6)


def test_ssim_averages_channels_then_frames_then_videos():
    videos = np.stack([structured_frames(4, 32, 40, seed=s) for s in range(3)])
    recon = degrade(videos.reshape(-1, 32, 40, 3)).reshape(videos.shape)
    truth_t = thwc_to_tchw(torch.from_numpy(videos))
    recon_t = thwc_to_tchw(torch.from_numpy(recon))
    per_video = video_ssim(recon_t, truth_t).numpy()
    expected = [
        np.mean([skimage_wang_ssim(a, b) for a, b in zip(v, r, strict=True)])
        for v, r in zip(videos, recon, strict=True)
    ]
    np.testing.assert_allclose(per_video, expected, rtol=0, atol=FLOAT32_TOLERANCE)
    assert float(ssim(recon_t, truth_t)) == pytest.approx(np.mean(expected), abs=FLOAT32_TOLERANCE)


def test_ssim_does_not_depend_on_frames_per_pass():
    x = as_nchw(structured_frames(5, 32, 32))
    y = as_nchw(degrade(structured_frames(5, 32, 32)))
    torch.testing.assert_close(
        ssim_per_frame(y, x, frames_per_pass=1), ssim_per_frame(y, x, frames_per_pass=16)
    )


def test_ssim_refuses_small_frames_and_mismatched_inputs():
    small = torch.zeros(1, 3, 10, 40, dtype=torch.uint8)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim_per_frame(small, small)
    frames = torch.zeros(1, 3, 20, 20, dtype=torch.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_per_frame(frames, torch.zeros(1, 3, 20, 21, dtype=torch.uint8))
    with pytest.raises(ValueError, match="dtypes differ"):
        ssim_per_frame(frames, frames.float())
    with pytest.raises(TypeError):
        ssim_per_frame(frames.to(torch.int16), frames.to(torch.int16))
    assert valid_region_size(480, 768) == (470, 758)


def test_psnr_matches_scikit_image():
    for _, x, y in PAIRS:
        ours = psnr_per_frame(as_nchw(y), as_nchw(x)).numpy()
        reference = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x, y, strict=True)]
        np.testing.assert_allclose(ours, reference, rtol=0, atol=PSNR_TOLERANCE_DB)


@pytest.mark.parametrize("offset", [1, 3, 17, 64])
def test_uniform_offset_of_d_grey_levels_gives_20_log10_255_over_d(offset):
    x = np.clip(structured_frames(2, 24, 32), 0, 255 - offset).astype(np.uint8)
    y = (x + offset).astype(np.uint8)
    values = psnr_per_frame(as_nchw(y), as_nchw(x))
    expected = 20 * math.log10(255 / offset)
    torch.testing.assert_close(values, torch.full_like(values, expected), rtol=0, atol=PSNR_TOLERANCE_DB)
    as_floats = psnr_per_frame(as_nchw(y).double() / 255, as_nchw(x).double() / 255)
    torch.testing.assert_close(as_floats, values, rtol=0, atol=1e-9)


def test_identical_frames_score_the_cap():
    x = as_nchw(structured_frames(2, 24, 32))
    assert PSNR_CAP_DB == 100.0
    torch.testing.assert_close(psnr_per_frame(x, x), torch.full((2,), 100.0, dtype=torch.float64))
    tiny_difference = torch.full((1, 3, 8, 8), 0.5, dtype=torch.float64)
    assert float(psnr_per_frame(tiny_difference + 1e-7, tiny_difference)[0]) == 100.0


def test_psnr_per_frame_mean_versus_one_mse_per_video():
    videos = np.stack([structured_frames(3, 24, 32, seed=s) for s in range(2)])
    recon = videos.copy()
    recon[0, 0] = np.clip(recon[0, 0].astype(int) + 10, 0, 255)  # one bad frame, two perfect ones
    recon[1] = degrade(videos[1], noise=5)
    truth_t, recon_t = thwc_to_tchw(torch.from_numpy(videos)), thwc_to_tchw(torch.from_numpy(recon))
    per_frame = video_psnr(recon_t, truth_t).numpy()
    per_video_mse = video_psnr(recon_t, truth_t, per_video_mse=True).numpy()
    frame_mse = mse_per_frame(recon_t[0], truth_t[0]).numpy()
    capped = [min(10 * math.log10(1 / m), 100.0) if m > 0 else 100.0 for m in frame_mse]
    assert per_frame[0] == pytest.approx(np.mean(capped), abs=PSNR_TOLERANCE_DB)
    assert per_video_mse[0] == pytest.approx(10 * math.log10(1 / frame_mse.mean()), abs=PSNR_TOLERANCE_DB)
    assert float(psnr(recon_t, truth_t)) == pytest.approx(per_frame.mean(), abs=PSNR_TOLERANCE_DB)


@pytest.mark.gpu
def test_cuda_float32_matches_float64_reference():
    x = structured_frames(4, 120, 160, seed=11)
    y = degrade(x, seed=12)
    cuda_ssim = ssim_per_frame(as_nchw(y).cuda(), as_nchw(x).cuda()).double().cpu().numpy()
    reference = np.array([skimage_wang_ssim(a, b) for a, b in zip(x, y, strict=True)])
    np.testing.assert_allclose(cuda_ssim, reference, rtol=0, atol=FLOAT32_TOLERANCE)
    cuda_psnr = psnr_per_frame(as_nchw(y).cuda(), as_nchw(x).cuda()).cpu().numpy()
    reference_psnr = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(cuda_psnr, reference_psnr, rtol=0, atol=PSNR_TOLERANCE_DB)


def test_frame_format_helpers():
    frames = torch.from_numpy(random_frames(2, 4, 6))
    channel_first = thwc_to_tchw(frames)
    assert channel_first.shape == (2, 3, 4, 6) and channel_first.data_ptr() == frames.data_ptr()
    assert torch.equal(tchw_to_thwc(channel_first), frames)
    assert default_data_range(frames) == 255.0 and default_data_range(frames.float()) == 1.0
    unit = to_unit_float(frames)
    assert unit.dtype == torch.float32 and float(unit.max()) <= 1.0
    assert torch.equal(unit_float_to_uint8(unit), frames)
    # round(x * 255), ties to even, clamped to [0, 1] first
    rounded = unit_float_to_uint8(torch.tensor([-0.5, 0.5 / 255, 1.5 / 255, 0.2, 2.0]))
    assert rounded.tolist() == [0, 0, 2, 51, 255]
