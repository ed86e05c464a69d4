"""StepVideoBackend end to end on a tiny checkpoint written in the published layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.backends import (
    BackendError,
    CheckpointError,
    GenerationCancelled,
    GenerationRequest,
    SettingsError,
    backend_class,
    load_backend,
)
from generation.backends.stepvideo.backend import StepVideoBackend, variant_settings

TINY = {"height": 16, "width": 32, "frames": 17, "steps": 2}


def test_the_registry_finds_the_backend():
    assert backend_class("stepvideo") is StepVideoBackend


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("base", {"steps": 50, "guidance_scale": 9.0, "time_shift": 13.0, "guidance_schedule": "constant"}),
        ("turbo", {"steps": 10, "guidance_scale": 5.0, "time_shift": 17.0, "guidance_schedule": "linear"}),
    ],
)
def test_the_official_defaults_per_variant(variant, expected):
    defaults = {spec.name: spec.default for spec in variant_settings(variant)}
    assert defaults | expected == defaults
    assert (defaults["height"], defaults["width"], defaults["frames"]) == (544, 992, 204)


def test_capabilities_state_the_frame_rule_and_the_latent_shape(tiny_backend):
    caps = tiny_backend.capabilities
    assert str(caps.frame_rule) == "17k"
    assert caps.frame_rule.is_valid(204) and not caps.frame_rule.is_valid(205)
    assert caps.latent_shape(height=544, width=992, frames=204) == (4, 36, 34, 62)
    with pytest.raises(SettingsError, match="nearest valid count is 17"):
        caps.validate({**TINY, "frames": 20})
    with pytest.raises(SettingsError, match="multiple of 16"):
        caps.validate({**TINY, "height": 40})


def test_a_generation_gives_uint8_frames_progress_per_step_and_is_deterministic_per_seed(tiny_backend):
    progress: list[tuple[int, int]] = []
    request = GenerationRequest(
        prompts=["a cat runs on the grass", "红 car in the city"], settings=TINY, seeds=[3, 4]
    )
    first = tiny_backend.generate(request, progress=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [v.frames.shape for v in first] == [(17, 16, 32, 3)] * 2
    assert first[0].frames.dtype == np.uint8 and first[0].frames.std() > 0
    assert first[0].seed == 3 and first[0].initial_latents.shape == (4, 3, 1, 2)
    assert first[0].info["settings"]["guidance_scale"] == 9.0
    again = tiny_backend.generate(
        GenerationRequest(prompts=["a cat runs on the grass"], settings=TINY, seeds=[3])
    )
    assert np.array_equal(again[0].frames, first[0].frames)
    assert not np.array_equal(first[0].frames, first[1].frames)


def test_given_initial_latents_are_honoured_and_shared(tiny_backend):
    seeded = tiny_backend.generate(GenerationRequest(prompts=["a dog"], settings=TINY, seeds=[11]))[0]
    shared = tiny_backend.generate(
        GenerationRequest(prompts=["a dog"], settings=TINY, latents=[seeded.initial_latents.clone()])
    )[0]
    assert np.array_equal(shared.frames, seeded.frames) and shared.seed is None
    other = torch.randn(4, 3, 1, 2)
    assert not np.array_equal(
        tiny_backend.generate(GenerationRequest(prompts=["a dog"], settings=TINY, latents=[other]))[0].frames,
        seeded.frames,
    )
    with pytest.raises(SettingsError, match="expected"):
        tiny_backend.generate(
            GenerationRequest(prompts=["a dog"], settings=TINY, latents=[torch.zeros(4, 6, 1, 2)])
        )


def test_cancel_stops_between_steps(tiny_backend):
    done: list[int] = []
    request = GenerationRequest(prompts=["a dog"], settings={**TINY, "steps": 5}, seeds=[1])
    with pytest.raises(GenerationCancelled):
        tiny_backend.generate(
            request, progress=lambda d, t: done.append(d), should_stop=lambda: len(done) >= 2
        )
    assert done == [1, 2]


def test_turbo_runs_with_its_linear_guidance(tiny_checkpoint):
    backend = load_backend("stepvideo", tiny_checkpoint, options={"variant": "turbo"})
    request = GenerationRequest(prompts=["a cat"], settings=TINY, seeds=[5])
    video = backend.generate(request)[0]
    assert video.info["variant"] == "turbo" and video.info["settings"]["guidance_schedule"] == "linear"
    # the text encoders are freed after encoding by default, and reloaded when needed again
    assert backend.text_encoders is None
    constant = backend.generate(
        GenerationRequest(prompts=["a cat"], settings={**TINY, "guidance_schedule": "constant"}, seeds=[5])
    )[0]
    assert not np.array_equal(video.frames, constant.frames)
    backend.close()


def test_encoding_a_video_gives_latents_of_the_latent_shape(tiny_backend):
    video = torch.rand(34, 3, 16, 32) * 2 - 1
    latents = tiny_backend.encode_video(video)
    assert latents.shape == tiny_backend.capabilities.latent_shape(height=16, width=32, frames=34)
    assert tiny_backend.decode_latents(latents).shape == (34, 3, 16, 32)


def test_bad_options_and_incomplete_folders_are_named(tiny_checkpoint, tmp_path: Path):
    with pytest.raises(BackendError, match="unknown Step-Video options"):
        load_backend("stepvideo", tiny_checkpoint, options={"variant": "turbo", "speed": 2})
    with pytest.raises(BackendError, match="variant"):
        load_backend("stepvideo", tiny_checkpoint, options={"variant": "fast"})
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "vae" / "vae_v2.safetensors").unlink()
    with pytest.raises(CheckpointError, match="vae_v2.safetensors"):
        load_backend("stepvideo", broken)
    with pytest.raises(CheckpointError, match="not a folder"):
        load_backend("stepvideo", tmp_path / "nothing")


def test_offloaded_parts_and_sequential_guidance_give_the_same_video(tiny_backend, tiny_checkpoint):
    request = GenerationRequest(prompts=["a cat"], settings=TINY, seeds=[9])
    batched = tiny_backend.generate(request)[0]
    options = {"offload": True, "sequential_guidance": True, "text_device": "cpu", "vae_device": "cpu"}
    backend = load_backend("stepvideo", tiny_checkpoint, options=options)
    assert next(backend.vae.parameters()).device.type == "cpu"
    separate = backend.generate(request)[0]
    backend.close()
    assert np.abs(separate.frames.astype(int) - batched.frames.astype(int)).max() <= 1


@pytest.mark.gpu
def test_a_bf16_generation_on_the_gpu(tiny_checkpoint):
    backend = load_backend("stepvideo", tiny_checkpoint, device="cuda", dtype=torch.bfloat16)
    video = backend.generate(GenerationRequest(prompts=["a cat"], settings=TINY, seeds=[2]))[0]
    backend.close()
    assert video.frames.shape == (17, 16, 32, 3) and video.frames.std() > 0


@pytest.mark.parametrize("variant", ["base", "turbo"])
def test_capabilities_from_the_configs_equal_the_loaded_backends(tiny_checkpoint, variant):
    from generation.backends.stepvideo.backend import StepVideoBackend

    options = {"variant": variant, "free_text_encoders": False}
    from_configs = StepVideoBackend.capabilities_for(tiny_checkpoint, options=options)
    loaded = load_backend("stepvideo", tiny_checkpoint, options=options)
    assert from_configs.describe() == loaded.capabilities.describe()
    frames = loaded.capabilities.frame_rule.nearest(40)
    assert from_configs.latent_shape(height=32, width=32, frames=frames) == (
        loaded.capabilities.latent_shape(height=32, width=32, frames=frames)
    )


def test_capabilities_from_the_configs_refuse_what_loading_refuses(tiny_checkpoint, tmp_path: Path):
    from generation.backends.stepvideo.backend import StepVideoBackend

    with pytest.raises(BackendError, match="unknown Step-Video options"):
        StepVideoBackend.capabilities_for(tiny_checkpoint, options={"speed": 2})
    with pytest.raises(BackendError, match="no adapter"):
        StepVideoBackend.capabilities_for(tiny_checkpoint, adapter=tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "vae" / "vae_v2.safetensors").unlink()
    with pytest.raises(CheckpointError, match="vae_v2.safetensors"):
        StepVideoBackend.capabilities_for(broken)
