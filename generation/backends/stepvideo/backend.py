"""`StepVideoBackend`: Step-Video-T2V (or Turbo) from the published checkpoint folder, in-process.

Load options (all optional):
    variant              "base" (default) or "turbo": which official defaults the settings start from
    text_device          where Step-LLM and Hunyuan-CLIP run (default: the backend's device)
    vae_device           where the Video-VAE runs (default: the backend's device)
    offload              keep the text encoders and the VAE on the CPU, moving each to its device only
                         while it runs (default False)
    free_text_encoders   drop the text encoders after each encoding, reloading them for the next
                         generation (default True: Step-LLM is a large model of its own)
    sequential_guidance  run the conditional and unconditional passes one after the other instead of
                         as a batch of two (half the activation memory, same result; default False)
    tensor_parallel      split the DiT over every rank of a torchrun launch (`parallel.py`, default
                         False): rank 0 (the leader) encodes the text, drives the denoising loop and
                         decodes; the other ranks hold only their DiT shard and follow its commands

One video: its prompt (with the official positive suffix) and the negative prompt are encoded together,
the text encoders are freed, the DiT integrates the initial latents from t = 0 to 1, the VAE decodes.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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
    SettingSpec,
    StopCallback,
    check_stop,
    frames_to_uint8,
)
from . import checkpoint as layout
from .config import (
    DEFAULT_FPS,
    DEFAULT_FRAMES,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    NEGATIVE_MAGIC,
    OFFICIAL_DEFAULTS,
    POSITIVE_MAGIC,
    DiTConfig,
    VAEConfig,
)
from .dit import StepVideoDiT
from .sampler import GUIDANCE_SCHEDULES, sample
from .text_encoders import TextEmbeddings, TextEncoders
from .vae import VideoVAE, latent_frames_for

if TYPE_CHECKING:
    from .parallel import ControlChannel

VARIANTS = ("base", "turbo")
SAMPLER = (
    "flow matching, Euler: x_t = (1 - t) x_0 + t x_1 with x_0 the noise and x_1 the data, t from 0 to 1, "
    "v = x_1 - x_0; time shift s' = shift*s/(1+(shift-1)*s) on s = 1 - t; classifier-free guidance"
)
OPTION_NAMES = (
    "variant",
    "text_device",
    "vae_device",
    "offload",
    "free_text_encoders",
    "sequential_guidance",
    "tensor_parallel",
)


def variant_settings(variant: str, vae: VAEConfig | None = None) -> tuple[SettingSpec, ...]:
    """The settings and their official defaults for one variant."""
    if variant not in VARIANTS:
        raise BackendError(f"unknown Step-Video variant {variant!r}; one of {list(VARIANTS)}")
    defaults = OFFICIAL_DEFAULTS[variant]
    low, high = defaults["steps_range"]
    chunk = (vae or VAEConfig()).frame_chunk
    return (
        SettingSpec("height", int, DEFAULT_HEIGHT, 16, 4096, help="pixels, a multiple of 16"),
        SettingSpec("width", int, DEFAULT_WIDTH, 16, 4096, help="pixels, a multiple of 16"),
        SettingSpec(
            "frames", int, DEFAULT_FRAMES, chunk, None, help=f"a multiple of {chunk} (204 = 12 x {chunk})"
        ),
        SettingSpec("fps", float, DEFAULT_FPS, 1, 120, help="frame rate of the written video"),
        SettingSpec(
            "steps", int, defaults["steps"], 1, 1000, help=f"denoising steps (official {low}-{high})"
        ),
        SettingSpec(
            "guidance_scale", float, defaults["guidance_scale"], 0.0, 50.0, help="classifier-free guidance"
        ),
        SettingSpec(
            "time_shift", float, defaults["time_shift"], 0.01, 1000.0, help="flow-matching time shift"
        ),
        SettingSpec(
            "guidance_schedule",
            str,
            "linear" if variant == "turbo" else "constant",
            choices=GUIDANCE_SCHEDULES,
            help="constant, or linearly diminishing over the sampling time (Turbo)",
        ),
        SettingSpec(
            "positive_suffix", str, POSITIVE_MAGIC, help="appended to every prompt (the official one)"
        ),
    )


def _option_bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise BackendError(f"option {name}: expected true or false, got {value!r}")
        return value.lower() in ("true", "1")
    return bool(value)


def capabilities_of(variant: str, dit_config: DiTConfig, vae_config: VAEConfig) -> Capabilities:
    """What a Step-Video checkpoint of this variant takes: from its DiT and VAE configs alone."""
    return Capabilities(
        family="step-video-t2v-turbo" if variant == "turbo" else "step-video-t2v",
        frame_rule=FrameRule(vae_config.frame_chunk),
        resolution_multiple=16 * dit_config.patch_size,
        latent_channels=dit_config.in_channels,
        spatial_compression=16,
        temporal_compression=8,
        sampler=SAMPLER,
        settings=variant_settings(variant, vae_config),
        supports_negative_prompt=True,
        max_batch_size=1,
        latent_frames_for=lambda frames: latent_frames_for(frames, vae_config),
    )


def checked_variant(options: Mapping[str, Any], adapter: Path | None) -> str:
    """The variant the backend options name, after refusing unknown options and an adapter."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise BackendError(f"unknown Step-Video options {unknown}; known: {list(OPTION_NAMES)}")
    if adapter is not None:
        raise BackendError("the Step-Video backend takes no adapter; point it at a merged checkpoint folder")
    variant = str(options.get("variant", "base"))
    if variant not in VARIANTS:
        raise BackendError(f"unknown Step-Video variant {variant!r}; one of {list(VARIANTS)}")
    return variant


class StepVideoBackend(Backend):
    name: ClassVar[str] = "stepvideo"

    def __init__(
        self,
        root: Path,
        dit: StepVideoDiT,
        vae: VideoVAE | None,
        text_encoders: TextEncoders | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
        variant: str,
        text_device: torch.device,
        vae_device: torch.device,
        offload: bool,
        free_text_encoders: bool,
        sequential_guidance: bool,
        channel: ControlChannel | None = None,
    ):
        self.root = root
        self.dit: StepVideoDiT | None = dit
        self.vae: VideoVAE | None = vae
        self.text_encoders = text_encoders
        self.device = device
        self.dtype = dtype
        self.variant = variant
        self.text_device = text_device
        self.vae_device = vae_device
        self.offload = offload
        self.free_text_encoders = free_text_encoders
        self.sequential_guidance = sequential_guidance
        # set under tensor parallelism: rank 0 leads, the other ranks hold no VAE or text encoders
        self.channel = channel
        vae_config = vae.config if vae is not None else layout.read_vae_config(root)
        self.capabilities = capabilities_of(variant, dit.config, vae_config)

    @classmethod
    def capabilities_for(
        cls, checkpoint: Path, *, adapter: Path | None = None, options: Mapping[str, Any] | None = None
    ) -> Capabilities:
        """The loaded backend's capabilities, from the published layout's configs (no weights read)."""
        variant = checked_variant(dict(options or {}), adapter)
        root = Path(checkpoint)
        layout.check_layout(root)
        try:
            return capabilities_of(variant, layout.read_dit_config(root), layout.read_vae_config(root))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{root}: {error}") from error

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        adapter: Path | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> StepVideoBackend:
        options = dict(options or {})
        variant = checked_variant(options, adapter)
        root = Path(checkpoint)
        layout.check_layout(root)
        main = torch.device(device)
        channel = None
        if _option_bool(options, "tensor_parallel", False):
            from .parallel import ControlChannel, check_divisible, init_from_env

            main = init_from_env(main.type)
            channel = ControlChannel.shared()
            if channel.leader:
                # refused here, before the followers start loading what cannot be split
                try:
                    check_divisible(layout.read_dit_config(root), channel.world)
                except (OSError, ValueError) as error:
                    raise CheckpointError(f"{root}: {error}") from error
                # the followers load the same folder with the same options (as `parallel.follow` does)
                channel.share(
                    ("load", {"checkpoint": root, "device": str(device), "dtype": dtype, "options": options})
                )
        text_device = torch.device(options.get("text_device", main))
        vae_device = torch.device(options.get("vae_device", main))
        offload = _option_bool(options, "offload", False)
        leads = channel is None or channel.leader
        vae: VideoVAE | None = None
        text: TextEncoders | None = None
        try:
            if channel is None:
                dit = layout.load_dit(root, main, dtype)
            else:
                from .parallel import load_parallel_dit, tensor_parallel_mesh

                dit = load_parallel_dit(root, tensor_parallel_mesh(main), main, dtype)
            if leads:
                vae = layout.load_vae(root, torch.device("cpu") if offload else vae_device, dtype)
                text = layout.load_text_encoders(root, torch.device("cpu") if offload else text_device, dtype)
        except torch.OutOfMemoryError as error:
            raise OutOfMemory(
                "out of memory loading Step-Video", "set offload or text_device/vae_device"
            ) from error
        except (OSError, ValueError, KeyError) as error:
            raise CheckpointError(f"{root}: {error}") from error
        backend = cls(
            root,
            dit,
            vae,
            text,
            device=main,
            dtype=dtype,
            variant=variant,
            text_device=text_device,
            vae_device=vae_device,
            offload=offload,
            free_text_encoders=_option_bool(options, "free_text_encoders", True),
            sequential_guidance=_option_bool(options, "sequential_guidance", False),
            channel=channel,
        )
        return backend

    # -- the parts, each on its device for as long as it runs ---------------------------------------

    def encode_prompts(self, prompts: list[str]) -> TextEmbeddings:
        if self.text_encoders is None:
            self.text_encoders = layout.load_text_encoders(
                self.root, torch.device("cpu") if self.offload else self.text_device, self.dtype
            )
        encoders = self.text_encoders
        if self.offload:
            self._move_text_encoders(self.text_device)
        embeddings = encoders.encode(prompts)
        if self.free_text_encoders:
            encoders.close()
            self.text_encoders = None
            gc.collect()
        elif self.offload:
            self._move_text_encoders(torch.device("cpu"))
        return embeddings.to("cpu", torch.float32)

    def _move_text_encoders(self, device: torch.device) -> None:
        encoders = self.text_encoders
        assert encoders is not None and encoders.llm is not None and encoders.clip is not None
        encoders.llm.to(device)
        encoders.clip.to(device)
        encoders.device = device

    def _vae_on(self, device: torch.device) -> VideoVAE:
        if self.vae is None:
            raise BackendError("the backend was closed")
        return self.vae.to(device)

    @torch.inference_mode()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(C, F', H', W') latents -> (frames, 3, H, W) video in [-1, 1], float32 on the CPU."""
        vae = self._vae_on(self.vae_device)
        try:
            video = vae.decode(latents.permute(1, 0, 2, 3)[None].to(self.vae_device))[0]
        finally:
            if self.offload:
                vae.to("cpu")
        return video.float().clamp(-1, 1).cpu()

    @torch.inference_mode()
    def encode_video(
        self, video: torch.Tensor, *, sample_posterior: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(frames, 3, H, W) in [-1, 1] -> latents (C, F', H', W'), float32 on the CPU: the posterior
        mean by default (for Video-DPO latents and reconstruction), or a draw from it."""
        vae = self._vae_on(self.vae_device)
        try:
            latents = vae.encode(
                video[None].to(self.vae_device), sample=sample_posterior, generator=generator
            )[0]
        finally:
            if self.offload:
                vae.to("cpu")
        return latents.permute(1, 0, 2, 3).float().cpu()

    def _velocity_fn(self, text: TextEmbeddings, guided: bool) -> Any:
        dit = self.dit
        if dit is None:
            raise BackendError("the backend was closed")
        # rows [prompt, negative] pair with the sampler's [cond, uncond]
        if not guided:
            text = text.select(0)
        text = text.to(self.device, self.dtype)
        sequential = self.sequential_guidance and guided

        def velocity(latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            if not sequential:
                return dit(latents, timestep, text.llm_states, text.llm_mask, text.clip_states)
            return torch.cat(
                [
                    dit(
                        latents[i : i + 1],
                        timestep[i : i + 1],
                        text.llm_states[i : i + 1],
                        text.llm_mask[i : i + 1],
                        text.clip_states[i : i + 1],
                    )
                    for i in range(2)
                ]
            )

        return velocity

    # -- the interface --------------------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: ProgressCallback | None = None,
        should_stop: StopCallback | None = None,
    ) -> list[GeneratedVideo]:
        settings = self.capabilities.validate(request.settings)
        initial = self.latents_for(request, settings)
        if self.channel is not None and self.channel.leader:
            # a request that passed the checks above reaches the followers, which repeat them
            self.channel.share(("generate", request))
        negative = NEGATIVE_MAGIC if request.negative_prompt is None else request.negative_prompt
        steps = settings["steps"]
        total = steps * len(request.prompts)
        guided = settings["guidance_scale"] > 1.0
        videos: list[GeneratedVideo] = []
        try:
            for index, prompt in enumerate(request.prompts):
                self._on_leader(lambda: check_stop(should_stop))
                text = self._on_leader(
                    lambda prompt=prompt: self.encode_prompts(
                        [prompt + settings["positive_suffix"], negative]
                    )
                )
                velocity = self._velocity_fn(text, guided)
                done_before = index * steps

                def on_step(step: int, done_before: int = done_before) -> None:
                    def report() -> None:
                        if progress is not None:
                            progress(done_before + step + 1, total)
                        check_stop(should_stop)

                    self._on_leader(report)

                noise = initial[index].permute(1, 0, 2, 3)[None].to(self.device)
                with torch.inference_mode():
                    latents = sample(
                        velocity,
                        noise,
                        steps=steps,
                        shift=settings["time_shift"],
                        guidance_scale=settings["guidance_scale"],
                        schedule=settings["guidance_schedule"],
                        model_dtype=self.dtype,
                        on_step=on_step,
                    )
                if self.channel is not None and not self.channel.leader:
                    continue  # the leader decodes and keeps the video
                frames = self.decode_latents(latents[0].permute(1, 0, 2, 3))
                videos.append(
                    GeneratedVideo(
                        frames=frames_to_uint8(frames),
                        fps=float(settings["fps"]),
                        initial_latents=initial[index],
                        seed=None if request.seeds is None else request.seeds[index],
                        info={
                            "backend": self.name,
                            "variant": self.variant,
                            "settings": dict(settings),
                            "negative_prompt": negative,
                            "prompt_truncated": bool(text.truncated[0]),
                            "dtype": str(self.dtype).removeprefix("torch."),
                        },
                    )
                )
        except torch.OutOfMemoryError as error:
            raise OutOfMemory(
                "the device ran out of memory",
                "lower frames, height or width, or load with sequential_guidance/offload",
            ) from error
        return videos

    def _on_leader(self, compute: Any) -> Any:
        """`compute()`, run by the leader alone under tensor parallelism, its result (or its failure)
        shared with the followers; simply `compute()` on one device."""
        if self.channel is None:
            return compute()
        return self.channel.leader_result(compute)

    def close(self) -> None:
        if self.channel is not None and self.channel.leader and self.dit is not None:
            self.channel.share(("close", None))
        if self.text_encoders is not None:
            self.text_encoders.close()
        self.text_encoders = None
        self.dit = None
        self.vae = None
        gc.collect()
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
