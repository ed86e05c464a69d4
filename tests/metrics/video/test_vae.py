"""Video VAE reconstruction on tiny autoencoders with random weights, saved and loaded from tmp_path."""

import json

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from metrics.video.vae import (  # noqa: E402
    VaeGeometry,
    from_vae_output,
    load_video_vae,
    reconstruct,
    to_vae_input,
    usable_clip,
    vae_geometry,
)

# Tiny configs (8 channels, about 50k parameters each); every one downsamples 4x in time and space, except
# the Wan 2.2-style one, whose 2x2 patchify makes it 8x in space.
TINY_VAES = {
    "cogvideox": lambda: diffusers.AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 3,
        up_block_types=("CogVideoXUpBlock3D",) * 3,
        block_out_channels=(8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        temporal_compression_ratio=4,
        sample_height=16,
        sample_width=16,
    ),
    "hunyuanvideo": lambda: diffusers.AutoencoderKLHunyuanVideo(
        down_block_types=("HunyuanVideoDownBlock3D",) * 3,
        up_block_types=("HunyuanVideoUpBlock3D",) * 3,
        block_out_channels=(8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        spatial_compression_ratio=4,
        temporal_compression_ratio=4,
        mid_block_add_attention=False,
    ),
    "wan": lambda: diffusers.AutoencoderKLWan(
        base_dim=8, z_dim=4, dim_mult=[1, 1, 1], num_res_blocks=1, temperal_downsample=[True, True]
    ),
    "wan2.2": lambda: diffusers.AutoencoderKLWan(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[True, True],
        patch_size=2,
        is_residual=True,
        in_channels=12,
        out_channels=12,
        scale_factor_spatial=8,
    ),
    "ltx": lambda: diffusers.AutoencoderKLLTXVideo(
        block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        latent_channels=4,
        layers_per_block=(1, 1, 1),
        decoder_layers_per_block=(1, 1, 1),
        spatio_temporal_scaling=(True, True),
        decoder_spatio_temporal_scaling=(True, True),
        decoder_inject_noise=(False, False, False),
        upsample_residual=(False, False),
        upsample_factor=(1, 1),
        patch_size=1,
        patch_size_t=1,
    ),
}
EXPECTED_GEOMETRY = {
    "cogvideox": VaeGeometry(spatial_factor=4, temporal_factor=4, frame_step=8),
    "hunyuanvideo": VaeGeometry(spatial_factor=4, temporal_factor=4, frame_step=4),
    "wan": VaeGeometry(spatial_factor=4, temporal_factor=4, frame_step=4),
    "wan2.2": VaeGeometry(spatial_factor=8, temporal_factor=4, frame_step=4),
    "ltx": VaeGeometry(spatial_factor=4, temporal_factor=4, frame_step=4),
}


def save_tiny_vae(name, folder):
    torch.manual_seed(0)
    TINY_VAES[name]().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def cogvideox(tmp_path_factory):
    return load_video_vae(save_tiny_vae("cogvideox", tmp_path_factory.mktemp("cogvideox")))


def random_video(frames, height=16, width=16, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", TINY_VAES)
def test_loads_each_class_from_its_saved_config_and_reads_its_geometry(name, tmp_path):
    vae = load_video_vae(save_tiny_vae(name, tmp_path))
    assert (
        vae.class_name
        == type(vae.model).__name__
        == json.loads((tmp_path / "config.json").read_text())["_class_name"]
    )
    assert vae.geometry == EXPECTED_GEOMETRY[name]
    frames = 1 + vae.geometry.frame_step
    clip = random_video(frames)
    with torch.no_grad():
        latents = vae.model.encode(to_vae_input(clip, device=vae.device, dtype=vae.dtype)).latent_dist.mode()
    factor_t, factor_s = vae.temporal_downsample, vae.spatial_downsample
    assert latents.shape[2:] == (1 + (frames - 1) // factor_t, 16 // factor_s, 16 // factor_s)
    reconstruction = reconstruct(vae, clip)
    assert reconstruction.shape == clip.shape and reconstruction.dtype == torch.uint8


def test_reconstruction_is_uint8_of_the_clip_shape_and_deterministic(cogvideox):
    clip = random_video(9)
    first, second = reconstruct(cogvideox, clip), reconstruct(cogvideox, clip)
    assert first.shape == (9, 16, 16, 3) and first.dtype == torch.uint8
    assert torch.equal(first, second)
    assert cogvideox.geometry.label == "4x4x4"


def test_clip_is_trimmed_to_a_valid_prefix_and_center_crop(cogvideox):
    video = random_video(14, height=18, width=23, seed=1)  # CogVideoX takes 1 + 8k frames, 4-pixel multiples
    clip = usable_clip(cogvideox, video)
    assert torch.equal(clip, video[:9, 1:17, 1:21])
    reconstruction = reconstruct(cogvideox, video)
    assert reconstruction.shape == (9, 16, 20, 3)
    assert torch.equal(reconstruction, reconstruct(cogvideox, clip))


def test_chunks_are_reconstructed_independently(cogvideox):
    video = random_video(12, seed=2)
    assert cogvideox.geometry.chunk_lengths(12, chunk_frames=9) == [9, 1]
    chunked = reconstruct(cogvideox, video, chunk_frames=9)
    assert chunked.shape == (10, 16, 16, 3)
    assert torch.equal(chunked[:9], reconstruct(cogvideox, video[:9]))
    assert torch.equal(chunked[9:], reconstruct(cogvideox, video[9:10]))
    with pytest.raises(ValueError, match="chunk_frames"):
        reconstruct(cogvideox, video, chunk_frames=5)


def test_pixel_conversion_round_trips_exactly():
    frames = torch.arange(256, dtype=torch.uint8).reshape(4, 8, 8, 1).expand(4, 8, 8, 3).contiguous()
    pixels = to_vae_input(frames, device=torch.device("cpu"), dtype=torch.float32)
    assert pixels.shape == (1, 3, 4, 8, 8) and pixels.min() == -1 and pixels.max() == 1
    assert torch.equal(from_vae_output(pixels), frames)
    assert torch.equal(
        from_vae_output(torch.full((1, 3, 1, 2, 2), 1.5)), torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    )


def test_geometry_arithmetic():
    geometry = VaeGeometry(spatial_factor=8, temporal_factor=4, frame_step=4)
    assert [geometry.usable_frame_count(n) for n in (1, 4, 5, 48, 49, 50)] == [1, 1, 5, 45, 49, 49]
    assert geometry.usable_size(480, 722) == (480, 720)
    assert geometry.chunk_lengths(49) == [49]
    assert geometry.chunk_lengths(40, chunk_frames=17) == [17, 17, 5]
    with pytest.raises(ValueError):
        geometry.usable_size(4, 100)


def test_loader_finds_a_pipeline_vae_folder_and_checks_kind(tmp_path):
    save_tiny_vae("ltx", tmp_path / "pipeline" / "vae")
    assert load_video_vae(tmp_path / "pipeline").class_name == "AutoencoderKLLTXVideo"
    assert load_video_vae(tmp_path / "pipeline", kind="ltx").class_name == "AutoencoderKLLTXVideo"
    with pytest.raises(ValueError, match="saved config is a AutoencoderKLLTXVideo"):
        load_video_vae(tmp_path / "pipeline", kind="wan")
    config_file = tmp_path / "pipeline" / "vae" / "config.json"
    config = json.loads(config_file.read_text())
    del config["_class_name"]
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="kind="):
        load_video_vae(tmp_path / "pipeline")
    assert load_video_vae(tmp_path / "pipeline", kind="AutoencoderKLLTXVideo").geometry.spatial_factor == 4
    with pytest.raises(ValueError, match="not a supported"):
        vae_geometry(torch.nn.Linear(2, 2))


@pytest.mark.gpu
def test_reconstruction_on_cuda_matches_the_cpu(cogvideox, tmp_path):
    on_cuda = load_video_vae(cogvideox.source, device="cuda")
    clip = random_video(9, seed=3)
    cpu, cuda = reconstruct(cogvideox, clip), reconstruct(on_cuda, clip)
    assert cuda.device == clip.device and cuda.shape == cpu.shape
    difference = (cuda.int() - cpu.int()).abs()
    # cuDNN may use TF32 convolutions: a few pixels land one or two uint8 levels apart.
    assert difference.max() <= 2 and difference.float().mean() < 0.05
    bfloat16 = load_video_vae(cogvideox.source, device="cuda", dtype=torch.bfloat16)
    assert reconstruct(bfloat16, clip.cuda()).device.type == "cuda"
