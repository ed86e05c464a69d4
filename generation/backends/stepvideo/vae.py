"""Step-Video's Video-VAE (v2): 16x16 spatial and 8x temporal compression into 64 channels.

Everything is causal in time: convolutions pad only the past (with zeros), the mid-block attention is
causal over the flattened (frame, row, column) sequence, and group norms take their statistics per
frame. Videos are encoded in independent chunks of `frame_chunk` (17) frames, each giving
`latent_chunk` (3) latent frames; latents are decoded in chunks of 3, each giving 17 frames, and the
two frames that meet at each chunk border are blended (0.6 own, 0.4 neighbour). Hence the frame rule:
a video has 17k frames and 3k latent frames.

The deep compression comes from a dual path at the bottleneck: a convolution followed by a 2x2x2
pixel-unshuffle, plus a parameter-free shortcut that unshuffles and averages channel groups (the
decoder mirrors it with pixel-shuffle and channel duplication). Module names follow the released
`vae/vae_v2.safetensors`, which loads unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VAEConfig

# Blend weights at decoded chunk borders: each border frame keeps 0.6 of itself.
BORDER_KEEP = 0.6


def latent_frames_for(frames: int, config: VAEConfig | None = None) -> int:
    config = config or VAEConfig()
    return frames // config.frame_chunk * config.latent_chunk


def frame_group_norm(x: torch.Tensor, norm: nn.GroupNorm, silu: bool) -> torch.Tensor:
    """Group norm with statistics per frame of (B, C, T, H, W)."""
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    out = F.group_norm(frames, norm.num_groups, norm.weight, norm.bias, norm.eps)
    if silu:
        out = F.silu(out)
    return out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def causal_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride_t: int = 1) -> torch.Tensor:
    kt, kh, kw = kernel
    past = (kt - 1) + max(1 - stride_t, 0)
    return F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2, past, 0))


class CausalConv3d(nn.Module):
    def __init__(self, chan_in: int, chan_out: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.kernel = (kernel, kernel, kernel)
        self.stride_t = stride
        self.conv = nn.Conv3d(chan_in, chan_out, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(causal_pad(x, self.kernel, self.stride_t))


def unshuffle_3d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C*f^3, (T+f-1)/f, H/f, W/f), padding f-1 past frames with zeros."""
    x = F.pad(x, (0, 0, 0, 0, factor - 1, 0))
    b, c, t, h, w = x.shape
    x = x.view(b, c, t // factor, factor, h // factor, factor, w // factor, factor)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * factor**3, t // factor, h // factor, w // factor)


def unshuffle_average(x: torch.Tensor, factor: int, channels_out: int) -> torch.Tensor:
    """The parameter-free encoder shortcut: unshuffle, then average consecutive channel groups."""
    x = unshuffle_3d(x, factor)
    b, c, t, h, w = x.shape
    return x.view(b, channels_out, c // channels_out, t, h, w).mean(dim=2)


def shuffle_3d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C*f^3, T, H, W) -> (B, C, T*f - (f-1), H*f, W*f): the inverse of `unshuffle_3d`."""
    b, c, t, h, w = x.shape
    c_out = c // factor**3
    x = x.view(b, c_out, factor, factor, factor, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    x = x.reshape(b, c_out, t * factor, h * factor, w * factor)
    return x[:, :, factor - 1 :]


def duplicate_shuffle(x: torch.Tensor, factor: int, channels_out: int) -> torch.Tensor:
    """The parameter-free decoder shortcut: repeat each channel, then shuffle."""
    repeats = channels_out * factor**3 // x.shape[1]
    return shuffle_3d(x.repeat_interleave(repeats, dim=1), factor)


class ResBlock(nn.Module):
    """Norm-SiLU-conv twice, with a 1x1x1 projection on the skip path when the width changes."""

    def __init__(self, chan_in: int, chan_out: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, chan_in)
        self.conv1 = CausalConv3d(chan_in, chan_out, 3)
        self.norm2 = nn.GroupNorm(groups, chan_out)
        self.conv2 = CausalConv3d(chan_out, chan_out, 3)
        if chan_in != chan_out:
            self.nin_shortcut = CausalConv3d(chan_in, chan_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(frame_group_norm(x, self.norm1, silu=True))
        h = self.conv2(frame_group_norm(h, self.norm2, silu=True))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return h + skip


class CausalSelfAttention(nn.Module):
    """Single-head attention over all (frame, row, column) positions, causal in that order."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.q = CausalConv3d(channels, channels, 1)
        self.k = CausalConv3d(channels, channels, 1)
        self.v = CausalConv3d(channels, channels, 1)
        self.proj_out = CausalConv3d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        normed = frame_group_norm(x, self.norm, silu=False)
        q, k, v = (proj(normed).flatten(2).transpose(1, 2)[:, None] for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out = out[:, 0].transpose(1, 2).reshape(b, c, t, h, w)
        return self.proj_out(out) + x


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.block_1 = ResBlock(channels, channels, groups)
        self.attn_1 = CausalSelfAttention(channels, groups)
        self.block_2 = ResBlock(channels, channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class SpatialDownsample(nn.Module):
    """Per frame: pad right and bottom by one, 3x3 convolution with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = F.pad(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), (0, 1, 0, 1))
        out = self.conv(frames)
        return out.reshape(b, t, c, h // 2, w // 2).permute(0, 2, 1, 3, 4)


class SpaceTimeDownsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = CausalConv3d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SpatialUpsample(nn.Module):
    """Per frame: nearest 2x, 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        out = self.conv(F.interpolate(frames, scale_factor=2.0, mode="nearest"))
        return out.reshape(b, t, c, 2 * h, 2 * w).permute(0, 2, 1, 3, 4)


class UpsampleResidual(nn.Module):
    """The 3D upsampler's refinement: conv-norm-SiLU-conv-norm, skip added before and after the SiLU."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.conv1 = CausalConv3d(channels, channels, 3)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv2 = CausalConv3d(channels, channels, 3)
        self.norm2 = nn.GroupNorm(groups, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = frame_group_norm(self.conv1(x), self.norm1, silu=True)
        h = frame_group_norm(self.conv2(h), self.norm2, silu=False)
        return F.silu(h + x) + x


class SpaceTimeUpsample(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.conv3d = UpsampleResidual(channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3d(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution of the encoder (`down.i`) or decoder (`up.i`): res blocks, then a resampler."""

    def __init__(self, blocks: list[ResBlock], resample: nn.Module | None):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        if resample is not None:
            self.resample_name = (
                "downsample" if isinstance(resample, (SpatialDownsample, SpaceTimeDownsample)) else "upsample"
            )
            self.add_module(self.resample_name, resample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block:
            x = block(x)
        if hasattr(self, "resample_name"):
            x = getattr(self, self.resample_name)(x)
        return x


class PatchifyConv(nn.Module):
    def __init__(self, chan_in: int, chan_out: int):
        super().__init__()
        self.conv = CausalConv3d(chan_in, chan_out, 3)


class VideoEncoder(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        g = config.norm_groups
        ch = config.encoder_channels
        self.conv_in = CausalConv3d(3, ch, 3)
        widths = [ch] + [ch * m for m in config.encoder_multipliers]
        levels = []
        last = len(config.encoder_multipliers) - 1
        for i in range(len(config.encoder_multipliers)):
            blocks = [
                ResBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1], g)
                for j in range(config.num_res_blocks)
            ]
            resample: nn.Module | None = None
            if i != last:
                resample = (
                    SpaceTimeDownsample(widths[i + 1])
                    if i in config.encoder_temporal_levels
                    else SpatialDownsample(widths[i + 1])
                )
            levels.append(Level(blocks, resample))
        self.down = nn.ModuleList(levels)
        top = widths[-1]
        self.mid = MidBlock(top, g)
        self.norm_out = nn.GroupNorm(g, top)
        self.conv_patchify = PatchifyConv(top, config.patch_channels // 8)
        self.conv_out = CausalConv3d(config.patch_channels, 2 * config.z_channels, 3)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, 2z, T', H/16, W/16): mean and log-variance."""
        h = self.conv_in(video)
        for level in self.down:
            h = level(h)
        h = frame_group_norm(self.mid(h), self.norm_out, silu=True)
        h = unshuffle_3d(self.conv_patchify.conv(h), 2) + unshuffle_average(h, 2, self.config.patch_channels)
        return self.conv_out(h) + unshuffle_average(h, 1, 2 * self.config.z_channels)


class VideoDecoder(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        g = config.norm_groups
        ch = config.decoder_channels
        mults = config.decoder_multipliers
        top = ch * mults[-1]
        self.conv_in = CausalConv3d(config.z_channels, config.patch_channels, 3)
        self.conv_unpatchify = PatchifyConv(config.patch_channels, top * 8)
        self.mid = MidBlock(top, g)
        levels: list[Level] = []
        width = top
        for i in reversed(range(len(mults))):
            out = ch * mults[i]
            blocks = [ResBlock(width if j == 0 else out, out, g) for j in range(config.num_res_blocks + 1)]
            width = out
            resample: nn.Module | None = None
            if i != 0:
                resample = (
                    SpaceTimeUpsample(width, g)
                    if i in config.decoder_temporal_levels
                    else SpatialUpsample(width)
                )
            levels.insert(0, Level(blocks, resample))
        self.up = nn.ModuleList(levels)
        self.norm_out = nn.GroupNorm(g, width)
        # the released key is `decoder.conv_out.weight` (a bare Conv3d), padded causally here
        self.conv_out = nn.Conv3d(width, 3, 3)
        self.trim = 2 ** len(config.decoder_temporal_levels) - 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z, T', h, w) -> (B, 3, frames, 16h, 16w)."""
        c = self.config
        h = self.conv_in(z) + duplicate_shuffle(z, 1, c.patch_channels)
        top = c.decoder_channels * c.decoder_multipliers[-1]
        h = shuffle_3d(self.conv_unpatchify.conv(h), 2) + duplicate_shuffle(h, 2, top)
        h = self.mid(h)
        for level in reversed(self.up):
            h = level(h)
        h = self.conv_out(causal_pad(frame_group_norm(h, self.norm_out, silu=True), (3, 3, 3)))
        return h[:, :, self.trim :]


class VideoVAE(nn.Module):
    """Encode and decode videos laid out (B, T, 3, H, W) <-> latents (B, T', z, h, w), the DiT's layout."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config or VAEConfig()
        self.encoder = VideoEncoder(self.config)
        self.decoder = VideoDecoder(self.config)

    def check_frames(self, frames: int) -> None:
        if frames <= 0 or frames % self.config.frame_chunk:
            raise ValueError(
                f"the Video-VAE takes a multiple of {self.config.frame_chunk} frames, got {frames}"
            )

    def encode_distribution(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (clamped to [-30, 20]) of the latents, each (B, T', z, h, w)."""
        self.check_frames(video.shape[1])
        dtype = self.encoder.conv_in.conv.weight.dtype
        chunks = [
            self.encoder(chunk.to(dtype).transpose(1, 2))
            for chunk in video.split(self.config.frame_chunk, dim=1)
        ]
        moments = torch.cat(chunks, dim=2).transpose(1, 2)
        mean, logvar = moments.chunk(2, dim=2)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(
        self, video: torch.Tensor, *, sample: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Latents of a video in [-1, 1]; a draw from the posterior (as released) or its mean."""
        mean, logvar = self.encode_distribution(video)
        if not sample:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device).to(mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, T', z, h, w) -> (B, T, 3, H, W), roughly in [-1, 1]; T' must be a multiple of 3."""
        chunk = self.config.latent_chunk
        if latents.shape[1] <= 0 or latents.shape[1] % chunk:
            raise ValueError(
                f"the Video-VAE decodes a multiple of {chunk} latent frames, got {latents.shape[1]}"
            )
        dtype = self.decoder.conv_out.weight.dtype
        parts = [
            self.decoder(part.to(dtype).transpose(1, 2)).transpose(1, 2)
            for part in latents.split(chunk, dim=1)
        ]
        return blend_chunk_borders(torch.cat(parts, dim=1), self.config.frame_chunk)


def blend_chunk_borders(video: torch.Tensor, chunk: int) -> torch.Tensor:
    """Mix the last frame of each decoded chunk with the first of the next (that one first, then the last)."""
    video = video.clone()
    last = slice(chunk - 1, video.shape[1] - 1, chunk)
    first = slice(chunk, video.shape[1], chunk)
    mix = 1.0 - BORDER_KEEP
    video[:, first] = video[:, first] * BORDER_KEEP + video[:, last] * mix
    video[:, last] = video[:, last] * BORDER_KEEP + video[:, first] * mix
    return video
