"""Model internals for torch models: named, scoped hooks by module path (:mod:`.hooks`).

Import torch lazily: ``import whybox.internals`` does not import torch.
"""

from __future__ import annotations

from whybox.internals import hooks

__all__ = ["hooks"]
