"""Inputs of a Video-DPO run from a diffusers pipeline: VAE latents of exported videos and the prompt's text
embeddings, in the form `write_pair_latents` stores (no Django).

Only pipelines whose transformer the trainer's `DIFFUSERS_ADAPTER` drives with `encoder_hidden_states`
and whose VAE is normalised by `latents_mean` / `latents_std` (Wan 2.1 / 2.2) are supported; other
families raise `EncodeError` with the pipeline's class name.

A video is resized (bilinear) to the run's height and width, and its first `frames` frames are kept (a
shorter video repeats its last frame), so chosen and rejected always give latents of the same shape.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class EncodeError(ValueError):
    """The pipeline or the video cannot give training latents; the message says why."""


def check_pipeline(pipe: Any) -> None:
    vae_config = getattr(getattr(pipe, "vae", None), "config", None)
    if (
        not hasattr(pipe, "encode_prompt")
        or vae_config is None
        or getattr(vae_config, "latents_mean", None) is None
        or getattr(vae_config, "latents_std", None) is None
    ):
        raise EncodeError(
            f"{type(pipe).__name__}: Video-DPO latents are computed for Wan pipelines only "
            "(a VAE with latents_mean/latents_std and encode_prompt)"
        )


def frames_for_vae(frames: torch.Tensor, *, height: int, width: int, num_frames: int) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> float (1, 3, num_frames, height, width) in [-1, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise EncodeError(f"expected frames (T, H, W, 3), got {tuple(frames.shape)}")
    if frames.shape[0] < num_frames:
        frames = torch.cat([frames, frames[-1:].expand(num_frames - frames.shape[0], -1, -1, -1)])
    video = frames[:num_frames].permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (T, 3, H, W)
    video = F.interpolate(video, size=(height, width), mode="bilinear", align_corners=False)
    return video.permute(1, 0, 2, 3).unsqueeze(0)


@torch.no_grad()
def encode_video(
    pipe: Any, frames: torch.Tensor, *, height: int, width: int, num_frames: int
) -> torch.Tensor:
    """Normalised VAE latents (C, F', H', W') of one video: (mode(z) - latents_mean) / latents_std, the
    inverse of what the pipeline does before decoding."""
    check_pipeline(pipe)
    vae = pipe.vae
    video = frames_for_vae(frames, height=height, width=width, num_frames=num_frames)
    video = video.to(device=vae.device, dtype=vae.dtype)
    latents = vae.encode(video).latent_dist.mode().float()
    z_dim = latents.shape[1]
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=latents.device).view(
        1, z_dim, 1, 1, 1
    )
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=latents.device).view(
        1, z_dim, 1, 1, 1
    )
    return ((latents - mean) / std)[0].cpu()


@torch.no_grad()
def encode_text(pipe: Any, prompt: str, *, max_sequence_length: int = 226) -> dict[str, torch.Tensor]:
    """The conditioning tensors of one prompt, without a batch dimension ({"encoder_hidden_states": (L, D)})."""
    check_pipeline(pipe)
    embeds, _ = pipe.encode_prompt(
        prompt, do_classifier_free_guidance=False, max_sequence_length=max_sequence_length
    )
    return {"encoder_hidden_states": embeds[0].float().cpu()}
