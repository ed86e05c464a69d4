"""Reconstruct videos through a diffusers video autoencoder, for SSIM / PSNR / rFVD tables (no Django).

`load_video_vae(path_or_id)` reads the saved config's `_class_name` and loads one of
`SUPPORTED_VAE_CLASSES` (CogVideoX, HunyuanVideo, Wan 2.1/2.2, LTX-Video), and works out the
autoencoder's geometry: spatial and temporal downsample factors, and which clip lengths it reconstructs
to the same length.

`reconstruct(vae, frames)` takes (T, H, W, 3) uint8 RGB frames and returns the reconstruction of
`usable_clip(vae, frames)` as uint8 of that clip's shape:
- pixels map to [-1, 1] as x / 127.5 - 1 and back as round((y + 1) * 127.5) clamped to [0, 255], so the
  reconstruction is quantized exactly as the uint8 ground truth is;
- the latent is the encoder posterior's mode (its mean), so a reconstruction is deterministic;
- space: H and W must be multiples of the spatial factor; the clip is center-cropped to the largest such
  size (the crop offsets are (H mod s) // 2 and (W mod s) // 2);
- time: these are causal VAEs that reconstruct 1 + n * k frames (n = `frame_step`: the temporal factor,
  twice it for CogVideoX, whose decoder only returns the input length for an odd number of latent frames);
  the usable clip is the longest such prefix, and the frames after it are left out (the length of the
  result says how many frames were used);
- memory: with `chunk_frames` (itself 1 + n * k) the clip is cut into consecutive chunks of that many
  frames that are encoded and decoded independently (the last chunk is the longest valid prefix of what
  remains); `enable_tiling=True` at load time turns on diffusers' spatial tiling as well.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SUPPORTED_VAE_CLASSES: dict[str, str] = {
    "cogvideox": "AutoencoderKLCogVideoX",
    "hunyuanvideo": "AutoencoderKLHunyuanVideo",
    "wan": "AutoencoderKLWan",
    "ltx": "AutoencoderKLLTXVideo",
}


@dataclass(frozen=True)
class VaeGeometry:
    spatial_factor: int
    temporal_factor: int
    frame_step: int  # clips of 1 + frame_step * k frames come back with the same length

    @property
    def label(self) -> str:
        """Downsample factor as written in reconstruction tables: temporal x height x width, e.g. 4x8x8."""
        return f"{self.temporal_factor}x{self.spatial_factor}x{self.spatial_factor}"

    def usable_frame_count(self, num_frames: int) -> int:
        if num_frames < 1:
            raise ValueError(f"a video needs at least one frame, got {num_frames}")
        return 1 + self.frame_step * ((num_frames - 1) // self.frame_step)

    def is_valid_frame_count(self, num_frames: int) -> bool:
        return num_frames >= 1 and (num_frames - 1) % self.frame_step == 0

    def usable_size(self, height: int, width: int) -> tuple[int, int]:
        usable = (height - height % self.spatial_factor, width - width % self.spatial_factor)
        if min(usable) == 0:
            raise ValueError(
                f"{height}x{width} frames are smaller than the spatial factor {self.spatial_factor}"
            )
        return usable

    def chunk_lengths(self, num_frames: int, chunk_frames: int | None = None) -> list[int]:
        """Lengths of the consecutive chunks reconstructed from a clip of num_frames frames."""
        if chunk_frames is None:
            return [self.usable_frame_count(num_frames)]
        if not self.is_valid_frame_count(chunk_frames):
            raise ValueError(f"chunk_frames must be 1 + {self.frame_step} * k, got {chunk_frames}")
        lengths = [chunk_frames] * (num_frames // chunk_frames)
        if remaining := num_frames - sum(lengths):
            lengths.append(self.usable_frame_count(remaining))
        return lengths


@dataclass
class VideoVae:
    model: torch.nn.Module
    class_name: str
    geometry: VaeGeometry
    source: str

    @property
    def spatial_downsample(self) -> int:
        return self.geometry.spatial_factor

    @property
    def temporal_downsample(self) -> int:
        return self.geometry.temporal_factor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def vae_geometry(model: torch.nn.Module) -> VaeGeometry:
    """Downsample factors and valid clip lengths of a supported diffusers video autoencoder."""
    class_name = type(model).__name__
    config: Any = getattr(model, "config", None)
    if class_name == "AutoencoderKLCogVideoX":
        temporal = int(config.temporal_compression_ratio)
        spatial = 2 ** (len(config.block_out_channels) - 1)
        # Its decoder works on latent frames in pairs, with the first chunk taking the odd one out; an even
        # number of latent frames decodes to 4 more frames than were encoded.
        return VaeGeometry(spatial, temporal, frame_step=2 * temporal)
    if class_name == "AutoencoderKLWan":
        spatial = 2 ** (len(config.dim_mult) - 1) * (config.patch_size or 1)
        temporal = 2 ** sum(bool(flag) for flag in config.temperal_downsample)
        return VaeGeometry(spatial, temporal, frame_step=temporal)
    if class_name in ("AutoencoderKLHunyuanVideo", "AutoencoderKLLTXVideo"):
        temporal = int(model.temporal_compression_ratio)  # type: ignore[arg-type]
        return VaeGeometry(int(model.spatial_compression_ratio), temporal, frame_step=temporal)  # type: ignore[arg-type]
    raise ValueError(
        f"{class_name} is not a supported video VAE ({', '.join(SUPPORTED_VAE_CLASSES.values())})"
    )


def _read_vae_config(path_or_id: str, subfolder: str | None) -> tuple[dict[str, Any], str | None]:
    """The saved config and the subfolder it was found in (a pipeline folder keeps its VAE in vae/)."""
    local = Path(path_or_id)
    if local.is_dir():
        if (
            subfolder is None
            and not (local / "config.json").is_file()
            and (local / "vae" / "config.json").is_file()
        ):
            subfolder = "vae"
        config_file = local / (subfolder or "") / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no config.json in {config_file.parent}")
        return json.loads(config_file.read_text()), subfolder
    from diffusers import ModelMixin

    # A hub id: diffusers resolves it (from the local Hugging Face cache when HF_HUB_OFFLINE=1).
    return dict(ModelMixin.load_config(path_or_id, subfolder=subfolder)), subfolder


def _class_name_for(kind: str | None, saved_class_name: str | None) -> str:
    requested = SUPPORTED_VAE_CLASSES.get(kind.lower(), kind) if kind else None
    if requested and saved_class_name and requested != saved_class_name:
        raise ValueError(f"kind {kind!r} asks for {requested} but the saved config is a {saved_class_name}")
    class_name = requested or saved_class_name
    if class_name is None:
        raise ValueError("the saved config has no _class_name; pass kind= (e.g. 'cogvideox', 'wan')")
    if class_name not in SUPPORTED_VAE_CLASSES.values():
        raise ValueError(
            f"{class_name} is not a supported video VAE ({', '.join(SUPPORTED_VAE_CLASSES.values())})"
        )
    return class_name


def load_video_vae(
    path_or_id: str | Path,
    kind: str | None = None,
    *,
    subfolder: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    enable_tiling: bool = False,
) -> VideoVae:
    """Load a diffusers video autoencoder from a local folder (or a hub id already in the local cache).

    `path_or_id` may be the VAE's own folder or a pipeline folder with the VAE in `vae/`. `kind` (a key of
    SUPPORTED_VAE_CLASSES or a class name) is only needed when the config lacks `_class_name`; when both
    are present they must agree.
    """
    import diffusers

    source = str(path_or_id)
    config, subfolder = _read_vae_config(source, subfolder)
    class_name = _class_name_for(kind, config.get("_class_name"))
    model = getattr(diffusers, class_name).from_pretrained(
        source,
        subfolder=subfolder,
        torch_dtype=dtype,
        # diffusers only streams weights into an empty model with accelerate; say so instead of warning.
        low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
    )
    model = model.to(device).eval()
    if enable_tiling:
        model.enable_tiling()
    return VideoVae(model=model, class_name=class_name, geometry=vae_geometry(model), source=source)


def _as_frames_tensor(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB, got {tuple(frames.shape)} {frames.dtype}")
    return frames


def usable_clip(
    vae: VideoVae, frames: torch.Tensor | np.ndarray, *, chunk_frames: int | None = None
) -> torch.Tensor:
    """The part of `frames` that `reconstruct` reconstructs: the ground truth to compare it with."""
    frames = _as_frames_tensor(frames)
    num_frames, height, width = frames.shape[:3]
    used = sum(vae.geometry.chunk_lengths(num_frames, chunk_frames))
    crop_height, crop_width = vae.geometry.usable_size(height, width)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return frames[:used, top : top + crop_height, left : left + crop_width]


def to_vae_input(frames: torch.Tensor, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, H, W) in [-1, 1]."""
    pixels = frames.to(device).permute(3, 0, 1, 2).unsqueeze(0).float()
    return (pixels / 127.5 - 1.0).to(dtype)


def from_vae_output(sample: torch.Tensor) -> torch.Tensor:
    """(1, 3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8, rounded and clamped like the ground truth."""
    pixels = ((sample[0].float() + 1.0) * 127.5).round().clamp(0, 255)
    return pixels.to(torch.uint8).permute(1, 2, 3, 0)


@torch.no_grad()
def reconstruct_chunk(vae: VideoVae, frames: torch.Tensor) -> torch.Tensor:
    """Encode (posterior mode) and decode one clip whose shape the VAE accepts as is."""
    model: Any = vae.model
    latents = model.encode(to_vae_input(frames, device=vae.device, dtype=vae.dtype)).latent_dist.mode()
    decode_kwargs = {}
    if getattr(model.config, "timestep_conditioning", False):
        # LTX-Video 0.9.1+ decoders are conditioned on a denoising timestep; 0 means clean latents, as in
        # diffusers' LTXPipeline with its default decode_timestep=0.
        decode_kwargs["temb"] = torch.zeros(latents.shape[0], device=latents.device, dtype=latents.dtype)
    sample = model.decode(latents, **decode_kwargs).sample
    if sample.shape[2:] != (frames.shape[0], *frames.shape[1:3]):
        raise RuntimeError(
            f"{vae.class_name} returned {tuple(sample.shape[2:])} for a {tuple(frames.shape[:3])} clip"
        )
    return from_vae_output(sample)


def reconstruct(
    vae: VideoVae, frames: torch.Tensor | np.ndarray, *, chunk_frames: int | None = None
) -> torch.Tensor:
    """Reconstruction of usable_clip(vae, frames) as (T', H', W', 3) uint8, on the frames' device.

    T' is the number of frames used (a prefix); H', W' the center crop to multiples of the spatial factor.
    """
    clip = usable_clip(vae, frames, chunk_frames=chunk_frames)
    lengths = vae.geometry.chunk_lengths(clip.shape[0], chunk_frames)
    starts = [0, *np.cumsum(lengths)[:-1].tolist()]
    chunks = [
        reconstruct_chunk(vae, clip[start : start + length])
        for start, length in zip(starts, lengths, strict=True)
    ]
    return torch.cat(chunks).to(clip.device)
