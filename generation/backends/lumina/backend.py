"""`LuminaVideoBackend`: Lumina-Video (multi-scale Next-DiT, Gemma-2 text, CogVideoX VAE) in-process.

Load options (all optional):
    text_encoder   a local google/gemma-2-2b folder (default `<checkpoint>/gemma-2-2b`)
    vae            a local THUDM/CogVideoX-2b `vae` folder (default `<checkpoint>/vae`)
    text_device    where Gemma-2 runs (default: the backend's device)
    vae_device     where the VAE decodes (default: the backend's device)

Settings and their official defaults (generate.py's f24F96R960 sample config and README example) are in
`config.OFFICIAL_DEFAULTS`; the sampler and guidance, motion conditioning included, are described in
`sampler`. `motion_score` and `negative_motion_score` are plain settings with a range, so a generation run's
settings grid sweeps them like any other.

Frames. The VAE compresses time 4x and Lumina-Video's coarse scales patch 2 latent frames together, so the
latents have F' = frames / 4 frames (the official `latent_f = frames // 4`) and F' must be even: CogVideoX's
decoder turns an even F' into exactly 4 F' frames (an odd F' gives 4 F' - 3, the "4k+1" of its encoder
side). Hence the frame rule 8k (96 = 8 x 12, the official length).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..base import (
    Backend,
    BackendError,
    Capabilities,
    CheckpointError,
    FrameRule,
    GeneratedVideo,
    GenerationRequest,
    OutOfMemory,
    ProgressCallback,
    SettingsError,
    SettingSpec,
    StopCallback,
    check_stop,
    frames_to_uint8,
)
from . import checkpoint as layout
from .config import MULTI_SCALE, OFFICIAL_DEFAULTS, DiTConfig, ScaleStep, dit_config_from_args, parse_scales
from .dit import MultiScaleNextDiT
from .sampler import Guidance, TextConditions, sample
from .text import encode

SAMPLER = (
    "flow matching, Euler: x_t = t x_1 + (1 - t) x_0 with x_0 the noise and x_1 the data, t from 0 to 1, "
    "v = x_1 - x_0; time shift t' = t/(t + s - s t); guidance v_pos + g (v_pos - v_neg) while t < "
    "guidance_until, the negative branch with the negative prompt and negative_motion_score"
)
OPTION_NAMES = ("text_encoder", "vae", "text_device", "vae_device")
VAE_TEMPORAL = 4
VAE_SPATIAL = 8


def latent_frames_for(frames: int) -> int:
    return frames // VAE_TEMPORAL


def settings_for(config: DiTConfig) -> tuple[SettingSpec, ...]:
    d = OFFICIAL_DEFAULTS
    combos = ", ".join(f"{f}x{p}" for f, p in config.patch_combos)
    multiple = VAE_SPATIAL * max(config.patch_sizes)
    return (
        SettingSpec("height", int, d["height"], multiple, 4096, help=f"pixels, a multiple of {multiple}"),
        SettingSpec("width", int, d["width"], multiple, 4096, help=f"pixels, a multiple of {multiple}"),
        SettingSpec("frames", int, d["frames"], 8, 512, help="a multiple of 8 (96 = 4 s at 24 fps)"),
        SettingSpec("fps", float, d["fps"], 1, 120, help="frame rate of the written video (trained at 24)"),
        SettingSpec("steps", int, d["steps"], 1, 1000, help="Euler steps (official step=70: 70 time points)"),
        SettingSpec(
            "time_shift", float, d["time_shift"], 0.0, 1000.0, help="t' = t/(t + s - s t); 0 is none"
        ),
        SettingSpec(
            "guidance_scale",
            float,
            d["guidance_scale"],
            0.0,
            100.0,
            help="g in v_pos + g (v_pos - v_neg) (Lumina's convention: 0 is no guidance)",
        ),
        SettingSpec("guidance_until", float, d["guidance_until"], 0.0, 1.0, help="guidance while t < this"),
        SettingSpec(
            "renorm",
            float,
            d["renorm"],
            -1.0,
            100.0,
            help="cap the guided velocity at renorm x ||v_pos||; <= 0 off",
        ),
        SettingSpec(
            "motion_score",
            float,
            d["motion_score"],
            0.0,
            100.0,
            help="the motion conditioning of the prompt branch (mean optical flow; larger is more motion)",
        ),
        SettingSpec(
            "negative_motion_score",
            float,
            d["negative_motion_score"],
            -1.0,
            100.0,
            help="the negative branch's motion score while t < negative_motion_until (then motion_score); "
            "-1 drops its motion condition",
        ),
        SettingSpec(
            "negative_motion_until",
            float,
            d["negative_motion_until"],
            0.0,
            1.0,
            help="the time the negative branch switches to motion_score",
        ),
        SettingSpec(
            "scales",
            str,
            d["scales"],
            help=f"patch schedule TEMPORALxSPATIAL[@t],...: 1x2 single-scale, {MULTI_SCALE} the official "
            f"multi-scale; this checkpoint has {combos}",
        ),
        SettingSpec("negative_prompt", str, "", help="the negative branch's prompt (official: empty)"),
    )


def capabilities_of(config: DiTConfig) -> Capabilities:
    """What a Lumina-Video checkpoint takes: from its DiT's configuration alone."""
    return Capabilities(
        family="lumina-video",
        frame_rule=FrameRule(8),
        resolution_multiple=VAE_SPATIAL * max(config.patch_sizes),
        latent_channels=config.in_channels,
        spatial_compression=VAE_SPATIAL,
        temporal_compression=VAE_TEMPORAL,
        sampler=SAMPLER,
        settings=settings_for(config),
        supports_negative_prompt=True,
        max_batch_size=4,
        latent_frames_for=latent_frames_for,
    )


def checked_options(options: Mapping[str, Any] | None, adapter: Path | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise BackendError(f"unknown Lumina-Video options {unknown}; known: {list(OPTION_NAMES)}")
    if adapter is not None:
        raise BackendError("the Lumina-Video backend takes no adapters")
    return options


def dit_config_of(checkpoint: Path, args: Any, *, in_channels: int, cap_feat_dim: int) -> DiTConfig:
    try:
        return dit_config_from_args(args, in_channels=in_channels, cap_feat_dim=cap_feat_dim)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{checkpoint / layout.MODEL_ARGS}: {exc}") from exc


class LuminaVideoBackend(Backend):
    name: ClassVar[str] = "lumina"

    def __init__(
        self,
        dit: MultiScaleNextDiT,
        text_encoder: Any,
        tokenizer: Any,
        vae: Any,
        *,
        device: torch.device,
        dtype: torch.dtype,
        checkpoint: Path,
    ):
        self.dit, self.text_encoder, self.tokenizer, self.vae = dit, text_encoder, tokenizer, vae
        self.device, self.dtype, self.checkpoint = device, dtype, checkpoint
        self.capabilities = capabilities_of(dit.config)

    @classmethod
    def capabilities_for(
        cls, checkpoint: Path, *, adapter: Path | None = None, options: Mapping[str, Any] | None = None
    ) -> Capabilities:
        """The loaded backend's capabilities, from the checkpoint's model_args and its text encoder's and
        VAE's config.json (no weights read)."""
        options = checked_options(options, adapter)
        checkpoint = Path(checkpoint)
        args = layout.read_model_args(checkpoint)
        layout.dit_weights_path(checkpoint)
        text_folder = layout.component_folder(
            checkpoint, options.get("text_encoder"), layout.TEXT_ENCODER_DIR, "text encoder"
        )
        vae_folder = layout.component_folder(checkpoint, options.get("vae"), layout.VAE_DIR, "VAE")
        try:
            text_config = json.loads((text_folder / "config.json").read_text())
            vae_config = json.loads((vae_folder / "config.json").read_text())
            in_channels, cap_feat_dim = int(vae_config["latent_channels"]), int(text_config["hidden_size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{checkpoint}: the text encoder's or VAE's config.json: {exc}") from exc
        return capabilities_of(
            dit_config_of(checkpoint, args, in_channels=in_channels, cap_feat_dim=cap_feat_dim)
        )

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        adapter: Path | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> LuminaVideoBackend:
        options = checked_options(options, adapter)
        checkpoint = Path(checkpoint)
        device = torch.device(device)
        args = layout.read_model_args(checkpoint)
        weights = layout.dit_weights_path(checkpoint)
        text_folder = layout.component_folder(
            checkpoint, options.get("text_encoder"), layout.TEXT_ENCODER_DIR, "text encoder"
        )
        vae_folder = layout.component_folder(checkpoint, options.get("vae"), layout.VAE_DIR, "VAE")
        text_device = torch.device(options.get("text_device") or device)
        vae_device = torch.device(options.get("vae_device") or device)
        text_encoder, tokenizer = layout.load_text_encoder(text_folder, device=text_device, dtype=dtype)
        vae = layout.load_vae(vae_folder, device=vae_device, dtype=dtype)
        config = dit_config_of(
            checkpoint,
            args,
            in_channels=int(vae.config.latent_channels),
            cap_feat_dim=int(text_encoder.config.hidden_size),
        )
        dit = layout.load_dit(layout.read_state_dict(weights), config, device=device, dtype=dtype)
        return cls(dit, text_encoder, tokenizer, vae, device=device, dtype=dtype, checkpoint=checkpoint)

    def scales_of(self, text: str) -> tuple[ScaleStep, ...]:
        try:
            scales = parse_scales(text)
        except ValueError as exc:
            raise SettingsError("scales", str(exc)) from None
        available = set(self.dit.config.patch_combos)
        for step in scales:
            if (step.f_patch, step.patch) not in available:
                raise SettingsError(
                    "scales",
                    f"{step.f_patch}x{step.patch} is not one of this checkpoint's "
                    f"{sorted(f'{f}x{p}' for f, p in available)}",
                )
        return scales

    def _check_size(self, settings: Mapping[str, Any], scales: tuple[ScaleStep, ...]) -> None:
        latent_f = latent_frames_for(settings["frames"])
        for step in scales:
            for name, size, patch in (
                ("height", settings["height"] // VAE_SPATIAL, step.patch),
                ("width", settings["width"] // VAE_SPATIAL, step.patch),
                ("frames", latent_f, step.f_patch),
            ):
                if size % patch:
                    raise SettingsError(name, f"does not split into the {step.f_patch}x{step.patch} patches")

    @torch.no_grad()
    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: ProgressCallback | None = None,
        should_stop: StopCallback | None = None,
    ) -> list[GeneratedVideo]:
        settings = self.settings_for(request)
        scales = self.scales_of(settings["scales"])
        self._check_size(settings, scales)
        if len(request.prompts) > self.capabilities.max_batch_size:
            raise BackendError(f"at most {self.capabilities.max_batch_size} videos per batch")
        latents = self.latents_for(request, settings)
        count, steps = len(request.prompts), settings["steps"]
        check_stop(should_stop)
        try:
            features, mask, truncated = encode(
                [*request.prompts, *[settings["negative_prompt"]] * count], self.text_encoder, self.tokenizer
            )
            features, mask = features.to(self.device), mask.to(self.device)
            text = TextConditions(features[:count], mask[:count], features[count:], mask[count:])
            guidance = Guidance(
                scale=settings["guidance_scale"],
                until=settings["guidance_until"],
                renorm=settings["renorm"],
                motion_score=settings["motion_score"],
                negative_motion_score=settings["negative_motion_score"],
                negative_motion_until=settings["negative_motion_until"],
            )

            def on_step(index: int) -> None:
                if progress is not None:
                    progress(index + 1, steps)
                check_stop(should_stop)

            result = sample(
                self.dit,
                torch.stack(latents).to(self.device),
                text,
                steps=steps,
                shift=settings["time_shift"],
                guidance=guidance,
                scales=scales,
                on_step=on_step,
            )
            videos = self.decode(result)
        except torch.cuda.OutOfMemoryError as exc:
            raise OutOfMemory(
                str(exc).splitlines()[0], "lower frames, height/width or the batch size"
            ) from exc
        return [
            GeneratedVideo(
                frames=frames_to_uint8(video),
                fps=float(settings["fps"]),
                initial_latents=latent,
                seed=request.seeds[index] if request.seeds is not None else None,
                info={"backend": self.name, "settings": dict(settings), "prompt_truncated": truncated[index]},
            )
            for index, (video, latent) in enumerate(zip(videos, latents, strict=True))
        ]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, F', H', W') -> videos (B, 3, frames, H, W) in [-1, 1], as the official decode."""
        vae_device = next(self.vae.parameters()).device
        scaled = (latents / float(self.vae.config.scaling_factor)).to(vae_device, self.vae.dtype)
        return self.vae.decode(scaled).sample.float()

    def close(self) -> None:
        for name in ("dit", "text_encoder", "vae"):
            setattr(self, name, None)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
