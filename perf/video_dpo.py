"""Speed and memory of a Video-DPO step and of reward-model scoring (random weights; figures, no asserts).

1. `dpo`: one Video-DPO step of `preference.training.video_dpo.VideoDPOTrainer` (LoRA rank 16 on the
   attention projections, bf16 autocast, AdamW, one pair per step) on a WanTransformer3DModel with Wan 2.1
   1.3B's shapes (dim 1536, 30 blocks, 12 heads, FFN 8960, umT5 text 512 x 4096) and a pair of
   480x832, 81-frame videos' latents (16 x 21 x 60 x 104), with and without gradient checkpointing:
   seconds per pair, peak device memory, and MFU. The step's FLOPs are counted by
   `torch.utils.flop_counter.FlopCounterMode` on one forward pass of the stacked pair (F), and a step is
   counted as 3 F: the reference forward, the policy forward, and the backward through frozen weights
   (input gradients only; the LoRA weight gradients are negligible); the recomputation of gradient
   checkpointing is not counted, as MFU usually does not. MFU = 3 F / seconds per step / peak, with the
   peak from `--peak-tflops` (default: the device's bf16 peak from perf/gpu_peak.py, else none and no MFU).
2. `reward`: reward-model scoring through the reward-scoring job's entry point,
   `preference.training.on_policy.score_candidate_files` (decode the 8 CLIP frames of each H.264 file, frozen
   open_clip features + the head), in videos per second on 81-frame 480x832 files. The image tower is open_clip's ViT-B-32
   (the default multilingual model's image tower) with random weights, with open_clip's own text tower in
   place of XLM-RoBERTa (no hub here; each prompt's text is encoded once, so it barely counts).

`--tiny` runs both on a tiny network and tiny videos (CPU, seconds): a check that the script works, not a
figure to quote. The full shapes need a GPU (about 40 GB with checkpointing at bf16).

Examples:
    python perf/video_dpo.py --tiny               # CPU
    python perf/video_dpo.py --device cuda        # a GPU machine: Wan 2.1 1.3B shapes
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.video.decode import write_video
from perf.gpu_peak import peak_bf16_tflops
from preference.training.on_policy import score_candidate_files
from preference.training.reward_model import RewardHead, RewardScorer
from preference.training.video_dpo import (
    DIFFUSERS_ADAPTER,
    DPOConfig,
    PairLatents,
    VideoDPOTrainer,
    write_pair_latents,
)

WAN_1_3B = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}
WAN_LATENTS = (16, 21, 60, 104)  # 81 frames at 480x832 through Wan's VAE (4x time, 8x space)
WAN_TEXT = (512, 4096)
WAN_VIDEO = (81, 480, 832)

GPU_PENDING = (
    "GPU figures pending: these are tiny CPU figures that check the script works; the Video-DPO step at Wan "
    "2.1 1.3B's shapes (seconds per pair, peak memory with and without gradient checkpointing, MFU) and "
    "reward-model scoring at 480x832 need `python perf/video_dpo.py --device cuda` on a GPU machine."
)

TINY = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "in_channels": 4,
    "out_channels": 4,
    "text_dim": 16,
    "freq_dim": 16,
    "ffn_dim": 32,
    "num_layers": 2,
    "rope_max_seq_len": 32,
}
TINY_LATENTS = (4, 3, 8, 8)
TINY_TEXT = (5, 16)
TINY_VIDEO = (17, 48, 64)
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_transformer(config: dict, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    model: Any
    with torch.device(device):
        model = WanTransformer3DModel(**config)
    if dtype != torch.float32:
        model.to(dtype)
        keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
        for name, module in model.named_modules():  # as from_pretrained(torch_dtype=...) would keep them
            if name and any(part in keep for part in name.split(".")):
                module.to(torch.float32)
    return model


def forward_flops(model: torch.nn.Module, latents: tuple, text: tuple, device: torch.device, dtype) -> int:
    """FLOPs of one forward pass on a stacked pair (2 videos), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    hidden = torch.randn(2, *latents, device=device, dtype=dtype)
    encoder = torch.randn(2, *text, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(
            hidden_states=hidden,
            timestep=torch.full((2,), 500.0, device=device),
            encoder_hidden_states=encoder,
        )
    return int(counter.get_total_flops())


def section_dpo(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    config, latents, text = (
        (TINY, TINY_LATENTS, TINY_TEXT) if args.tiny else (WAN_1_3B, WAN_LATENTS, WAN_TEXT)
    )
    dtype = torch.bfloat16 if args.mixed_precision == "bf16" and device.type == "cuda" else torch.float32
    flops = None
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "latents"
        generator = torch.Generator().manual_seed(0)
        write_pair_latents(
            folder,
            record_id="perf",
            prompt="a perf pair",
            split="train",
            chosen=torch.randn(*latents, generator=generator),
            rejected=torch.randn(*latents, generator=generator),
            conditioning={"encoder_hidden_states": torch.randn(*text, generator=generator)},
        )
        for checkpointing in (True, False):
            from accelerate import Accelerator

            model = build_transformer(config, device, dtype)
            if flops is None:
                flops = forward_flops(model, latents, text, device, dtype)
            accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=device.type == "cpu")
            trainer = VideoDPOTrainer(
                model,
                DIFFUSERS_ADAPTER,
                DPOConfig(
                    max_steps=args.steps + 1,
                    lora_rank=16,
                    mixed_precision=args.mixed_precision,
                    gradient_checkpointing=checkpointing,
                    checkpoint_every=0,
                    validate_every=0,
                ),
                PairLatents(folder),
                Path(scratch) / f"run-{checkpointing}",
                accelerator=accelerator,
            )
            name = "with_checkpointing" if checkpointing else "without_checkpointing"
            try:
                trainer.train_step()  # warm-up: kernels, allocator
                synchronize(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
                for _ in range(args.steps):
                    trainer.train_step()
                synchronize(device)
                seconds = (time.perf_counter() - start) / args.steps
                row = {"seconds_per_pair": round(seconds, 4)}
                if device.type == "cuda":
                    row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                if args.peak_tflops:
                    row["mfu"] = round(3 * flops / seconds / (args.peak_tflops * 1e12), 4)
            except torch.OutOfMemoryError:
                row = {"out_of_memory": True}
            report["dpo"][name] = row
            print(f"dpo {name}: {json.dumps(row)}", flush=True)
            del trainer, model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    report["dpo"]["forward_gflop_per_pair"] = round(flops / 1e9, 3) if flops else None
    report["dpo"]["step_gflop_counted"] = round(3 * flops / 1e9, 3) if flops else None


def section_reward(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    from metrics.video.clip_score import ClipScorer

    torch.manual_seed(0)
    if args.tiny:
        model = open_clip.CLIP(**TINY_CLIP).to(device)
        tokenizer = SimpleTokenizer(context_length=16)
        preprocess = {"size": 32, "mean": (0.5,) * 3, "std": (0.25,) * 3}
        frames, height, width = TINY_VIDEO
    else:
        model = open_clip.create_model("ViT-B-32", pretrained=None, device=device, precision="fp16")
        tokenizer = open_clip.get_tokenizer("ViT-B-32")
        preprocess = None
        frames, height, width = WAN_VIDEO
    clip = ClipScorer(model, tokenizer, preprocess_cfg=preprocess)
    embedding_dim = int(clip.text_embeddings(["x"]).shape[1])
    scorer = RewardScorer(clip, RewardHead(4 * embedding_dim, hidden=64).to(device))
    # Files, as the reward-scoring job reads them (written first, not timed).
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="reward-perf-"))
    paths = []
    for index in range(min(args.videos, 4)):
        paths.append(folder / f"video{index}.mp4")
        write_video(paths[-1], rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8))
    paths = [paths[i % len(paths)] for i in range(args.videos)]
    prompts = [f"prompt {i % 4}" for i in range(args.videos)]

    def score(count: int) -> list:
        return list(
            score_candidate_files(
                scorer,
                paths[:count],
                video_ids=[str(i) for i in range(count)],
                prompts=prompts[:count],
                seeds=[0] * count,
            )
        )

    score(1)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    score(args.videos)
    synchronize(device)
    seconds = time.perf_counter() - start
    shutil.rmtree(folder)
    row = {"videos": args.videos, "frames": frames, "size": f"{height}x{width}"}
    row["videos_per_second"] = round(args.videos / seconds, 2)
    report["reward"] = row
    print(f"reward scoring: {json.dumps(row)}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny network and videos (CPU check)")
    parser.add_argument("--steps", type=int, default=None, help="timed DPO steps (default 3, tiny 10)")
    parser.add_argument("--videos", type=int, default=None, help="videos scored (default 32, tiny 16)")
    parser.add_argument("--mixed-precision", choices=("bf16", "no"), default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (bf16 dense)")
    parser.add_argument("--sections", default="dpo,reward")
    args = parser.parse_args()
    args.steps = args.steps or (10 if args.tiny else 3)
    args.videos = args.videos or (16 if args.tiny else 32)
    if args.mixed_precision is None:
        args.mixed_precision = "bf16" if args.device.startswith("cuda") else "no"
    if args.peak_tflops is None and args.device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        args.peak_tflops = peak_bf16_tflops(name)
    return args


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if not args.tiny and device.type == "cpu":
        print("the full Wan 2.1 1.3B shapes need a GPU; use --tiny on a CPU", file=sys.stderr)
        raise SystemExit(2)
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny networks run faster on one thread than split over busy cores
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dpo": {},
    }
    report["tiny"] = args.tiny
    sections = set(args.sections.split(","))
    if "dpo" in sections:
        section_dpo(args, device, report)
    if "reward" in sections:
        section_reward(args, device, report)
    print(json.dumps(report, indent=2))
    if device.type != "cuda":
        print(GPU_PENDING, flush=True)


if __name__ == "__main__":
    main()
