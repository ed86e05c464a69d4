"""Reading Lumina-Video's published folders: the DiT folder (Alpha-VLLM/Lumina-Video-f24R960), Gemma-2-2B
and CogVideoX-2B's VAE, each in its own published layout, nothing fetched from a hub.

    <checkpoint>/model_args.pth                        the training run's argparse.Namespace
    <checkpoint>/consolidated.00-of-01.safetensors     the DiT (or consolidated.00-of-01.pth)
    <text_encoder>/config.json, model*.safetensors, tokenizer files   google/gemma-2-2b
    <vae>/config.json, diffusion_pytorch_model.safetensors            THUDM/CogVideoX-2b, subfolder vae

The text encoder and VAE folders default to `<checkpoint>/gemma-2-2b` and `<checkpoint>/vae`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ..base import CheckpointError
from .config import DiTConfig
from .dit import MultiScaleNextDiT

MODEL_ARGS = "model_args.pth"
DIT_WEIGHTS = ("consolidated.00-of-01.safetensors", "consolidated.00-of-01.pth")
TEXT_ENCODER_DIR = "gemma-2-2b"
VAE_DIR = "vae"
COMPILE_PREFIX = "_orig_mod."  # torch.compile's wrapper segment, stripped as the official loader does


def read_model_args(folder: Path) -> argparse.Namespace:
    path = folder / MODEL_ARGS
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a Lumina-Video checkpoint: {MODEL_ARGS} is missing")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            args = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error names the type it refused
        raise CheckpointError(f"{path} could not be read safely: {exc}") from exc
    if not isinstance(args, argparse.Namespace):
        raise CheckpointError(f"{path} holds a {type(args).__name__}, not the training arguments")
    return args


def dit_weights_path(folder: Path) -> Path:
    for name in DIT_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: no DiT weights ({' or '.join(DIT_WEIGHTS)})")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {key.replace(COMPILE_PREFIX, ""): value for key, value in state.items()}


def load_dit(
    state: dict[str, torch.Tensor], config: DiTConfig, *, device: str | torch.device, dtype: torch.dtype
) -> MultiScaleNextDiT:
    """The DiT with every published key loaded strictly: a missing or unexpected key is a CheckpointError."""
    with torch.device("meta"):
        dit = MultiScaleNextDiT(config)
    expected = set(dit.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"the DiT weights do not fit the model_args' {config.n_layers}-layer, width-{config.dim} model: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    try:
        dit.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # a shape mismatch
        raise CheckpointError(f"the DiT weights do not fit: {exc}") from exc
    return dit.to(device=device, dtype=dtype).eval()


def component_folder(checkpoint: Path, option: Any, default: str, what: str) -> Path:
    folder = Path(option) if option else checkpoint / default
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"{what}: {folder} has no config.json (give the folder with the `{'text_encoder' if default == TEXT_ENCODER_DIR else 'vae'}` "
            "option, or put it there)"
        )
    return folder


def load_text_encoder(folder: Path, *, device: str | torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """Gemma-2 (the base model, no LM head) and its tokenizer, right-padded as the official code pads."""
    from transformers import AutoTokenizer, Gemma2Model

    try:
        model = Gemma2Model.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Gemma-2 text encoder at {folder}: {exc}") from exc
    tokenizer.padding_side = "right"
    model = model.to(device)  # type: ignore[arg-type]
    return model.eval(), tokenizer


def load_vae(folder: Path, *, device: str | torch.device, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderKLCogVideoX

    try:
        vae = AutoencoderKLCogVideoX.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"CogVideoX VAE at {folder}: {exc}") from exc
    return vae.to(device).eval()
