"""The diffusers backend: any text-to-video pipeline diffusers ships, from a local checkpoint folder.

Loading. `DiffusersBackend.load(folder)` checks the folder first (a `model_index.json` naming a
pipeline class this module knows, and every component it lists present with its config and weights),
raising `CheckpointError` naming what is missing before any weights are read; then it calls
`DiffusionPipeline.from_pretrained(folder, local_files_only=True)`, which picks the pipeline class from
`model_index.json`. Nothing is ever fetched from a hub.

Families. `FAMILIES` holds one row per pipeline family (Wan 2.1/2.2, HunyuanVideo, CogVideoX,
LTX-Video, Mochi): the latent layout the pipeline's `latents=` argument expects, the call's extra
arguments and the family's default settings. Everything that depends on the checkpoint is read from the
loaded pipeline instead of being written down: the spatial and temporal compression (the pipeline's VAE
scale factors), the latent channels (the transformer's `in_channels`), the resolution multiple (spatial
compression times the transformer's spatial patch size) and the frame rule (temporal compression t gives
frames = t*k + 1: 4k+1 for Wan, HunyuanVideo and CogVideoX, 8k+1 for LTX-Video, 6k+1 for Mochi).
`DiffusersBackend.capabilities_for(folder)` gives the same capabilities without loading: it builds the
pipeline from the folder's configs with its models on the meta device (`config_only_pipeline`), so the web
process checks a generation run's settings exactly as the worker's loaded pipeline would.

Settings: height, width, frames, fps, steps, guidance_scale, negative_prompt, guidance_scale_2 (Wan 2.2
with two transformers only) and, where the scheduler
has a fixed flow shift (`flow_shift` of Wan's UniPC, `shift` of FlowMatchEuler without dynamic
shifting), flow_shift: the scheduler is rebuilt from its stored config with that shift for every call.
`GenerationRequest.negative_prompt`, when given, overrides the negative_prompt setting. HunyuanVideo's
guidance_scale is its embedded (distilled) guidance, so it takes no negative prompt.

Initial latents are drawn per video on the CPU in float32 (`base.initial_latents`) in the common layout
(C, F', H', W'), stacked, then converted to the family's layout and moved to the device: Wan,
HunyuanVideo and Mochi take (B, C, F', H', W'); CogVideoX takes (B, F', C, H', W') (CogVideoX 1.5 pads
F' to its temporal patch size, and the latent shape includes that padding); LTX-Video takes latents
packed into tokens (B, F'*H'*W'/p^2, C*p^2), made with the pipeline's own `_pack_latents`.

Progress and cancel go through `callback_on_step_end`: after each denoising step it reports the step
and asks `should_stop()`; a True raises `GenerationCancelled` out of the pipeline call, so nothing else
(not even the VAE decode) runs. (diffusers' own `pipe._interrupt` only skips the remaining steps and still
decodes, which is wasted work for a cancelled video.)

LoRA adapters. The adapter format is peft's: a folder holding `adapter_config.json` (a peft `LoraConfig`)
and `adapter_model.safetensors`, the LoRA weights of the pipeline's *transformer* as returned by
`peft.get_peft_model_state_dict(transformer)`. `save_adapter(transformer, folder)` writes exactly that for
a transformer given an adapter by `transformer.add_adapter(LoraConfig(...))` (what the Video-DPO trainer
does); a folder written by `PeftModel.save_pretrained` of a peft-wrapped transformer loads too (its
`base_model.model.` key prefix is stripped). `load(base, adapter=folder)` injects the adapter into
`pipe.transformer` and loads the weights, refusing an adapter whose keys do not fit the transformer;
`set_adapter_enabled(False)` gives the base model back without reloading. A two-stage Wan 2.2 checkpoint
gets the adapter on its high-noise `transformer` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import (
    Backend,
    BackendError,
    Capabilities,
    CheckpointError,
    FrameRule,
    GeneratedVideo,
    GenerationCancelled,
    GenerationRequest,
    OutOfMemory,
    ProgressCallback,
    SettingSpec,
    StopCallback,
    check_stop,
)

ADAPTER_NAME = "adapter"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PEFT_MODEL_PREFIX = "base_model.model."

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".safetensors.index.json", ".bin.index.json")


@dataclass(frozen=True)
class Family:
    """What differs between pipeline families and cannot be read from a loaded pipeline's config."""

    name: str
    pipelines: tuple[str, ...]  # model_index.json `_class_name`s of this family
    spatial_attr: str  # the pipeline attribute holding the VAE's spatial compression
    temporal_attr: str  # ... and its temporal compression
    layout: str  # "BCFHW", "BFCHW" or "packed": what the pipeline's `latents=` argument expects
    latents_in_model_dtype: bool  # the pipeline uses given latents as they come (no cast to float32)
    defaults: Mapping[str, Any]  # height, width, frames, fps, steps, guidance_scale
    negative_prompt: bool = True
    guidance_help: str = "classifier-free guidance scale (1 turns guidance off)"
    # The pipeline pads every prompt to this many tokens; a tokenizer with a smaller model_max_length
    # (the tiny checkpoints') lowers it.
    max_text_tokens: int | None = None
    extra_call: Callable[[Any, Mapping[str, Any]], dict[str, Any]] = field(default=lambda pipe, s: {})


def _spatial_patch(pipe: Any) -> int:
    patch = pipe.transformer.config.patch_size
    return int(patch[1] if isinstance(patch, list | tuple) else patch)


FAMILIES: tuple[Family, ...] = (
    Family(
        name="wan",
        pipelines=("WanPipeline",),
        spatial_attr="vae_scale_factor_spatial",
        temporal_attr="vae_scale_factor_temporal",
        layout="BCFHW",
        latents_in_model_dtype=False,
        defaults={"height": 480, "width": 832, "frames": 81, "fps": 16, "steps": 50, "guidance_scale": 5.0},
        max_text_tokens=512,
    ),
    Family(
        name="hunyuanvideo",
        pipelines=("HunyuanVideoPipeline",),
        spatial_attr="vae_scale_factor_spatial",
        temporal_attr="vae_scale_factor_temporal",
        layout="BCFHW",
        latents_in_model_dtype=False,
        defaults={"height": 720, "width": 1280, "frames": 129, "fps": 24, "steps": 50, "guidance_scale": 6.0},
        negative_prompt=False,
        guidance_help="embedded (distilled) guidance scale",
    ),
    Family(
        name="cogvideox",
        pipelines=("CogVideoXPipeline",),
        spatial_attr="vae_scale_factor_spatial",
        temporal_attr="vae_scale_factor_temporal",
        layout="BFCHW",
        latents_in_model_dtype=True,
        defaults={"height": 480, "width": 720, "frames": 49, "fps": 8, "steps": 50, "guidance_scale": 6.0},
        extra_call=lambda pipe, s: {"max_sequence_length": int(pipe.transformer.config.max_text_seq_length)},
    ),
    Family(
        name="ltx-video",
        pipelines=("LTXPipeline",),
        spatial_attr="vae_spatial_compression_ratio",
        temporal_attr="vae_temporal_compression_ratio",
        layout="packed",
        latents_in_model_dtype=False,
        defaults={"height": 512, "width": 704, "frames": 161, "fps": 25, "steps": 50, "guidance_scale": 3.0},
        max_text_tokens=128,
        extra_call=lambda pipe, s: {"frame_rate": s["fps"]},
    ),
    Family(
        name="mochi",
        pipelines=("MochiPipeline",),
        spatial_attr="vae_spatial_scale_factor",
        temporal_attr="vae_temporal_scale_factor",
        layout="BCFHW",
        latents_in_model_dtype=True,
        defaults={"height": 480, "width": 848, "frames": 163, "fps": 30, "steps": 64, "guidance_scale": 4.5},
        max_text_tokens=256,
    ),
)


def family_for(pipeline_class: str) -> Family:
    for family in FAMILIES:
        if pipeline_class in family.pipelines:
            return family
    known = sorted(name for family in FAMILIES for name in family.pipelines)
    raise CheckpointError(
        f"model_index.json names the pipeline {pipeline_class!r}, which is not a text-to-video pipeline "
        f"this backend knows (known: {', '.join(known)})"
    )


def check_checkpoint_folder(folder: Path) -> dict[str, Any]:
    """The parsed model_index.json of a complete checkpoint folder, or a CheckpointError naming what is missing."""
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist or is not a folder")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise CheckpointError(f"{folder} has no model_index.json: not a diffusers pipeline folder")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{index_path} is not readable JSON: {error}") from None
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise CheckpointError(f"{index_path} does not name a pipeline class (_class_name)")
    family_for(index["_class_name"])
    missing: list[str] = []
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2 or entry[0] is None:
            continue
        sub = folder / name
        class_name = str(entry[1])
        if not sub.is_dir():
            missing.append(f"{name}/ ({class_name})")
        elif "Scheduler" in class_name:
            if not (sub / "scheduler_config.json").is_file():
                missing.append(f"{name}/scheduler_config.json")
        elif "Tokenizer" in class_name or class_name == "TokenizersBackend":
            if not any(
                (sub / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "spiece.model")
            ):
                missing.append(f"{name}/tokenizer.json")
        else:
            if not (sub / "config.json").is_file():
                missing.append(f"{name}/config.json")
            if not any(p.name.endswith(WEIGHT_SUFFIXES) for p in sub.iterdir()):
                missing.append(f"{name}/ weights (*.safetensors)")
    if missing:
        raise CheckpointError(f"checkpoint {folder} is incomplete, missing: {', '.join(missing)}")
    return index


def _flow_shift_key(scheduler_config: Mapping[str, Any]) -> str | None:
    """The scheduler config key of a fixed flow shift, or None where the scheduler has none."""
    if scheduler_config.get("use_dynamic_shifting"):
        return None  # the shift is computed from the sequence length (LTX-Video, Flux-style)
    if "flow_shift" in scheduler_config and scheduler_config.get("use_flow_sigmas", True):
        return "flow_shift"
    if "shift" in scheduler_config:
        return "shift"
    return None


def _sampler_description(scheduler: Any) -> str:
    config = scheduler.config
    name = type(scheduler).__name__
    if (
        "FlowMatch" in name
        or config.get("use_flow_sigmas")
        or config.get("prediction_type") == "flow_prediction"
    ):
        return f"flow matching ({name}), x_t = (1 - t) x_0 + t noise, the model predicts v = noise - x_0"
    return f"diffusion ({name}), {config.get('prediction_type', 'epsilon')} prediction"


def save_adapter(transformer: torch.nn.Module, folder: str | Path, adapter_name: str = "default") -> Path:
    """Write a transformer's peft LoRA in the format `DiffusersBackend.load(..., adapter=folder)` reads."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    save_file(
        {key: value.detach().contiguous().cpu() for key, value in state.items()}, folder / ADAPTER_WEIGHTS
    )
    transformer.peft_config[adapter_name].save_pretrained(str(folder))  # type: ignore[index, operator, union-attr]
    return folder


def load_adapter(transformer: Any, folder: Path, adapter_name: str = ADAPTER_NAME) -> None:
    """Inject the peft LoRA saved in `folder` into `transformer` and load its weights."""
    from peft import LoraConfig, set_peft_model_state_dict
    from safetensors.torch import load_file

    if not folder.is_dir():
        raise CheckpointError(f"adapter folder {folder} does not exist or is not a folder")
    missing = [name for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"adapter {folder} is missing {', '.join(missing)} (a peft LoRA folder)")
    try:
        config = LoraConfig.from_pretrained(str(folder))
        state = load_file(str(folder / ADAPTER_WEIGHTS))
    except Exception as error:  # peft and safetensors raise many kinds for a corrupt file
        raise CheckpointError(f"adapter {folder} is not a readable peft LoRA: {error}") from None
    state = {key.removeprefix(_PEFT_MODEL_PREFIX): value for key, value in state.items()}
    try:
        transformer.add_adapter(config, adapter_name=adapter_name)
        result = set_peft_model_state_dict(transformer, state, adapter_name=adapter_name)
    except (ValueError, RuntimeError, KeyError) as error:
        raise CheckpointError(f"adapter {folder} does not fit this transformer: {error}") from None
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    not_loaded = [key for key in (getattr(result, "missing_keys", []) or []) if "lora_" in key]
    if unexpected or not_loaded:
        raise CheckpointError(
            f"adapter {folder} does not fit this transformer: "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]}), {len(not_loaded)} LoRA weights "
            f"not in the file (e.g. {not_loaded[:2]})"
        )


def _to_uint8(frames: Any) -> np.ndarray:
    """One video of float frames in [0, 1], (F, H, W, 3), as uint8."""
    array = np.asarray(frames, dtype=np.float32)
    return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def pipeline_capabilities(pipe: Any, family: Family, options: Mapping[str, Any]) -> Capabilities:
    """What a pipeline of `family` takes, read from its components' configs: the same for a loaded pipeline
    and for `config_only_pipeline`'s weightless one."""
    scheduler_config = dict(pipe.scheduler.config)
    shift_key = _flow_shift_key(scheduler_config)
    spatial = int(getattr(pipe, family.spatial_attr))
    temporal = int(getattr(pipe, family.temporal_attr))
    channels = int(pipe.transformer.config.in_channels)
    defaults = {**family.defaults, **dict(options.get("defaults", {}))}
    settings = [
        SettingSpec("height", int, defaults["height"], minimum=1, help="pixels"),
        SettingSpec("width", int, defaults["width"], minimum=1, help="pixels"),
        SettingSpec("frames", int, defaults["frames"], minimum=1, help=f"frames, {temporal}k+1"),
        SettingSpec("fps", float, float(defaults["fps"]), minimum=1, maximum=240, help="frames per second"),
        SettingSpec("steps", int, defaults["steps"], minimum=1, maximum=1000, help="denoising steps"),
        SettingSpec(
            "guidance_scale",
            float,
            defaults["guidance_scale"],
            minimum=0,
            maximum=100,
            help=family.guidance_help,
        ),
    ]
    if getattr(pipe.config, "boundary_ratio", None) is not None:  # Wan 2.2's two-stage denoising
        settings.append(
            SettingSpec(
                "guidance_scale_2",
                float,
                float(defaults.get("guidance_scale_2", defaults["guidance_scale"])),
                minimum=0,
                maximum=100,
                help="guidance scale of the low-noise stage (transformer_2)",
            )
        )
    if family.negative_prompt:
        settings.append(SettingSpec("negative_prompt", str, defaults.get("negative_prompt", "")))
    if shift_key is not None:
        shift = float(defaults["flow_shift"] if "flow_shift" in defaults else scheduler_config[shift_key])
        settings.append(
            SettingSpec("flow_shift", float, shift, minimum=0.01, maximum=100, help="scheduler flow shift")
        )
    latent_frames_for = None
    patch_t = getattr(pipe.transformer.config, "patch_size_t", None) if family.layout == "BFCHW" else None
    if patch_t:

        def latent_frames_for(frames: int, _t: int = temporal, _p: int = int(patch_t)) -> int:
            latent = (frames - 1) // _t + 1
            return latent + (-latent) % _p  # CogVideoX 1.5 pads to its temporal patch

    return Capabilities(
        family=family.name,
        frame_rule=FrameRule(temporal, 1),
        resolution_multiple=spatial * _spatial_patch(pipe),
        latent_channels=channels,
        spatial_compression=spatial,
        temporal_compression=temporal,
        sampler=_sampler_description(pipe.scheduler),
        settings=tuple(settings),
        supports_negative_prompt=family.negative_prompt,
        max_batch_size=int(options.get("max_batch_size", 1)),
        latent_frames_for=latent_frames_for,
    )


def config_only_pipeline(folder: Path, index: Mapping[str, Any]) -> Any:
    """The checkpoint's pipeline built from its config files alone: the diffusers models (transformer, VAE)
    on the meta device (no memory, no weights read), the scheduler from its config, and the other
    components (text encoders, tokenizers) left out. Enough to read every capability the loaded pipeline
    would give, in the web process, without loading a checkpoint."""
    import inspect

    import diffusers
    from accelerate import init_empty_weights

    pipeline_class = getattr(diffusers, str(index["_class_name"]))
    accepted = inspect.signature(pipeline_class.__init__).parameters
    components: dict[str, Any] = {}
    for name, entry in index.items():
        if name.startswith("_") or name not in accepted:
            continue
        if not isinstance(entry, list):
            components[name] = (
                entry  # a pipeline argument stored in model_index.json (Wan 2.2's boundary_ratio)
            )
            continue
        library, class_name = entry
        component_class = getattr(diffusers, str(class_name), None) if library == "diffusers" else None
        if component_class is None or entry[0] is None:
            components[name] = None
        elif "Scheduler" in str(class_name):
            components[name] = component_class.from_config(component_class.load_config(folder / name))
        else:
            with init_empty_weights():
                components[name] = component_class.from_config(component_class.load_config(folder / name))
    for name, parameter in accepted.items():
        if name != "self" and name not in components and parameter.default is inspect.Parameter.empty:
            components[name] = None
    try:
        return pipeline_class(**components)
    except (TypeError, ValueError, AttributeError, KeyError) as error:
        raise CheckpointError(
            f"checkpoint {folder}: its configs do not build a {pipeline_class.__name__}: {error}"
        ) from None


class DiffusersBackend(Backend):
    name = "diffusers"

    def __init__(
        self,
        pipe: Any,
        family: Family,
        checkpoint: Path,
        *,
        device: torch.device,
        dtype: torch.dtype,
        adapter: Path | None,
        options: Mapping[str, Any],
    ):
        self.pipe = pipe
        self.family = family
        self.checkpoint = checkpoint
        self.device = device
        self.dtype = dtype
        self.adapter = adapter
        self.adapter_enabled = adapter is not None
        self._scheduler_class = type(pipe.scheduler)
        self._scheduler_config = dict(pipe.scheduler.config)
        self._shift_key = _flow_shift_key(self._scheduler_config)
        self.capabilities = pipeline_capabilities(pipe, family, options)

    @classmethod
    def capabilities_for(
        cls, checkpoint: Path, *, adapter: Path | None = None, options: Mapping[str, Any] | None = None
    ) -> Capabilities:
        """The loaded pipeline's capabilities, read from the folder's config files without any weights
        (so a generation run is checked in the web process before anything is queued)."""
        checkpoint = Path(checkpoint)
        index = check_checkpoint_folder(checkpoint)
        family = family_for(index["_class_name"])
        if adapter is not None and not Path(adapter).is_dir():
            raise CheckpointError(f"adapter folder {adapter} does not exist or is not a folder")
        return pipeline_capabilities(config_only_pipeline(checkpoint, index), family, options or {})

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        adapter: Path | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> DiffusersBackend:
        checkpoint = Path(checkpoint)
        index = check_checkpoint_folder(checkpoint)
        family = family_for(index["_class_name"])
        if adapter is not None and not Path(adapter).is_dir():
            raise CheckpointError(f"adapter folder {adapter} does not exist or is not a folder")
        from diffusers import DiffusionPipeline
        from safetensors import SafetensorError

        try:
            pipe = DiffusionPipeline.from_pretrained(str(checkpoint), local_files_only=True, dtype=dtype)
        except (OSError, ValueError, RuntimeError, TypeError, KeyError, SafetensorError) as error:
            raise CheckpointError(f"checkpoint {checkpoint} could not be loaded: {error}") from None
        if adapter is not None:
            load_adapter(pipe.transformer, Path(adapter))
        torch_device = torch.device(device)
        pipe.to(torch_device)
        pipe.set_progress_bar_config(disable=True)
        return cls(
            pipe,
            family,
            checkpoint,
            device=torch_device,
            dtype=dtype,
            adapter=Path(adapter) if adapter is not None else None,
            options=options or {},
        )

    def set_adapter_enabled(self, enabled: bool) -> None:
        """Switch the loaded LoRA adapter on or off (off gives the base checkpoint's outputs)."""
        if self.adapter is None:
            raise BackendError("no adapter is loaded")
        if enabled:
            self.pipe.transformer.enable_adapters()
        else:
            self.pipe.transformer.disable_adapters()
        self.adapter_enabled = enabled

    def pipeline_latents(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Per-video (C, F', H', W') CPU latents as the batch tensor this family's pipeline takes."""
        batch = torch.stack(latents)
        if self.family.layout == "BFCHW":
            batch = batch.permute(0, 2, 1, 3, 4).contiguous()
        elif self.family.layout == "packed":
            batch = self.pipe._pack_latents(
                batch, self.pipe.transformer_spatial_patch_size, self.pipe.transformer_temporal_patch_size
            )
        dtype = self.dtype if self.family.latents_in_model_dtype else torch.float32
        return batch.to(self.device, dtype)

    def call_arguments(
        self, prompts: list[str], settings: Mapping[str, Any], negative: str | None
    ) -> dict[str, Any]:
        """The pipeline call's keyword arguments for resolved settings (also used by perf/generation.py)."""
        arguments: dict[str, Any] = {
            "prompt": prompts,
            "height": settings["height"],
            "width": settings["width"],
            "num_frames": settings["frames"],
            "num_inference_steps": settings["steps"],
            "guidance_scale": settings["guidance_scale"],
            "output_type": "np",
            **self.family.extra_call(self.pipe, settings),
        }
        if "guidance_scale_2" in settings:
            arguments["guidance_scale_2"] = settings["guidance_scale_2"]
        if self.family.max_text_tokens is not None:
            limit = int(getattr(self.pipe.tokenizer, "model_max_length", self.family.max_text_tokens))
            arguments["max_sequence_length"] = min(self.family.max_text_tokens, limit)
        if self.family.negative_prompt:
            arguments["negative_prompt"] = [negative or ""] * len(prompts)
        return arguments

    def prepare_scheduler(self, settings: Mapping[str, Any]) -> None:
        """A fresh scheduler from the checkpoint's config, with the requested flow shift."""
        overrides = {self._shift_key: settings["flow_shift"]} if self._shift_key is not None else {}
        self.pipe.scheduler = self._scheduler_class.from_config(self._scheduler_config, **overrides)

    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: ProgressCallback | None = None,
        should_stop: StopCallback | None = None,
    ) -> list[GeneratedVideo]:
        settings = self.settings_for(request)
        latents = self.latents_for(request, settings)
        check_stop(should_stop)

        steps = settings["steps"]
        size = self.capabilities.max_batch_size
        chunks = [
            range(start, min(start + size, len(request.prompts)))
            for start in range(0, len(request.prompts), size)
        ]
        total = steps * len(chunks)
        info = self._info(settings)
        videos: list[GeneratedVideo] = []
        for chunk_index, chunk in enumerate(chunks):
            done_before = chunk_index * steps

            def on_step_end(
                pipe: Any, step: int, timestep: Any, tensors: dict[str, Any], done_before: int = done_before
            ) -> dict[str, Any]:
                if progress is not None:
                    progress(done_before + step + 1, total)
                check_stop(should_stop)
                return {}

            self.prepare_scheduler(settings)
            arguments = self.call_arguments(
                [request.prompts[i] for i in chunk], settings, settings.get("negative_prompt")
            )
            try:
                output = self.pipe(
                    **arguments,
                    latents=self.pipeline_latents([latents[i] for i in chunk]),
                    callback_on_step_end=on_step_end,
                )
            except torch.OutOfMemoryError:
                self._free_memory()
                raise OutOfMemory(
                    f"out of device memory at {settings['frames']} frames of "
                    f"{settings['height']}x{settings['width']}, batch {len(chunk)}",
                    self._memory_hint(settings, len(chunk)),
                ) from None
            except GenerationCancelled:
                self._free_memory()
                raise
            for position, index in enumerate(chunk):
                videos.append(
                    GeneratedVideo(
                        frames=_to_uint8(output.frames[position]),
                        fps=float(settings["fps"]),
                        initial_latents=latents[index],
                        seed=request.seeds[index] if request.seeds is not None else None,
                        info=dict(info),
                    )
                )
        return videos

    def _memory_hint(self, settings: Mapping[str, Any], batch: int) -> str:
        if batch > 1:
            return f"lower the batch size (max_batch_size, now {batch})"
        rule = self.capabilities.frame_rule
        fewer = rule.nearest(max(rule.multiple + rule.offset, settings["frames"] // 2))
        return (
            f"lower frames (now {settings['frames']}, e.g. {fewer}) "
            f"or height/width (now {settings['height']}x{settings['width']})"
        )

    def _free_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _info(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        import diffusers

        return {
            "backend": self.name,
            "family": self.family.name,
            "pipeline": type(self.pipe).__name__,
            "scheduler": self._scheduler_class.__name__,
            "checkpoint": str(self.checkpoint),
            "adapter": str(self.adapter) if self.adapter is not None and self.adapter_enabled else None,
            "settings": dict(settings),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__},
        }

    def close(self) -> None:
        self.pipe.to("cpu")
        self._free_memory()
