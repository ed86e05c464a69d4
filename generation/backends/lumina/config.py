"""Lumina-Video's configuration: the DiT sizes by the published model name, the official sampling defaults
of the f24R960 checkpoint, and the "scales" schedule of multi-scale sampling (no Django, no weights).

The published folder (Alpha-VLLM/Lumina-Video-f24R960) holds `model_args.pth`, the training run's
`argparse.Namespace` (`model`, `qk_norm`, `patch_sizes`, `f_patch_sizes`, `rope_theta`, `t_scale`,
`motion_scale`, ...), and `consolidated.00-of-01.safetensors` (or `.pth`), the DiT's state dict. The text
encoder is Gemma-2-2B (`google/gemma-2-2b`) and the VAE CogVideoX-2B's (`THUDM/CogVideoX-2b`, `vae/`), both
in their own published layouts.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Published model names -> (dim, layers, heads, kv heads); `model_args.model` names one of them.
MODEL_SIZES: dict[str, tuple[int, int, int, int | None]] = {
    "MultiScaleNextDiT_2B": (2304, 24, 16, None),
    "MultiScaleNextDiT_2B_GQA": (2304, 24, 16, 8),
    "MultiScaleNextDiT_4B_GQA": (3072, 32, 24, 8),
}

SYSTEM_PROMPT = (
    "You are an assistant designed to generate high-quality videos with the highest degree of image-text "
    "alignment based on user prompts. <Prompt Start> "
)
MAX_TEXT_TOKENS = 256  # the official tokenizer call: right padding to a multiple of 8, truncation at 256
TEXT_HIDDEN_LAYER = -2  # the official features: Gemma-2's second-to-last hidden states

# The official "f24F96R960" and "f24F96R960-MultiScale" sample configs in our settings' terms. A time-aware
# value `(v0, (t1, v1), ...)` there means v0 while t < t1, then v1; t runs from 0 (noise) to 1 (data).
SINGLE_SCALE = "1x2"
MULTI_SCALE = "2x4,2x2@0.03,1x2@0.125"
OFFICIAL_DEFAULTS: dict[str, Any] = {
    "height": 704,
    "width": 1248,
    "frames": 96,
    "fps": 24.0,
    "steps": 69,  # the official step=70 is a time grid of 70 points: 69 Euler steps (DiT evaluations)
    "time_shift": 24.0,
    "guidance_scale": 20.0,  # cfg=(20, (0.2, 0))
    "guidance_until": 0.2,
    "renorm": 2.0,
    "motion_score": 6.0,  # motion=6.0
    "negative_motion_score": 2.0,  # negMotion=(2.0, (0.05, 6.0)): 6.0 is the positive motion score
    "negative_motion_until": 0.05,
    "scales": SINGLE_SCALE,
}


@dataclass(frozen=True)
class DiTConfig:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None
    in_channels: int = 16
    cap_feat_dim: int = 2304
    patch_sizes: tuple[int, ...] = (2,)
    f_patch_sizes: tuple[int, ...] = (2,)
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    qk_norm: bool = False
    rope_theta: float = 10000.0
    t_scale: float = 1.0
    motion_scale: float = 1.0

    @property
    def patch_combos(self) -> tuple[tuple[int, int], ...]:
        """(temporal patch, spatial patch) of each patch embedder the checkpoint has."""
        return tuple(zip(self.f_patch_sizes, self.patch_sizes, strict=True))


def dit_config_from_args(
    args: argparse.Namespace | Mapping[str, Any], *, in_channels: int, cap_feat_dim: int
) -> DiTConfig:
    """The DiT of a `model_args.pth`: the published model name gives the sizes; explicit `dim`, `n_layers`,
    `n_heads`, `n_kv_heads` or `multiple_of` entries (the tiny checkpoints') override them."""
    values = dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args)
    name = values.get("model")
    if name in MODEL_SIZES:
        dim, layers, heads, kv_heads = MODEL_SIZES[name]
    elif "dim" in values:
        dim, layers, heads, kv_heads = values["dim"], values["n_layers"], values["n_heads"], None
    else:
        raise ValueError(f"model_args names an unknown model {name!r}; known: {sorted(MODEL_SIZES)}")
    return DiTConfig(
        dim=int(values.get("dim", dim)),
        n_layers=int(values.get("n_layers", layers)),
        n_heads=int(values.get("n_heads", heads)),
        n_kv_heads=values.get("n_kv_heads", kv_heads),
        in_channels=in_channels,
        cap_feat_dim=cap_feat_dim,
        patch_sizes=tuple(int(p) for p in values.get("patch_sizes", (2,))),
        f_patch_sizes=tuple(int(p) for p in values.get("f_patch_sizes", (2,))),
        multiple_of=int(values.get("multiple_of", 256)),
        qk_norm=bool(values.get("qk_norm", False)),
        rope_theta=float(values.get("rope_theta", 10000.0)),
        t_scale=float(values.get("t_scale", 1.0)),
        motion_scale=float(values.get("motion_scale", 1.0)),
    )


@dataclass(frozen=True)
class ScaleStep:
    """From time `start` on, the DiT runs with this (temporal patch, spatial patch)."""

    start: float
    f_patch: int
    patch: int


def parse_scales(text: str) -> tuple[ScaleStep, ...]:
    """`"2x4,2x2@0.03,1x2@0.125"`: temporal x spatial patch, each from its time on (the first from t = 0)."""
    steps: list[ScaleStep] = []
    for index, part in enumerate(p.strip() for p in text.split(",")):
        combo, _, start_text = part.partition("@")
        try:
            f_text, p_text = combo.lower().split("x")
            start = float(start_text) if start_text else 0.0
            step = ScaleStep(start, int(f_text), int(p_text))
        except ValueError:
            raise ValueError(f"{part!r} is not TEMPORALxSPATIAL[@TIME], e.g. 2x4 or 1x2@0.125") from None
        if index == 0 and start != 0.0:
            raise ValueError("the first scale starts at time 0; write it without @")
        if index > 0 and not steps[-1].start < start < 1.0:
            raise ValueError(f"{part!r}: start times must increase within (0, 1)")
        steps.append(step)
    return tuple(steps)


def scale_at(scales: Sequence[ScaleStep], t: float) -> ScaleStep:
    current = scales[0]
    for step in scales[1:]:
        if t >= step.start:
            current = step
    return current
