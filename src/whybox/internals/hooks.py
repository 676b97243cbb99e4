"""Named, scoped, temporary hooks on torch modules, addressed by their dotted paths.

A module is addressed by its path in ``model.named_modules()`` (``"features.3"``,
``"transformer.h.3.mlp"``). Hooks are installed only inside a context manager and removed
on exit, also when the forward pass raises, so a failed explanation never leaves a model
patched.

Examples
--------
>>> import torch
>>> from whybox.internals import hooks
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> x = torch.ones(5, 3)
>>> with hooks.capture(model, ["0", "2"]) as cache:
...     y = model(x)
>>> tuple(cache["0"].shape), torch.equal(cache["2"], y)
((5, 4), True)
>>> with hooks.replace(model, "0", lambda out: 0 * out):   # the first layer's output zeroed
...     torch.equal(model(x), model[2](torch.zeros(5, 4)))
True
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    MissingDependencyError,
    ModelCallError,
    UnsupportedModelError,
    WhyboxError,
)

__all__ = [
    "ActivationCache",
    "HookPoint",
    "capture",
    "forward",
    "get_module",
    "module_paths",
    "on_points",
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


# --------------------------------------------------------------------------------------
# Hook points: a named tensor inside a forward pass (a module's output or input, or a
# view of it: split by heads, a slice of a fused projection), read or rewritten by hooks.


@dataclass(frozen=True)
class HookPoint:
    """Where a named activation lives in a model's forward pass.

    Parameters
    ----------
    name : str
        The name it is asked for by (``"blocks.3.resid_post"`` or a module path).
    path : str
        Dotted path of the module in ``model.named_modules()``.
    io : {"output", "input"}
        The module's output (``index`` into a tuple output) or its input (positional
        argument ``index``, or keyword argument ``kwarg`` when passed by keyword).
    index : int, default 0
    kwarg : str or None
    heads : int or None
        Split the last dimension into ``(heads, -1)``: the view is
        ``(batch, pos, heads, d_head)``.
    part : (start, stop) or None
        A slice of the last dimension (one of q, k, v in a fused projection), taken before
        the head split.
    groups : (n_groups, n_parts, index) or None
        A fused projection laid out per head (GPT-NeoX ``query_key_value``): the last
        dimension is viewed as ``(n_groups, n_parts, -1)`` and part ``index`` is taken; the
        view is ``(batch, pos, n_groups, d_head)``.
    layer : int or None
        The block the point belongs to (None for embeddings, final norm, logits).
    """

    name: str
    path: str
    io: Literal["output", "input"] = "output"
    index: int = 0
    kwarg: str | None = None
    heads: int | None = None
    part: tuple[int, int] | None = None
    groups: tuple[int, int, int] | None = None
    layer: int | None = None

    def view(self, tensor: Any) -> Any:
        """The activation this point names, as a view of ``tensor`` (no copy)."""
        t = tensor
        if self.groups is not None:
            n_groups, n_parts, idx = self.groups
            return t.view(*t.shape[:-1], n_groups, n_parts, -1)[..., idx, :]
        if self.part is not None:
            t = t[..., self.part[0] : self.part[1]]
        if self.heads is not None:
            t = t.reshape(*t.shape[:-1], self.heads, t.shape[-1] // self.heads)
        return t

    def join(self, tensor: Any, new: Any) -> Any:
        """``tensor`` with this point's view replaced by ``new`` (a new tensor)."""
        view = self.view(tensor)
        if tuple(new.shape) != tuple(view.shape):
            raise InvalidParameterError(
                f"the replacement for {self.name!r} has shape {tuple(new.shape)}, expected "
                f"{tuple(view.shape)} (the shape of the activation it replaces). Return a "
                "tensor of that shape from the hook function, or None to leave it unchanged."
            )
        new = new.to(dtype=tensor.dtype, device=tensor.device)
        if self.groups is None and self.part is None:
            return new.reshape(tensor.shape)
        out = tensor.clone()
        self.view(out).copy_(new)
        return out


HookFn = Callable[[Any], Any]


def _get_tensor(point: HookPoint, container: Any, torch: Any) -> Any:
    if isinstance(container, torch.Tensor):
        return container
    if isinstance(container, tuple | list) and len(container) > point.index:
        return container[point.index]
    if hasattr(container, "to_tuple"):  # a ModelOutput
        return container.to_tuple()[point.index]
    raise UnsupportedModelError(
        f"the module at {point.path!r} returned {type(container).__name__}, not a tensor or a "
        f"tuple with an element {point.index}: the hook point {point.name!r} cannot read it. "
        "Name the module whose output is the tensor you want, or pass its path to Anatomy."
    )


def _put_tensor(point: HookPoint, container: Any, new: Any, torch: Any) -> Any:
    if isinstance(container, torch.Tensor):
        return new
    if isinstance(container, tuple):
        items = list(container)
        items[point.index] = new
        return type(container)(*items) if hasattr(container, "_fields") else tuple(items)
    if isinstance(container, list):
        items = list(container)
        items[point.index] = new
        return items
    key = list(container.keys())[point.index]  # a ModelOutput
    container[key] = new
    return container


def _apply(point: HookPoint, fn: HookFn, tensor: Any) -> Any:
    """Run ``fn`` on the point's view of ``tensor``; the new tensor, or None if unchanged."""
    if not hasattr(tensor, "shape"):
        raise UnsupportedModelError(
            f"the hook point {point.name!r} (module {point.path!r}) carried "
            f"{type(tensor).__name__}, not a tensor, in this forward pass."
        )
    result = fn(point.view(tensor))
    return None if result is None else point.join(tensor, result)


@contextmanager
def on_points(model: Any, fns: Sequence[tuple[HookPoint, HookFn]]) -> Iterator[None]:
    """Run functions on named activations during the forward passes inside the block.

    Parameters
    ----------
    model : torch.nn.Module
    fns : sequence of (HookPoint, callable)
        ``fn(view)`` receives the point's activation (head-split or sliced as the point
        says). Return None to leave the model untouched (its outputs stay equal bit for
        bit), or a tensor of the view's shape to stand in for it. Several functions on one
        point run in order, each seeing the previous one's replacement.

    Notes
    -----
    Hooks are removed on exit, also when the forward pass or a function raises.
    """
    torch = require_torch()
    _check_module(model)
    out_groups: dict[str, list[tuple[HookPoint, HookFn]]] = {}
    in_groups: dict[str, list[tuple[HookPoint, HookFn]]] = {}
    for point, fn in fns:
        if not isinstance(point, HookPoint):
            raise InvalidParameterError(
                f"on_points takes (HookPoint, function) pairs, got {type(point).__name__}. "
                "Get hook points from Anatomy.of(model).point(name)."
            )
        (out_groups if point.io == "output" else in_groups).setdefault(point.path, []).append(
            (point, fn)
        )

    def make_out(pairs: list[tuple[HookPoint, HookFn]]) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
            container = output
            changed = False
            for point, fn in pairs:
                new = _apply(point, fn, _get_tensor(point, container, torch))
                if new is not None:
                    container = _put_tensor(point, container, new, torch)
                    changed = True
            return container if changed else None

        return hook

    def make_in(pairs: list[tuple[HookPoint, HookFn]]) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            args_l, kwargs_d = list(args), dict(kwargs)
            changed = False
            for point, fn in pairs:
                if len(args_l) > point.index:
                    tensor = args_l[point.index]
                elif point.kwarg is not None and point.kwarg in kwargs_d:
                    tensor = kwargs_d[point.kwarg]
                else:
                    raise UnsupportedModelError(
                        f"the module at {point.path!r} was called without input "
                        f"{point.index} ({point.kwarg or 'positional'}): the hook point "
                        f"{point.name!r} cannot read it. Pass the module path to Anatomy."
                    )
                new = _apply(point, fn, tensor)
                if new is not None:
                    changed = True
                    if len(args_l) > point.index:
                        args_l[point.index] = new
                    else:
                        kwargs_d[point.kwarg] = new  # type: ignore[index]
            return (tuple(args_l), kwargs_d) if changed else None

        return hook

    modules = dict(model.named_modules())  # once per call, not once per point

    def find(path: str) -> Any:
        return modules[path] if path in modules else get_module(model, path)

    with registered([]) as handles:
        for path, pairs in in_groups.items():
            module = find(path)
            handles.append(module.register_forward_pre_hook(make_in(pairs), with_kwargs=True))
        for path, pairs in out_groups.items():
            module = find(path)
            handles.append(module.register_forward_hook(make_out(pairs)))
        yield


def model_device(model: Any) -> Any:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    torch = require_torch()
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def as_model_inputs(model: Any, inputs: Any, *, vocab_size: int | None = None) -> dict[str, Any]:
    """Model keyword arguments from a tensor of input ids or a mapping (BatchEncoding).

    Checks that every tensor is on the model's device and that input ids are inside the
    model's vocabulary.
    """
    torch = require_torch()
    if isinstance(inputs, torch.Tensor):
        kwargs: dict[str, Any] = {"input_ids": inputs}
    elif isinstance(inputs, Mapping):
        kwargs = dict(inputs)
    else:
        raise InvalidInputError(
            f"inputs must be a tensor of token ids (batch, pos) or a mapping of model keyword "
            f"arguments such as a tokenizer's BatchEncoding, got {type(inputs).__name__}. "
            "Tokenize text first: tokenizer(texts, return_tensors='pt')."
        )
    device = model_device(model)
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor) and value.device != device:
            raise InvalidInputError(
                f"input {key!r} is on {value.device} but the model is on {device}. Move the "
                f"inputs with .to({str(device)!r}) (or the model with model.to(...))."
            )
    ids = kwargs.get("input_ids")
    if isinstance(ids, torch.Tensor):
        if ids.ndim == 1:
            kwargs["input_ids"] = ids = ids.unsqueeze(0)
        if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise InvalidInputError(
                f"input_ids must be integer token ids of shape (batch, pos), got dtype "
                f"{ids.dtype} and shape {tuple(ids.shape)}."
            )
        if ids.numel() == 0:
            raise InvalidInputError("input_ids is empty: pass at least one token.")
        if vocab_size is not None and int(ids.max()) >= vocab_size:
            raise InvalidInputError(
                f"input_ids holds token id {int(ids.max())}, but the model's vocabulary has "
                f"{vocab_size} tokens: the tokenizer does not match the model. Use the "
                "tokenizer the model was trained with (AutoTokenizer.from_pretrained on the "
                "model's folder)."
            )
        if int(ids.min()) < 0:
            raise InvalidInputError(
                f"input_ids holds the negative token id {int(ids.min())}; token ids are >= 0."
            )
    return kwargs


def output_logits(output: Any) -> Any:
    """The logits of a model output: ``.logits``, else ``.last_hidden_state``, else the
    tensor itself (or a tuple's first element)."""
    torch = require_torch()
    for attr in ("logits", "last_hidden_state"):
        value = getattr(output, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise UnsupportedModelError(
        f"the model returned {type(output).__name__}, which has no logits, last_hidden_state "
        "or tensor to read. Wrap the model so that it returns a tensor."
    )


def forward(
    model: Any, inputs: Any, *, grad: bool = False, vocab_size: int | None = None, **kwargs: Any
) -> Any:
    """Run ``model`` on ``inputs`` (token ids or a mapping of keyword arguments).

    Returns the logits tensor (see :func:`output_logits`). Runs under ``torch.no_grad()``
    unless ``grad``. An exception raised by the model becomes a :class:`ModelCallError`.
    """
    torch = require_torch()
    model_kwargs = as_model_inputs(model, inputs, vocab_size=vocab_size)
    model_kwargs.update(kwargs)
    with torch.set_grad_enabled(grad):
        try:
            output = model(**model_kwargs)
        except WhyboxError:
            raise
        except Exception as exc:
            shapes = {k: tuple(v.shape) for k, v in model_kwargs.items() if hasattr(v, "shape")}
            raise ModelCallError(
                f"the model raised {type(exc).__name__}: {exc} (inputs {shapes})."
            ) from exc
    return output_logits(output)
