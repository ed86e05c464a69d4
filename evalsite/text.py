"""Text that people type and other people read: names keep no bidirectional control characters, so a
name cannot reverse or reorder the text displayed around it (pages also isolate each name in CSS)."""

import re

from django.utils.translation import override

# LRM, RLM, ALM; the embeddings and overrides LRE..RLO with PDF; the isolates LRI..PDI.
BIDI_CONTROLS = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def strip_bidi_controls(text: str) -> str:
    return BIDI_CONTROLS.sub("", text) if isinstance(text, str) else text


def untranslated(text: object) -> str:
    """A (lazily) translated label as plain text in the source language."""
    with override(None):
        return str(text)
