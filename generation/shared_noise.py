"""Shared noise: a noise id names one stored initial-latent tensor (drawn from a seed for a latent shape),
so two checkpoints of one family given the same id start from identical latents. The tensor is drawn once,
on the CPU in float32 (`backends.initial_latents`), stored under MEDIA_ROOT/noise/ and read back by every
worker that needs it; its row records the seed, shape, family and the file's hash."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence

import torch
from django.db import IntegrityError, transaction

from .backends import initial_latents
from .models import SharedNoise
from .services import GenerationError, media_path
from .videofiles import temporary_beside


def noise_seed(noise_id: str) -> int:
    """The seed a new noise id is drawn from: a stable function of the id (63 bits)."""
    return int.from_bytes(hashlib.sha256(noise_id.encode("utf-8")).digest()[:8], "big") >> 1


def noise_relpath(noise_id: str) -> str:
    digest = hashlib.sha256(noise_id.encode("utf-8")).hexdigest()
    return f"noise/{digest[:2]}/{digest}.pt"


def tensor_sha256(tensor: torch.Tensor) -> str:
    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


def _write(tensor: torch.Tensor, relative: str) -> None:
    destination = media_path(relative)
    buffer = io.BytesIO()
    torch.save(tensor.contiguous(), buffer)
    tmp = temporary_beside(destination, ".pt")
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(noise: SharedNoise) -> torch.Tensor:
    path = media_path(noise.file)
    if not path.is_file():
        raise GenerationError(f"the stored tensor of noise id {noise.noise_id!r} is missing ({noise.file})")
    tensor = torch.load(path, map_location="cpu", weights_only=True)
    if tensor_sha256(tensor) != noise.sha256:
        raise GenerationError(f"the stored tensor of noise id {noise.noise_id!r} does not match its hash")
    return tensor


def shared_latents(
    noise_id: str, shape: Sequence[int], *, family: str = ""
) -> tuple[torch.Tensor, SharedNoise]:
    """The initial latents a noise id names, drawn and stored the first time it is used. A noise id that
    was stored for another latent shape is an error (it belongs to another family or size)."""
    shape = [int(side) for side in shape]
    noise = SharedNoise.objects.filter(noise_id=noise_id).first()
    if noise is None:
        seed = noise_seed(noise_id)
        tensor = initial_latents(shape, seed)
        relative = noise_relpath(noise_id)
        _write(tensor, relative)  # the same id always gives the same bytes, so a race writes equal files
        try:
            with transaction.atomic():
                noise = SharedNoise.objects.create(
                    noise_id=noise_id,
                    seed=seed,
                    shape=shape,
                    family=family,
                    file=relative,
                    sha256=tensor_sha256(tensor),
                )
        except IntegrityError:
            noise = SharedNoise.objects.get(noise_id=noise_id)
        else:
            return tensor, noise
    if list(noise.shape) != shape:
        raise GenerationError(
            f"noise id {noise_id!r} holds latents of shape {tuple(noise.shape)} "
            f"(family {noise.family or 'unknown'}); this model and size need {tuple(shape)}"
        )
    return _read(noise), noise
