"""Text inputs: tokens, words and sentences as players (:mod:`whybox.text.tokens`).

Nothing here imports torch at import time.
"""

from __future__ import annotations

from .tokens import GRANULARITIES, TokenizedText, context_length, text_explanation, tokenize

__all__ = ["GRANULARITIES", "TokenizedText", "context_length", "text_explanation", "tokenize"]
