"""Our Lumina-Video against the official code, part by part, on random weights (CPU, float32, tiny).

    .venv/bin/python perf/lumina_equivalence.py --reference /tmp/lumina-ref/ref [--extra-path DIR]

`--reference` is a checkout of github.com/Alpha-VLLM/Lumina-Video (outside this repository). The official
code needs `einops` and `torchdiffeq`, which we do not: give a folder holding them with `--extra-path`
(e.g. `pip install --no-deps --target /tmp/lumina-ref/deps einops torchdiffeq`). One tiny checkpoint in the
published layout is written by our writer; our backend loads it through its real loader, and the
reference's `MultiScaleNextDiT` (built with the same sizes) loads that very file with its own
`load_state_dict(strict=True)` after the official `_orig_mod.` stripping, so the published key names are
checked too. Compared: the DiT forward at every patch scale (captions of different lengths, one video
without motion condition), the guided velocity of `forward_with_multi_cfg` before and after the guidance
and negative-motion thresholds (with renorm), a whole multi-scale sampling through the official
`transport.Sampler.sample_ode` (Euler), the Gemma-2 caption features of the official `encode_prompt`,
the VAE decode (the official scaling constant and latent frame count), and our defaults against the
official sample configs.

What the script substitutes, and nothing else:
  * `flash_attn` (a CUDA-only package) is not installed: `flash_attn_varlen_func` is replaced by SDPA run
    per packed segment (grouped KV heads repeated as flash-attn groups them) and `unpad_input` by its
    documented packing. The flash kernels' own numerics are therefore NOT compared.
  * The reference attention asserts fp16/bf16 (a flash-attn requirement): that one `assert` line is
    lifted from the source at import so the reference runs in float32 on the CPU; its code is otherwise
    executed as checked out.
  * The sequence-parallel helpers run for real on a one-process gloo group (`set_sequence_parallel(1)`).
  * Not a substitution: the reference's tensor-input `unpatchify` slices `x[:, :L]` on the feature axis
    (the token axis is meant); it is harmless while a batch's token count is at least the patch's output
    width, which holds at the published sizes, and the guided comparisons use latents where it holds.
  * `encode_prompt` moves its inputs with `.cuda()`: `Tensor.cuda` is the identity during that call.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generation.backends import GenerationRequest, load_backend  # noqa: E402
from generation.backends.lumina import config as ours_config  # noqa: E402
from generation.backends.lumina.backend import latent_frames_for  # noqa: E402
from generation.backends.lumina.checkpoint import DIT_WEIGHTS, read_state_dict  # noqa: E402
from generation.backends.lumina.config import parse_scales  # noqa: E402
from generation.backends.lumina.sampler import Guidance, TextConditions, sample, velocity  # noqa: E402
from generation.backends.lumina.text import encode  # noqa: E402
from generation.backends.lumina.tiny import TINY_MODEL_ARGS, make_tiny_lumina  # noqa: E402

TOLERANCE = 1e-4  # max |ours - reference| / max |reference|, float32
BF16_TOLERANCE = 5e-2  # the same in bfloat16 (8 mantissa bits), both sides in bf16


def install_flash_attn_shim() -> None:
    def varlen(
        q,
        k,
        v,
        cu_seqlens_q,
        cu_seqlens_k,
        max_seqlen_q,
        max_seqlen_k,
        dropout_p=0.0,
        causal=False,
        softmax_scale=None,
    ):
        outs = []
        for i in range(len(cu_seqlens_q) - 1):
            qs = q[cu_seqlens_q[i] : cu_seqlens_q[i + 1]].transpose(0, 1)
            ks = k[cu_seqlens_k[i] : cu_seqlens_k[i + 1]].transpose(0, 1)
            vs = v[cu_seqlens_k[i] : cu_seqlens_k[i + 1]].transpose(0, 1)
            rep = qs.shape[0] // ks.shape[0]
            ks, vs = ks.repeat_interleave(rep, 0), vs.repeat_interleave(rep, 0)
            outs.append(F.scaled_dot_product_attention(qs, ks, vs, scale=softmax_scale).transpose(0, 1))
        return torch.cat(outs)

    def unpad_input(hidden, mask):
        lengths = mask.sum(dim=-1, dtype=torch.int32)
        indices = torch.nonzero(mask.flatten(), as_tuple=False).flatten()
        cu = F.pad(torch.cumsum(lengths, 0, dtype=torch.int32), (1, 0))
        return hidden.flatten(0, 1)[indices], indices, cu, int(lengths.max()), lengths

    package = types.ModuleType("flash_attn")
    package.flash_attn_varlen_func = varlen  # type: ignore[attr-defined]
    padding = types.ModuleType("flash_attn.bert_padding")
    padding.unpad_input = unpad_input  # type: ignore[attr-defined]
    padding.pad_input = None  # type: ignore[attr-defined]
    padding.index_first_axis = None  # type: ignore[attr-defined]
    package.__spec__ = importlib.machinery.ModuleSpec("flash_attn", None)
    padding.__spec__ = importlib.machinery.ModuleSpec("flash_attn.bert_padding", None)
    sys.modules["flash_attn"], sys.modules["flash_attn.bert_padding"] = package, padding


def import_reference(reference: Path) -> types.SimpleNamespace:
    sys.path.insert(0, str(reference))
    # diffusers and transformers probe for flash_attn when imported: import them before the shim exists
    from diffusers.models import AutoencoderKLCogVideoX  # noqa: F401
    from transformers import AutoModel, AutoTokenizer, Gemma2Model  # noqa: F401

    install_flash_attn_shim()
    import models.components  # noqa: F401  (the reference package, torch's RMSNorm without apex)

    source = (reference / "models" / "model.py").read_text()
    lifted = "assert dtype in [torch.float16, torch.bfloat16]"
    if lifted not in source:
        raise SystemExit(f"the reference no longer has the line {lifted!r}; update this script")
    module = types.ModuleType("models.model")
    module.__package__ = "models"
    module.__file__ = str(reference / "models" / "model.py")
    sys.modules["models.model"] = module
    exec(
        compile(source.replace(lifted, "pass  # lifted: " + lifted), module.__file__, "exec"), module.__dict__
    )
    import transport
    from configs.sample import CANDIDATE_SAMPLE_CONFIGS
    from utils.parallel import set_sequence_parallel

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    set_sequence_parallel(1)
    import generate as reference_generate

    return types.SimpleNamespace(
        model=module,
        transport=transport,
        configs=CANDIDATE_SAMPLE_CONFIGS,
        generate=reference_generate,
    )


def gap(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.float() - theirs.float()).abs().max() / theirs.float().abs().max().clamp(min=1e-12))


RESULTS: list[tuple[str, float | str, bool]] = []


def report(name: str, value: float | str, ok: bool) -> None:
    RESULTS.append((name, value, ok))
    shown = f"{value:.2e}" if isinstance(value, float) else value
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {shown}", flush=True)


def time_aware(first: object, *later: tuple[float, object]) -> object:
    return (first, *later) if later else first


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument(
        "--extra-path", type=Path, default=None, help="a folder holding einops and torchdiffeq"
    )
    args = parser.parse_args()
    if args.extra_path:
        sys.path.insert(0, str(args.extra_path))
    torch.manual_seed(0)
    ref = import_reference(args.reference.resolve())

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tiny_lumina(Path(tmp) / "lumina", seed=3, compiled_names=True)
        backend = load_backend("lumina", folder)
        ours = backend.dit  # type: ignore[attr-defined]
        a = TINY_MODEL_ARGS
        theirs = ref.model.MultiScaleNextDiT(
            all_patch_size=tuple(a["patch_sizes"]),
            all_f_patch_size=tuple(a["f_patch_sizes"]),
            in_channels=16,
            dim=a["dim"],
            n_layers=a["n_layers"],
            n_heads=a["n_heads"],
            n_kv_heads=a["n_kv_heads"],
            multiple_of=a["multiple_of"],
            qk_norm=a["qk_norm"],
            cap_feat_dim=backend.text_encoder.config.hidden_size,  # type: ignore[attr-defined]
            rope_theta=a["rope_theta"],
            t_scale=a["t_scale"],
            motion_scale=a["motion_scale"],
        ).eval()
        state = read_state_dict(folder / DIT_WEIGHTS[0])  # the official loader's `_orig_mod.` stripping
        result = theirs.load_state_dict(state, strict=True)
        report(
            "published key names load strictly into the reference", f"{len(state)} tensors, {result}", True
        )

        # ---- DiT forward at each scale
        cap_dim = ours.config.cap_feat_dim
        x = torch.randn(2, 16, 4, 8, 8)
        t = torch.tensor([0.3, 0.8])
        caption = torch.randn(2, 12, cap_dim)
        mask = torch.ones(2, 12, dtype=torch.long)
        mask[1, 7:] = 0
        motion = torch.tensor([6.0, -1.0])
        with torch.no_grad():
            for f_patch, patch in ours.config.patch_combos:
                expected = torch.stack(
                    theirs(list(x), t.clone(), caption, mask, motion.clone(), patch, f_patch)
                )
                got = ours(x, t, caption, mask, motion, f_patch=f_patch, patch=patch)
                value = gap(got, expected)
                report(
                    f"DiT forward {f_patch}x{patch} (2 videos, padded caption, one without motion)",
                    value,
                    value < TOLERANCE,
                )

        # ---- the same in bf16: the reference's own dtype path (its fp16/bf16 assert satisfied)
        import copy

        theirs_bf16, ours_bf16 = (
            copy.deepcopy(theirs).to(torch.bfloat16),
            copy.deepcopy(ours).to(torch.bfloat16),
        )
        with torch.no_grad():
            for f_patch, patch in ours.config.patch_combos:
                args_bf16 = (t.bfloat16(), caption.bfloat16(), mask)
                expected32 = torch.stack(
                    theirs(list(x), t.clone(), caption, mask, motion.clone(), patch, f_patch)
                )
                expected = torch.stack(
                    theirs_bf16(
                        list(x.bfloat16()),
                        args_bf16[0].clone(),
                        args_bf16[1],
                        mask,
                        motion.bfloat16(),
                        patch,
                        f_patch,
                    )
                )
                got = ours_bf16(x.bfloat16(), *args_bf16, motion.bfloat16(), f_patch=f_patch, patch=patch)
                value, noise = gap(got, expected), gap(expected, expected32)
                report(
                    f"DiT forward {f_patch}x{patch} in bf16 (reference bf16 vs its float32: {noise:.1e})",
                    value,
                    value < BF16_TOLERANCE,
                )
        del theirs_bf16, ours_bf16

        # ---- guided velocity (forward_with_multi_cfg) around the thresholds
        official = ref.configs["f24F96R960-MultiScale"]
        # The reference's tensor-input unpatchify slices `x[:, :L]` on the feature axis (meant for the token
        # axis): a no-op only while the batch's token count is at least the patch output width (true at the
        # published sizes), so these latents are large enough at the coarsest scale.
        x1 = torch.randn(1, 16, 8, 32, 32)
        pos_len, neg_len = 12, 9
        features = torch.randn(2, pos_len, cap_dim)
        masks = torch.ones(2, pos_len, dtype=torch.long)
        masks[1, neg_len:] = 0
        text = TextConditions(
            features[:1], masks[:1].bool(), features[1:, :neg_len], masks[1:, :neg_len].bool()
        )
        guidance = Guidance(20.0, 0.2, 2.0, 6.0, 2.0, 0.05)
        scales = parse_scales(ours_config.MULTI_SCALE)
        with torch.no_grad():
            for t_value in (0.01, 0.04, 0.1, 0.5):
                expected = theirs.forward_with_multi_cfg(
                    x1.repeat(2, 1, 1, 1, 1),
                    torch.full((2,), t_value),
                    features,
                    masks,
                    motion_score=[official["motion"], official["negMotion"]],
                    patch_comb=official["P"],
                    cfg_scale=[official["cfg"]],
                    renorm_cfg=official["renorm"],
                )[:1]
                got = velocity(ours, x1, t_value, text, guidance, scales)
                value = gap(got, expected)
                report(
                    f"guided velocity at t={t_value} (official multi-scale config)", value, value < TOLERANCE
                )

        # ---- a whole sampling through the official transport (Euler)
        steps, shift = 6, official["ts"]
        with torch.no_grad():
            sampler = ref.transport.Sampler(
                ref.transport.create_transport("Linear", "velocity", None, None, None)
            )
            sample_fn = sampler.sample_ode(
                sampling_method="euler", num_steps=steps + 1, atol=1e-6, rtol=1e-3, reverse=False,
                time_shifting_factor=shift,
            )  # fmt: skip
            expected = sample_fn(
                x1.repeat(2, 1, 1, 1, 1),
                theirs.forward_with_multi_cfg,
                cap_feats=features,
                cap_mask=masks,
                motion_score=[official["motion"], official["negMotion"]],
                patch_comb=official["P"],
                cfg_scale=[official["cfg"]],
                renorm_cfg=official["renorm"],
            )[-1][:1]
            got = sample(ours, x1, text, steps=steps, shift=shift, guidance=guidance, scales=scales)
            value = gap(got, expected)
            report(
                f"{steps}-step multi-scale sampling (transport.Sampler, Euler, shift {shift})",
                value,
                value < TOLERANCE,
            )

        # ---- Gemma-2 caption features
        prompts = ["a cat walks on the beach", ""]
        real_cuda = torch.Tensor.cuda
        torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
        try:
            system = ref.generate.SYSTEM_PROMPT
            exp_feats, exp_mask = ref.generate.encode_prompt(
                [system + p for p in prompts],
                backend.text_encoder,  # type: ignore[attr-defined]
                backend.tokenizer,  # type: ignore[attr-defined]
            )
        finally:
            torch.Tensor.cuda = real_cuda  # type: ignore[method-assign]
        got_feats, got_mask, _ = encode(prompts, backend.text_encoder, backend.tokenizer)  # type: ignore[attr-defined]
        report(
            "system prompt equals the official",
            str(system == ours_config.SYSTEM_PROMPT),
            system == ours_config.SYSTEM_PROMPT,
        )
        same_mask = torch.equal(got_mask, exp_mask.bool())
        value = gap(got_feats, exp_feats)
        report(
            "Gemma-2 caption features (hidden_states[-2], padded to 8)",
            value,
            value < TOLERANCE and same_mask,
        )

        # ---- VAE decode: official constant and latent frame count
        frames = 16
        latent_f = frames // 4  # generate.py
        report(
            "latent frames for 16 frames (official frames // 4)",
            f"{latent_frames_for(frames)} vs {latent_f}",
            latent_frames_for(frames) == latent_f,
        )
        z = torch.randn(1, 16, latent_f, 4, 4)
        with torch.no_grad():
            expected = backend.vae.decode(z / 1.15258426).sample.float()  # type: ignore[attr-defined]
            got = backend.decode(z)  # type: ignore[attr-defined]
        value = gap(got, expected)
        report(
            f"VAE decode (scaling 1.15258426), {expected.shape[2]} frames from {latent_f} latents",
            value,
            value < TOLERANCE and expected.shape[2] == frames,
        )

        # ---- defaults against the official sample config
        single = ref.configs["f24F96R960"]
        d = ours_config.OFFICIAL_DEFAULTS
        pairs = {
            "steps+1 = step": (d["steps"] + 1, single["step"]),
            "time_shift = ts": (d["time_shift"], single["ts"]),
            "renorm": (d["renorm"], single["renorm"]),
            "guidance (scale, until)": ((d["guidance_scale"], (d["guidance_until"], 0)), single["cfg"]),
            "motion": (d["motion_score"], single["motion"]),
            "negMotion": (
                (d["negative_motion_score"], (d["negative_motion_until"], d["motion_score"])),
                single["negMotion"],
            ),
            "P single": (d["scales"], single["P"]),
        }
        for name, (mine, theirs_value) in pairs.items():
            report(f"default {name}", f"{mine} vs {theirs_value}", mine == theirs_value)
        multi = [(s.start, f"{s.f_patch}x{s.patch}") for s in parse_scales(ours_config.MULTI_SCALE)]
        official_p = [(0.0, official["P"][0])] + [tuple(step) for step in official["P"][1:]]
        report("multi-scale schedule", f"{multi} vs {official_p}", multi == official_p)

        # ---- the backend end to end (tiny): sanity only, its parts are compared above
        video = backend.generate(
            GenerationRequest(["a cat"], {"height": 32, "width": 32, "frames": 8, "steps": 2}, seeds=[0])
        )[0]
        report(
            "backend generation (tiny)",
            f"{video.frames.shape} {video.frames.dtype}",
            video.frames.shape == (8, 32, 32, 3),
        )

    failed = [name for name, _, ok in RESULTS if not ok]
    print(
        f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} checks within tolerance {TOLERANCE:g}"
        + (f"; failed: {failed}" if failed else "")
    )
    torch.distributed.destroy_process_group()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
