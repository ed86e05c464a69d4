"""Lumina-Video's multi-scale Next-DiT in plain torch, with the published checkpoint's parameter names.

One token sequence per video: the latents (C, F', H', W') are cut into pF x p x p patches by one of the
checkpoint's patch embedders (`all_x_embedder["{p}-{pF}"]`), so the same transformer runs at several
scales. Each block: RMS-normed, AdaLN-scaled input; self-attention over the video tokens (QK LayerNorm, 3D
RoPE, grouped KV heads) plus a tanh-gated cross-attention from the same queries to the Gemma-2 features
(RMS-normed per block), summed before the output projection; a SwiGLU feed-forward; each branch
RMS-normed again and added through a tanh gate. The AdaLN input is the sum of the timestep embedding, the
motion-score embedding (zero for a negative score: "no motion condition") and the masked mean of the
caption features. Attention is PyTorch's SDPA (the flash kernel on GPUs) with the caption padding masked,
instead of the reference's packed flash-attention calls; all videos of a batch share one size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiTConfig


def sinusoidal(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) -> (N, dim): cosines then sines of t at geometrically spaced frequencies, in float32."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
    angles = t.float()[:, None] * torch.exp(-math.log(max_period) * exponent)[None]
    embedding = torch.cat([angles.cos(), angles.sin()], dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class ScalarEmbedder(nn.Module):
    """A scalar (timestep or motion score) -> sinusoidal features -> two-layer SiLU MLP."""

    def __init__(self, width: int, frequencies: int = 256):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        first: nn.Linear = self.mlp[0]  # type: ignore[assignment]
        return self.mlp(sinusoidal(value, self.frequencies).to(first.weight.dtype))


def rope_angles(config: DiTConfig, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """(F*H*W, head_dim/2) rotation angles of a token grid: the head's channel pairs are split 2:3:3 over
    the frame, row and column index, each with frequencies theta^(-2i/d) of its own width d."""
    head_dim = config.dim // config.n_heads
    widths = (head_dim // 8 * 2, head_dim // 8 * 3, head_dim // 8 * 3)
    axes = []
    for size, width in zip(grid, widths, strict=True):
        inverse = 1.0 / (config.rope_theta ** (torch.arange(0, width, 2, dtype=torch.float64) / width))
        axes.append(torch.outer(torch.arange(size, dtype=torch.float64), inverse))
    f, h, w = grid
    table = torch.cat(
        [
            axes[0][:, None, None].expand(f, h, w, -1),
            axes[1][None, :, None].expand(f, h, w, -1),
            axes[2][None, None, :].expand(f, h, w, -1),
        ],
        dim=-1,
    )
    return table.reshape(f * h * w, -1).to(device=device, dtype=torch.float32)


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x (B, L, heads, head_dim) with adjacent channels as (real, imaginary) pairs, rotated by angles (L, d/2)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    real, imaginary = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([real * cos - imaginary * sin, real * sin + imaginary * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        dim, heads = config.dim, config.n_heads
        self.n_heads = heads
        self.n_kv_heads = config.n_kv_heads or heads
        self.head_dim = dim // heads
        kv_width = self.n_kv_heads * self.head_dim
        self.wq = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, kv_width, bias=False)
        self.wv = nn.Linear(dim, kv_width, bias=False)
        self.wk_y = nn.Linear(config.cap_feat_dim, kv_width, bias=False)
        self.wv_y = nn.Linear(config.cap_feat_dim, kv_width, bias=False)
        self.gate = nn.Parameter(torch.zeros(heads))
        self.wo = nn.Linear(heads * self.head_dim, dim, bias=False)
        norm = nn.LayerNorm if config.qk_norm else None
        self.q_norm: nn.Module = norm(heads * self.head_dim) if norm else nn.Identity()
        self.k_norm: nn.Module = norm(kv_width) if norm else nn.Identity()
        self.ky_norm: nn.Module = norm(kv_width) if norm else nn.Identity()

    def _heads(self, x: torch.Tensor, count: int) -> torch.Tensor:
        return x.unflatten(-1, (count, self.head_dim))

    def forward(
        self, x: torch.Tensor, angles: torch.Tensor, caption: torch.Tensor, caption_mask: torch.Tensor
    ) -> torch.Tensor:
        q = rotate(self._heads(self.q_norm(self.wq(x)), self.n_heads), angles).transpose(1, 2)
        k = rotate(self._heads(self.k_norm(self.wk(x)), self.n_kv_heads), angles).transpose(1, 2)
        v = self._heads(self.wv(x), self.n_kv_heads).transpose(1, 2)
        gqa = self.n_kv_heads != self.n_heads
        out = F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
        ky = self._heads(self.ky_norm(self.wk_y(caption)), self.n_kv_heads).transpose(1, 2)
        vy = self._heads(self.wv_y(caption), self.n_kv_heads).transpose(1, 2)
        out_y = F.scaled_dot_product_attention(
            q, ky, vy, attn_mask=caption_mask[:, None, None, :], enable_gqa=gqa
        )
        out = out + out_y * self.gate.tanh().view(1, -1, 1, 1).to(out_y.dtype)
        return self.wo(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        hidden = int(2 * 4 * config.dim / 3)
        if config.ffn_dim_multiplier is not None:
            hidden = int(config.ffn_dim_multiplier * hidden)
        hidden = config.multiple_of * math.ceil(hidden / config.multiple_of)
        self.w1 = nn.Linear(config.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, config.dim, bias=False)
        self.w3 = nn.Linear(config.dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        dim, eps = config.dim, config.norm_eps
        self.attention = Attention(config)
        self.feed_forward = FeedForward(config)
        self.attention_norm1 = nn.RMSNorm(dim, eps=eps)
        self.attention_norm2 = nn.RMSNorm(dim, eps=eps)
        self.ffn_norm1 = nn.RMSNorm(dim, eps=eps)
        self.ffn_norm2 = nn.RMSNorm(dim, eps=eps)
        self.attention_y_norm = nn.RMSNorm(config.cap_feat_dim, eps=eps)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(min(dim, 1024), 4 * dim))

    def forward(
        self,
        x: torch.Tensor,
        angles: torch.Tensor,
        caption: torch.Tensor,
        caption_mask: torch.Tensor,
        conditioning: torch.Tensor,
    ) -> torch.Tensor:
        scale_attn, gate_attn, scale_ffn, gate_ffn = self.adaLN_modulation(conditioning)[:, None].chunk(
            4, dim=-1
        )
        attended = self.attention(
            self.attention_norm1(x) * (1 + scale_attn), angles, self.attention_y_norm(caption), caption_mask
        )
        x = x + gate_attn.tanh() * self.attention_norm2(attended)
        fed = self.feed_forward(self.ffn_norm1(x) * (1 + scale_ffn))
        return x + gate_ffn.tanh() * self.ffn_norm2(fed)


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, f_patch: int, channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, f_patch * patch * patch * channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(min(dim, 1024), dim))

    def forward(self, x: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm_final(x) * (1 + self.adaLN_modulation(conditioning)[:, None]))


def combo_key(f_patch: int, patch: int) -> str:
    """The ModuleDict key of a patch embedder in the published state dict: "{spatial}-{temporal}"."""
    return f"{patch}-{f_patch}"


class MultiScaleNextDiT(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        dim, channels, width = config.dim, config.in_channels, min(config.dim, 1024)
        head_dim = dim // config.n_heads
        if head_dim % 16:
            raise ValueError(f"head width {head_dim} must be a multiple of 16 (the 3D RoPE split)")
        self.all_x_embedder = nn.ModuleDict(
            {combo_key(f, p): nn.Linear(f * p * p * channels, dim) for f, p in config.patch_combos}
        )
        self.all_final_layer = nn.ModuleDict(
            {combo_key(f, p): FinalLayer(dim, p, f, channels) for f, p in config.patch_combos}
        )
        self.t_embedder = ScalarEmbedder(width)
        self.motion_embedder = ScalarEmbedder(width)
        self.cap_embedder = nn.Sequential(
            nn.LayerNorm(config.cap_feat_dim), nn.Linear(config.cap_feat_dim, width)
        )
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.pad_token = nn.Parameter(torch.zeros(dim))  # in the published state dict; unused at inference

    def conditioning(
        self, t: torch.Tensor, motion_score: torch.Tensor, caption: torch.Tensor, caption_mask: torch.Tensor
    ) -> torch.Tensor:
        """The AdaLN input: timestep + motion (zero where the score is negative) + pooled caption."""
        time = self.t_embedder(t * self.config.t_scale)
        scaled = motion_score * self.config.motion_scale
        unconditioned = scaled < 0
        motion = self.motion_embedder(scaled.clamp(min=0))
        motion = motion.masked_fill(unconditioned[:, None], 0.0)
        weights = caption_mask.to(caption.dtype)[..., None]
        pooled = (caption * weights).sum(dim=1) / weights.sum(dim=1)
        return time + self.cap_embedder(pooled) + motion

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        caption: torch.Tensor,
        caption_mask: torch.Tensor,
        motion_score: torch.Tensor,
        *,
        f_patch: int,
        patch: int,
    ) -> torch.Tensor:
        """x (B, C, F', H', W'), t and motion_score (B,), caption (B, L, D) with its bool mask (B, L)
        -> the velocity, shaped like x."""
        key = combo_key(f_patch, patch)
        if key not in self.all_x_embedder:
            raise ValueError(f"this checkpoint has no {f_patch}x{patch} patch embedder")
        batch, channels, frames, height, width = x.shape
        if frames % f_patch or height % patch or width % patch:
            raise ValueError(
                f"latents {tuple(x.shape[2:])} do not split into {f_patch}x{patch}x{patch} patches"
            )
        grid = (frames // f_patch, height // patch, width // patch)
        tokens = x.reshape(batch, channels, grid[0], f_patch, grid[1], patch, grid[2], patch)
        tokens = tokens.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(batch, math.prod(grid), -1)
        hidden = self.all_x_embedder[key](tokens)
        angles = rope_angles(self.config, grid, x.device)
        mask = caption_mask.bool()
        conditioning = self.conditioning(t, motion_score, caption, mask)
        for layer in self.layers:
            hidden = layer(hidden, angles, caption, mask, conditioning)
        out = self.all_final_layer[key](hidden, conditioning)
        out = out.reshape(batch, *grid, f_patch, patch, patch, channels)
        return out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(batch, channels, frames, height, width)
