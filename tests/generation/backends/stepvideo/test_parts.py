"""Step-Video-T2V's parts on tiny configs: shapes, the frame rule, the sampler, the published key names."""

from __future__ import annotations

import itertools

import pytest
import torch

from generation.backends.base import CheckpointError
from generation.backends.stepvideo import checkpoint, sampler
from generation.backends.stepvideo.config import DiTConfig, StepLLMConfig, VAEConfig
from generation.backends.stepvideo.dit import StepVideoDiT
from generation.backends.stepvideo.text_encoders import (
    LLM_BOS,
    LLM_EOS,
    LLM_PAD,
    StepLLM,
    llm_tokens,
    step_llm_tokenizer,
)
from generation.backends.stepvideo.tiny import TINY_DIT, TINY_LLM, TINY_VAE
from generation.backends.stepvideo.vae import VideoVAE, latent_frames_for


def published_dit_keys(config: DiTConfig) -> set[str]:
    """The names in the released transformer/*.safetensors, written out from the release."""
    keys = {
        "pos_embed.proj.weight",
        "pos_embed.proj.bias",
        "scale_shift_table",
        "proj_out.weight",
        "proj_out.bias",
        "adaln_single.linear.weight",
        "adaln_single.linear.bias",
        "clip_projection.weight",
        "clip_projection.bias",
        "caption_projection.linear_1.weight",
        "caption_projection.linear_1.bias",
        "caption_projection.linear_2.weight",
        "caption_projection.linear_2.bias",
    }
    keys |= {
        f"adaln_single.emb.timestep_embedder.{n}.{p}"
        for n in ("linear_1", "linear_2")
        for p in ("weight", "bias")
    }
    for i in range(config.num_layers):
        b = f"transformer_blocks.{i}"
        keys |= {f"{b}.scale_shift_table", f"{b}.ff.net.0.proj.weight", f"{b}.ff.net.2.weight"}
        keys |= {f"{b}.{norm}.{p}" for norm in ("norm1", "norm2") for p in ("weight", "bias")}
        keys |= {f"{b}.attn1.{n}.weight" for n in ("wqkv", "wo", "q_norm", "k_norm")}
        keys |= {f"{b}.attn2.{n}.weight" for n in ("wq", "wkv", "wo", "q_norm", "k_norm")}
    return keys


def _resnet(prefix: str, shortcut: bool) -> set[str]:
    keys = {f"{prefix}.{n}.{p}" for n in ("norm1", "norm2") for p in ("weight", "bias")}
    keys |= {f"{prefix}.{n}.conv.{p}" for n in ("conv1", "conv2") for p in ("weight", "bias")}
    if shortcut:
        keys |= {f"{prefix}.nin_shortcut.conv.weight", f"{prefix}.nin_shortcut.conv.bias"}
    return keys


def _mid(prefix: str) -> set[str]:
    keys = _resnet(f"{prefix}.block_1", False) | _resnet(f"{prefix}.block_2", False)
    keys |= {f"{prefix}.attn_1.norm.weight", f"{prefix}.attn_1.norm.bias"}
    keys |= {f"{prefix}.attn_1.{n}.conv.{p}" for n in ("q", "k", "v", "proj_out") for p in ("weight", "bias")}
    return keys


def published_vae_keys(c: VAEConfig) -> set[str]:
    """The names in the released vae/vae_v2.safetensors (decoder.conv_out is a bare conv there)."""
    pb = ("weight", "bias")
    keys = {f"encoder.conv_in.conv.{p}" for p in pb} | {f"encoder.norm_out.{p}" for p in pb}
    keys |= {f"encoder.conv_patchify.conv.conv.{p}" for p in pb} | {f"encoder.conv_out.conv.{p}" for p in pb}
    widths = [c.encoder_channels] + [c.encoder_channels * m for m in c.encoder_multipliers]
    last = len(c.encoder_multipliers) - 1
    for i, j in itertools.product(range(len(c.encoder_multipliers)), range(c.num_res_blocks)):
        keys |= _resnet(f"encoder.down.{i}.block.{j}", j == 0 and widths[i] != widths[i + 1])
    for i in range(last):
        inner = "conv.conv" if i in c.encoder_temporal_levels else "conv"
        keys |= {f"encoder.down.{i}.downsample.{inner}.{p}" for p in pb}
    keys |= _mid("encoder.mid")
    keys |= {f"decoder.conv_in.conv.{p}" for p in pb} | {f"decoder.conv_unpatchify.conv.conv.{p}" for p in pb}
    keys |= {f"decoder.norm_out.{p}" for p in pb} | {f"decoder.conv_out.{p}" for p in pb}
    keys |= _mid("decoder.mid")
    mults = c.decoder_multipliers
    width = c.decoder_channels * mults[-1]
    for i in reversed(range(len(mults))):
        out = c.decoder_channels * mults[i]
        for j in range(c.num_res_blocks + 1):
            keys |= _resnet(f"decoder.up.{i}.block.{j}", j == 0 and width != out)
        width = out
        if i in c.decoder_temporal_levels:
            up = f"decoder.up.{i}.upsample.conv3d"
            keys |= {f"{up}.{n}.{p}" for n in ("norm1", "norm2") for p in pb}
            keys |= {f"{up}.{n}.conv.{p}" for n in ("conv1", "conv2") for p in pb}
        elif i != 0:
            keys |= {f"decoder.up.{i}.upsample.conv.{p}" for p in pb}
    return keys


def published_llm_keys(c: StepLLMConfig) -> set[str]:
    keys = {"tok_embeddings.word_embeddings.weight"}
    for i in range(c.num_layers):
        layer = f"transformer.layers.{i}"
        keys |= {f"{layer}.attention.wqkv.weight", f"{layer}.attention.wo.weight"}
        keys |= {f"{layer}.feed_forward.w1.weight", f"{layer}.feed_forward.w2.weight"}
        keys |= {f"{layer}.attention_norm.weight", f"{layer}.ffn_norm.weight"}
    return keys


@pytest.mark.parametrize(
    ("build", "published"),
    [
        (lambda: StepVideoDiT(TINY_DIT), lambda: published_dit_keys(TINY_DIT)),
        (lambda: VideoVAE(TINY_VAE), lambda: published_vae_keys(TINY_VAE)),
        (lambda: StepLLM(TINY_LLM), lambda: published_llm_keys(TINY_LLM)),
    ],
    ids=["dit", "vae", "step_llm"],
)
def test_a_state_dict_with_the_published_names_loads_strictly(build, published):
    source = build()
    keys = published()
    shapes = {k: v.shape for k, v in source.state_dict().items()}
    assert set(shapes) == keys
    state = {k: torch.randn(shapes[k]) for k in sorted(keys)}
    with torch.device("meta"):
        target = build()
    checkpoint.load_strict(target, iter(state.items()), "part")
    first = sorted(keys)[0]
    assert torch.equal(target.state_dict()[first], state[first])

    with torch.device("meta"):
        target = build()
    with pytest.raises(CheckpointError, match="1 unexpected"):
        checkpoint.load_strict(target, iter([*state.items(), ("extra.weight", torch.zeros(1))]), "part")
    with torch.device("meta"):
        target = build()
    with pytest.raises(CheckpointError, match="1 missing"):
        checkpoint.load_strict(target, iter(list(state.items())[1:]), "part")


def test_the_frame_rule_follows_the_vae_chunks():
    vae = VideoVAE(TINY_VAE).eval()
    assert [latent_frames_for(f) for f in (17, 34, 204)] == [3, 6, 36]
    with torch.inference_mode():
        latents = vae.encode(torch.rand(1, 17, 3, 32, 48) * 2 - 1, sample=False)
        assert latents.shape == (1, 3, TINY_VAE.z_channels, 2, 3)
        video = vae.decode(torch.randn(1, 6, TINY_VAE.z_channels, 2, 3))
        assert video.shape == (1, 34, 3, 32, 48)
        with pytest.raises(ValueError, match="multiple of 17"):
            vae.encode(torch.zeros(1, 16, 3, 32, 32))
        with pytest.raises(ValueError, match="multiple of 3"):
            vae.decode(torch.zeros(1, 4, TINY_VAE.z_channels, 2, 2))


def test_the_dit_predicts_a_velocity_of_the_latents_shape_and_masks_text():
    torch.manual_seed(0)
    dit = StepVideoDiT(TINY_DIT).eval()
    latents = torch.randn(2, 3, 4, 2, 3)
    llm = torch.randn(2, 10, TINY_LLM.hidden_size)
    clip = torch.randn(2, 5, 24)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.inference_mode():
        out = dit(latents, torch.tensor([0.2, 0.2]), llm, mask, clip)
        assert out.shape == latents.shape
        # what lies past a prompt's length does not matter
        changed = llm.clone()
        changed[1, 6:] = 100.0
        again = dit(latents, torch.tensor([0.2, 0.2]), changed, mask, clip)
        assert torch.allclose(out[1], again[1], atol=1e-5)
        assert not torch.allclose(out[0], dit(latents, torch.tensor([0.7, 0.2]), llm, mask, clip)[0])


def test_the_llm_prompt_layout_is_bos_pieces_eos_then_padding():
    batch = llm_tokens(lambda text: [10 + len(w) for w in text.split()], ["a bb", "x " * 400], max_length=8)
    assert batch.input_ids[0].tolist() == [LLM_BOS, 11, 12, LLM_EOS, LLM_PAD, LLM_PAD, LLM_PAD, LLM_PAD]
    assert batch.attention_mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert batch.input_ids[1, -1] == LLM_EOS and batch.attention_mask[1].all()
    assert batch.truncated == [False, True]


def test_the_llm_is_causal():
    torch.manual_seed(0)
    llm = StepLLM(TINY_LLM).eval()
    ids = torch.randint(3, TINY_LLM.padded_vocab_size, (1, 12))
    later = ids.clone()
    later[0, 8:] = 5
    with torch.inference_mode():
        assert torch.allclose(llm(ids)[0, :8], llm(later)[0, :8], atol=1e-5)


def test_sampling_times_run_from_noise_to_data_shifted_towards_the_noise():
    times = sampler.sampling_times(10, 13.0)
    assert times[0] == 0.0 and times[-1] == 1.0
    assert bool((times[1:] > times[:-1]).all())
    s = 1 - 0.5
    assert torch.isclose(sampler.sampling_times(2, 13.0)[1], torch.tensor(1 - 13 * s / (1 + 12 * s)))
    # a larger shift keeps more of the steps near t = 0
    assert sampler.sampling_times(10, 17.0)[5] < sampler.sampling_times(10, 13.0)[5]


def test_euler_integrates_a_constant_velocity_exactly_to_the_data():
    noise, data = torch.randn(1, 3, 4, 2, 2), torch.randn(1, 3, 4, 2, 2)
    out = sampler.sample(
        lambda x, t: (data - noise).expand_as(x), noise, steps=7, shift=13.0, guidance_scale=9.0
    )
    assert torch.allclose(out, data, atol=1e-5)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_guidance_scale_per_step_follows_the_schedule(schedule):
    """With v_cond = 1 and v_uncond = 0 the guided velocity is the scale itself."""
    x = torch.zeros(1, 3, 4, 2, 2)
    times = sampler.sampling_times(10, 17.0).tolist()

    def velocity(batch: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert batch.shape[0] == 2
        return torch.cat([torch.ones_like(batch[:1]), torch.zeros_like(batch[:1])])

    for t, t_next in itertools.pairwise(times):
        step = sampler.denoise_step(velocity, x, t, t_next, guidance_scale=5.0, schedule=schedule)
        expected_scale = 5.0 if schedule == "constant" else 1.0 + (5.0 - 1.0) * (1.0 - t)
        assert torch.allclose(step, torch.full_like(x, expected_scale * (t_next - t)))
    assert sampler.linear_guidance(5.0, 0.0) == 5.0 and sampler.linear_guidance(5.0, 1.0) == 1.0


def test_no_guidance_at_scale_one_runs_a_single_pass():
    calls = []

    def velocity(batch: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(batch.shape[0])
        return torch.ones_like(batch)

    sampler.denoise_step(velocity, torch.zeros(1, 3, 4, 2, 2), 0.0, 0.5, guidance_scale=1.0)
    assert calls == [1]


def test_the_published_sentencepiece_tokenizer_is_read(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a cat runs on the grass\n一只猫在草地上跑\nred car in the city at night\n" * 50)
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "step1_chat_tokenizer"),
        vocab_size=30,
        bos_id=LLM_BOS,
        eos_id=LLM_EOS,
        unk_id=0,
        pad_id=-1,
        minloglevel=2,
    )
    pieces = step_llm_tokenizer(tmp_path)
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "step1_chat_tokenizer.model"))
    assert pieces("猫在草地 a cat") == processor.encode_as_ids("猫在草地 a cat") != []
