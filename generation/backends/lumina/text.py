"""Gemma-2 caption features as the official sampler makes them: the system prompt before each prompt,
right padding to a multiple of 8, truncation at 256 tokens, the second-to-last hidden states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .config import MAX_TEXT_TOKENS, SYSTEM_PROMPT, TEXT_HIDDEN_LAYER


@torch.no_grad()
def encode(
    texts: Sequence[str], text_encoder: Any, tokenizer: Any, *, system_prompt: str = SYSTEM_PROMPT
) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
    """(features (B, L, D), bool mask (B, L), whether each text was truncated)."""
    full = [system_prompt + text for text in texts]
    tokens = tokenizer(
        full,
        padding=True,
        pad_to_multiple_of=8,
        max_length=MAX_TEXT_TOKENS,
        truncation=True,
        return_tensors="pt",
    )
    lengths = [len(ids) for ids in tokenizer(full, truncation=False)["input_ids"]]
    device = next(text_encoder.parameters()).device
    hidden = text_encoder(
        input_ids=tokens.input_ids.to(device),
        attention_mask=tokens.attention_mask.to(device),
        output_hidden_states=True,
    ).hidden_states[TEXT_HIDDEN_LAYER]
    return hidden, tokens.attention_mask.to(device).bool(), [n > MAX_TEXT_TOKENS for n in lengths]
