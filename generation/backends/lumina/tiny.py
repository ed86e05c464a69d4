"""A tiny Lumina-Video checkpoint for tests, written in the published layouts with random weights.

`make_tiny_lumina(folder)` writes `model_args.pth` (an argparse.Namespace naming the published model,
with tiny sizes that override it) and `consolidated.00-of-01.safetensors` (the DiT, published key names),
a tiny Gemma-2 (`Gemma2ForCausalLM.save_pretrained`, as google/gemma-2-2b is stored, with an offline
word-level tokenizer) in `gemma-2-2b/`, and a tiny CogVideoX VAE (16 latent channels, 8x spatial and 4x
temporal compression, as CogVideoX-2B's) in `vae/`. Every DiT parameter is random, the gates and AdaLN
layers the official code zero-initialises included, so every path (motion conditioning, cross-attention)
changes the output. Nothing is fetched from a hub.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..tiny import _seeded, tiny_tokenizer
from .checkpoint import DIT_WEIGHTS, MODEL_ARGS, TEXT_ENCODER_DIR, VAE_DIR
from .config import dit_config_from_args
from .dit import MultiScaleNextDiT

TINY_SETTINGS: dict[str, Any] = {"height": 32, "width": 32, "frames": 8, "steps": 2, "fps": 8}
TINY_MODEL_ARGS: dict[str, Any] = {
    "model": "MultiScaleNextDiT_2B_GQA",
    "dim": 32,
    "n_layers": 2,
    "n_heads": 2,
    "n_kv_heads": 1,
    "multiple_of": 16,
    "qk_norm": True,
    "patch_sizes": [2, 2, 4],
    "f_patch_sizes": [1, 2, 2],
    "rope_theta": 256.0,
    "t_scale": 1000.0,
    "motion_scale": 20.0,
}
TINY_TEXT_WIDTH = 32
TINY_LATENT_CHANNELS = 16


def randomize(module: nn.Module, seed: int, spread: float = 0.1) -> nn.Module:
    """Every parameter random: norm weights near 1, everything else near 0 with the given spread."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * spread
            is_norm_weight = (
                "norm" in name and name.endswith("weight") or name.startswith("cap_embedder.0.weight")
            )
            parameter.copy_(1 + noise if is_norm_weight else noise)
    return module


def tiny_dit(seed: int = 0, **overrides: Any) -> MultiScaleNextDiT:
    args = {**TINY_MODEL_ARGS, **overrides}
    config = dit_config_from_args(args, in_channels=TINY_LATENT_CHANNELS, cap_feat_dim=TINY_TEXT_WIDTH)
    return randomize(MultiScaleNextDiT(config), seed).eval()  # type: ignore[return-value]


def tiny_gemma_config(vocab_size: int) -> Any:
    from transformers import Gemma2Config

    return Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=TINY_TEXT_WIDTH,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=64,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=2,
    )


def tiny_vae() -> Any:
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=TINY_LATENT_CHANNELS,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )


def make_tiny_lumina(folder: str | Path, seed: int = 0, *, compiled_names: bool = False) -> Path:
    """Write the tiny checkpoint folder; `compiled_names` stores the DiT keys with torch.compile's
    `_orig_mod.` segment, which the loader strips as the official one does."""
    from safetensors.torch import save_file
    from transformers import Gemma2ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(argparse.Namespace(**TINY_MODEL_ARGS), folder / MODEL_ARGS)
    state = {k: v.contiguous() for k, v in tiny_dit(seed).state_dict().items()}
    if compiled_names:
        state = {f"_orig_mod.{k}": v for k, v in state.items()}
    save_file(state, str(folder / DIT_WEIGHTS[0]))
    tokenizer = tiny_tokenizer(max_length=256)
    gemma = _seeded(seed + 1, lambda: Gemma2ForCausalLM(tiny_gemma_config(len(tokenizer))))
    gemma.save_pretrained(folder / TEXT_ENCODER_DIR)
    tokenizer.save_pretrained(folder / TEXT_ENCODER_DIR)
    _seeded(seed + 2, tiny_vae).save_pretrained(folder / VAE_DIR)
    return folder
