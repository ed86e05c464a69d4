"""LuminaVideoBackend on a tiny checkpoint folder in the published layout: a short generation end to end."""

import numpy as np
import pytest
import torch

from generation.backends import (
    BACKENDS,
    BackendError,
    CheckpointError,
    GenerationCancelled,
    GenerationRequest,
    SettingsError,
    initial_latents,
    load_backend,
)
from generation.backends.lumina.config import MULTI_SCALE, OFFICIAL_DEFAULTS
from generation.backends.lumina.tiny import TINY_SETTINGS


def generate(backend, seeds=(3,), prompts=None, **settings):
    prompts = prompts or ["a cat walks on the beach"] * len(seeds)
    request = GenerationRequest(list(prompts), {**TINY_SETTINGS, **settings}, seeds=list(seeds))
    return backend.generate(request)


def test_registered_and_capabilities(lumina_backend):
    assert BACKENDS["lumina"].endswith(":LuminaVideoBackend")
    caps = lumina_backend.capabilities
    assert caps.family == "lumina-video" and str(caps.frame_rule) == "8k"
    assert caps.resolution_multiple == 32  # 8x VAE times the largest patch (4)
    assert caps.latent_shape(height=704, width=1248, frames=96) == (16, 24, 88, 156)
    assert caps.defaults()["motion_score"] == OFFICIAL_DEFAULTS["motion_score"] == 6.0
    assert caps.defaults()["frames"] == 96 and caps.defaults()["steps"] == 69


def test_a_short_generation_gives_uint8_frames_progress_and_its_latents(lumina_backend):
    done = []
    request = GenerationRequest(["a dog runs"], dict(TINY_SETTINGS), seeds=[5])
    (video,) = lumina_backend.generate(request, progress=lambda step, total: done.append((step, total)))
    assert video.frames.shape == (8, 32, 32, 3) and video.frames.dtype == np.uint8
    assert video.fps == 8.0 and video.seed == 5
    assert done == [(1, 2), (2, 2)]
    assert torch.equal(video.initial_latents, initial_latents((16, 2, 4, 4), 5))
    assert video.info["settings"]["scales"] == "1x2" and video.info["prompt_truncated"] is False


def test_determinism_per_seed(lumina_backend):
    first, again, other = (
        generate(lumina_backend, seeds=(7,)),
        generate(lumina_backend, seeds=(7,)),
        generate(lumina_backend, seeds=(8,)),
    )
    assert np.array_equal(first[0].frames, again[0].frames)
    assert not np.array_equal(first[0].frames, other[0].frames)


def test_given_latents_are_honoured_and_shape_checked(lumina_backend):
    shared = initial_latents((16, 2, 4, 4), 11)
    request = GenerationRequest(["a dog runs"], dict(TINY_SETTINGS), latents=[shared])
    (given,) = lumina_backend.generate(request)
    (seeded,) = generate(lumina_backend, seeds=(11,), prompts=["a dog runs"])
    assert np.array_equal(given.frames, seeded.frames) and given.seed is None
    bad = GenerationRequest(["a dog runs"], dict(TINY_SETTINGS), latents=[torch.zeros(16, 3, 4, 4)])
    with pytest.raises(SettingsError, match="latents"):
        lumina_backend.generate(bad)


def test_motion_scores_change_the_video_and_are_a_sweepable_setting(lumina_backend):
    low, high = generate(lumina_backend, motion_score=1.0), generate(lumina_backend, motion_score=12.0)
    assert not np.array_equal(low[0].frames, high[0].frames)
    weaker_negative = generate(lumina_backend, negative_motion_score=6.0)
    assert not np.array_equal(generate(lumina_backend)[0].frames, weaker_negative[0].frames)
    caps = lumina_backend.capabilities
    grid = [caps.validate({"motion_score": m})["motion_score"] for m in (0, 2, 6, 10.5)]
    assert grid == [0.0, 2.0, 6.0, 10.5]
    with pytest.raises(SettingsError, match="motion_score"):
        caps.validate({"motion_score": -3})


def test_multi_scale_sampling_runs_and_differs_from_single_scale(lumina_backend):
    single = generate(lumina_backend, steps=4)
    multi = generate(lumina_backend, steps=4, scales=MULTI_SCALE)
    assert multi[0].frames.shape == single[0].frames.shape
    assert not np.array_equal(single[0].frames, multi[0].frames)


def test_bad_settings_are_named(lumina_backend):
    with pytest.raises(SettingsError, match="frames.*nearest valid count is 8"):
        generate(lumina_backend, frames=9)
    with pytest.raises(SettingsError, match="scales"):
        generate(lumina_backend, scales="3x3")
    with pytest.raises(SettingsError, match="scales"):
        generate(lumina_backend, scales="1x2,nonsense@0.5")
    with pytest.raises(SettingsError, match="height"):
        generate(lumina_backend, height=48)


def test_cancel_between_steps(lumina_backend):
    done = []
    request = GenerationRequest(["a dog runs"], {**TINY_SETTINGS, "steps": 3}, seeds=[1])
    with pytest.raises(GenerationCancelled):
        lumina_backend.generate(request, progress=lambda s, t: done.append(s), should_stop=lambda: bool(done))
    assert done == [1]


def test_a_batch_gives_each_video_as_alone(lumina_backend):
    prompts = ["a dog runs", "a red bird flies over the sea"]
    together = generate(lumina_backend, seeds=(1, 2), prompts=prompts)
    alone = generate(lumina_backend, seeds=(2,), prompts=prompts[1:])
    assert np.abs(together[1].frames.astype(int) - alone[0].frames.astype(int)).max() <= 1


def test_an_incomplete_folder_is_named(tiny_lumina, tmp_path):
    with pytest.raises(CheckpointError, match="model_args.pth"):
        load_backend("lumina", tmp_path)
    (tmp_path / "model_args.pth").write_bytes((tiny_lumina / "model_args.pth").read_bytes())
    with pytest.raises(CheckpointError, match="consolidated"):
        load_backend("lumina", tmp_path)
    with pytest.raises(CheckpointError, match="text_encoder"):
        load_backend("lumina", tiny_lumina, options={"text_encoder": str(tmp_path / "nowhere")})


def test_text_encoder_and_vae_folders_can_live_elsewhere(tiny_lumina, tmp_path):
    import shutil

    dit_only = tmp_path / "Lumina-Video-f24R960"
    dit_only.mkdir()
    for name in ("model_args.pth", "consolidated.00-of-01.safetensors"):
        shutil.copy(tiny_lumina / name, dit_only / name)
    with pytest.raises(CheckpointError, match="text encoder"):
        load_backend("lumina", dit_only)
    options = {"text_encoder": str(tiny_lumina / "gemma-2-2b"), "vae": str(tiny_lumina / "vae")}
    backend = load_backend("lumina", dit_only, options=options)
    assert backend.capabilities.latent_channels == 16
    with pytest.raises(BackendError, match="unknown Lumina-Video options"):
        load_backend("lumina", dit_only, options={**options, "offload": True})


def test_capabilities_from_the_configs_equal_the_loaded_backends(tiny_lumina, lumina_backend):
    from generation.backends.lumina.backend import LuminaVideoBackend

    from_configs = LuminaVideoBackend.capabilities_for(tiny_lumina)
    assert from_configs.describe() == lumina_backend.capabilities.describe()
    assert from_configs.latent_shape(height=32, width=32, frames=16) == (
        lumina_backend.capabilities.latent_shape(height=32, width=32, frames=16)
    )


def test_capabilities_from_the_configs_refuse_what_loading_refuses(tiny_lumina, tmp_path):
    from generation.backends.lumina.backend import LuminaVideoBackend

    with pytest.raises(CheckpointError, match="model_args.pth"):
        LuminaVideoBackend.capabilities_for(tmp_path)
    (tmp_path / "model_args.pth").write_bytes((tiny_lumina / "model_args.pth").read_bytes())
    with pytest.raises(CheckpointError, match="consolidated"):
        LuminaVideoBackend.capabilities_for(tmp_path)
    with pytest.raises(CheckpointError, match="text_encoder"):
        LuminaVideoBackend.capabilities_for(tiny_lumina, options={"text_encoder": str(tmp_path / "nowhere")})
