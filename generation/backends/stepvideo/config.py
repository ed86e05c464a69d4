"""Configurations of Step-Video-T2V's parts and the official sampling defaults, in one place.

Sizes default to the released 30B model; each config reads the `config.json` its folder ships with
(the DiT's diffusers-style config, Step-LLM's Megatron-style config) and ignores keys it does not use.
The VAE has no config file in the release (its sizes are fixed in code), so `VAEConfig` defaults are the
released ones and the tiny test checkpoint writes a `stepvideo_vae.json` beside its weights instead.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

# The official inference defaults (the repository's README "best-of-practice" table and pipeline
# signature). Step-Video-T2V: 30-50 steps, cfg 9.0, time shift 13.0; Turbo: 10-15 steps, cfg 5.0,
# time shift 17.0; both 204 frames at 544x992.
OFFICIAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "base": {"steps": 50, "guidance_scale": 9.0, "time_shift": 13.0, "steps_range": (30, 50)},
    "turbo": {"steps": 10, "guidance_scale": 5.0, "time_shift": 17.0, "steps_range": (10, 15)},
}
DEFAULT_HEIGHT = 544
DEFAULT_WIDTH = 992
DEFAULT_FRAMES = 204
# The official post-processing writes 25 fps.
DEFAULT_FPS = 25.0
# The official run script's magic prompts (positive suffix and the negative prompt).
POSITIVE_MAGIC = "超高清、HDR 视频、环境光、杜比全景声、画面稳定、流畅动作、逼真的细节、专业级构图、超现实主义、自然、生动、超细节、清晰。"
NEGATIVE_MAGIC = (
    "画面暗、低分辨率、不良手、文本、缺少手指、多余的手指、裁剪、低质量、颗粒状、签名、水印、用户名、模糊。"
)
# Text lengths the official caption server pads to.
LLM_MAX_LENGTH = 320
CLIP_MAX_LENGTH = 77

C = TypeVar("C")


def _from_mapping(cls: type[C], values: dict[str, Any]) -> C:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in names})


def read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


@dataclass(frozen=True)
class DiTConfig:
    """The denoiser (`transformer/config.json`, keys as released)."""

    num_attention_heads: int = 48
    attention_head_dim: int = 128
    in_channels: int = 64
    out_channels: int | None = 64
    num_layers: int = 48
    patch_size: int = 1
    norm_eps: float = 1e-6
    norm_elementwise_affine: bool = False
    use_additional_conditions: bool = False
    # [Step-LLM width, CLIP width]; a single int means no CLIP projection.
    caption_channels: int | tuple[int, int] | list[int] = (6144, 1024)

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def output_channels(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def rope_split(self) -> tuple[int, int, int]:
        """Channels of each head given to the frame, height and width rotations ([64, 32, 32] at 128)."""
        d = self.attention_head_dim
        return (d // 2, d // 4, d - d // 2 - d // 4)

    @property
    def llm_channels(self) -> int:
        c = self.caption_channels
        return c if isinstance(c, int) else int(c[0])

    @property
    def clip_channels(self) -> int | None:
        c = self.caption_channels
        return None if isinstance(c, int) else int(c[1])

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DiTConfig:
        config = _from_mapping(cls, values)
        if isinstance(config.caption_channels, list):
            config = dataclasses.replace(config, caption_channels=tuple(config.caption_channels))  # type: ignore[arg-type]
        return config

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["caption_channels"] = (
            list(self.caption_channels)
            if not isinstance(self.caption_channels, int)
            else self.caption_channels
        )
        return {"_class_name": "StepVideoModel", "norm_type": "ada_norm_single", "dropout": 0.0, **data}


@dataclass(frozen=True)
class VAEConfig:
    """Video-VAE v2 (`vae/vae_v2.safetensors`): 16x16 spatial, 8x temporal, 64 latent channels."""

    z_channels: int = 64
    encoder_channels: int = 32
    encoder_multipliers: tuple[int, ...] = (4, 8, 16, 16)
    # encoder levels whose downsampling is 3D (time too); the others are 2D
    encoder_temporal_levels: tuple[int, ...] = (1, 2)
    decoder_channels: int = 128
    decoder_multipliers: tuple[int, ...] = (1, 2, 4, 4)
    decoder_temporal_levels: tuple[int, ...] = (2, 3)
    num_res_blocks: int = 2
    norm_groups: int = 32
    # frames per encoded chunk and latent frames per decoded chunk
    frame_chunk: int = 17
    latent_chunk: int = 3

    @property
    def patch_channels(self) -> int:
        return 4 * self.z_channels * 2**3

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VAEConfig:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return _from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class StepLLMConfig:
    """Step-LLM (`step_llm/config.json`): a decoder with grouped-query attention and ALiBi."""

    hidden_size: int = 6144
    num_attention_heads: int = 48
    num_attention_groups: int = 4
    ffn_hidden_size: int = 16384
    num_layers: int = 48
    layernorm_epsilon: float = 1e-5
    padded_vocab_size: int = 65536

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def ffn_width(self) -> int:
        """The feed-forward width, rounded up to a multiple of 256 as the released layers are."""
        return 256 * ((self.ffn_hidden_size + 255) // 256)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StepLLMConfig:
        return _from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "step1", "use_flash_attn": True, **dataclasses.asdict(self)}
