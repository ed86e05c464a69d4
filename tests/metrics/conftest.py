"""Builders for the metrics app's tests: ready videos in the library, and tiny random-weight models saved to
disk the way real weights are (a diffusers video VAE, an I3D state dict, an open_clip local folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def add_ready_video():
    """Bring a file into the library for (model, prompt) and transcode it, as an import would."""
    from generation.models import Video
    from generation.services import add_video, process_video

    def add(model, prompt, path: Path, seed: int | None = None) -> Video:
        video, _ = add_video(
            model=model,
            prompt=prompt,
            source_path=path,
            original_name=Path(path).name,
            source=Video.Source.IMPORT,
            seed=seed,
        )
        video = process_video(video)
        assert video.status == Video.Status.READY, video.error
        return video

    return add


@pytest.fixture
def metrics_on_cpu(settings):
    """Metric jobs run on the CPU, as on a machine without CUDA (the `gpu` tests choose CUDA themselves)."""
    settings.EVALSITE_METRICS_DEVICE = "cpu"


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread than split over a few busy cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_vae_dir(tmp_path) -> Path:
    """A Wan-style video VAE (8 channels, random weights; 4x in time and space), saved with save_pretrained."""
    diffusers = pytest.importorskip("diffusers")
    import torch

    torch.manual_seed(0)
    model = diffusers.AutoencoderKLWan(
        base_dim=8, z_dim=4, dim_mult=[1, 1, 1], num_res_blocks=1, temperal_downsample=[True, True]
    )
    folder = tmp_path / "tiny-wan-vae"
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_i3d_file(tmp_path) -> Path:
    """A state dict of a narrow I3D (1/32 of the channels) with the 400 Kinetics outputs, as load_i3d reads."""
    import torch

    from metrics.video.i3d import I3D, I3DConfig

    torch.manual_seed(0)
    path = tmp_path / "weights" / "i3d_tiny.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(I3D(I3DConfig(num_classes=400, width_divisor=32)).state_dict(), path)
    return path


TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def tiny_clip_folder(tmp_path) -> Path:
    """An open_clip `local-dir:` folder: a tiny CLIP with random weights and open_clip's own BPE tokenizer."""
    open_clip = pytest.importorskip("open_clip")
    import torch

    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    torch.manual_seed(0)
    torch.save(open_clip.CLIP(**TINY_CLIP_CONFIG).state_dict(), folder / "open_clip_pytorch_model.bin")
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {}})
    )
    return folder
