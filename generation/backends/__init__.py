"""Text-to-video backends: one small interface (`base.Backend`) and a registry of implementations.

Implementations are imported only when asked for by name, so a web process never imports diffusers or a
model's code. Nothing here imports Django.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

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
    PromptRejected,
    SettingsError,
    SettingSpec,
    initial_latents,
)

# name -> "module:Class", imported on first use; a new backend is one line here.
BACKENDS: dict[str, str] = {
    "diffusers": "generation.backends.diffusers_backend:DiffusersBackend",
    "command": "generation.backends.command:CommandBackend",
    "stepvideo": "generation.backends.stepvideo.backend:StepVideoBackend",
    "lumina": "generation.backends.lumina.backend:LuminaVideoBackend",
}


def register(name: str, target: str) -> None:
    BACKENDS[name] = target


def backend_class(name: str) -> type[Backend]:
    try:
        module_name, class_name = BACKENDS[name].split(":")
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}") from None
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def load_backend(
    name: str,
    checkpoint: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    adapter: str | Path | None = None,
    options: dict[str, Any] | None = None,
) -> Backend:
    return backend_class(name).load(
        Path(checkpoint),
        device=device,
        dtype=dtype,
        adapter=Path(adapter) if adapter else None,
        options=options,
    )


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Capabilities",
    "CheckpointError",
    "FrameRule",
    "GeneratedVideo",
    "GenerationCancelled",
    "GenerationRequest",
    "OutOfMemory",
    "PromptRejected",
    "SettingSpec",
    "SettingsError",
    "backend_class",
    "initial_latents",
    "load_backend",
    "register",
]
