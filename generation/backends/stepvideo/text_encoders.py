"""The two bilingual text encoders, run in-process: Step-LLM and the Hunyuan-CLIP text tower.

Step-LLM is a decoder-only LLM (grouped-query attention, SwiGLU, RMS-norm, no final norm); its last
layer's hidden states for the 320-token padded prompt condition the DiT. Its attention is causal with
an ALiBi-style bias of `-slope_h * sqrt(i - j)` (Step-1's square-root ALiBi, which the released code gets
from a prebuilt CUDA library); here it is an additive bias through SDPA. Prompts are tokenised as
[BOS=1] + pieces + [EOS=2], padded with 2 to 320, truncated to leave room for BOS and EOS.

Hunyuan-CLIP's text tower is a BERT encoder (transformers' `BertModel`), run on the 77-token padded
prompt; its last hidden states are projected by the DiT and put in front of the LLM tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import CLIP_MAX_LENGTH, LLM_MAX_LENGTH, StepLLMConfig
from .dit import RMSNorm

LLM_BOS = 1
LLM_EOS = 2
LLM_PAD = 2


def alibi_slopes(heads: int) -> torch.Tensor:
    """Per-head slopes: 2^(-8i/n) for the nearest power of two n, then interleaved extra ones."""
    n = 2 ** math.floor(math.log2(heads))
    slopes = [2.0 ** (-8.0 * i / n) for i in range(1, n + 1)]
    if n < heads:
        slopes += [2.0 ** (-4.0 * i / n) for i in range(1, 2 * (heads - n), 2)]
    return torch.tensor(slopes, dtype=torch.float32)


def sqrt_alibi_bias(length: int, heads: int, device: torch.device) -> torch.Tensor:
    """(heads, L, L) float32: -slope * sqrt(i - j) below the diagonal, -inf above (causal)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)
    distance = pos[:, None] - pos[None, :]
    bias = -torch.sqrt(distance.clamp(min=0))[None] * alibi_slopes(heads).to(device)[:, None, None]
    return bias.masked_fill(distance[None] < 0, float("-inf"))


class GroupedQueryAttention(nn.Module):
    def __init__(self, config: StepLLMConfig):
        super().__init__()
        self.heads = config.num_attention_heads
        self.groups = config.num_attention_groups
        self.head_dim = config.head_dim
        # [q for all heads | (k, v) per group]
        self.wqkv = nn.Linear(
            config.hidden_size, config.hidden_size + 2 * self.head_dim * self.groups, bias=False
        )
        self.wo = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, kv = self.wqkv(x).split([d, 2 * self.head_dim * self.groups], dim=-1)
        q = q.view(b, s, self.heads, self.head_dim)
        k, v = kv.view(b, s, self.groups, 2 * self.head_dim).chunk(2, dim=-1)
        per_group = self.heads // self.groups
        k, v = k.repeat_interleave(per_group, dim=2), v.repeat_interleave(per_group, dim=2)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias.to(q.dtype)[None]
        )
        return self.wo(out.transpose(1, 2).reshape(b, s, d))


class SwiGLU(nn.Module):
    def __init__(self, config: StepLLMConfig):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, 2 * config.ffn_width, bias=False)
        self.w2 = nn.Linear(config.ffn_width, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w1(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


class DecoderLayer(nn.Module):
    def __init__(self, config: StepLLMConfig):
        super().__init__()
        self.attention = GroupedQueryAttention(config)
        self.feed_forward = SwiGLU(config)
        self.attention_norm = RMSNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.ffn_norm = RMSNorm(config.hidden_size, eps=config.layernorm_epsilon)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), bias)
        return h + self.feed_forward(self.ffn_norm(h))


class TokenEmbedding(nn.Module):
    def __init__(self, config: StepLLMConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.hidden_size)


class LayerStack(nn.Module):
    def __init__(self, config: StepLLMConfig):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(config) for _ in range(config.num_layers)])


class StepLLM(nn.Module):
    """Token ids (B, S) -> last-layer hidden states (B, S, hidden). Key names as in `step_llm/`."""

    def __init__(self, config: StepLLMConfig):
        super().__init__()
        self.config = config
        self.tok_embeddings = TokenEmbedding(config)
        self.transformer = LayerStack(config)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_embeddings.word_embeddings(input_ids)
        bias = sqrt_alibi_bias(input_ids.shape[1], self.config.num_attention_heads, input_ids.device)
        for layer in self.transformer.layers:
            x = layer(x, bias)
        return x


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long, 1 for real tokens
    truncated: list[bool]


def llm_tokens(
    pieces: Callable[[str], list[int]], prompts: Sequence[str], max_length: int = LLM_MAX_LENGTH
) -> TokenBatch:
    """[BOS] + pieces + [EOS], padded with PAD to `max_length` (the released prompt layout)."""
    ids, masks, truncated = [], [], []
    for prompt in prompts:
        body = pieces(prompt)
        truncated.append(len(body) > max_length - 2)
        tokens = [LLM_BOS, *body[: max_length - 2], LLM_EOS]
        valid = len(tokens)
        ids.append(tokens + [LLM_PAD] * (max_length - valid))
        masks.append([1] * valid + [0] * (max_length - valid))
    return TokenBatch(torch.tensor(ids, dtype=torch.long), torch.tensor(masks, dtype=torch.long), truncated)


def step_llm_tokenizer(folder: Path) -> Callable[[str], list[int]]:
    """The pieces of a prompt: `step1_chat_tokenizer.model` (SentencePiece) as released, or a
    `tokenizer.json` (a `tokenizers` file, used by the tiny test checkpoints)."""
    spm_file = folder / "step1_chat_tokenizer.model"
    if spm_file.exists():
        try:
            import sentencepiece  # type: ignore[import-not-found]
        except ImportError as error:
            raise ImportError(
                "step_llm/step1_chat_tokenizer.model is a SentencePiece model: install `sentencepiece`"
            ) from error
        processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_file))
        return lambda text: list(processor.encode_as_ids(text))
    json_file = folder / "tokenizer.json"
    if json_file.exists():
        from transformers import PreTrainedTokenizerFast

        fast = PreTrainedTokenizerFast(tokenizer_file=str(json_file))
        return lambda text: list(fast.encode(text, add_special_tokens=False))
    raise FileNotFoundError(f"{folder} has neither step1_chat_tokenizer.model nor tokenizer.json")


@dataclass
class TextEmbeddings:
    """What the DiT is conditioned on, for a batch of prompts (on the CPU or any device)."""

    llm_states: torch.Tensor  # (B, 320, llm width)
    llm_mask: torch.Tensor  # (B, 320)
    clip_states: torch.Tensor  # (B, 77, clip width)
    truncated: list[bool]

    def select(self, index: int) -> TextEmbeddings:
        return TextEmbeddings(
            self.llm_states[index : index + 1],
            self.llm_mask[index : index + 1],
            self.clip_states[index : index + 1],
            self.truncated[index : index + 1],
        )

    def to(self, device: torch.device | str, dtype: torch.dtype) -> TextEmbeddings:
        return TextEmbeddings(
            self.llm_states.to(device, dtype),
            self.llm_mask.to(device),
            self.clip_states.to(device, dtype),
            self.truncated,
        )


class TextEncoders:
    """Both encoders on one device; `encode` runs them, `close` frees them."""

    def __init__(
        self,
        llm: StepLLM,
        llm_pieces: Callable[[str], list[int]],
        clip: nn.Module,
        clip_tokenizer: Callable[..., dict[str, torch.Tensor]],
        device: torch.device,
    ):
        self.llm: StepLLM | None = llm
        self.llm_pieces = llm_pieces
        self.clip: nn.Module | None = clip
        self.clip_tokenizer = clip_tokenizer
        self.device = device

    @torch.inference_mode()
    def encode(self, prompts: Sequence[str]) -> TextEmbeddings:
        if self.llm is None or self.clip is None:
            raise RuntimeError("the text encoders were closed")
        tokens = llm_tokens(self.llm_pieces, prompts)
        llm_states = self.llm(tokens.input_ids.to(self.device))
        clip_inputs = self.clip_tokenizer(
            list(prompts),
            padding="max_length",
            max_length=CLIP_MAX_LENGTH,
            truncation=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        clip_states = self.clip(
            input_ids=clip_inputs["input_ids"].to(self.device),
            attention_mask=clip_inputs["attention_mask"].to(self.device),
        ).last_hidden_state
        # the released caption server hands the CLIP states over in bf16 whatever the DiT's dtype
        clip_states = clip_states.to(torch.bfloat16)
        return TextEmbeddings(
            llm_states, tokens.attention_mask.to(self.device), clip_states, tokens.truncated
        )

    def close(self) -> None:
        self.llm = None
        self.clip = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
