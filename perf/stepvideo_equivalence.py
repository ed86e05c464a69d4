"""Our Step-Video-T2V against the official code, part by part, on random weights (CPU, float32, tiny).

    .venv/bin/python perf/stepvideo_equivalence.py --reference /tmp/stepvideo-ref [--extra-path DIR]

`--reference` is a checkout of github.com/stepfun-ai/Step-Video-T2V (outside this repository); the
official code needs `einops`, which we do not: give a folder holding it with `--extra-path` (e.g.
`pip install --target /tmp/svref-deps einops`). One tiny checkpoint in the published layout is written
with our writer; our backend loads it through its real loader and the reference modules get the very
same tensors (the DiT and VAE through the reference's own `load_state_dict`/`init_from_ckpt`, strict, so
the published key names are checked too; the CLIP tower through the reference's own loader).

What the script substitutes, and nothing else (the reference's numerics are untouched):
  * `xfuser` is not installed: a stub package maps the two xfuser modules the reference DiT imports
    (`...step_video_t2v.blocks` / `.normalization`) to the reference's own `stepvideo/modules/blocks.py`
    and `normalization.py`, and answers sequence-parallel world size 1. The DiT is built with the
    reference's single-device `attention_type="torch"` (its SDPA path), not the xfuser one.
  * Step-LLM's attention is `torch.ops.Optimus.fwd` from a prebuilt CUDA library that is not on this
    machine: it is replaced by a causal square-root-ALiBi SDPA written here from StepFun's public
    Step-1 description (bias -slope_h * sqrt(i - j)). That kernel's own numerics are therefore NOT
    compared: only everything around it is.
  * Step-LLM's SentencePiece tokenizer file is not part of a tiny checkpoint: the reference's own
    `Wrapped_StepChatTokenizer.__call__` (BOS/EOS/padding layout) is run with the tiny vocabulary's
    pieces.
  * The caption and VAE HTTP servers are not started: their few lines (encode, pad the LLM mask with
    the CLIP length, hand CLIP states over in bf16; decode) are replayed here around the reference
    modules, and the pipeline's `encode_prompt` is pointed at it (the final latents are decoded by
    the reference VAE directly); `aiohttp`, the servers' client, is stubbed when absent.
  * `stepvideo.text_encoder` parses sys.argv at import: it is imported with an empty argv.
  * It imports `PretrainedConfig` from `transformers.modeling_utils` (transformers 4); with transformers 5
    that name is re-exported there before the import.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import math
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generation.backends.base import GenerationRequest  # noqa: E402
from generation.backends.stepvideo import checkpoint, sampler  # noqa: E402
from generation.backends.stepvideo.backend import StepVideoBackend  # noqa: E402
from generation.backends.stepvideo.config import DiTConfig, StepLLMConfig, VAEConfig  # noqa: E402
from generation.backends.stepvideo.dit import StepVideoDiT  # noqa: E402
from generation.backends.stepvideo.text_encoders import llm_tokens, step_llm_tokenizer  # noqa: E402
from generation.backends.stepvideo.tiny import _randomize, write_tiny_checkpoint  # noqa: E402

# Reference-sized toys: the official RoPE split is fixed at [64, 32, 32] (head dim 128) and its group
# norms at 32 groups, so the toys keep those and shrink everything else.
LLM = StepLLMConfig(
    hidden_size=64,
    num_attention_heads=4,
    num_attention_groups=2,
    ffn_hidden_size=100,
    num_layers=2,
    padded_vocab_size=64,
)
DIT = DiTConfig(
    num_attention_heads=2,
    attention_head_dim=128,
    in_channels=4,
    out_channels=4,
    num_layers=2,
    caption_channels=(64, 48),
)
VAE = VAEConfig(
    z_channels=4,
    encoder_channels=32,
    encoder_multipliers=(1, 1, 1, 1),
    decoder_channels=32,
    decoder_multipliers=(1, 1, 1, 1),
)
HEIGHT, WIDTH, FRAMES = 48, 64, 34  # latents (4, 6, 3, 4): two VAE chunks, a non-square grid
PROMPTS = ["a red cat runs on the grass", "狗 in the snow at night"]
# (the tiny CLIP vocab.txt read by the reference's BertTokenizer splits CJK words into characters while
# our tokenizer.json keeps whole words: the prompts use words both tokenise alike, checked below)
NEGATIVE = "blue car at night 。"


def install_shims(reference: Path) -> None:
    parallel_state = types.ModuleType("xfuser.core.distributed.parallel_state")
    parallel_state.get_sequence_parallel_world_size = lambda: 1  # type: ignore[attr-defined]
    parallel_state.get_sequence_parallel_rank = lambda: 0  # type: ignore[attr-defined]
    names = [
        "xfuser",
        "xfuser.core",
        "xfuser.core.distributed",
        "xfuser.model_executor",
        "xfuser.model_executor.models",
        "xfuser.model_executor.models.customized",
        "xfuser.model_executor.models.customized.step_video_t2v",
    ]
    for name in names:
        module = types.ModuleType(name)
        module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = module
    sys.modules["xfuser.core.distributed.parallel_state"] = parallel_state
    sys.modules["xfuser.core.distributed"].parallel_state = parallel_state  # type: ignore[attr-defined]
    sys.modules["xfuser"].core = sys.modules["xfuser.core"]  # type: ignore[attr-defined]
    sys.modules["xfuser.core"].distributed = sys.modules["xfuser.core.distributed"]  # type: ignore[attr-defined]

    files = {
        "xfuser.model_executor.models.customized.step_video_t2v.blocks": reference
        / "stepvideo/modules/blocks.py",
        "xfuser.model_executor.models.customized.step_video_t2v.normalization": reference
        / "stepvideo/modules/normalization.py",
    }

    class ReferenceFiles(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
            if fullname in files:
                return importlib.util.spec_from_file_location(fullname, files[fullname])
            return None

    sys.meta_path.insert(0, ReferenceFiles())

    # the pipeline imports the HTTP client of its servers, which are not used here
    if importlib.util.find_spec("aiohttp") is None:
        sys.modules["aiohttp"] = types.ModuleType("aiohttp")

    # written against transformers 4, which re-exported PretrainedConfig from modeling_utils
    import transformers
    import transformers.modeling_utils

    if not hasattr(transformers.modeling_utils, "PretrainedConfig"):
        transformers.modeling_utils.PretrainedConfig = transformers.PretrainedConfig  # type: ignore[attr-defined]


def sqrt_alibi_attention(q, k, v, dropout_p=0.0, softmax_scale=None, causal=True, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Stand-in for torch.ops.Optimus.fwd: causal attention with bias -slope_h * sqrt(i - j)."""
    b, s, h, d = q.shape
    closest = 2 ** int(math.floor(math.log2(h)))
    slopes = [(2.0 ** (-8.0 / closest)) ** (i + 1) for i in range(closest)]
    slopes += [(2.0 ** (-4.0 / closest)) ** (2 * i + 1) for i in range(h - closest)]
    rows = torch.arange(s).view(-1, 1)
    cols = torch.arange(s).view(1, -1)
    distance = (rows - cols).clamp(min=0).float()
    bias = -distance.sqrt()[None] * torch.tensor(slopes).view(-1, 1, 1)
    bias = bias.masked_fill(cols > rows, float("-inf")).to(q.dtype)
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias[None], scale=softmax_scale
    )
    return out.transpose(1, 2)


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, float, bool]] = []

    def compare(self, part: str, ours: torch.Tensor, ref: torch.Tensor, rtol: float) -> None:
        ours, ref = ours.detach().float(), ref.detach().float()
        if ours.shape != ref.shape:
            raise AssertionError(f"{part}: shape {tuple(ours.shape)} vs reference {tuple(ref.shape)}")
        diff = float((ours - ref).abs().max())
        scale = float(ref.abs().max())
        tolerance = rtol * max(scale, 1.0)
        self.rows.append((part, diff, scale, tolerance, diff <= tolerance))

    def exact(self, part: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
        same = ours.shape == ref.shape and bool(torch.equal(ours, ref))
        self.rows.append((part, 0.0 if same else float("nan"), 0.0, 0.0, same))

    def print(self) -> bool:
        print(f"{'part':58s} {'max |ours-ref|':>15s} {'max |ref|':>10s} {'tolerance':>10s}  ok")
        for part, diff, scale, tolerance, ok in self.rows:
            print(f"{part:58s} {diff:15.3e} {scale:10.3e} {tolerance:10.1e}  {'yes' if ok else 'NO'}")
        return all(row[-1] for row in self.rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", type=Path, required=True, help="checkout of stepfun-ai/Step-Video-T2V")
    parser.add_argument("--extra-path", type=Path, action="append", default=[], help="folder with einops")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    reference = args.reference.resolve()
    if not (reference / "stepvideo" / "modules" / "model.py").exists():
        parser.error(f"{reference} is not a Step-Video-T2V checkout")
    if ROOT in reference.parents or reference == ROOT:
        parser.error("keep the reference checkout outside this repository")
    for extra in args.extra_path:
        sys.path.append(str(extra))
    try:
        import einops  # noqa: F401
    except ImportError:
        parser.error("the reference needs einops: pip install --target DIR einops, then --extra-path DIR")
    sys.path.insert(0, str(reference))
    install_shims(reference)
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        import stepvideo.text_encoder.flashattention as ref_flash
        from stepvideo.diffusion.scheduler import FlowMatchDiscreteScheduler
        from stepvideo.diffusion.video_pipeline import StepVideoPipeline
        from stepvideo.modules.model import StepVideoModel
        from stepvideo.text_encoder.clip import HunyuanClip
        from stepvideo.text_encoder.stepllm import Step1Model, STEP1TextEncoder
        from stepvideo.text_encoder.tokenizer import Wrapped_StepChatTokenizer
        from stepvideo.vae import vae as ref_vae
    finally:
        sys.argv = argv
    ref_flash.flash_attn_func = sqrt_alibi_attention
    from transformers import PretrainedConfig

    torch.manual_seed(0)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stepvideo-equivalence-"))
    folder = write_tiny_checkpoint(workdir / "ckpt", seed=1, dit_config=DIT, vae_config=VAE, llm_config=LLM)
    ours = StepVideoBackend.load(folder, options={"free_text_encoders": False})
    assert ours.dit is not None and ours.vae is not None and ours.text_encoders is not None
    encoders = ours.text_encoders
    report = Report()

    # -- Step-LLM -------------------------------------------------------------------------------------
    pieces = step_llm_tokenizer(folder / "step_llm")
    ref_tokenizer = Wrapped_StepChatTokenizer.__new__(Wrapped_StepChatTokenizer)
    ref_tokenizer.tokenize = pieces
    ref_tokens = ref_tokenizer(PROMPTS, max_length=320)
    our_tokens = llm_tokens(pieces, PROMPTS)
    report.exact(
        "Step-LLM prompt layout: token ids (BOS, EOS, padding)", our_tokens.input_ids, ref_tokens.input_ids
    )
    report.exact(
        "Step-LLM prompt layout: attention mask", our_tokens.attention_mask, ref_tokens.attention_mask
    )
    # the Megatron-style fields the reference reads from step_llm/config.json
    megatron: dict[str, Any] = {
        "seq_length": 320,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "params_dtype": torch.float32,
        "fp32_residual_connection": False,
        "embedding_weights_in_fp32": False,
    }
    llm_config = PretrainedConfig(**LLM.to_dict(), **megatron)
    ref_llm = Step1Model(llm_config)
    ref_llm.load_state_dict(encoders.llm.state_dict(), strict=True)  # type: ignore[union-attr]
    ref_llm.eval()
    with torch.inference_mode():
        ref_states = ref_llm(ref_tokens.input_ids).transpose(0, 1)
        our_states = encoders.llm(our_tokens.input_ids)  # type: ignore[misc]
    report.compare("Step-LLM hidden states (320 tokens, 2 prompts)", our_states, ref_states, 1e-5)

    # -- Hunyuan-CLIP (the reference's own loader on the same folder) ---------------------------------
    ref_clip = HunyuanClip(str(folder / "hunyuan_clip"), max_length=77).eval()
    ref_text_encoder = STEP1TextEncoder.__new__(STEP1TextEncoder)
    torch.nn.Module.__init__(ref_text_encoder)
    ref_text_encoder.max_length = 320
    ref_text_encoder.text_tokenizer = ref_tokenizer
    ref_text_encoder.text_encoder = ref_llm

    def caption_server(prompts: list[str]) -> dict[str, torch.Tensor]:
        """The official caption API's `embedding`, replayed in-process."""
        with torch.no_grad():
            y, y_mask = ref_text_encoder(prompts)
            clip_embedding, _ = ref_clip(prompts)
            y_mask = torch.nn.functional.pad(y_mask, (clip_embedding.shape[1], 0), value=1)
            return {"y": y, "y_mask": y_mask, "clip_embedding": clip_embedding.to(torch.bfloat16)}

    texts = [*PROMPTS, NEGATIVE]
    ref_ids = ref_clip.tokenizer(
        texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    our_ids = encoders.clip_tokenizer(
        texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )["input_ids"]
    report.exact("Hunyuan-CLIP token ids (tiny vocab, both tokenizers)", our_ids, ref_ids)
    ref_caption = caption_server(PROMPTS)
    our_text = encoders.encode(PROMPTS)
    report.compare(
        "Hunyuan-CLIP states (77 tokens, handed over in bf16)",
        our_text.clip_states,
        ref_caption["clip_embedding"],
        1e-5,
    )
    report.compare("text encoders end to end: Step-LLM states", our_text.llm_states, ref_caption["y"], 1e-5)

    # -- DiT forward ----------------------------------------------------------------------------------
    def ref_dit_for(config: DiTConfig, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        values = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k != "dropout"}
        model = StepVideoModel(**values, attention_type="torch")
        model.load_state_dict(state, strict=True)
        return model.eval()

    ref_dit = ref_dit_for(DIT, ours.dit.state_dict())
    latents = torch.randn(2, 6, 4, 3, 4)
    timestep = torch.tensor([0.137, 0.81])
    llm_mask = our_text.llm_mask.clone()
    with torch.inference_mode():
        ref_v = ref_dit(
            hidden_states=latents,
            encoder_hidden_states=ref_caption["y"],
            encoder_hidden_states_2=ref_caption["clip_embedding"].float(),
            timestep=timestep,
            encoder_attention_mask=ref_caption["y_mask"],
            return_dict=False,
        )
        our_v = ours.dit(latents, timestep, our_text.llm_states, llm_mask, our_text.clip_states.float())
    report.compare("DiT forward (2 prompts of different lengths, masked)", our_v, ref_v, 1e-5)

    # the same forward with both models in bf16 (the released dtype; the CPU's bf16 kernels)
    with torch.inference_mode():
        ref_dit.to(torch.bfloat16)
        ref_bf16 = ref_dit(
            hidden_states=latents.bfloat16(),
            encoder_hidden_states=ref_caption["y"].bfloat16(),
            encoder_hidden_states_2=ref_caption["clip_embedding"],
            timestep=timestep.bfloat16(),
            encoder_attention_mask=ref_caption["y_mask"],
            return_dict=False,
        )
        ref_dit.float()
        ours.dit.to(torch.bfloat16)
        our_bf16 = ours.dit(
            latents.bfloat16(),
            timestep.bfloat16(),
            our_text.llm_states.bfloat16(),
            llm_mask,
            our_text.clip_states,
        )
        ours.dit.float()
    report.compare("DiT forward in bf16 (both models cast)", our_bf16, ref_bf16, 1e-2)

    extra = DiTConfig(**{**DIT.__dict__, "use_additional_conditions": True, "patch_size": 1})
    with torch.device("cpu"):
        our_extra = _randomize(StepVideoDiT(extra), 5).eval()
    ref_extra = ref_dit_for(extra, our_extra.state_dict())
    with torch.inference_mode():
        fps = torch.tensor([25.0, 25.0])
        ref_e = ref_extra(
            hidden_states=latents,
            encoder_hidden_states=ref_caption["y"],
            encoder_hidden_states_2=ref_caption["clip_embedding"].float(),
            timestep=timestep,
            encoder_attention_mask=ref_caption["y_mask"],
            fps=fps,
            return_dict=False,
        )
        our_e = our_extra(
            latents, timestep, our_text.llm_states, llm_mask, our_text.clip_states.float(), fps=fps
        )
    report.compare("DiT forward with resolution/frames/fps conditions", our_e, ref_e, 1e-5)

    # -- Video-VAE (the reference's own checkpoint reader on our vae_v2.safetensors) ------------------
    ref_auto = ref_vae.AutoencoderKL.__new__(ref_vae.AutoencoderKL)
    torch.nn.Module.__init__(ref_auto)
    ref_auto.frame_len, ref_auto.latent_len, ref_auto.world_size = 17, 3, 1
    ref_vae.base_group_norm.spatial = True
    ref_auto.encoder = ref_vae.VideoEncoder(
        ch=VAE.encoder_channels,
        ch_mult=VAE.encoder_multipliers,
        num_res_blocks=VAE.num_res_blocks,
        z_channels=VAE.z_channels,
        version=2,
    )
    ref_auto.decoder = ref_vae.VideoDecoder(
        ch=VAE.decoder_channels,
        ch_mult=VAE.decoder_multipliers,
        num_res_blocks=VAE.num_res_blocks,
        z_channels=VAE.z_channels,
        version=2,
    )
    ref_auto.load_from_dict(ref_auto.init_from_ckpt(str(folder / checkpoint.VAE_FILE)))
    ref_auto.eval()
    z = torch.randn(1, 6, 4, 3, 4)
    ref_video = ref_auto.decode(z.clone())
    with torch.inference_mode():
        our_video = ours.vae.decode(z)
    report.compare("VAE decode (2 chunks of 3 latent frames, borders blended)", our_video, ref_video, 1e-5)
    clip_in = ref_video.clamp(-1, 1).clone()
    torch.manual_seed(123)
    ref_z = ref_auto.encode(clip_in.clone())
    torch.manual_seed(123)
    with torch.inference_mode():
        our_z = ours.vae.encode(clip_in)
    report.compare("VAE encode (2 chunks of 17 frames, posterior draw, same seed)", our_z, ref_z, 1e-5)

    # -- sampler --------------------------------------------------------------------------------------
    scheduler = FlowMatchDiscreteScheduler()
    scheduler.set_timesteps(num_inference_steps=7, time_shift=13.0, device="cpu")
    report.compare(
        "sampling times (7 steps, shift 13)", sampler.sampling_times(7, 13.0), scheduler.sigmas, 1e-6
    )
    x = torch.randn(1, 6, 4, 3, 4)
    v = torch.randn(1, 6, 4, 3, 4)
    t0, t1 = float(scheduler.timesteps[2]), float(scheduler.sigmas[3])
    scheduler._step_index = 2
    report.compare(
        "one Euler step", sampler.euler_step(x, v, t0, t1), scheduler.step(v, scheduler.timesteps[2], x), 1e-6
    )

    # one guided denoising step: the reference pipeline's loop body vs ours
    two = torch.cat([x, x])
    t = scheduler.timesteps[0]
    with torch.inference_mode():
        pred = ref_dit(
            hidden_states=two,
            timestep=t.expand(2),
            encoder_hidden_states=ref_caption["y"],
            encoder_attention_mask=ref_caption["y_mask"],
            encoder_hidden_states_2=ref_caption["clip_embedding"].float(),
            return_dict=False,
        )
        cond, uncond = pred.chunk(2)
        scheduler._step_index = 0
        ref_next = scheduler.step(uncond + 9.0 * (cond - uncond), t, x)

        def velocity(lat: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
            return ours.dit(lat, ts, our_text.llm_states, our_text.llm_mask, our_text.clip_states.float())  # type: ignore[misc]

        times = sampler.sampling_times(7, 13.0).tolist()
        our_next = sampler.denoise_step(velocity, x, times[0], times[1], guidance_scale=9.0)
    report.compare("one guided denoising step (cfg 9, batch [cond, uncond])", our_next, ref_next, 1e-5)

    # -- a short full sampling: the reference pipeline (its own loop, scheduler and guidance) ---------
    pipeline = StepVideoPipeline(
        transformer=ref_dit, scheduler=FlowMatchDiscreteScheduler(), save_path=str(workdir / "results")
    )

    def encode_prompt(prompt: str, neg_magic: str = "", pos_magic: str = ""):  # type: ignore[no-untyped-def]
        data = caption_server([prompt + pos_magic, neg_magic])
        return data["y"], data["clip_embedding"], data["y_mask"]

    pipeline.encode_prompt = encode_prompt
    # the pipeline casts given latents to bf16: start both from bf16-representable noise
    noise = torch.randn(1, 6, 4, 3, 4).bfloat16().float()
    steps, cfg, shift = 4, 9.0, 13.0
    ref_latents = pipeline(
        prompt=PROMPTS[0],
        num_frames=FRAMES,
        height=HEIGHT,
        width=WIDTH,
        num_inference_steps=steps,
        guidance_scale=cfg,
        time_shift=shift,
        pos_magic="",
        neg_magic=NEGATIVE,
        latents=noise,
        output_type="latent",
    ).video
    ref_frames = ref_auto.decode(ref_latents.clone().float())[0]
    request = GenerationRequest(
        prompts=[PROMPTS[0]],
        settings={
            "height": HEIGHT,
            "width": WIDTH,
            "frames": FRAMES,
            "steps": steps,
            "guidance_scale": cfg,
            "time_shift": shift,
            "positive_suffix": "",
        },
        latents=[noise[0].permute(1, 0, 2, 3)],
        negative_prompt=NEGATIVE,
    )
    seen: list[torch.Tensor] = []
    original = ours.decode_latents

    def keep_latents(lat: torch.Tensor) -> torch.Tensor:
        seen.append(lat)
        return original(lat)

    ours.decode_latents = keep_latents  # type: ignore[method-assign,assignment]
    video = ours.generate(request)[0]
    report.compare(
        "full sampling, 4 steps, cfg 9: final latents", seen[0].permute(1, 0, 2, 3)[None], ref_latents, 1e-4
    )
    our_float = original(seen[0])
    report.compare("full sampling: decoded video in [-1, 1]", our_float, ref_frames.clamp(-1, 1), 1e-4)
    ref_uint8 = ((ref_frames.clamp(-1, 1) + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    levels = (torch.from_numpy(video.frames).int() - ref_uint8.int()).abs().max()
    print(
        f"uint8 frames: at most {int(levels)} level(s) apart (ours rounds, the official post-processing truncates)"
    )

    ok = report.print()
    print("ALL EQUAL within tolerance" if ok else "SOME PARTS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
