"""A test-only backend for the plumbing of runs (cancel between steps, a worker killed mid-video, checks
before queueing): no model, each "denoising step" sleeps `step_seconds` and frames are a fixed function of
the initial latents. Workers get it through EVALSITE_GENERATION_BACKENDS; it is never used for the tests
of what the videos contain (those use the real tiny Wan through the diffusers backend)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generation.backends.base import (
    Backend,
    Capabilities,
    CheckpointError,
    FrameRule,
    GeneratedVideo,
    PromptRejected,
    SettingSpec,
    check_stop,
)

TARGET = "tests.generation.plumbing_backend:PlumbingBackend"
CONFIG = "plumbing.json"


def make_checkpoint(folder: Path, *, step_seconds: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).write_text(json.dumps({"step_seconds": step_seconds}))
    return folder


def _capabilities() -> Capabilities:
    return Capabilities(
        family="plumbing",
        frame_rule=FrameRule(4, 1),
        resolution_multiple=16,
        latent_channels=4,
        spatial_compression=8,
        temporal_compression=4,
        sampler="none (test backend)",
        settings=(
            SettingSpec("steps", int, 4, minimum=1, maximum=1000),
            SettingSpec("guidance_scale", float, 5.0, minimum=0.0, maximum=20.0),
            SettingSpec("height", int, 32, minimum=16, maximum=256),
            SettingSpec("width", int, 32, minimum=16, maximum=256),
            SettingSpec("frames", int, 5, minimum=5, maximum=33),
            SettingSpec("fps", int, 8, minimum=1, maximum=60),
        ),
    )


class PlumbingBackend(Backend):
    name = "plumbing"

    def __init__(self, step_seconds: float):
        self.capabilities = _capabilities()
        self.step_seconds = step_seconds

    @classmethod
    def _config(cls, checkpoint: Path) -> dict[str, Any]:
        path = Path(checkpoint) / CONFIG
        if not path.is_file():
            raise CheckpointError(f"{checkpoint} has no {CONFIG}")
        return json.loads(path.read_text())

    @classmethod
    def capabilities_for(cls, checkpoint: Path, *, adapter=None, options=None) -> Capabilities:
        cls._config(checkpoint)
        return _capabilities()

    @classmethod
    def load(cls, checkpoint, *, device="cpu", dtype=torch.float32, adapter=None, options=None):
        return cls(float(cls._config(checkpoint)["step_seconds"]))

    def generate(self, request, *, progress=None, should_stop=None):
        settings = self.capabilities.validate(request.settings)
        latents = self.latents_for(request, settings)
        steps = settings["steps"]
        outputs = []
        for prompt, latent, seed in zip(
            request.prompts, latents, request.seeds or [None] * len(latents), strict=True
        ):
            if "REJECT" in prompt:
                raise PromptRejected("the test backend rejects prompts containing REJECT")
            for step in range(steps):
                check_stop(should_stop)
                time.sleep(self.step_seconds)
                if progress is not None:
                    progress(step + 1, steps)
            value = int(latent.abs().sum().item() * 1000) % 256
            frames = np.full(
                (settings["frames"], settings["height"], settings["width"], 3), value, dtype=np.uint8
            )
            outputs.append(GeneratedVideo(frames, float(settings["fps"]), latent, seed))
        return outputs


class UncheckedPlumbingBackend(PlumbingBackend):
    """The plumbing backend without a config reader: a worker must load it before its settings are known."""

    capabilities_for = None  # type: ignore[assignment]


UNCHECKED_TARGET = "tests.generation.plumbing_backend:UncheckedPlumbingBackend"
