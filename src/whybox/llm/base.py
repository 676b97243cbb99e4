"""Language-model backends: the protocol (:class:`Backend`, :class:`CallableBackend`) and
:func:`as_backend`, which turns a model, a callable or a backend into a backend.

The protocol itself lives in :mod:`whybox.llm._protocol` so that the implementations
(:mod:`whybox.llm.local`, :mod:`whybox.llm.http`) subclass it without importing this module,
which imports them.

References
----------
.. [1] OpenAI (2023). Chat Completions API: the protocol
   :class:`~whybox.llm.http.OpenAIBackend` speaks.
"""

from __future__ import annotations

from typing import Any

from whybox.errors import InvalidParameterError
from whybox.llm._protocol import Backend, CallableBackend

__all__ = ["Backend", "CallableBackend", "as_backend"]


def as_backend(obj: Any, *, tokenizer: Any = None, **kwargs: Any) -> Backend:
    """A :class:`Backend` from a backend, a ``transformers`` causal LM (with ``tokenizer=``)
    or a callable ``prompt -> str`` (a generate function).

    Parameters
    ----------
    obj : Backend, torch.nn.Module or callable
        What to turn into a backend (a backend is returned as it is).
    tokenizer : optional
        Needed for a model.
    **kwargs
        Passed to :class:`~whybox.llm.local.LocalBackend` for a model.

    Returns
    -------
    Backend
        ``obj`` itself when it is a backend; a :class:`~whybox.llm.local.LocalBackend` for a
        model; a :class:`CallableBackend` (``generate=obj``) for a callable.

    Raises
    ------
    InvalidParameterError
        A model without ``tokenizer``, or an object that is none of the three.

    Examples
    --------
    >>> backend = wb.llm.as_backend(lambda prompt: "yes")
    >>> type(backend).__name__, backend.generate("Is it?")
    ('CallableBackend', ['yes'])
    >>> wb.llm.as_backend(backend) is backend
    True

    References
    ----------
    OpenAI (2023). Chat Completions API (``logprobs``, ``top_logprobs``): the protocol the
    backends answer.
    """
    if isinstance(obj, Backend):
        return obj
    try:
        import torch

        is_module = isinstance(obj, torch.nn.Module)
    except ImportError:  # pragma: no cover - torch extra missing
        is_module = False
    if is_module:
        from whybox.llm.local import LocalBackend

        if tokenizer is None:
            raise InvalidParameterError(
                "a transformers model needs its tokenizer to be a backend: pass tokenizer=."
            )
        return LocalBackend(obj, tokenizer, **kwargs)
    if callable(obj):
        return CallableBackend(generate=obj)
    raise InvalidParameterError(
        f"cannot use {type(obj).__name__} as a language-model backend. Pass a whybox.llm "
        "backend (LocalBackend, OpenAIBackend, CallableBackend), a transformers causal LM with "
        "tokenizer=, or a function prompt -> completion."
    )
