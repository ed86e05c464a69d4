"""One guided denoising step of Step-Video-T2V's full-size DiT (random weights, bf16) on one GPU.

    .venv/bin/python perf/stepvideo_step.py            # on a GPU machine: 544x992x204, one command
    .venv/bin/python perf/stepvideo_step.py --tiny     # the tiny config on the CPU

Prints the seconds per guided step (conditional + unconditional pass), the peak GPU memory, the
model FLOPs of the step and the MFU against the GPU's bf16 peak (790 TFLOP/s by default, an H200's
dense figure), then the DiT time per video that follows for Turbo (10 steps) and the base model
(50 steps), against the report's 743 s per 544x992x204 video on four GPUs with flash attention (that
figure covers the whole pipeline; ours is the DiT's share on one GPU, which dominates it).

Safe in one command of under ten minutes on a single 141 GB GPU: the 30B DiT is built directly on the
GPU in bf16 (about 60 GB, never a second copy), one warm-up step and one timed step are run under
inference mode, and the timed step is skipped (the warm-up's time is reported, marked) when the
warm-up alone took over four minutes. With under 120 GB of GPU memory the two guidance passes run one
after the other. Without a GPU, the analytic figures are printed and the measured ones are pending.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation.backends.stepvideo import sampler
from generation.backends.stepvideo.config import DEFAULT_FRAMES, DEFAULT_HEIGHT, DEFAULT_WIDTH, DiTConfig
from generation.backends.stepvideo.dit import StepVideoDiT
from generation.backends.stepvideo.tiny import TINY_DIT
from generation.backends.stepvideo.vae import latent_frames_for

REPORT_SECONDS_PER_VIDEO = 743.0  # README table: 544x992x204, 50 steps, flash attention, four GPUs
CLIP_TOKENS, LLM_TOKENS = 77, 320
WARMUP_BUDGET_S = 240.0


def parameter_count(config: DiTConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in StepVideoDiT(config).parameters())


def forward_flops(config: DiTConfig, batch: int, tokens: int, text_tokens: int) -> float:
    """Matmul FLOPs of one DiT forward (2 per multiply-add); norms, RoPE and the embeddings are left out."""
    d = config.inner_dim
    per_block_tokens = 2 * tokens * (3 * d * d + d * d + 8 * d * d + d * d + d * d)  # qkv, wo, mlp, wq, wo
    per_block_text = 2 * text_tokens * 2 * d * d  # wkv on the text tokens
    attention = 4 * tokens * tokens * d + 4 * tokens * text_tokens * d
    io = 2 * tokens * d * config.in_channels * config.patch_size**2 * 2
    return float(batch * (config.num_layers * (per_block_tokens + per_block_text + attention) + io))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny config on the CPU")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT)
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the GPU's dense bf16 peak")
    parser.add_argument(
        "--sequential-guidance", action="store_true", help="the two passes one after the other"
    )
    args = parser.parse_args()

    config = TINY_DIT if args.tiny else DiTConfig()
    if args.tiny and (args.height, args.width, args.frames) == (
        DEFAULT_HEIGHT,
        DEFAULT_WIDTH,
        DEFAULT_FRAMES,
    ):
        args.height, args.width, args.frames = 64, 64, 34
    p = config.patch_size
    grid = (latent_frames_for(args.frames), args.height // 16, args.width // 16)
    tokens = grid[0] * (grid[1] // p) * (grid[2] // p)
    text_tokens = CLIP_TOKENS + LLM_TOKENS
    flops = 2 * forward_flops(config, 1, tokens, text_tokens)  # a guided step: cond + uncond
    params = parameter_count(config)
    print(f"DiT: {params / 1e6:,.1f}M parameters, {config.num_layers} layers, width {config.inner_dim}")
    print(
        f"video {args.height}x{args.width}x{args.frames} -> latents {grid} -> {tokens} tokens (+{text_tokens} text)"
    )
    print(
        f"one guided step: {flops / 1e12:,.4g} TFLOP; at 100% of {args.peak_tflops:.0f} TFLOP/s: {flops / args.peak_tflops / 1e12:.3g} s"
    )

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        print("no GPU here: the measured full-size figures are pending (run this script on a GPU machine)")
        return 0
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    sequential = args.sequential_guidance
    if cuda and torch.cuda.get_device_properties(0).total_memory < 120 * 2**30:
        sequential = True
    torch.manual_seed(0)
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            dit = StepVideoDiT(config).eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(previous)
    print(f"built on {device} in {dtype}: {time.perf_counter() - start:.1f} s")

    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn((1, grid[0], config.in_channels, grid[1], grid[2]), generator=generator).to(device)
    llm = torch.randn((2, LLM_TOKENS, config.llm_channels), generator=generator).to(device, dtype)
    clip = torch.randn((2, CLIP_TOKENS, config.clip_channels or 1), generator=generator).to(device, dtype)
    mask = torch.ones(2, LLM_TOKENS, dtype=torch.long, device=device)
    mask[1, 40:] = 0  # the negative prompt is shorter

    def velocity(latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        if not sequential:
            return dit(latents, timestep, llm, mask, clip)
        return torch.cat(
            [
                dit(latents[i : i + 1], timestep[i : i + 1], llm[i : i + 1], mask[i : i + 1], clip[i : i + 1])
                for i in range(2)
            ]
        )

    times = sampler.sampling_times(50, 13.0).tolist()

    def step() -> float:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = sampler.denoise_step(velocity, x, times[0], times[1], guidance_scale=9.0, model_dtype=dtype)
        if cuda:
            torch.cuda.synchronize()
        assert torch.isfinite(out).all()
        return time.perf_counter() - t0

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    warm = step()
    print(f"warm-up step: {warm:.4g} s")
    if warm > WARMUP_BUDGET_S:
        seconds, note = warm, " (the warm-up step; a second one would not fit in the command's time)"
    else:
        seconds, note = step(), ""
    print(
        f"guided step (cond + uncond{', sequential' if sequential else ', one batch of 2'}): {seconds:.4g} s{note}"
    )
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(
            f"peak GPU memory: {peak:.1f} GiB of {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB"
        )
        print(
            f"GPU: {torch.cuda.get_device_name(0)}; MFU: {flops / seconds / (args.peak_tflops * 1e12) * 100:.1f}% of {args.peak_tflops:.0f} TFLOP/s"
        )
    else:
        print(f"CPU: {flops / seconds / 1e9:.2f} GFLOP/s achieved (no MFU: the GPU figures are pending)")
    turbo, base = 10 * seconds, 50 * seconds
    print(f"DiT time per video: Turbo (10 steps) {turbo:.4g} s, Step-Video-T2V (50 steps) {base:.4g} s")
    if cuda and not args.tiny:
        print(
            f"report: {REPORT_SECONDS_PER_VIDEO:.0f} s per video on four GPUs (whole pipeline, 50 steps); "
            f"ours on one GPU, DiT only: 50 steps {base / REPORT_SECONDS_PER_VIDEO:.2f}x that, Turbo {turbo / REPORT_SECONDS_PER_VIDEO:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
