"""Tiny checkpoints for tests, built from code with random weights and an offline tokenizer.

Each `make_tiny_*` function writes a complete diffusers checkpoint folder (`model_index.json` and one
subfolder per component, via `save_pretrained`) and returns it, so the folder loads through the real
`DiffusersBackend.load` exactly as a downloaded checkpoint would. The text encoder is a UMT5/T5 encoder
built from a small config and the tokenizer a `tokenizers` word-level vocabulary wrapped in
`transformers.PreTrainedTokenizerFast`: nothing is fetched from a hub. `seed` seeds the random weights,
so two folders of one family with different seeds are two different checkpoints of the same shapes
(what the shared-noise tests need). A generation at the default tiny settings takes well under a second
on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# Word-level vocabulary of the tiny tokenizer: a few words of the benchmark prompts; anything else is [UNK].
TINY_WORDS = (
    "a an the of in on at with and to from by is are over under through under near slowly quickly "
    "cat dog bird fish horse person man woman child car boat train city street forest sea river sky "
    "mountain beach snow rain sun night day light camera walks runs flies swims jumps dances plays "
    "red blue green yellow white black small big old young happy water fire tree flower house road"
).split()

# Settings at which the tiny checkpoints generate in a fraction of a second on a CPU.
TINY_SETTINGS: dict[str, dict[str, Any]] = {
    "wan": {"height": 16, "width": 16, "frames": 9, "steps": 2, "fps": 8},
    "cogvideox": {"height": 16, "width": 16, "frames": 9, "steps": 2, "fps": 8},
    "ltx-video": {"height": 32, "width": 32, "frames": 9, "steps": 2, "fps": 8},
    "mochi": {"height": 16, "width": 16, "frames": 7, "steps": 2, "fps": 8},
    "wan2.2": {"height": 16, "width": 16, "frames": 9, "steps": 4, "fps": 8},
    "hunyuanvideo": {"height": 16, "width": 16, "frames": 9, "steps": 2, "fps": 8},
}


def tiny_tokenizer(max_length: int) -> Any:
    """A word-level tokenizer over `TINY_WORDS` with [PAD]=0, [UNK]=1 and [EOS]=2."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2}
    for word in TINY_WORDS:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="[EOS]",
        model_max_length=max_length,
    )


def _tiny_t5_config(vocab_size: int, d_model: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size,
        "d_model": d_model,
        "d_kv": 8,
        "d_ff": 32,
        "num_layers": 1,
        "num_heads": 2,
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 16,
        "pad_token_id": 0,
        "eos_token_id": 2,
        "decoder_start_token_id": 0,
    }


def _seeded(seed: int, build: Callable[[], Any]) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def make_tiny_wan(folder: str | Path, seed: int = 0, *, two_stage: bool = False) -> Path:
    """A tiny Wan 2.1 checkpoint (WanPipeline: UMT5 encoder, Wan VAE, Wan transformer, UniPC flow scheduler).

    `two_stage=True` makes it Wan 2.2 A14B-shaped: a second transformer for the low-noise steps, switched
    to below `boundary_ratio` 0.875 of the timesteps.
    """
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    folder = Path(folder)
    tokenizer = tiny_tokenizer(max_length=32)

    def build() -> WanPipeline:
        text_encoder = UMT5EncoderModel(UMT5Config(**_tiny_t5_config(len(tokenizer), 32)))
        vae = AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )

        def transformer() -> WanTransformer3DModel:
            return WanTransformer3DModel(
                patch_size=(1, 2, 2),
                num_attention_heads=2,
                attention_head_dim=12,
                in_channels=16,
                out_channels=16,
                text_dim=32,
                freq_dim=256,
                ffn_dim=32,
                num_layers=2,
                cross_attn_norm=True,
                qk_norm="rms_norm_across_heads",
                rope_max_seq_len=32,
            )

        # Wan 2.1's own scheduler settings (flow matching through UniPC with a flow shift).
        scheduler = UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0, num_train_timesteps=1000
        )
        return WanPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer(),
            scheduler=scheduler,
            transformer_2=transformer() if two_stage else None,
            boundary_ratio=0.875 if two_stage else None,
        )

    _seeded(seed, build).save_pretrained(folder)
    return folder


def make_tiny_cogvideox(folder: str | Path, seed: int = 0) -> Path:
    """A tiny CogVideoX checkpoint (CogVideoXPipeline: T5 encoder, CogVideoX VAE, DDIM v-prediction)."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    max_text = 16
    tokenizer = tiny_tokenizer(max_length=max_text)

    def build() -> CogVideoXPipeline:
        text_encoder = T5EncoderModel(T5Config(**_tiny_t5_config(len(tokenizer), 32)))
        vae = AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        )
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=4,
            attention_head_dim=8,
            in_channels=4,
            out_channels=4,
            time_embed_dim=2,
            text_embed_dim=32,
            num_layers=1,
            sample_width=2,
            sample_height=2,
            sample_frames=9,
            patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=max_text,
        )
        scheduler = CogVideoXDDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing")
        return CogVideoXPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )

    _seeded(seed, build).save_pretrained(folder)
    return folder


def make_tiny_ltx(folder: str | Path, seed: int = 0) -> Path:
    """A tiny LTX-Video checkpoint (LTXPipeline: T5 encoder, LTX VAE, LTX transformer, FlowMatch Euler)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    tokenizer = tiny_tokenizer(max_length=16)

    def build() -> LTXPipeline:
        text_encoder = T5EncoderModel(T5Config(**_tiny_t5_config(len(tokenizer), 32)))
        vae = AutoencoderKLLTXVideo(
            in_channels=3,
            out_channels=3,
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            decoder_inject_noise=(False, False, False, False, False),
            upsample_residual=(False, False, False, False),
            upsample_factor=(1, 1, 1, 1),
            timestep_conditioning=False,
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        )
        transformer = LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=4,
            attention_head_dim=8,
            cross_attention_dim=32,
            num_layers=1,
            caption_channels=32,
        )
        return LTXPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=FlowMatchEulerDiscreteScheduler(),
        )

    _seeded(seed, build).save_pretrained(folder)
    return folder


def make_tiny_mochi(folder: str | Path, seed: int = 0) -> Path:
    """A tiny Mochi checkpoint (MochiPipeline: T5 encoder, Mochi VAE, Mochi transformer, FlowMatch Euler)."""
    from diffusers import (
        AutoencoderKLMochi,
        FlowMatchEulerDiscreteScheduler,
        MochiPipeline,
        MochiTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    tokenizer = tiny_tokenizer(max_length=16)

    def build() -> MochiPipeline:
        text_encoder = T5EncoderModel(T5Config(**_tiny_t5_config(len(tokenizer), 32)))
        vae = AutoencoderKLMochi(
            latent_channels=12,
            out_channels=3,
            encoder_block_out_channels=(32, 32, 32, 32),
            decoder_block_out_channels=(32, 32, 32, 32),
            layers_per_block=(1, 1, 1, 1, 1),
        )
        transformer = MochiTransformer3DModel(
            patch_size=2,
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=2,
            pooled_projection_dim=16,
            in_channels=12,
            out_channels=None,
            qk_norm="rms_norm",
            text_embed_dim=32,
            time_embed_dim=4,
            activation_fn="swiglu",
            max_sequence_length=16,
        )
        return MochiPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=FlowMatchEulerDiscreteScheduler(),
        )

    _seeded(seed, build).save_pretrained(folder)
    return folder


def make_tiny_hunyuanvideo(folder: str | Path, seed: int = 0) -> Path:
    """A tiny HunyuanVideo checkpoint (Llama + CLIP text encoders, HunyuanVideo VAE and transformer)."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    folder = Path(folder)
    # The Llama tokenizer must hold the prompt template's 95 cropped tokens plus the prompt.
    tokenizer, tokenizer_2 = tiny_tokenizer(max_length=256), tiny_tokenizer(max_length=77)
    common: dict[str, Any] = {
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "vocab_size": len(tokenizer),
    }

    def build() -> HunyuanVideoPipeline:
        llama = LlamaModel(
            LlamaConfig(
                hidden_size=16, intermediate_size=32, num_attention_heads=4, num_hidden_layers=2, **common
            )
        )
        clip = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=8,
                intermediate_size=16,
                num_attention_heads=2,
                num_hidden_layers=1,
                projection_dim=8,
                max_position_embeddings=77,  # the pipeline pads CLIP prompts to 77 tokens
                **common,
            )
        )
        vae = AutoencoderKLHunyuanVideo(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            down_block_types=("HunyuanVideoDownBlock3D",) * 4,
            up_block_types=("HunyuanVideoUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            act_fn="silu",
            norm_num_groups=4,
            scaling_factor=0.476986,
            spatial_compression_ratio=8,
            temporal_compression_ratio=4,
            mid_block_add_attention=True,
        )
        transformer = HunyuanVideoTransformer3DModel(
            in_channels=4,
            out_channels=4,
            num_attention_heads=2,
            attention_head_dim=10,
            num_layers=1,
            num_single_layers=1,
            num_refiner_layers=1,
            patch_size=1,
            patch_size_t=1,
            guidance_embeds=True,
            text_embed_dim=16,
            pooled_projection_dim=8,
            rope_axes_dim=(2, 4, 4),
        )
        return HunyuanVideoPipeline(
            text_encoder=llama,
            tokenizer=tokenizer,
            transformer=transformer,
            vae=vae,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
            text_encoder_2=clip,
            tokenizer_2=tokenizer_2,
        )

    _seeded(seed, build).save_pretrained(folder)
    return folder


TINY_MAKERS: dict[str, Callable[..., Path]] = {
    "hunyuanvideo": make_tiny_hunyuanvideo,
    "wan2.2": lambda folder, seed=0: make_tiny_wan(folder, seed, two_stage=True),
    "wan": make_tiny_wan,
    "cogvideox": make_tiny_cogvideox,
    "ltx-video": make_tiny_ltx,
    "mochi": make_tiny_mochi,
}


def make_tiny(family: str, folder: str | Path, seed: int = 0) -> Path:
    """The tiny checkpoint of `family` (a key of `TINY_MAKERS`) written to `folder`."""
    try:
        maker = TINY_MAKERS[family]
    except KeyError:
        raise ValueError(f"no tiny checkpoint for {family!r}; known: {sorted(TINY_MAKERS)}") from None
    return maker(folder, seed=seed)
