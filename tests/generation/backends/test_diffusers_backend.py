"""The diffusers backend on tiny Wan and CogVideoX checkpoints built from code (CPU, random weights)."""

import json
import shutil

import numpy as np
import pytest
import torch

from generation.backends import (
    CheckpointError,
    GenerationCancelled,
    GenerationRequest,
    OutOfMemory,
    SettingsError,
    initial_latents,
    load_backend,
)
from generation.backends.diffusers_backend import save_adapter
from generation.backends.tiny import TINY_SETTINGS

WAN = {k: v for k, v in TINY_SETTINGS["wan"].items() if k != "fps"}
COG = {k: v for k, v in TINY_SETTINGS["cogvideox"].items() if k != "fps"}


@pytest.fixture(scope="module")
def wan(tiny_wan):
    return load_backend("diffusers", tiny_wan)


@pytest.fixture(scope="module")
def cog(tiny_cogvideox):
    return load_backend("diffusers", tiny_cogvideox)


def one(prompt="a cat walks", seed=0, **settings):
    return GenerationRequest(prompts=[prompt], settings={**WAN, **settings}, seeds=[seed])


def test_capabilities_come_from_the_loaded_config(wan, cog):
    assert wan.capabilities.family == "wan"
    assert str(wan.capabilities.frame_rule) == "4k+1"
    assert wan.capabilities.latent_channels == wan.pipe.transformer.config.in_channels == 16
    assert wan.capabilities.spatial_compression == wan.pipe.vae_scale_factor_spatial
    assert wan.capabilities.resolution_multiple == 16
    assert wan.capabilities.latent_shape(height=16, width=32, frames=9) == (16, 3, 2, 4)
    assert wan.capabilities.setting("flow_shift").default == 3.0
    assert cog.capabilities.family == "cogvideox"
    assert cog.capabilities.latent_channels == 4
    assert "v_prediction" in cog.capabilities.sampler
    assert "flow_shift" not in {spec.name for spec in cog.capabilities.settings}


@pytest.mark.parametrize(
    ("bad", "setting", "words"),
    [
        ({"frames": 10}, "frames", "4k+1"),
        ({"height": 20}, "height", "multiple of 16"),
        ({"steps": 0}, "steps", "minimum"),
        ({"guidance_scale": "strong"}, "guidance_scale", "expected float"),
        ({"sampler": "ddim"}, "sampler", "unknown setting"),
    ],
)
def test_bad_settings_name_the_setting(wan, bad, setting, words):
    with pytest.raises(SettingsError) as raised:
        wan.generate(one(**bad))
    assert raised.value.setting == setting
    assert words in str(raised.value)


def test_cogvideox_refuses_a_flow_shift(cog):
    with pytest.raises(SettingsError, match="flow_shift"):
        cog.generate(GenerationRequest(prompts=["a dog"], settings={**COG, "flow_shift": 3.0}, seeds=[0]))


def test_same_seed_gives_identical_frames_and_other_seeds_differ(wan):
    first, second = wan.generate(one(seed=7))[0], wan.generate(one(seed=7))[0]
    other = wan.generate(one(seed=8))[0]
    assert first.frames.dtype == np.uint8 and first.frames.shape == (9, 16, 16, 3)
    assert np.array_equal(first.frames, second.frames)
    assert not np.array_equal(first.frames, other.frames)
    assert torch.equal(first.initial_latents, initial_latents((16, 3, 2, 2), 7))
    assert first.seed == 7 and first.fps == 16.0
    info = first.info
    assert info["backend"] == "diffusers" and info["pipeline"] == "WanPipeline"
    assert info["settings"]["steps"] == 2 and info["settings"]["flow_shift"] == 3.0
    assert set(info["versions"]) == {"diffusers", "torch"}


@pytest.mark.parametrize("family", ["wan", "wan2.2", "hunyuanvideo", "ltx-video", "mochi"])
def test_seeded_latents_are_diffusers_own_cpu_draw(family, tiny_folders):
    """Our CPU-drawn latents, put in the family's layout (LTX-Video's packed tokens included), are the
    ones diffusers draws itself from a CPU generator of the same seed: the frames are identical."""
    backend = load_backend("diffusers", tiny_folders(family))
    settings = backend.capabilities.validate({**TINY_SETTINGS[family], "guidance_scale": 1.0})
    ours = backend.generate(GenerationRequest(prompts=["a cat walks"], settings=settings, seeds=[3]))[0]
    assert ours.initial_latents.shape == backend.capabilities.latent_shape(
        height=settings["height"], width=settings["width"], frames=settings["frames"]
    )
    backend.prepare_scheduler(settings)
    theirs = backend.pipe(
        **backend.call_arguments(["a cat walks"], settings, ""),
        generator=torch.Generator("cpu").manual_seed(3),
    ).frames[0]
    assert ours.frames.shape == (settings["frames"], settings["height"], settings["width"], 3)
    assert np.array_equal(ours.frames, (np.clip(theirs, 0, 1) * 255).round().astype(np.uint8))


def test_wan_2_2_denoises_with_both_transformers(tiny_folders):
    backend = load_backend("diffusers", tiny_folders("wan2.2"))
    calls = {"transformer": 0, "transformer_2": 0}
    for name in calls:
        getattr(backend.pipe, name).register_forward_hook(
            lambda *args, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    settings = {**TINY_SETTINGS["wan2.2"], "steps": 6}
    first = backend.generate(GenerationRequest(prompts=["a cat"], settings=settings, seeds=[0]))[0]
    assert calls["transformer"] > 0 and calls["transformer_2"] > 0
    assert first.info["settings"]["guidance_scale_2"] == first.info["settings"]["guidance_scale"]
    other = backend.generate(
        GenerationRequest(prompts=["a cat"], settings={**settings, "guidance_scale_2": 1.5}, seeds=[0])
    )[0]
    assert not np.array_equal(first.frames, other.frames)


def test_hunyuanvideo_takes_no_negative_prompt(tiny_folders):
    backend = load_backend("diffusers", tiny_folders("hunyuanvideo"))
    assert not backend.capabilities.supports_negative_prompt
    request = GenerationRequest(
        prompts=["a cat"], settings=TINY_SETTINGS["hunyuanvideo"], seeds=[0], negative_prompt="x"
    )
    with pytest.raises(SettingsError) as raised:
        backend.generate(request)
    assert raised.value.setting == "negative_prompt"


def test_frame_rules_follow_each_vae(tiny_folders):
    ltx = load_backend("diffusers", tiny_folders("ltx-video"))
    mochi = load_backend("diffusers", tiny_folders("mochi"))
    assert str(ltx.capabilities.frame_rule) == f"{ltx.pipe.vae_temporal_compression_ratio}k+1"
    assert str(mochi.capabilities.frame_rule) == "6k+1"
    with pytest.raises(SettingsError, match="6k\\+1"):
        mochi.generate(
            GenerationRequest(prompts=["a"], settings={**TINY_SETTINGS["mochi"], "frames": 9}, seeds=[0])
        )


@pytest.mark.parametrize("family", ["wan", "cog"])
def test_given_latents_are_honoured_in_the_family_layout(family, wan, cog):
    backend, settings = (wan, WAN) if family == "wan" else (cog, COG)
    shape = backend.capabilities.latent_shape(height=16, width=16, frames=9)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    video = backend.generate(GenerationRequest(prompts=["a dog runs"], settings=settings, latents=[latents]))[
        0
    ]
    assert torch.equal(video.initial_latents, latents) and video.seed is None
    # The pipeline called directly with the same latents in its own layout gives the same frames.
    layout = latents[None] if family == "wan" else latents.permute(1, 0, 2, 3)[None]
    backend.prepare_scheduler(backend.capabilities.validate(settings))
    direct = backend.pipe(
        prompt=["a dog runs"],
        negative_prompt=[""],
        latents=layout,
        **{
            k: v
            for k, v in backend.call_arguments(
                ["a dog runs"], backend.capabilities.validate(settings), ""
            ).items()
            if k not in ("prompt", "negative_prompt")
        },
    ).frames[0]
    assert np.array_equal(video.frames, (np.clip(direct, 0, 1) * 255).round().astype(np.uint8))
    with pytest.raises(SettingsError, match="latents"):
        backend.generate(GenerationRequest(prompts=["x"], settings=settings, latents=[latents[:, :1]]))


def test_flow_shift_rebuilds_the_scheduler(wan):
    base = wan.generate(one(seed=1))[0]
    shifted = wan.generate(one(seed=1, flow_shift=9.0))[0]
    assert wan.pipe.scheduler.config.flow_shift == 9.0
    assert not np.array_equal(base.frames, shifted.frames)
    assert np.array_equal(base.frames, wan.generate(one(seed=1))[0].frames)


def test_progress_reaches_the_total_over_a_batch(wan):
    seen = []
    videos = wan.generate(
        GenerationRequest(prompts=["a cat", "a dog"], settings={**WAN, "steps": 3}, seeds=[1, 2]),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert len(videos) == 2
    assert seen == [(step, 6) for step in range(1, 7)]


def test_cancel_stops_between_steps_without_decoding(wan, monkeypatch):
    forwards, decodes, seen = [], [], []
    handle = wan.pipe.transformer.register_forward_hook(lambda *args: forwards.append(1))
    real_decode = wan.pipe.vae.decode
    monkeypatch.setattr(wan.pipe.vae, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    try:
        with pytest.raises(GenerationCancelled):
            wan.generate(
                one(steps=5),
                progress=lambda done, total: seen.append(done),
                should_stop=lambda: len(seen) >= 2,
            )
    finally:
        handle.remove()
    assert seen == [1, 2]
    assert len(forwards) == 4  # two steps, conditional and unconditional pass each
    assert decodes == []


def test_out_of_memory_names_the_setting_to_lower(wan, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(wan.pipe.transformer, "forward", no_memory)
    with pytest.raises(OutOfMemory) as raised:
        wan.generate(one())
    assert "frames" in raised.value.hint and "height/width" in raised.value.hint


def test_bad_folders_are_refused_before_loading(tmp_path, tiny_wan, monkeypatch):
    import diffusers

    def must_not_load(*args, **kwargs):
        raise AssertionError("weights were read before the folder was checked")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", must_not_load)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backend("diffusers", tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="model_index.json"):
        load_backend("diffusers", tmp_path)
    broken = shutil.copytree(tiny_wan, tmp_path / "broken")
    (broken / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(broken / "vae")
    with pytest.raises(CheckpointError) as raised:
        load_backend("diffusers", broken)
    assert "transformer/ weights" in str(raised.value) and "vae/" in str(raised.value)
    truncated = shutil.copytree(tiny_wan, tmp_path / "truncated")
    weights = truncated / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="diffusion_pytorch_model.safetensors"):
        load_backend("diffusers", truncated)
    index = json.loads((broken / "model_index.json").read_text())
    (broken / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(CheckpointError, match="StableDiffusionPipeline"):
        load_backend("diffusers", broken)


def _lora(transformer):
    from peft import LoraConfig

    # init_lora_weights=False: a random, non-zero LoRA, as after training.
    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    )


def test_lora_adapter_changes_outputs_and_disabling_restores_the_base(tmp_path, tiny_wan, wan):
    from diffusers import WanTransformer3DModel

    transformer = WanTransformer3DModel.from_pretrained(tiny_wan, subfolder="transformer")
    _lora(transformer)
    adapter = save_adapter(transformer, tmp_path / "adapter")
    tuned = load_backend("diffusers", tiny_wan, adapter=adapter)
    base = wan.generate(one(seed=4))[0]
    with_adapter = tuned.generate(one(seed=4))[0]
    assert with_adapter.info["adapter"] == str(adapter)
    assert not np.array_equal(base.frames, with_adapter.frames)
    tuned.set_adapter_enabled(False)
    without = tuned.generate(one(seed=4))[0]
    assert np.array_equal(base.frames, without.frames) and without.info["adapter"] is None
    tuned.set_adapter_enabled(True)
    assert np.array_equal(tuned.generate(one(seed=4))[0].frames, with_adapter.frames)


def test_lora_saved_by_peft_model_save_pretrained_loads_the_same(tmp_path, tiny_wan):
    from diffusers import WanTransformer3DModel
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    transformer = WanTransformer3DModel.from_pretrained(tiny_wan, subfolder="transformer")
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_v"], init_lora_weights=False)
    peft_model = get_peft_model(transformer, config)
    peft_model.save_pretrained(tmp_path / "peft")
    tuned = load_backend("diffusers", tiny_wan, adapter=tmp_path / "peft")
    for name, module in peft_model.base_model.model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            loaded = dict(tuned.pipe.transformer.named_modules())[name]
            assert torch.equal(loaded.lora_A["adapter"].weight, module.lora_A["default"].weight)


def test_an_adapter_of_another_model_is_refused(tmp_path, tiny_wan, tiny_cogvideox):
    from diffusers import CogVideoXTransformer3DModel

    transformer = CogVideoXTransformer3DModel.from_pretrained(tiny_cogvideox, subfolder="transformer")
    from peft import LoraConfig

    transformer.add_adapter(LoraConfig(r=2, target_modules=["ff.net.0.proj"], init_lora_weights=False))
    adapter = save_adapter(transformer, tmp_path / "cog-adapter")
    with pytest.raises(CheckpointError, match="adapter"):
        load_backend("diffusers", tiny_wan, adapter=adapter)
    with pytest.raises(CheckpointError, match="adapter_config.json"):
        load_backend("diffusers", tiny_wan, adapter=tmp_path)


def test_batches_larger_than_max_batch_size_are_split(tiny_wan):
    backend = load_backend("diffusers", tiny_wan, options={"max_batch_size": 2})
    seen = []
    videos = backend.generate(
        GenerationRequest(prompts=["a cat", "a dog", "a bird"], settings=WAN, seeds=[1, 2, 3]),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert [video.seed for video in videos] == [1, 2, 3]
    assert seen == [(step, 4) for step in range(1, 5)]  # two pipeline calls of two steps
    alone = backend.generate(one(prompt="a bird", seed=3))[0]
    assert torch.equal(alone.initial_latents, videos[2].initial_latents)


@pytest.mark.gpu
def test_on_cuda_with_flash_attention_the_seed_gives_the_cpu_latents(tiny_wan):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = load_backend("diffusers", tiny_wan, device="cuda", dtype=torch.bfloat16)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        video = backend.generate(one(seed=5))[0]
    assert torch.equal(video.initial_latents, initial_latents((16, 3, 2, 2), 5))
    assert video.frames.shape == (9, 16, 16, 3) and video.frames.dtype == np.uint8


@pytest.mark.parametrize("family", ["wan", "wan-2.2", "cogvideox", "ltx-video", "mochi", "hunyuanvideo"])
def test_capabilities_read_from_the_configs_equal_the_loaded_pipelines(family, tiny_folders, tmp_path):
    from generation.backends.diffusers_backend import DiffusersBackend
    from generation.backends.tiny import make_tiny_wan

    folder = (
        make_tiny_wan(tmp_path / "wan22", two_stage=True) if family == "wan-2.2" else tiny_folders(family)
    )
    from_configs = DiffusersBackend.capabilities_for(folder)
    loaded = load_backend("diffusers", folder).capabilities
    assert from_configs.describe() == loaded.describe()
    assert from_configs.latent_shape(height=32, width=32, frames=loaded.frame_rule.nearest(9)) == (
        loaded.latent_shape(height=32, width=32, frames=loaded.frame_rule.nearest(9))
    )


def test_capabilities_from_configs_read_no_weights(tiny_wan, tmp_path):
    from generation.backends.diffusers_backend import DiffusersBackend

    weightless = tmp_path / "wan"
    shutil.copytree(tiny_wan, weightless)
    for weights in weightless.rglob("*.safetensors"):
        weights.write_bytes(b"not weights")  # unreadable as weights: loading would fail
    assert DiffusersBackend.capabilities_for(weightless).describe() == (
        DiffusersBackend.capabilities_for(tiny_wan).describe()
    )
    with pytest.raises(CheckpointError):
        load_backend("diffusers", weightless)
