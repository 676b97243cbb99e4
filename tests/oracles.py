"""Importing the oracles that expect torchvision, without torchvision.

zennit (the LRP oracle) imports ``torchvision.models.resnet`` at import time, and quantus
imports zennit whenever zennit is installed. torchvision must not be installed here: its
wheels are CUDA builds whose import breaks ``transformers``. So both are imported with
stand-in ``torchvision`` modules (zennit only needs the names ``Bottleneck`` and
``BasicBlock`` to exist), after transformers has cached that torchvision is absent, and the
stand-ins are removed again. A missing oracle fails the test that needs it: it is installed
by ``make test``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import pytest

_STUBS = ("torchvision", "torchvision.models", "torchvision.models.resnet")


def import_without_torchvision(name: str) -> Any:
    """Import module ``name`` with stand-in torchvision modules present only during import."""
    try:
        import transformers  # noqa: F401  (caches "no torchvision" before the stand-ins exist)
    except ImportError:  # pragma: no cover
        pass
    saved = {n: sys.modules.get(n) for n in _STUBS}
    try:
        for n in _STUBS:
            if saved[n] is None:
                sys.modules[n] = types.ModuleType(n)
        resnet = sys.modules["torchvision.models.resnet"]
        if not hasattr(resnet, "Bottleneck"):
            import torch

            resnet.Bottleneck = type("Bottleneck", (torch.nn.Module,), {})
            resnet.BasicBlock = type("BasicBlock", (torch.nn.Module,), {})
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            pytest.fail(
                f"the oracle {name!r} cannot be imported ({exc}): make test installs it; by "
                "hand: pip install -c constraints.txt -e '.[dev]' && pip install -c "
                "constraints.txt --no-deps zennit"
            )
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
