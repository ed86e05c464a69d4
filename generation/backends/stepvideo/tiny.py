"""Tiny Step-Video-T2V checkpoints for tests: every part at toy size, random weights, offline tokenizers.

`write_tiny_checkpoint(folder)` writes the published folder layout (see `checkpoint.py`) so tests go
through the real loader: the DiT sharded in two safetensors files with an index, the VAE as
`vae/vae_v2.safetensors` (plus the tiny-only `stepvideo_vae.json`), Step-LLM's config and weights with a
`tokenizer.json` in place of the SentencePiece model, and Hunyuan-CLIP as a saved BERT model and tokenizer.
Both tokenizers are one `tokenizers` WordLevel vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .config import DiTConfig, StepLLMConfig, VAEConfig
from .dit import StepVideoDiT
from .text_encoders import StepLLM
from .vae import VideoVAE

TINY_LLM = StepLLMConfig(
    hidden_size=32,
    num_attention_heads=4,
    num_attention_groups=2,
    ffn_hidden_size=48,
    num_layers=2,
    padded_vocab_size=64,
)
TINY_CLIP_WIDTH = 24
TINY_DIT = DiTConfig(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    num_layers=2,
    caption_channels=(TINY_LLM.hidden_size, TINY_CLIP_WIDTH),
)
TINY_VAE = VAEConfig(
    z_channels=4,
    encoder_channels=16,
    encoder_multipliers=(1, 1, 1, 1),
    decoder_channels=16,
    decoder_multipliers=(1, 1, 1, 1),
    num_res_blocks=1,
    norm_groups=4,
)
# a 17-frame 32x32 video has latents (4, 3, 2, 2)
TINY_WORDS = (
    "a cat dog runs jumps on the grass in snow red blue car city night day 猫 狗 跑 草地 ， 。 画面 视频 低质量 模糊"
).split()


def tiny_vocabulary() -> dict[str, int]:
    specials = ["<unk>", "<s>", "</s>", "[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    return {token: index for index, token in enumerate([*specials, *TINY_WORDS])}


def tiny_tokenizer(bert_style: bool) -> object:
    """A WordLevel tokenizer; with `bert_style`, [CLS] ... [SEP] and [PAD] padding as BERT's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = tiny_vocabulary()
    unk = "[UNK]" if bert_style else "<unk>"
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if bert_style:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights at a scale that keeps activations finite and non-trivial: matrices and kernels
    N(0, 1/fan_in), norm weights near 1, biases small."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.dim() > 1:
                param.copy_(noise / (param[0].numel() ** 0.5))
            elif name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.1 * noise)
    return module


def tiny_parts(
    seed: int = 0,
    *,
    dit_config: DiTConfig = TINY_DIT,
    vae_config: VAEConfig = TINY_VAE,
    llm_config: StepLLMConfig = TINY_LLM,
) -> tuple[StepVideoDiT, VideoVAE, StepLLM, nn.Module]:
    from transformers import BertConfig, BertModel

    dit = _randomize(StepVideoDiT(dit_config), seed)
    vae = _randomize(VideoVAE(vae_config), seed + 1)
    llm = _randomize(StepLLM(llm_config), seed + 2)
    assert dit_config.clip_channels is not None, "the tiny checkpoints have both text encoders"
    clip_config = BertConfig(
        vocab_size=len(tiny_vocabulary()),
        hidden_size=dit_config.clip_channels,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=80,
        pad_token_id=tiny_vocabulary()["[PAD]"],
    )
    torch.manual_seed(seed + 3)
    clip = BertModel(clip_config, add_pooling_layer=False)
    return dit, vae, llm, clip  # type: ignore[return-value]


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def write_tiny_checkpoint(
    folder: Path,
    seed: int = 0,
    *,
    dit_config: DiTConfig = TINY_DIT,
    vae_config: VAEConfig = TINY_VAE,
    llm_config: StepLLMConfig = TINY_LLM,
) -> Path:
    """Write a complete tiny checkpoint in the published layout; returns the folder."""
    folder = Path(folder)
    dit, vae, llm, clip = tiny_parts(
        seed, dit_config=dit_config, vae_config=vae_config, llm_config=llm_config
    )

    transformer = folder / "transformer"
    transformer.mkdir(parents=True, exist_ok=True)
    (transformer / "config.json").write_text(json.dumps(dit_config.to_dict(), indent=2))
    state = dit.state_dict()
    keys = list(state)
    half = len(keys) // 2
    shards = {
        "diffusion_pytorch_model-00001-of-00002.safetensors": keys[:half],
        "diffusion_pytorch_model-00002-of-00002.safetensors": keys[half:],
    }
    weight_map = {}
    for name, shard_keys in shards.items():
        _save_safetensors({k: state[k] for k in shard_keys}, transformer / name)
        weight_map.update({k: name for k in shard_keys})
    (transformer / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2)
    )

    _save_safetensors(vae.state_dict(), folder / "vae" / "vae_v2.safetensors")
    (folder / "vae" / "stepvideo_vae.json").write_text(json.dumps(vae_config.to_dict(), indent=2))

    step_llm = folder / "step_llm"
    step_llm.mkdir(parents=True, exist_ok=True)
    (step_llm / "config.json").write_text(json.dumps(llm_config.to_dict(), indent=2))
    _save_safetensors(llm.state_dict(), step_llm / "model.safetensors")
    tiny_tokenizer(bert_style=False).backend_tokenizer.save(str(step_llm / "tokenizer.json"))  # type: ignore[attr-defined]

    clip.save_pretrained(str(folder / "hunyuan_clip" / "clip_text_encoder"))  # type: ignore[operator]
    clip_tokenizer = folder / "hunyuan_clip" / "tokenizer"
    tiny_tokenizer(bert_style=True).save_pretrained(str(clip_tokenizer))  # type: ignore[attr-defined]
    # the released tokenizer folder is a BERT vocab.txt (what the official code reads)
    (clip_tokenizer / "vocab.txt").write_text(
        "".join(f"{token}\n" for token in tiny_vocabulary()), encoding="utf-8"
    )
    return folder
