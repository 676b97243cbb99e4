"""Language-model backends: one small protocol, local / callable / HTTP implementations.

Methods that need to ask a language model -- RAG source attribution, automated
interpretability, judges and chain-of-thought monitors -- take a :class:`Backend`:

- :class:`CallableBackend` wraps plain Python functions;
- :class:`~whybox.llm.local.LocalBackend` runs a Hugging Face causal LM (batched, KV cache);
- :class:`~whybox.llm.http.OpenAIBackend` talks to any OpenAI-compatible endpoint (vLLM,
  llama.cpp server, Ollama, hosted APIs) with timeouts, retries, a concurrency limit and a
  disk cache keyed by request.

``as_backend(obj)`` turns a model, a callable or a backend into a backend. Names are imported
on first use, so ``import whybox.llm`` needs neither torch nor httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Backend": "whybox.llm.base",
    "CallableBackend": "whybox.llm.base",
    "as_backend": "whybox.llm.base",
    "LocalBackend": "whybox.llm.local",
    "OpenAIBackend": "whybox.llm.http",
    "RequestCache": "whybox.llm.cache",
    "describe": "whybox.llm.describe",
    "Description": "whybox.llm.describe",
    "Hypothesis": "whybox.llm.describe",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        # importing the submodule whybox.llm.describe binds the package attribute `describe`
        # to the module; the public name is the function of the same name
        sub = _LAZY[name].rpartition(".")[2]
        if sub in _LAZY and _LAZY[sub] == _LAZY[name]:
            globals()[sub] = getattr(module, sub)
        return value
    raise AttributeError(f"module 'whybox.llm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
