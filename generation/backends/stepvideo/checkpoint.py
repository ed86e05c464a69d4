"""Loading the published Step-Video-T2V folder (`stepfun-ai/stepvideo-t2v`, or `-turbo`) unchanged.

    transformer/   config.json, diffusion_pytorch_model-0000k-of-00006.safetensors (+ .index.json)
    vae/           vae_v2.safetensors (the 64-channel VAE the DiT was trained on)
    step_llm/      config.json, the weights (safetensors or .bin, sharded or not),
                   step1_chat_tokenizer.model
    hunyuan_clip/  clip_text_encoder/ (a BERT model: config.json + weights), tokenizer/
    lib/, scheduler/, model_index.json   not needed here (the prebuilt attention library is replaced)

Every part loads strictly: a missing or unexpected key is a `CheckpointError` naming the part and keys.
Weights are read tensor by tensor straight onto the target device and dtype into modules built on
the meta device, so the 30B DiT never sits twice in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base import CheckpointError
from .config import DiTConfig, StepLLMConfig, VAEConfig, read_json
from .dit import StepVideoDiT
from .text_encoders import StepLLM, TextEncoders, step_llm_tokenizer
from .vae import VideoVAE

TRANSFORMER_DIR = "transformer"
VAE_FILE = "vae/vae_v2.safetensors"
# The release has no VAE config (its sizes are fixed in code); tiny test checkpoints add this file.
VAE_CONFIG_FILE = "vae/stepvideo_vae.json"
STEP_LLM_DIR = "step_llm"
CLIP_MODEL_DIR = "hunyuan_clip/clip_text_encoder"
CLIP_TOKENIZER_DIR = "hunyuan_clip/tokenizer"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise CheckpointError(f"{what}: {path} is missing (expected the published stepvideo-t2v layout)")
    return path


def weight_files(folder: Path) -> list[Path]:
    """The weight files of one part: the shards an index names, else every safetensors file, else .bin."""
    indexes = sorted(folder.glob("*.safetensors.index.json")) + sorted(folder.glob("*.bin.index.json"))
    if indexes:
        with open(indexes[0], encoding="utf-8") as handle:
            weight_map = json.load(handle)["weight_map"]
        return [folder / name for name in sorted(set(weight_map.values()))]
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise CheckpointError(f"{folder} holds no weights (*.safetensors or *.bin)")
    return files


def iter_tensors(
    files: list[Path], device: torch.device, dtype: torch.dtype | None
) -> Iterator[tuple[str, torch.Tensor]]:
    for path in files:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device=str(device)) as handle:
                for key in handle.keys():
                    tensor = handle.get_tensor(key)
                    yield (
                        key,
                        tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor,
                    )
        else:
            state = torch.load(path, map_location=device, weights_only=True)
            for key, tensor in state.items():
                yield key, tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def load_strict(module: nn.Module, tensors: Iterator[tuple[str, torch.Tensor]], part: str) -> nn.Module:
    """Assign every tensor to the module built on the meta device; refuse missing or unexpected keys."""
    expected = dict(module.state_dict())
    state: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, tensor in tensors:
        if key not in expected:
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{part}: {key} has shape {tuple(tensor.shape)}, the config gives {tuple(expected[key].shape)}"
            )
        state[key] = tensor
    missing = sorted(set(expected) - set(state))
    if missing or unexpected:
        raise CheckpointError(
            f"{part}: {len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {sorted(unexpected)[:5]}"
        )
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval().requires_grad_(False)


def read_dit_config(root: Path) -> DiTConfig:
    return DiTConfig.from_dict(read_json(_require(root / TRANSFORMER_DIR / "config.json", "DiT config")))


def load_dit(root: Path, device: torch.device, dtype: torch.dtype) -> StepVideoDiT:
    config = read_dit_config(root)
    with torch.device("meta"):
        model = StepVideoDiT(config)
    files = weight_files(_require(root / TRANSFORMER_DIR, "DiT"))
    load_strict(model, iter_tensors(files, device, dtype), "transformer")
    return model


def read_vae_config(root: Path) -> VAEConfig:
    path = root / VAE_CONFIG_FILE
    return VAEConfig.from_dict(read_json(path)) if path.exists() else VAEConfig()


def load_vae(root: Path, device: torch.device, dtype: torch.dtype) -> VideoVAE:
    config = read_vae_config(root)
    with torch.device("meta"):
        vae = VideoVAE(config)
    path = _require(root / VAE_FILE, "Video-VAE")
    load_strict(vae, iter_tensors([path], device, dtype), "vae")
    return vae


def load_step_llm(root: Path, device: torch.device, dtype: torch.dtype) -> StepLLM:
    folder = _require(root / STEP_LLM_DIR, "Step-LLM")
    config = StepLLMConfig.from_dict(read_json(_require(folder / "config.json", "Step-LLM config")))
    with torch.device("meta"):
        llm = StepLLM(config)
    load_strict(llm, iter_tensors(weight_files(folder), device, dtype), "step_llm")
    return llm


def load_clip(root: Path, device: torch.device) -> tuple[nn.Module, Any]:
    """Hunyuan-CLIP's BERT text tower (float32, as released) and its tokenizer, via transformers."""
    from transformers import AutoTokenizer, BertModel

    model_dir = _require(root / CLIP_MODEL_DIR, "Hunyuan-CLIP text encoder")
    tokenizer_dir = _require(root / CLIP_TOKENIZER_DIR, "Hunyuan-CLIP tokenizer")
    loaded: Any = BertModel.from_pretrained(str(model_dir), output_loading_info=True, add_pooling_layer=False)
    model, info = loaded
    missing = list(info.get("missing_keys", []))
    if missing:
        raise CheckpointError(f"hunyuan_clip: {len(missing)} missing keys {missing[:5]}")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return model.to(device, torch.float32).eval().requires_grad_(False), tokenizer


def load_text_encoders(root: Path, device: torch.device, llm_dtype: torch.dtype) -> TextEncoders:
    try:
        pieces = step_llm_tokenizer(root / STEP_LLM_DIR)
    except (FileNotFoundError, ImportError) as error:
        raise CheckpointError(f"Step-LLM tokenizer: {error}") from error
    llm = load_step_llm(root, device, llm_dtype)
    clip, tokenizer = load_clip(root, device)
    return TextEncoders(llm, pieces, clip, tokenizer, device)


def check_layout(root: Path) -> None:
    """Fail early, naming the first missing piece of the layout."""
    if not root.is_dir():
        raise CheckpointError(f"{root} is not a folder")
    for relative, what in (
        (f"{TRANSFORMER_DIR}/config.json", "DiT config"),
        (VAE_FILE, "Video-VAE"),
        (f"{STEP_LLM_DIR}/config.json", "Step-LLM config"),
        (CLIP_MODEL_DIR, "Hunyuan-CLIP text encoder"),
        (CLIP_TOKENIZER_DIR, "Hunyuan-CLIP tokenizer"),
    ):
        _require(root / relative, what)


def state_dict_keys(module: nn.Module) -> Mapping[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}
