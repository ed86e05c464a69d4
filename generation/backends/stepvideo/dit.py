"""Step-Video-T2V's DiT: 3D full attention over latent patches, cross-attention to text, AdaLN-single.

Each block: LayerNorm + timestep shift/scale -> self-attention (QK RMS-norm, 3D RoPE) gated into the
residual; cross-attention to the text tokens (QK RMS-norm, no modulation) added to the residual;
LayerNorm + shift/scale -> tanh-GELU MLP gated into the residual. The timestep (in [0, 1], scaled by
1000) is embedded once (`adaln_single`) into the six modulation vectors every block adds to its own
learned table. Text: Step-LLM states through a parameter-free LayerNorm and a two-layer projection,
with the projected Hunyuan-CLIP states in front of them.

Attention goes through `torch.nn.functional.scaled_dot_product_attention`: the self-attention has no
mask, so in bf16 on Hopper it takes the flash kernel. Module names follow the released
`transformer/` state dict, so it loads unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiTConfig


class RMSNorm(nn.Module):
    """Normalised in float32, cast back, then scaled (the order the released weights were trained with)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


# One (cos, sin) pair per axis (frame, height, width), each (1, tokens, 1, channels of that axis).
RopeTables = list[tuple[torch.Tensor, torch.Tensor]]


def rope_tables(
    grid: tuple[int, int, int],
    split: tuple[int, int, int],
    device: torch.device,
    dtype: torch.dtype,
    base: float = 1e4,
) -> RopeTables:
    """The 3D RoPE tables of a latent grid, computed once per forward and shared by every layer.

    Head channels are split into frame/height/width parts, each rotated by its own coordinate (tokens
    ordered frame-major, then row-major, as the patch embedding flattens them). cos/sin are taken in
    the activation dtype, as the released model computed them.
    """
    frames, height, width = grid
    positions = (
        torch.arange(frames, device=device).repeat_interleave(height * width),
        torch.arange(height, device=device).repeat_interleave(width).repeat(frames),
        torch.arange(width, device=device).repeat(frames * height),
    )
    tables = []
    for dim, pos in zip(split, positions, strict=True):
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
        angles = pos.float()[:, None] * inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1).to(dtype)
        tables.append((angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]))
    return tables


def apply_rope(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """Rotate each axis's channels of x (B, S, H, D) in the half-split layout."""
    parts = torch.split(x, [cos.shape[-1] for cos, _ in tables], dim=-1)
    out = []
    for part, (cos, sin) in zip(parts, tables, strict=True):
        half = part.shape[-1] // 2
        rotated = torch.cat((-part[..., half:], part[..., :half]), dim=-1)
        out.append(part * cos + rotated * sin)
    return torch.cat(out, dim=-1)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, S, H, D) in and out, through SDPA; mask is boolean (B, Sq or 1, Sk), True where attended."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None])
    return out.transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.head_dim = head_dim
        # per head: [q | k | v] side by side
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(head_dim)
        self.k_norm = RMSNorm(head_dim)

    def forward(self, x: torch.Tensor, rope: RopeTables) -> torch.Tensor:
        # heads from the width (-1): a tensor-parallel shard of whole heads works unchanged
        qkv = self.wqkv(x).view(*x.shape[:-1], -1, 3 * self.head_dim)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        q = apply_rope(self.q_norm(q), rope)
        k = apply_rope(self.k_norm(k), rope)
        return self.wo(attention(q, k, v).flatten(2))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.head_dim = head_dim
        self.heads = dim // head_dim
        self.wq = nn.Linear(dim, dim, bias=False)
        # per head: [k | v]
        self.wkv = nn.Linear(dim, 2 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(head_dim)
        self.k_norm = RMSNorm(head_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q = self.wq(x).view(*x.shape[:-1], -1, self.head_dim)
        k, v = self.wkv(context).view(*context.shape[:-1], -1, 2 * self.head_dim).split(self.head_dim, -1)
        return self.wo(attention(self.q_norm(q), self.k_norm(k), v, mask).flatten(2))


class GeluProjection(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        # the released keys are ff.net.0.proj and ff.net.2 (index 1 held a dropout)
        self.net = nn.ModuleList(
            [GeluProjection(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim, bias=False)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class StepVideoBlock(nn.Module):
    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = SelfAttention(dim, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.attn2 = CrossAttention(dim, head_dim)
        self.ff = FeedForward(dim)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        modulation: torch.Tensor,
        mask: torch.Tensor | None,
        rope: RopeTables,
    ) -> torch.Tensor:
        mod = self.scale_shift_table[None] + modulation.view(-1, 6, self.dim)
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        x = x + gate_attn * self.attn1(self.norm1(x) * (1 + scale_attn) + shift_attn, rope)
        x = x + self.attn2(x, context, mask)
        return x + gate_mlp * self.ff(self.norm2(x) * (1 + scale_mlp) + shift_mlp)


def timestep_features(t: torch.Tensor, channels: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features, cosine half first (flip_sin_to_cos, no frequency shift)."""
    half = channels // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLPEmbedding(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, out_features)
        self.linear_2 = nn.Linear(out_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class ConditionEmbedding(nn.Module):
    """Timestep (and, when configured, resolution, frame count and fps) -> one conditioning vector."""

    def __init__(self, dim: int, additional: bool):
        super().__init__()
        self.additional = additional
        self.timestep_embedder = MLPEmbedding(256, dim)
        if additional:
            self.resolution_embedder = MLPEmbedding(256, dim // 2)
            self.nframe_embedder = MLPEmbedding(256, dim)
            self.fps_embedder = MLPEmbedding(256, dim)

    def forward(
        self,
        timestep: torch.Tensor,
        resolution: torch.Tensor | None = None,
        nframe: torch.Tensor | None = None,
        fps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dtype = self.timestep_embedder.linear_1.weight.dtype
        emb = self.timestep_embedder(timestep_features(timestep).to(dtype))
        if self.additional:
            assert resolution is not None and nframe is not None
            batch = timestep.shape[0]
            emb = emb + self.resolution_embedder(timestep_features(resolution.flatten()).to(dtype)).reshape(
                batch, -1
            )
            emb = emb + self.nframe_embedder(timestep_features(nframe.flatten()).to(dtype)).reshape(batch, -1)
            if fps is not None:
                emb = emb + self.fps_embedder(timestep_features(fps.flatten()).to(dtype)).reshape(batch, -1)
        return emb


class AdaLNSingle(nn.Module):
    def __init__(self, dim: int, additional: bool, timestep_scale: float = 1000.0):
        super().__init__()
        self.timestep_scale = timestep_scale
        self.emb = ConditionEmbedding(dim, additional)
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(
        self, t: torch.Tensor, **conditions: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.emb(t * self.timestep_scale, **conditions)
        return self.linear(F.silu(embedded)), embedded


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(frames).flatten(2).transpose(1, 2)


class TextProjection(nn.Module):
    def __init__(self, in_features: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


class StepVideoDiT(nn.Module):
    """Velocity predictor v(x_t, t, text) on latents laid out (B, F, C, H, W)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        dim = config.inner_dim
        p = config.patch_size
        self.pos_embed = PatchEmbed(p, config.in_channels, dim)
        self.transformer_blocks = nn.ModuleList(
            [StepVideoBlock(dim, config.attention_head_dim) for _ in range(config.num_layers)]
        )
        self.norm_out = nn.LayerNorm(
            dim, eps=config.norm_eps, elementwise_affine=config.norm_elementwise_affine
        )
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.proj_out = nn.Linear(dim, p * p * config.output_channels)
        self.adaln_single = AdaLNSingle(dim, config.use_additional_conditions)
        if config.clip_channels is not None:
            self.clip_projection = nn.Linear(config.clip_channels, dim)
        self.caption_norm = nn.LayerNorm(
            config.llm_channels, eps=config.norm_eps, elementwise_affine=config.norm_elementwise_affine
        )
        self.caption_projection = TextProjection(config.llm_channels, dim)

    def text_context(
        self, llm_states: torch.Tensor, llm_mask: torch.Tensor, clip_states: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text tokens ([CLIP tokens, LLM tokens]) and the cross-attention key mask (B, S).

        The CLIP tokens all count (as released); the LLM tokens count up to each prompt's length.
        The context is cut to the longest prompt of the batch.
        """
        context = self.caption_projection(self.caption_norm(llm_states))
        mask = llm_mask.bool()
        if clip_states is not None and hasattr(self, "clip_projection"):
            clip = self.clip_projection(clip_states)
            context = torch.cat([clip, context], dim=1)
            mask = torch.cat(
                [torch.ones(mask.shape[0], clip.shape[1], dtype=torch.bool, device=mask.device), mask], 1
            )
        lengths = mask.sum(dim=1)
        longest = int(lengths.max())
        keep = torch.arange(longest, device=mask.device)[None, :] < lengths[:, None]
        return context[:, :longest], keep

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        llm_states: torch.Tensor,
        llm_mask: torch.Tensor,
        clip_states: torch.Tensor | None = None,
        fps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, frames, channels, height, width = latents.shape
        p = self.config.patch_size
        grid = (frames, height // p, width // p)
        tokens = self.pos_embed(latents.reshape(batch * frames, channels, height, width))
        per_frame = tokens.shape[1]
        x = tokens.reshape(batch, frames * per_frame, -1)

        conditions: dict[str, torch.Tensor | None] = {}
        if self.config.use_additional_conditions:
            conditions = {
                "resolution": torch.tensor([grid[1:]] * batch, device=x.device, dtype=x.dtype),
                "nframe": torch.tensor([frames] * batch, device=x.device, dtype=x.dtype),
                "fps": fps,
            }
        modulation, embedded = self.adaln_single(timestep, **conditions)
        context, keep = self.text_context(llm_states, llm_mask, clip_states)
        # (B, 1, Sk) broadcasts over the queries; None when nothing is masked (the fast kernels)
        mask = None if bool(keep.all()) else keep[:, None, :]

        rope = rope_tables(grid, self.config.rope_split, x.device, x.dtype)
        for block in self.transformer_blocks:
            x = block(x, context, modulation, mask, rope)

        shift, scale = (self.scale_shift_table[None] + embedded[:, None]).chunk(2, dim=1)
        x = self.proj_out(self.norm_out(x) * (1 + scale) + shift)
        c = self.config.output_channels
        x = x.view(batch, frames, grid[1], grid[2], p, p, c)
        x = x.permute(0, 1, 6, 2, 4, 3, 5).reshape(batch, frames, c, grid[1] * p, grid[2] * p)
        return x
