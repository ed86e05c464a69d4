"""Shared noise: a noise id names one stored initial-latent tensor, drawn from a seed and a latent shape.

Two checkpoints of one family given the same noise id start from identical latents, which is what the
A/B-with-shared-noise campaigns and Video-DPO need. The id is derived from what the tensor is made of,
`noise_id(seed, shape)` = "s<seed>-<C>x<F>x<H>x<W>", so asking twice for the same seed and shape gives
the same id and the same file, and the shape can be read back from the id. The tensor itself is
`base.initial_latents(shape, seed)` (float32, drawn on the CPU generator), stored as safetensors in a
`NoiseStore` folder with its seed and shape in the metadata; loading checks both against the id.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from .base import BackendError, initial_latents

_NOISE_ID = re.compile(r"^s(?P<seed>-?\d+)-(?P<shape>\d+(?:x\d+)*)$")


class NoiseError(BackendError):
    """A noise id that is malformed or whose stored tensor is missing or does not match it."""


def noise_id(seed: int, shape: Sequence[int]) -> str:
    if not shape or any(int(side) < 1 for side in shape):
        raise NoiseError(f"a latent shape needs positive sides, got {tuple(shape)}")
    return f"s{int(seed)}-{'x'.join(str(int(side)) for side in shape)}"


def parse_noise_id(value: str) -> tuple[int, tuple[int, ...]]:
    """(seed, shape) of a noise id."""
    match = _NOISE_ID.match(value)
    if match is None:
        raise NoiseError(f"{value!r} is not a noise id (expected s<seed>-<C>x<F>x<H>x<W>)")
    return int(match["seed"]), tuple(int(side) for side in match["shape"].split("x"))


class NoiseStore:
    """A folder of stored initial latents, one safetensors file per noise id."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, value: str) -> Path:
        parse_noise_id(value)
        return self.folder / f"{value}.safetensors"

    def create(self, seed: int, shape: Sequence[int]) -> str:
        """The noise id of (seed, shape), its tensor stored if it was not already."""
        from safetensors.torch import save_file

        value = noise_id(seed, shape)
        target = self.path(value)
        if target.is_file():
            return value
        self.folder.mkdir(parents=True, exist_ok=True)
        tensor = initial_latents(shape, seed)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        os.close(handle)
        try:
            save_file(
                {"latents": tensor},
                temporary,
                metadata={"seed": str(int(seed)), "shape": "x".join(map(str, tensor.shape))},
            )
            os.replace(temporary, target)  # atomic: a reader never sees half a file
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return value

    def load(self, value: str) -> torch.Tensor:
        """The stored initial latents of a noise id (float32, CPU)."""
        from safetensors import safe_open

        seed, shape = parse_noise_id(value)
        target = self.path(value)
        if not target.is_file():
            raise NoiseError(f"noise {value} is not stored in {self.folder}")
        with safe_open(str(target), framework="pt") as stored:
            metadata = stored.metadata() or {}
            tensor = stored.get_tensor("latents")
        if tuple(tensor.shape) != shape or metadata.get("seed") != str(seed) or tensor.dtype != torch.float32:
            raise NoiseError(f"stored noise {target} does not match its id {value}")
        return tensor

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and _NOISE_ID.match(value) is not None and self.path(value).is_file()
