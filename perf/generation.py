"""Speed of our diffusers backend against diffusers' own pipeline call, on the same inputs.

What it does, in one run on one machine:
1. Builds a checkpoint folder with random weights (never a hub download): with `--tiny` the tiny Wan of
   `generation.backends.tiny`; by default Wan 2.1 T2V 1.3B's transformer config and Wan 2.1's VAE config
   (the text encoder is a 1-layer UMT5 of the real width, 4096: text encoding is a negligible share of a
   video, and a random 5.7B UMT5-XXL would only cost memory and build time; `--full-text-encoder` builds it).
2. Loads it through `DiffusersBackend.load` and times, alternating, `--repeats` times each:
   (a) diffusers' own call `pipe(prompt, ..., latents=...)` on the loaded pipeline, and
   (b) our `backend.generate(...)` with the same prompt, settings and initial latents (progress reported
       per step, cancel checked per step, uint8 conversion included),
   after one short warm-up of each. Prints seconds per video and per denoising step, peak GPU memory, and
   the overhead ratio (b)/(a) (goal: under 3%).
3. (c) the worker path: one video through the Django generation-runs feature (library call through a
   worker, transcode included), when that feature provides `generation.runs.perf.time_one_video`; until
   then the line says it is pending.
4. On CUDA: runs the timing with attention restricted to SDPA's flash kernel
   (`torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)`: a call that cannot use it fails instead
   of falling back), and prints the MFU of one transformer forward at the run's shape: FLOPs counted by
   `torch.utils.flop_counter.FlopCounterMode`, time by CUDA events, peak from `--peak-tflops` or the
   device's name (perf/gpu_peak.py: H200 790 bf16 TFLOP/s).

Examples:
    .venv/bin/python perf/generation.py --tiny                  # CPU, seconds
    python perf/generation.py                                    # GPU: Wan 2.1 1.3B, 480x832, 81 frames, 50 steps
    python perf/generation.py --steps 20 --repeats 2             # shorter GPU run
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation.backends import GenerationRequest, load_backend
from generation.backends.diffusers_backend import DiffusersBackend
from generation.backends.tiny import make_tiny_wan, tiny_tokenizer
from perf.gpu_peak import peak_bf16_tflops

PROMPT = "A red fox runs through a snowy forest at dawn, the camera tracking it from the side"
NEGATIVE = "blurry, static, distorted"

# Wan 2.1 T2V 1.3B (Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json).
WAN_1_3B_TRANSFORMER = {
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
UMT5_XXL: dict[str, Any] = {"d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64}
# Dense BF16 tensor-core peaks (TFLOP/s) by device name.


def make_wan_1_3b(folder: Path, dtype: torch.dtype, device: str, full_text_encoder: bool) -> Path:
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = tiny_tokenizer(max_length=512)
    encoder = UMT5_XXL if full_text_encoder else {**UMT5_XXL, "num_layers": 1}
    # Built in float32 and saved; `DiffusersBackend.load(dtype=...)` casts, keeping the modules diffusers
    # keeps in float32 (norms, time embedding, RoPE) as a real checkpoint load does.
    with torch.device(device):
        text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), **encoder))
        pipe = WanPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder.to(dtype) if full_text_encoder else text_encoder,
            vae=AutoencoderKLWan(),  # Wan 2.1's VAE config is the class default
            transformer=WanTransformer3DModel(**WAN_1_3B_TRANSFORMER),
            scheduler=UniPCMultistepScheduler(
                prediction_type="flow_prediction",
                use_flow_sigmas=True,
                flow_shift=3.0,
                num_train_timesteps=1000,
            ),
        )
    pipe.save_pretrained(folder)
    del pipe
    return folder


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def attention_restriction(flash: bool) -> Iterator[None]:
    if not flash:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        yield


def timed(device: torch.device, run: Callable[[], Any]) -> tuple[float, float]:
    """(seconds, peak GiB allocated) of one call."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return seconds, peak


def diffusers_call(backend: DiffusersBackend, settings: dict[str, Any], latents: torch.Tensor) -> Any:
    """diffusers' own pipeline call with the same arguments our backend passes, minus our callback."""
    backend.prepare_scheduler(settings)
    return backend.pipe(
        **backend.call_arguments([PROMPT], settings, NEGATIVE),
        latents=backend.pipeline_latents([latents]),
    )


def worker_path_seconds(checkpoint: Path, settings: dict[str, Any], latents: torch.Tensor) -> float | None:
    """Hook for the generation-runs feature: one video through the worker path, in seconds, or None.

    The feature completes this by providing `generation.runs.perf.time_one_video(checkpoint=, settings=,
    prompt=, negative_prompt=, latents=) -> float` (library call through a worker, transcode and storing
    included), so the ratio below compares the whole path with diffusers' own call.
    """
    try:
        from generation.runs import perf as runs_perf  # type: ignore[import-not-found]
    except ImportError:
        return None
    return float(
        runs_perf.time_one_video(
            checkpoint=checkpoint, settings=settings, prompt=PROMPT, negative_prompt=NEGATIVE, latents=latents
        )
    )


def transformer_mfu(
    backend: DiffusersBackend, settings: dict[str, Any], latents: torch.Tensor, peak: float | None
) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    pipe, device = backend.pipe, backend.device
    hidden = backend.pipeline_latents([latents]).to(backend.dtype)
    with torch.no_grad():
        text, _ = pipe.encode_prompt(
            PROMPT,
            do_classifier_free_guidance=False,
            device=device,
            max_sequence_length=backend.call_arguments([PROMPT], settings, None).get(
                "max_sequence_length", 512
            ),
        )
        text = text.to(backend.dtype)
        timestep = torch.full((1,), 500.0, device=device)

        def forward() -> Any:
            return pipe.transformer(
                hidden_states=hidden, timestep=timestep, encoder_hidden_states=text, return_dict=False
            )

        counter = FlopCounterMode(display=False)
        with counter:
            forward()
        flops = counter.get_total_flops()
        forward()
        synchronize(device)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            forward()
            synchronize(device)
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    achieved = flops / seconds / 1e12
    tokens = hidden.shape[2] * hidden.shape[3] * hidden.shape[4] // 4
    print(
        f"transformer forward: {flops / 1e9:.3f} GFLOP at {tokens} video tokens, {seconds * 1e3:.1f} ms, {achieved:.2f} TFLOP/s"
    )
    if peak:
        print(f"MFU of the transformer forward: {100 * achieved / peak:.1f}% of {peak:.0f} TFLOP/s")
    else:
        print("MFU: n/a (no known peak for this device; give --peak-tflops)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny Wan on the CPU (figures in seconds)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument(
        "--checkpoint", type=Path, help="an existing checkpoint folder instead of building one"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the random checkpoint is written (default: a temp dir)"
    )
    parser.add_argument(
        "--full-text-encoder", action="store_true", help="a random UMT5-XXL (5.7B) text encoder"
    )
    parser.add_argument("--no-flash", action="store_true", help="do not restrict attention to SDPA flash")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak for the MFU")
    args = parser.parse_args()

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tiny = args.tiny
    defaults = (
        {"height": 64, "width": 64, "frames": 17, "steps": 8, "repeats": 3}
        if tiny
        else {"height": 480, "width": 832, "frames": 81, "steps": 50, "repeats": 1}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    flash = device.type == "cuda" and not args.no_flash

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        started = time.perf_counter()
        if args.checkpoint:
            checkpoint = args.checkpoint
        elif tiny:
            checkpoint = make_tiny_wan(Path(scratch) / "wan-tiny")
        else:
            checkpoint = make_wan_1_3b(Path(scratch) / "wan-1.3b", dtype, str(device), args.full_text_encoder)
        backend = load_backend("diffusers", checkpoint, device=device, dtype=dtype)
        assert isinstance(backend, DiffusersBackend)
        print(
            f"checkpoint {'tiny Wan' if tiny else 'Wan 2.1 1.3B config, random weights'} built and loaded "
            f"in {time.perf_counter() - started:.1f} s on {device} ({str(dtype).removeprefix('torch.')})"
        )
        if device.type == "cuda":
            print(f"device: {torch.cuda.get_device_name(device)}")
        settings = backend.capabilities.validate(
            {
                "height": args.height,
                "width": args.width,
                "frames": args.frames,
                "steps": args.steps,
                "negative_prompt": NEGATIVE,
            }
        )
        shape = backend.capabilities.latent_shape(height=args.height, width=args.width, frames=args.frames)
        latents = backend.latents_for(
            GenerationRequest(prompts=[PROMPT], settings=settings, seeds=[0]), settings
        )[0]
        print(
            f"{args.height}x{args.width}, {args.frames} frames, {args.steps} steps, guidance "
            f"{settings['guidance_scale']}, latents {tuple(shape)}; {args.repeats} timed run(s) each"
        )

        step_times: list[float] = []

        def ours(record: bool) -> None:
            def progress(done: int, total: int) -> None:
                if record:
                    step_times.append(time.perf_counter())

            request = GenerationRequest(
                prompts=[PROMPT], settings=settings, latents=[latents], negative_prompt=NEGATIVE
            )
            backend.generate(request, progress=progress, should_stop=lambda: False)

        with attention_restriction(flash):
            warm = {**settings, "steps": 2}
            diffusers_call(backend, warm, latents)
            backend.generate(GenerationRequest(prompts=[PROMPT], settings=warm, latents=[latents]))
            if flash:
                print("attention: SDPA restricted to FLASH_ATTENTION, and the warm-up ran under it")
            reference_s, ours_s, peaks = [], [], []
            per_step = []
            for repeat in range(args.repeats):
                # Alternate which goes first, so neither always runs on a warmer cache.
                for which in ("a", "b") if repeat % 2 == 0 else ("b", "a"):
                    if which == "a":
                        seconds, peak_reference = timed(
                            device, lambda: diffusers_call(backend, settings, latents)
                        )
                        reference_s.append(seconds)
                    else:
                        step_times.clear()
                        seconds, peak_ours = timed(device, lambda: ours(True))
                        ours_s.append(seconds)
                        if len(step_times) > 1:
                            per_step.append((step_times[-1] - step_times[0]) / (len(step_times) - 1))
                peaks.append((peak_reference, peak_ours))
            worker_s = worker_path_seconds(checkpoint, settings, latents)

        reference, mine = statistics.median(reference_s), statistics.median(ours_s)
        print(
            f"(a) diffusers pipeline call: {reference:8.3f} s/video  {reference / args.steps:8.4f} s/step (video/steps)"
        )
        print(
            f"(b) our backend.generate:    {mine:8.3f} s/video  {mine / args.steps:8.4f} s/step (video/steps)"
            + (
                f"  {statistics.median(per_step):.4f} s/denoising step (between step callbacks)"
                if per_step
                else ""
            )
        )
        print(
            f"overhead (b)/(a): {mine / reference:.4f} ({100 * (mine / reference - 1):+.2f}%), goal under +3%"
        )
        if worker_s is None:
            print(
                "(c) worker path (run through a worker, transcode included): pending — "
                "generation.runs.perf.time_one_video is not on this branch"
            )
        else:
            print(
                f"(c) worker path: {worker_s:8.3f} s/video, ratio to (a) {worker_s / reference:.4f} "
                f"({100 * (worker_s / reference - 1):+.2f}%)"
            )
        if device.type == "cuda":
            print(
                f"peak GPU memory: (a) {max(p[0] for p in peaks):.2f} GiB, (b) {max(p[1] for p in peaks):.2f} GiB"
            )
        else:
            print("peak GPU memory: n/a on the CPU")
        peak: float | None = args.peak_tflops
        if peak is None and device.type == "cuda":
            name = torch.cuda.get_device_name(device)
            peak = peak_bf16_tflops(name)
        with attention_restriction(flash):
            transformer_mfu(backend, settings, latents, peak)
        backend.close()


if __name__ == "__main__":
    main()
