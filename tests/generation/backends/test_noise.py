"""Shared noise: one noise id gives two checkpoints of one family identical initial latents."""

import numpy as np
import pytest
import torch

from generation.backends import GenerationRequest, initial_latents, load_backend
from generation.backends.noise import NoiseError, NoiseStore, noise_id, parse_noise_id
from generation.backends.tiny import TINY_SETTINGS

SETTINGS = {k: v for k, v in TINY_SETTINGS["wan"].items() if k != "fps"}


def test_noise_ids_are_derived_from_seed_and_shape(tmp_path):
    store = NoiseStore(tmp_path)
    value = store.create(42, (16, 3, 2, 2))
    assert value == noise_id(42, (16, 3, 2, 2)) == "s42-16x3x2x2"
    assert parse_noise_id(value) == (42, (16, 3, 2, 2))
    assert store.create(42, (16, 3, 2, 2)) == value and value in store
    assert torch.equal(store.load(value), initial_latents((16, 3, 2, 2), 42))
    assert noise_id(42, (16, 5, 2, 2)) != value and noise_id(43, (16, 3, 2, 2)) != value
    with pytest.raises(NoiseError, match="not a noise id"):
        store.load("../../etc/passwd")
    with pytest.raises(NoiseError, match="not stored"):
        store.load("s1-16x3x2x2")
    # A file that does not hold what its name says is refused.
    store.path(value).replace(store.path("s7-16x3x2x2"))
    with pytest.raises(NoiseError, match="does not match"):
        store.load("s7-16x3x2x2")


def test_one_noise_id_gives_two_checkpoints_identical_initial_latents(tmp_path, tiny_wan, tiny_wan_other):
    first, second = load_backend("diffusers", tiny_wan), load_backend("diffusers", tiny_wan_other)
    shape = first.capabilities.latent_shape(height=16, width=16, frames=9)
    assert shape == second.capabilities.latent_shape(height=16, width=16, frames=9)
    store = NoiseStore(tmp_path / "noise")
    value = store.create(123, shape)

    def run(backend):
        request = GenerationRequest(prompts=["a bird flies"], settings=SETTINGS, latents=[store.load(value)])
        return backend.generate(request)[0]

    a, b = run(first), run(second)
    assert torch.equal(a.initial_latents, b.initial_latents)
    assert torch.equal(a.initial_latents, initial_latents(shape, 123))
    assert not np.array_equal(a.frames, b.frames)  # two different checkpoints, one starting point
