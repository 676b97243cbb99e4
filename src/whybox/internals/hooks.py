"""Named, scoped, temporary hooks on torch modules, addressed by their dotted paths.

A module is addressed by its path in ``model.named_modules()`` (``"features.3"``,
``"transformer.h.3.mlp"``). Hooks are installed only inside a context manager and removed
on exit, also when the forward pass raises, so a failed explanation never leaves a model
patched.

Examples
--------
>>> with hooks.capture(model, ["features.3", "fc"]) as cache:   # doctest: +SKIP
...     model(x)
>>> cache["features.3"].shape                                   # doctest: +SKIP
>>> with hooks.replace(model, "features.3", lambda out: 0 * out):  # doctest: +SKIP
...     model(x)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from whybox.errors import InvalidParameterError, MissingDependencyError, UnsupportedModelError

__all__ = [
    "ActivationCache",
    "capture",
    "get_module",
    "module_paths",
    "registered",
    "replace",
    "require_torch",
]


def require_torch(feature: str = "hooks on torch modules") -> Any:
    """Import torch for ``feature``, or raise MissingDependencyError naming the extra."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed in the test env
        raise MissingDependencyError("torch", "torch", feature) from exc
    return torch


def _check_module(model: Any) -> Any:
    torch = require_torch()
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(
            f"hooks need a torch.nn.Module, got {type(model).__name__}. Pass the torch model "
            "itself (for a Hugging Face pipeline, its .model)."
        )
    return torch


def module_paths(model: Any) -> list[str]:
    """Dotted paths of every sub-module of ``model`` (``""`` is the model itself)."""
    _check_module(model)
    return [name for name, _ in model.named_modules()]


def get_module(model: Any, path: str) -> Any:
    """The sub-module of ``model`` at the dotted ``path`` of ``model.named_modules()``.

    Parameters
    ----------
    model : torch.nn.Module
    path : str
        E.g. ``"features.3"``; ``""`` is the model itself.

    Raises
    ------
    InvalidParameterError
        If no module has that path; the message lists the closest valid paths.
    """
    _check_module(model)
    if not isinstance(path, str):
        raise InvalidParameterError(
            f"a module path must be a str such as 'features.3', got {type(path).__name__}."
        )
    modules = dict(model.named_modules())
    if path in modules:
        return modules[path]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(path, names, n=5, cutoff=0.4)
    shown = close or names[:10]
    raise InvalidParameterError(
        f"the model has no module at path {path!r}. "
        + ("Closest valid paths: " if close else "Valid paths include: ")
        + ", ".join(repr(n) for n in shown)
        + ". Paths are the names of model.named_modules()."
    )


@contextmanager
def registered(handles: list[Any]) -> Iterator[list[Any]]:
    """Remove every hook handle in ``handles`` on exit (also the ones added inside)."""
    try:
        yield handles
    finally:
        while handles:
            handles.pop().remove()


class ActivationCache(dict):
    """Outputs captured by :func:`capture`, keyed by module path.

    ``cache[path]`` is the output of the last call of that module; ``cache.inputs[path]``
    its positional inputs (a tuple) when ``inputs=True``; ``cache.calls[path]`` how often it
    ran.
    """

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, tuple[Any, ...]] = {}
        self.calls: dict[str, int] = {}


@contextmanager
def capture(
    model: Any, paths: str | Sequence[str], *, inputs: bool = False, detach: bool = False
) -> Iterator[ActivationCache]:
    """Record the outputs (and optionally inputs) of the modules at ``paths``.

    Parameters
    ----------
    model : torch.nn.Module
    paths : str or sequence of str
        Dotted module paths (see :func:`get_module`).
    inputs : bool, default False
        Also record each module's positional inputs in ``cache.inputs``.
    detach : bool, default False
        Store detached tensors. Keep False to differentiate through the captured
        activations (e.g. ``torch.autograd.grad(out, cache["features.3"])``).

    Yields
    ------
    ActivationCache
        Filled as the model runs inside the ``with`` block; kept after it.

    Notes
    -----
    A recorded output is the module's output as it left the module, even when the model
    later changes it in place (``out += identity`` after a batch norm, a following
    ``ReLU(inplace=True)``): the rest of the forward pass runs on a copy of it (the same
    values, so the model's outputs are unchanged bit for bit), and the recorded tensor stays
    in the autograd graph, so gradients with respect to it are the gradients with respect to
    the module's output. This costs one copy of each captured output.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    modules = {p: get_module(model, p) for p in paths}
    cache = ActivationCache()

    def make(path: str) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
            cache[path] = _maybe_detach(output, detach)
            cache.calls[path] = cache.calls.get(path, 0) + 1
            if inputs:
                cache.inputs[path] = tuple(_maybe_detach(a, detach) for a in args)
            return _fresh_copy(output)

        return hook

    with registered([]) as handles:
        for path, module in modules.items():
            handles.append(module.register_forward_hook(make(path)))
        yield cache


def _fresh_copy(value: Any) -> Any:
    """A copy of a tensor output (or of the tensors of a tuple output) for the rest of the
    forward pass, so in-place changes downstream leave the recorded one intact."""
    torch = require_torch()
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple) and any(isinstance(v, torch.Tensor) for v in value):
        copied = tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in value)
        return type(value)(*copied) if hasattr(value, "_fields") else copied
    return None


def _maybe_detach(value: Any, detach: bool) -> Any:
    if detach and hasattr(value, "detach"):
        return value.detach()
    return value


@contextmanager
def replace(model: Any, path: str, value: Any, *, inputs: bool = False) -> Iterator[None]:
    """Patch the output (or the first positional input) of the module at ``path``.

    Parameters
    ----------
    model : torch.nn.Module
    path : str
        Dotted module path.
    value : tensor or callable
        A tensor (broadcast against the original) that stands in for it, or a function
        ``value(original) -> replacement``.
    inputs : bool, default False
        Patch the module's first positional input instead of its output.

    Notes
    -----
    A tensor ``value`` stands in as a copy, so a model that changes the layer's output in
    place (``out += identity``) never writes into ``value``. A callable's result is used as
    returned.
    """
    torch = require_torch()
    module = get_module(model, path)

    def new_value(original: Any) -> Any:
        if callable(value) and not isinstance(value, torch.Tensor):
            return value(original)
        if isinstance(original, torch.Tensor):
            try:
                # a copy: the model may change its layer's output in place (out += identity)
                return torch.broadcast_to(value, original.shape).clone()
            except RuntimeError as exc:
                raise InvalidParameterError(
                    f"the replacement of shape {tuple(value.shape)} cannot stand in for the "
                    f"{'input' if inputs else 'output'} of {path!r} of shape "
                    f"{tuple(original.shape)}: the shapes do not broadcast. Pass a tensor of "
                    "that shape or a function of the original."
                ) from exc
        return value

    with registered([]) as handles:
        if inputs:

            def pre_hook(mod: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
                return (new_value(args[0]), *args[1:])

            handles.append(module.register_forward_pre_hook(pre_hook))
        else:

            def hook(mod: Any, args: tuple[Any, ...], output: Any) -> Any:
                return new_value(output)

            handles.append(module.register_forward_hook(hook))
        yield
