"""Lumina-Video's sampler: flow matching integrated by Euler from noise (t = 0) to data (t = 1).

Convention (the official `transport` package, Linear path, velocity prediction): x_t = t x_1 + (1 - t) x_0
with x_0 the noise and x_1 the data, so the DiT predicts v = x_1 - x_0. The time grid is `steps + 1`
evenly spaced points on [0, 1], each shifted by t' = t / (t + s - s t) with s the time shift (s > 1 spends
more steps near the noise); step i moves x by (t_{i+1} - t_i) v(x, t_i).

Guidance, applied as documented in the official `forward_with_multi_cfg`, while t < `guidance_until`:
    v = v_pos + g (v_pos - v_neg)
where v_pos is the DiT on the prompt with the motion score m and v_neg the DiT on the negative prompt with
the negative motion score m_neg while t < `negative_motion_until` and m afterwards: early on, guidance
pushes away from both the negative prompt and a low motion score, so a larger m - m_neg gives more motion.
If `renorm` > 0 the guided velocity's norm (per video) is capped at renorm * ||v_pos||. From
`guidance_until` on, only v_pos is computed. Multi-scale sampling changes the DiT's patch size with t
(`config.parse_scales`): coarse patches early, where the layout forms, the finest at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .config import ScaleStep, scale_at
from .dit import MultiScaleNextDiT


def time_grid(steps: int, shift: float) -> torch.Tensor:
    """The steps + 1 shifted time points from 0 to 1, in float32."""
    t = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float32)
    return t / (t + shift - shift * t) if shift else t


@dataclass(frozen=True)
class Guidance:
    scale: float
    until: float
    renorm: float
    motion_score: float
    negative_motion_score: float
    negative_motion_until: float

    def scale_at(self, t: float) -> float:
        return self.scale if t < self.until else 0.0

    def negative_motion_at(self, t: float) -> float:
        return self.negative_motion_score if t < self.negative_motion_until else self.motion_score


def combine(
    positive: torch.Tensor, negative: torch.Tensor | None, scale: float, renorm: float
) -> torch.Tensor:
    """v_pos + scale (v_pos - v_neg), its per-video norm capped at renorm * ||v_pos|| when renorm > 0."""
    positive, guided = positive.float(), positive.float()
    if negative is not None and scale > 0:
        guided = positive + scale * (positive - negative.float())
    if renorm > 0:
        dims = tuple(range(1, positive.ndim))
        cap = torch.linalg.vector_norm(positive, dim=dims, keepdim=True) * renorm
        norm = torch.linalg.vector_norm(guided, dim=dims, keepdim=True)
        guided = torch.where(norm < cap, guided, guided * (cap / norm))
    return guided


@dataclass
class TextConditions:
    """Gemma-2 features of the prompts (B, L, D) and of the negative prompts, with their masks."""

    positive: torch.Tensor
    positive_mask: torch.Tensor
    negative: torch.Tensor
    negative_mask: torch.Tensor


def _pad_to(features: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    extra = length - features.shape[1]
    if extra <= 0:
        return features, mask
    return (
        torch.nn.functional.pad(features, (0, 0, 0, extra)),
        torch.nn.functional.pad(mask, (0, extra)),
    )


def velocity(
    dit: MultiScaleNextDiT,
    x: torch.Tensor,
    t: float,
    text: TextConditions,
    guidance: Guidance,
    scales: Sequence[ScaleStep],
) -> torch.Tensor:
    """The guided velocity at time t for the batch x (B, C, F', H', W'), in float32."""
    batch = x.shape[0]
    scale = scale_at(scales, t)
    weight = guidance.scale_at(t)
    dtype = next(dit.parameters()).dtype
    motion = [guidance.motion_score] * batch
    caption, mask = text.positive, text.positive_mask
    inputs = x
    if weight > 0:
        length = max(text.positive.shape[1], text.negative.shape[1])
        pos_feats, pos_mask = _pad_to(text.positive, text.positive_mask, length)
        neg_feats, neg_mask = _pad_to(text.negative, text.negative_mask, length)
        caption, mask = torch.cat([pos_feats, neg_feats]), torch.cat([pos_mask, neg_mask])
        motion += [guidance.negative_motion_at(t)] * batch
        inputs = torch.cat([x, x])
    times = torch.full((inputs.shape[0],), t, dtype=torch.float32, device=x.device).to(dtype)
    out = dit(
        inputs.to(dtype),
        times,
        caption.to(dtype),
        mask,
        torch.tensor(motion, dtype=dtype, device=x.device),
        f_patch=scale.f_patch,
        patch=scale.patch,
    )
    negative = out[batch:] if weight > 0 else None
    return combine(out[:batch], negative, weight, guidance.renorm)


def sample(
    dit: MultiScaleNextDiT,
    latents: torch.Tensor,
    text: TextConditions,
    *,
    steps: int,
    shift: float,
    guidance: Guidance,
    scales: Sequence[ScaleStep],
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Euler integration of the initial noise `latents` to data, in float32; `on_step(i)` after each step
    (it may raise to stop)."""
    grid = time_grid(steps, shift).tolist()
    x = latents.float()
    for index in range(steps):
        t, t_next = grid[index], grid[index + 1]
        x = x + (t_next - t) * velocity(dit, x, t, text, guidance, scales)
        if on_step is not None:
            on_step(index)
    return x
