"""The one interface every text-to-video backend implements (no Django here).

A backend is loaded from a local checkpoint folder onto a device and dtype, says what it can do
(`Capabilities`: frame rule, resolution multiple, latent shape, sampler convention, settings and their
defaults), and generates a batch of videos for prompts with per-video seeds or explicit initial latents.
It reports progress per denoising step and stops between steps when told to. What it returns are uint8
frames, the frame rate and the initial latents it started from, so a caller can store the noise and
reproduce or share it (the A/B-with-shared-noise campaigns and Video-DPO need identical starting latents
for two checkpoints of one family).

Seeds are reproducible across devices: initial noise is always drawn on the CPU generator in float32
(`initial_latents`), then moved to the backend's device and dtype.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch


class BackendError(Exception):
    """A failure whose message is meant for the person who started the generation."""


class CheckpointError(BackendError):
    """The checkpoint folder is missing, incomplete or of another kind than the backend expects."""


class SettingsError(BackendError):
    """A setting is unknown, of the wrong type or out of range; the message names it."""

    def __init__(self, setting: str, message: str):
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class PromptRejected(BackendError):
    """The backend refuses this prompt (too long for its text encoder, say): recorded per prompt."""


class OutOfMemory(BackendError):
    """The device ran out of memory; `hint` says which setting to lower."""

    def __init__(self, message: str, hint: str):
        super().__init__(f"{message} ({hint})")
        self.hint = hint


class GenerationCancelled(Exception):
    """Raised between denoising steps when `should_stop()` answered True."""


@dataclass(frozen=True)
class FrameRule:
    """Valid frame counts are `multiple * k + offset` for k >= 1 (4k+1 for Wan, 17k for Step-Video)."""

    multiple: int
    offset: int = 0

    def is_valid(self, frames: int) -> bool:
        return frames >= self.multiple + self.offset and (frames - self.offset) % self.multiple == 0

    def nearest(self, frames: int) -> int:
        k = max(1, round((frames - self.offset) / self.multiple))
        return self.multiple * k + self.offset

    def __str__(self) -> str:
        return f"{self.multiple}k+{self.offset}" if self.offset else f"{self.multiple}k"


@dataclass(frozen=True)
class SettingSpec:
    """One generation setting: its type, default and allowed range."""

    name: str
    kind: type  # int, float, str or bool
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def coerce(self, value: Any) -> Any:
        if value is None:
            return None
        coerced: Any
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "1")
                coerced = bool(value)
            elif self.kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                coerced = int(value)
            elif self.kind is float:
                coerced = float(value)
                if not np.isfinite(coerced):
                    raise ValueError(value)
            else:
                coerced = str(value)
        except (TypeError, ValueError, OverflowError):
            raise SettingsError(self.name, f"expected {self.kind.__name__}, got {value!r}") from None
        if self.minimum is not None and coerced < self.minimum:
            raise SettingsError(self.name, f"{coerced} is below the minimum {self.minimum}")
        if self.maximum is not None and coerced > self.maximum:
            raise SettingsError(self.name, f"{coerced} is above the maximum {self.maximum}")
        if self.choices is not None and coerced not in self.choices:
            raise SettingsError(self.name, f"{coerced!r} is not one of {list(self.choices)}")
        return coerced

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind.__name__,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices) if self.choices is not None else None,
            "help": self.help,
        }


@dataclass(frozen=True)
class Capabilities:
    """What a loaded backend can do. `settings` always includes height, width, frames and fps."""

    family: str
    frame_rule: FrameRule
    resolution_multiple: int
    latent_channels: int
    spatial_compression: int
    temporal_compression: int
    sampler: (
        str  # the convention in words, e.g. "flow matching, x_t = (1 - t) x_0 + t noise, v = noise - x_0"
    )
    settings: tuple[SettingSpec, ...]
    supports_negative_prompt: bool = True
    max_batch_size: int = 1
    # Families whose VAE does not map frames as `(frames - offset) / temporal + 1` give their own mapping.
    latent_frames_for: Callable[[int], int] | None = None

    def setting(self, name: str) -> SettingSpec:
        for spec in self.settings:
            if spec.name == name:
                return spec
        raise SettingsError(name, f"unknown setting; this backend takes {[s.name for s in self.settings]}")

    def defaults(self) -> dict[str, Any]:
        return {spec.name: spec.default for spec in self.settings}

    def validate(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in, every value coerced and range-checked, the frame and size rules checked."""
        resolved = self.defaults()
        for name, value in settings.items():
            resolved[name] = self.setting(name).coerce(value)
        frames = resolved["frames"]
        if not self.frame_rule.is_valid(frames):
            raise SettingsError(
                "frames",
                f"{frames} does not follow this model's frame rule {self.frame_rule}; "
                f"the nearest valid count is {self.frame_rule.nearest(frames)}",
            )
        for side in ("height", "width"):
            if resolved[side] % self.resolution_multiple:
                raise SettingsError(side, f"{resolved[side]} is not a multiple of {self.resolution_multiple}")
        return resolved

    def latent_frames(self, frames: int) -> int:
        if self.latent_frames_for is not None:
            return self.latent_frames_for(frames)
        return (frames - self.frame_rule.offset) // self.temporal_compression + (
            1 if self.frame_rule.offset else 0
        )

    def latent_shape(self, *, height: int, width: int, frames: int) -> tuple[int, int, int, int]:
        """(channels, latent frames, latent height, latent width) of one video's initial noise."""
        return (
            self.latent_channels,
            self.latent_frames(frames),
            height // self.spatial_compression,
            width // self.spatial_compression,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "frame_rule": str(self.frame_rule),
            "resolution_multiple": self.resolution_multiple,
            "latent_channels": self.latent_channels,
            "spatial_compression": self.spatial_compression,
            "temporal_compression": self.temporal_compression,
            "sampler": self.sampler,
            "supports_negative_prompt": self.supports_negative_prompt,
            "max_batch_size": self.max_batch_size,
            "settings": [spec.describe() for spec in self.settings],
        }


def initial_latents(shape: Sequence[int], seed: int) -> torch.Tensor:
    """The initial noise of one video: float32 on the CPU, so a seed gives the same latents on any device."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


@dataclass
class GenerationRequest:
    """A batch: one prompt per video, and either a seed per video or explicit initial latents."""

    prompts: list[str]
    settings: dict[str, Any]
    seeds: list[int] | None = None
    latents: list[torch.Tensor] | None = None  # each (C, F', H', W'), float32 on the CPU
    negative_prompt: str | None = None

    def __post_init__(self) -> None:
        if not self.prompts:
            raise BackendError("a generation request needs at least one prompt")
        if (self.seeds is None) == (self.latents is None):
            raise BackendError("give either seeds or initial latents, one per prompt")
        given = self.seeds if self.seeds is not None else self.latents
        if len(given) != len(self.prompts):  # type: ignore[arg-type]
            raise BackendError(f"{len(self.prompts)} prompts but {len(given)} seeds or latents")  # type: ignore[arg-type]


@dataclass
class GeneratedVideo:
    frames: np.ndarray  # (frames, height, width, 3), uint8
    fps: float
    # (C, F', H', W'), float32 on the CPU; None only where the backend cannot know them (a command backend
    # whose program draws its own noise from the seed)
    initial_latents: torch.Tensor | None
    seed: int | None
    info: dict[str, Any] = field(default_factory=dict)  # what a caller records: versions, resolved settings


ProgressCallback = Callable[[int, int], None]  # (steps done, steps in all) over the whole batch
StopCallback = Callable[[], bool]


class Backend(abc.ABC):
    """A loaded model. Subclasses set `name` and register themselves with `generation.backends.register`."""

    name: ClassVar[str]
    capabilities: Capabilities

    @classmethod
    @abc.abstractmethod
    def load(
        cls,
        checkpoint: Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        adapter: Path | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Backend:
        """Load from a local folder (never a hub); raise CheckpointError naming what is wrong."""

    @abc.abstractmethod
    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: ProgressCallback | None = None,
        should_stop: StopCallback | None = None,
    ) -> list[GeneratedVideo]:
        """Generate one video per prompt, in order. Settings are validated through `capabilities`."""

    def settings_for(self, request: GenerationRequest) -> dict[str, Any]:
        """The request's settings validated through `capabilities`, with `request.negative_prompt` (when
        given) overriding the negative_prompt setting; a negative prompt a model cannot take is refused."""
        settings = self.capabilities.validate(request.settings)
        negative = (
            request.negative_prompt
            if request.negative_prompt is not None
            else settings.get("negative_prompt")
        )
        if negative and not self.capabilities.supports_negative_prompt:
            raise SettingsError("negative_prompt", f"{self.capabilities.family} takes no negative prompt")
        if negative is not None and self.capabilities.supports_negative_prompt:
            settings["negative_prompt"] = negative
        return settings

    def latents_for(self, request: GenerationRequest, settings: Mapping[str, Any]) -> list[torch.Tensor]:
        """The initial latents of a request: the given ones (shape-checked) or drawn from the seeds."""
        shape = self.capabilities.latent_shape(
            height=settings["height"], width=settings["width"], frames=settings["frames"]
        )
        if request.latents is not None:
            for index, latent in enumerate(request.latents):
                if tuple(latent.shape) != shape:
                    raise SettingsError(
                        "latents",
                        f"video {index}: initial latents of shape {tuple(latent.shape)}, expected {shape}",
                    )
            return [latent.detach().to("cpu", torch.float32) for latent in request.latents]
        assert request.seeds is not None
        return [initial_latents(shape, seed) for seed in request.seeds]

    def close(self) -> None:  # noqa: B027 - optional: a backend holding device memory overrides it
        """Free device memory."""


def check_stop(should_stop: StopCallback | None) -> None:
    if should_stop is not None and should_stop():
        raise GenerationCancelled()


def frames_to_uint8(video: torch.Tensor) -> np.ndarray:
    """(frames, 3, H, W) or (3, frames, H, W) in [-1, 1] -> (frames, H, W, 3) uint8."""
    if video.shape[0] == 3 and video.shape[1] != 3:
        video = video.permute(1, 0, 2, 3)
    video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(0, 2, 3, 1).cpu().numpy()
