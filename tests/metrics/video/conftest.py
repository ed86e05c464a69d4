"""Frames and videos for the SSIM/PSNR/rFVD/decode tests: random and structured content."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def structured_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB frames `(count, H, W, 3)` with smooth gradients, hard edges, flat areas and fine texture,
    moving from frame to frame (unlike random noise, SSIM's local statistics vary across the frame)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        gradient = 255 * (xx + 3 * t) / (width + 3 * count)
        stripes = 127.5 + 127.5 * np.sin((xx + yy) / 3.0 + t)
        checker = 255.0 * (((xx + t) // 8 + yy // 8) % 2)
        flat = np.full_like(xx, 40.0 + 10 * t)
        texture = rng.normal(128, 40, size=xx.shape)
        quadrant = np.where(
            yy < height / 2,
            np.where(xx < width / 2, gradient, stripes),
            np.where(xx < width / 2, checker, flat),
        )
        inset = (abs(yy - height / 2) < height / 6) & (abs(xx - width / 2) < width / 6)
        red = np.where(inset, texture, quadrant)
        green = np.roll(quadrant, 5 + t, axis=1)
        blue = 255 - quadrant
        frames[t] = np.clip(np.stack([red, green, blue], axis=-1), 0, 255).round().astype(np.uint8)
    return frames


def random_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


def degrade(frames: np.ndarray, seed: int = 1, noise: float = 12.0, blur: bool = True) -> np.ndarray:
    """A plausible "reconstruction": a little blur and noise, rounded back to uint8."""
    rng = np.random.default_rng(seed)
    out = frames.astype(np.float64)
    if blur:
        out = (out + np.roll(out, 1, axis=1) + np.roll(out, 1, axis=2)) / 3
    out = out + rng.normal(0, noise, size=out.shape)
    return np.clip(out, 0, 255).round().astype(np.uint8)


@pytest.fixture
def make_structured_frames():
    return structured_frames


@pytest.fixture
def make_random_frames():
    return random_frames


@pytest.fixture
def single_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
