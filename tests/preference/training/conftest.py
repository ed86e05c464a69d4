"""Tiny random-weight networks and synthetic preference data for the training library's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_WAN_CONFIG = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "in_channels": 4,
    "out_channels": 4,
    "text_dim": 16,
    "freq_dim": 16,
    "ffn_dim": 32,
    "num_layers": 2,
    "rope_max_seq_len": 32,
}
LATENT_SHAPE = (4, 3, 8, 8)  # (C, F, H, W)
TEXT_SHAPE = (5, 16)  # (tokens, text_dim)


def tiny_wan(seed: int = 0):
    """A two-block WanTransformer3DModel with random weights, the same weights for the same seed."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(**TINY_WAN_CONFIG)


def smooth_and_jittery(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen: one spatial pattern held over time; rejected: the same pattern with per-frame jitter."""
    channels, frames, height, width = LATENT_SHAPE
    pattern = torch.randn(channels, 1, height, width, generator=generator)
    chosen = pattern.expand(channels, frames, height, width).clone()
    rejected = chosen + 0.8 * torch.randn(channels, frames, height, width, generator=generator)
    return chosen, rejected


def write_synthetic_pairs(folder: Path, *, train: int = 8, validation: int = 4, seed: int = 0) -> Path:
    from preference.training.video_dpo import write_pair_latents

    generator = torch.Generator().manual_seed(seed)
    for index in range(train + validation):
        split = "train" if index < train else "validation"
        chosen, rejected = smooth_and_jittery(generator)
        write_pair_latents(
            folder,
            record_id=f"r{index:03d}",
            prompt=f"prompt number {index}",
            split=split,
            chosen=chosen,
            rejected=rejected,
            conditioning={"encoder_hidden_states": torch.randn(*TEXT_SHAPE, generator=generator)},
        )
    return folder


@pytest.fixture
def synthetic_pairs(tmp_path) -> Path:
    return write_synthetic_pairs(tmp_path / "latents")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread than split over a few busy cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
