"""rFVD: the Fréchet distance against SciPy's sqrtm formula and closed forms, streaming statistics against
NumPy, and the I3D input preparation against exact cases.

Tolerances: Fréchet distance within 1e-8 relative of the sqrtm formula for well-conditioned covariances and
1e-6 relative for rank-deficient ones (where sqrtm itself is less accurate); closed forms within 1e-9;
streamed mean and covariance within 1e-12 of NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from metrics.video.fvd import (
    FeatureStatistics,
    FVDAccumulator,
    clip_from_frames,
    frechet_distance,
    fvd_from_features,
    preprocess_for_i3d,
    short_side_resize_size,
)


def sqrtm_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The formula of StyleGAN-V's FVD: |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), real part."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.real(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * root)))


def random_features(count: int, dim: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return shift + scale * rng.normal(size=(count, dim)) @ mixing


@pytest.mark.parametrize(
    ("count", "relative"), [(400, 1e-8), (20, 1e-6)], ids=["full rank", "rank deficient"]
)
def test_frechet_distance_matches_scipy_sqrtm_formula(count, relative):
    first = random_features(count, 32, seed=1)
    second = random_features(count, 32, seed=2, scale=1.3, shift=0.2)
    stats = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in (first, second)]
    expected = sqrtm_frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1])
    ours = frechet_distance(
        torch.from_numpy(stats[0][0]),
        torch.from_numpy(stats[0][1]),
        torch.from_numpy(stats[1][0]),
        torch.from_numpy(stats[1][1]),
    )
    assert ours == pytest.approx(expected, rel=relative)
    assert fvd_from_features(torch.from_numpy(first), torch.from_numpy(second)) == pytest.approx(
        expected, rel=relative
    )


def test_frechet_distance_of_diagonal_gaussians_has_a_closed_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    var1, var2 = rng.uniform(0.1, 4, size=16), rng.uniform(0.1, 4, size=16)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    ours = frechet_distance(
        torch.from_numpy(mu1),
        torch.diag(torch.from_numpy(var1)),
        torch.from_numpy(mu2),
        torch.diag(torch.from_numpy(var2)),
    )
    assert ours == pytest.approx(expected, rel=1e-9)


def test_same_covariance_with_a_mean_shift_of_c_gives_c_squared():
    features = random_features(200, 24, seed=4)
    sigma = torch.from_numpy(np.cov(features, rowvar=False))
    mu = torch.from_numpy(features.mean(axis=0))
    shift = torch.from_numpy(np.random.default_rng(5).normal(size=24))
    ours = frechet_distance(mu, sigma, mu + shift, sigma)
    assert ours == pytest.approx(float((shift**2).sum()), rel=1e-9, abs=1e-9)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, sigma, mu, sigma) >= 0.0


def test_streamed_statistics_equal_numpy_mean_and_covariance_whatever_the_batches():
    features = random_features(257, 12, seed=6, scale=50.0, shift=1000.0)  # large offset: tests cancellation
    for batch in (1, 7, 64, 257):
        stats = FeatureStatistics(12)
        for start in range(0, len(features), batch):
            stats.update(torch.from_numpy(features[start : start + batch]))
        np.testing.assert_allclose(stats.mean.numpy(), features.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(
            stats.covariance.numpy(), np.cov(features, rowvar=False), rtol=1e-10, atol=1e-9
        )
    halves = [FeatureStatistics(12), FeatureStatistics(12)]
    halves[0].update(torch.from_numpy(features[:100]))
    halves[1].update(torch.from_numpy(features[100:]))
    halves[0].merge(halves[1])
    np.testing.assert_allclose(
        halves[0].covariance.numpy(), np.cov(features, rowvar=False), rtol=1e-10, atol=1e-9
    )
    assert halves[0].count == 257


def test_covariance_needs_two_vectors_and_accumulator_compares_the_two_sets():
    stats = FeatureStatistics(4)
    stats.update(torch.ones(1, 4))
    with pytest.raises(ValueError, match="at least 2"):
        stats.covariance  # noqa: B018
    accumulator = FVDAccumulator.create(dim=8)
    truth = random_features(50, 8, seed=7)
    recon = random_features(50, 8, seed=8, shift=0.5)
    accumulator.update(torch.from_numpy(truth[:25]), torch.from_numpy(recon[:25]))
    accumulator.update(torch.from_numpy(truth[25:]), torch.from_numpy(recon[25:]))
    assert accumulator.compute() == pytest.approx(
        fvd_from_features(torch.from_numpy(recon), torch.from_numpy(truth)), rel=1e-12
    )


def test_preprocessing_of_a_224_square_is_only_the_rescale_to_minus_one_one():
    frames = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)
    prepared = preprocess_for_i3d(frames)
    torch.testing.assert_close(prepared, frames.float() / 255 * 2 - 1)


def test_short_side_resize_then_centre_crop():
    # 448x672 halves exactly to 224x336: with align_corners=False and no antialias each output pixel is the
    # mean of a 2x2 block; the 224-wide centre crop starts at column (336 - 224) // 2 = 56.
    frames = torch.randint(0, 256, (2, 3, 448, 672), dtype=torch.uint8)
    prepared = preprocess_for_i3d(frames)
    blocks = frames.double().view(2, 3, 224, 2, 336, 2).mean(dim=(3, 5)) / 255 * 2 - 1
    torch.testing.assert_close(prepared.double(), blocks[..., 56 : 56 + 224], rtol=0, atol=1e-6)
    assert short_side_resize_size(480, 768) == (224, 359)  # ceil(768 * 224 / 480) = ceil(358.4)
    assert short_side_resize_size(768, 480) == (359, 224)


def test_squash_resize_and_clip_layout():
    frames = torch.randint(0, 256, (5, 3, 448, 448), dtype=torch.uint8)
    squashed = preprocess_for_i3d(frames, resize="squash")
    torch.testing.assert_close(squashed, preprocess_for_i3d(frames))  # a square needs no crop
    assert preprocess_for_i3d(torch.zeros(5, 3, 60, 90, dtype=torch.uint8), resize="squash").shape == (
        5,
        3,
        224,
        224,
    )
    assert clip_from_frames(squashed).shape == (3, 5, 224, 224)
    with pytest.raises(ValueError, match="resize mode"):
        preprocess_for_i3d(frames, resize="stretch")  # type: ignore[arg-type]
