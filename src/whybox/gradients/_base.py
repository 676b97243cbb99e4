"""Shared torch plumbing of the gradient explainers.

Device and dtype checks, eval-mode semantics, output and target selection, gradients of
selected outputs evaluated in batches, and the assembly of the one :class:`Explanation`.
Everything runs on the model's device in the model's dtype; tensors are converted to numpy
only when the Explanation is built.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
)
from whybox.explainer import Explainer
from whybox.explanation import Explanation
from whybox.internals import hooks

__all__ = ["GradientExplainer", "Targets", "TrainingModeWarning"]

#: Default bound on the input elements of one batch (rows x elements per row).
DEFAULT_BATCH_ELEMENTS = 2**22


class TrainingModeWarning(UserWarning):
    """The model was in training mode; whybox explained it in eval mode and restored it."""


def torch_module() -> Any:
    """Import torch, or raise MissingDependencyError."""
    return hooks.require_torch("gradient explanations")


def check_model(model: Any) -> Any:
    """Return torch after checking that ``model`` is a torch module."""
    torch = torch_module()
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(
            f"gradient methods need a torch.nn.Module, got {type(model).__name__}. For other "
            "models use a model-agnostic method such as wb.KernelShap."
        )
    return torch


def device_dtype(model: Any) -> tuple[Any, Any]:
    """Device and floating dtype of the model's first parameter (or buffer)."""
    torch = torch_module()
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


@contextmanager
def eval_semantics(model: Any) -> Iterator[None]:
    """Run the block with the model in eval mode, restoring the previous modes after.

    A model in training mode (dropout active, batch norm updating its statistics) would give
    random, batch-dependent attributions; whybox explains it in eval mode instead and warns.
    """
    modes = {m: m.training for m in model.modules()}
    if model.training or any(modes.values()):
        warnings.warn(
            f"the model ({type(model).__name__}) is in training mode; whybox explains it in "
            "eval mode (dropout off, batch norm using its running statistics) and restores "
            "training mode afterwards. Call model.eval() before explaining to silence this.",
            TrainingModeWarning,
            stacklevel=4,
        )
        model.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def as_input_tensor(
    x: Any, device: Any, dtype: Any, *, name: str = "x", allow_integer: bool = False
) -> Any:
    """Inputs as a tensor of shape (n, ...) on the model's device and in its dtype.

    Floating inputs are cast to the model's dtype; integer inputs (token ids) are kept as
    they are when ``allow_integer`` and refused otherwise.
    """
    torch = torch_module()
    if isinstance(x, torch.Tensor):
        if x.device != device:
            raise InvalidInputError(
                f"{name} is on device {str(x.device)!r} but the model is on "
                f"{str(device)!r}. Move the inputs to the model's device first, e.g. "
                f"{name}.to({str(device)!r})."
            )
        t = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype == object:
            raise InvalidInputError(
                f"{name} must be a tensor or a numeric array, got an array of objects."
            )
        t = torch.as_tensor(np.ascontiguousarray(arr), device=device)
    if t.ndim < 2:
        raise InvalidInputError(
            f"{name} must have a batch axis: expected shape (n, *input_shape), got "
            f"{tuple(t.shape)}. For a single example use {name}[None] (or unsqueeze(0))."
        )
    if t.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (shape {tuple(t.shape)}); pass at least one row.")
    if t.is_floating_point() or t.is_complex():
        t = t.to(dtype)
        if not bool(torch.isfinite(t).all()):
            raise InvalidInputError(
                f"{name} contains NaN or infinite values; gradients at such inputs are "
                "meaningless. Replace or drop those entries first."
            )
    elif t.dtype == torch.bool or not allow_integer:
        raise InvalidInputError(
            f"{name} has integer dtype {t.dtype} (token ids?): gradients with respect to "
            "integer inputs do not exist. Pass layer= the path of the embedding module "
            "(e.g. layer='embeddings') to attribute to its output instead, or pass "
            "floating-point inputs."
        )
    return t


def call_model(model: Any, x: Any) -> Any:
    """``model(x)`` as a (m, k) tensor (tuples: first element; ``.logits`` when present)."""
    try:
        out = model(x)
    except Exception as exc:
        raise ModelCallError(
            f"the model raised {type(exc).__name__}: {exc} on a batch of inputs of shape "
            f"{tuple(x.shape)}. Check that it accepts such inputs; the original error is "
            "chained above."
        ) from exc
    if isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "logits"):
        out = out.logits
    if out.ndim == 1:
        out = out[:, None]
    elif out.ndim > 2:
        out = out.reshape(out.shape[0], -1)
    return out


@dataclass
class Targets:
    """Resolved output selection.

    ``index`` is an int64 tensor of shape (n, T): the output explained in column ``t`` for
    each row (per-example targets give T = 1 with different indices per row).
    """

    index: Any
    names: list[str]
    single: bool
    description: str
    record: Any


def resolve_targets(
    target: Any, n_outputs: int, n: int, device: Any, output_names: Sequence[Any] | None
) -> Targets:
    """Turn ``target`` into a :class:`Targets`.

    Accepted: None (the only output, or all outputs of a model with several), an int or
    output name, a list or tuple of them (several outputs, trailing axis), ``"all"``, or a
    1-D tensor / integer array of length n (one output per example, as in Captum).
    """
    torch = torch_module()
    names = (
        [str(o) for o in output_names]
        if output_names is not None
        else ([f"output {j}" for j in range(n_outputs)])
    )
    if len(names) != n_outputs:
        raise InvalidParameterError(
            f"output_names has {len(names)} names but the model has {n_outputs} outputs; "
            "give one name per output."
        )

    def one(t: Any) -> int:
        if isinstance(t, str):
            if t in names:
                return names.index(t)
            raise InvalidParameterError(
                f"unknown target {t!r}: the outputs are named {names}. Pass one of these "
                f"names or an output index between 0 and {n_outputs - 1}."
            )
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral):
            raise InvalidParameterError(
                f"target must be an output index, an output name, a list of them, 'all' or "
                f"a tensor of one index per example; got {t!r} of type {type(t).__name__}."
            )
        if not -n_outputs <= int(t) < n_outputs:
            raise InvalidParameterError(
                f"target {int(t)} is out of range: the model has {n_outputs} outputs, so a "
                f"target index must be between 0 and {n_outputs - 1}."
            )
        return int(t) % n_outputs

    if isinstance(target, torch.Tensor) or isinstance(target, np.ndarray):
        arr = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else target
        if arr.ndim == 0:
            target = arr.item()
        else:
            if arr.ndim != 1 or arr.shape[0] != n or not np.issubdtype(arr.dtype, np.integer):
                raise InvalidParameterError(
                    f"a tensor or array target gives one output index per example: expected "
                    f"integers of shape ({n},), got dtype {arr.dtype} and shape {arr.shape}."
                )
            idx = [one(int(t)) for t in arr]
            return Targets(
                index=torch.as_tensor(idx, dtype=torch.int64, device=device)[:, None],
                names=["per-example target"],
                single=True,
                description="model output of each example's target",
                record=idx,
            )
    if target is None and n_outputs == 1:
        cols, single = [0], True
    elif target is None or (isinstance(target, str) and target == "all" and "all" not in names):
        # DESIGN: a model with several outputs is explained for all of them by default
        cols, single = list(range(n_outputs)), False
    elif isinstance(target, (list, tuple)):
        if len(target) == 0:
            raise InvalidParameterError("target is an empty list; name at least one output.")
        cols, single = [one(t) for t in target], False
    else:
        cols, single = [one(target)], True
    index = torch.as_tensor(cols, dtype=torch.int64, device=device)[None, :].expand(n, -1)
    sel = [names[c] for c in cols]
    return Targets(
        index=index,
        names=sel,
        single=single,
        description=(", ".join(sel) if output_names is None else "output " + ", ".join(sel)),
        record=cols[0] if single else cols,
    )


def default_batch_rows(row_numel: int) -> int:
    """Rows per batch so one batch holds about DEFAULT_BATCH_ELEMENTS input elements."""
    return max(1, DEFAULT_BATCH_ELEMENTS // max(1, row_numel))


def check_batch_size(internal_batch_size: Any) -> int | None:
    if internal_batch_size is None:
        return None
    return check_int("internal_batch_size", internal_batch_size, minimum=1)


def gradients(
    model: Any,
    x: Any,
    index: Any,
    *,
    layer: str | None = None,
    layer_value: Any = None,
) -> tuple[Any, Any]:
    """Gradients of the selected outputs of one batch.

    Parameters
    ----------
    model : torch.nn.Module
    x : tensor of shape (m, *input_shape)
        Inputs of the forward pass.
    index : int64 tensor of shape (m, T)
        Output differentiated in column t for each row.
    layer, layer_value : optional
        With a layer path, ``layer_value`` (m, *layer_shape) replaces that layer's output
        and the gradients are taken with respect to it.

    Returns
    -------
    grads : tensor of shape (m, *shape, T)
        Gradients w.r.t. ``x`` (or ``layer_value``), one slice per target column.
    outputs : tensor of shape (m, k)
        The model outputs of the batch (detached).
    """
    torch = torch_module()
    with torch.enable_grad():
        if layer is None:
            wrt = x.detach().requires_grad_(True)
            out = call_model(model, wrt)
        else:
            wrt = layer_value.detach().requires_grad_(True)
            with hooks.replace(model, layer, lambda _orig: wrt):
                out = call_model(model, x)
        n_targets = index.shape[1]
        grads = []
        for t in range(n_targets):
            sel = out.gather(1, index[:, t : t + 1]).sum()
            (g,) = torch.autograd.grad(sel, wrt, retain_graph=t < n_targets - 1)
            grads.append(g)
    return torch.stack(grads, dim=-1), out.detach()


def same_layout(t: Any, ref: Any) -> Any:
    """``t`` (m, *shape) copied into the memory layout (strides) of ``ref`` (n, *shape).

    Path points built by indexing are plain C-contiguous; the user's inputs may be laid out
    otherwise (e.g. channels-last), which decides which convolution kernels run. Points keep
    the inputs' layout, as they would if they were sliced from them. Values are unchanged.
    """
    torch = torch_module()
    if t.shape[1:] != ref.shape[1:] or t.stride()[1:] == ref.stride()[1:]:
        return t
    row = int(np.prod(ref.shape[1:]))
    if ref.ndim < 2 or ref.stride(0) != row or t.shape[0] == 0:
        return t
    out = torch.empty_strided(
        tuple(t.shape), (row, *ref.stride()[1:]), dtype=t.dtype, device=t.device
    )
    out.copy_(t)
    return out


def layer_gradients(model: Any, x: Any, index: Any, layer: str) -> tuple[Any, Any, Any]:
    """One forward/backward pass: the layer's output ``A`` and the gradients w.r.t. it.

    Returns
    -------
    A : tensor of shape (m, *layer_shape), detached
    grads : tensor of shape (m, *layer_shape, T)
    outputs : tensor of shape (m, k), detached
    """
    torch = torch_module()
    box: list[Any] = []

    def leaf(orig: Any) -> Any:
        if not isinstance(orig, torch.Tensor) or not orig.is_floating_point():
            raise InvalidParameterError(
                f"the output of layer {layer!r} is {type(orig).__name__}"
                + (f" of dtype {orig.dtype}" if isinstance(orig, torch.Tensor) else "")
                + ", not one floating-point tensor; choose another layer."
            )
        box.append(orig.detach().requires_grad_(True))
        return box[-1]

    with torch.enable_grad(), hooks.replace(model, layer, leaf):
        out = call_model(model, x)
    if len(box) != 1:
        raise InvalidParameterError(
            f"layer {layer!r} ran {len(box)} times in one forward pass; layer methods need a "
            "module that runs exactly once."
        )
    A = box[0]
    grads = []
    with torch.enable_grad():
        for t in range(index.shape[1]):
            sel = out.gather(1, index[:, t : t + 1]).sum()
            (g,) = torch.autograd.grad(sel, A, retain_graph=t < index.shape[1] - 1)
            grads.append(g)
    return A.detach(), torch.stack(grads, dim=-1), out.detach()


def feature_names(shape: Sequence[int]) -> list[str]:
    """``x[i,j,...]`` names of the elements of one input of shape ``shape`` (C order)."""
    if len(shape) == 1:
        return [f"x{j}" for j in range(shape[0])]
    return ["x[" + ",".join(map(str, idx)) + "]" for idx in np.ndindex(*shape)]


def to_numpy(t: Any) -> np.ndarray:
    """A tensor as a float64 numpy array (the only place tensors leave their device)."""
    return t.detach().to("cpu").double().numpy() if hasattr(t, "detach") else np.asarray(t)


def example_generators(random_state: Any, x: Any) -> list[np.random.Generator]:
    """One numpy Generator per example of ``x`` (n, ...), seeded by ``random_state`` and the
    example's content (:func:`whybox.parallel.row_generator` of its float64 values), so an
    example draws the same noise whatever batch it is explained in."""
    from whybox.parallel import row_generator

    xs = to_numpy(x)
    return [row_generator(random_state, xs[i]) for i in range(xs.shape[0])]


class GradientExplainer(Explainer):
    """Base of the torch gradient explainers.

    Parameters
    ----------
    model : torch.nn.Module
        The network; explained in eval mode on its own device and dtype.
    output_names : sequence of str, optional
        Names of the model's outputs (e.g. class names), usable as ``target=``.
    """

    method = ""

    def __init__(self, model: Any, *, output_names: Sequence[Any] | None = None) -> None:
        check_model(model)
        self.model = model
        self.output_names = None if output_names is None else [str(o) for o in output_names]

    # -- pieces used by subclasses ----------------------------------------------------
    def _inputs(self, x: Any, *, allow_integer: bool = False) -> Any:
        device, dtype = device_dtype(self.model)
        return as_input_tensor(x, device, dtype, allow_integer=allow_integer)

    def _outputs(self, x: Any, batch_rows: int) -> Any:
        torch = torch_module()
        with torch.no_grad():
            return torch.cat(
                [
                    call_model(self.model, x[s : s + batch_rows])
                    for s in range(0, len(x), batch_rows)
                ]
            )

    def _targets(self, target: Any, n_outputs: int, n: int, device: Any) -> Targets:
        return resolve_targets(target, n_outputs, n, device, self.output_names)

    def _explanation(
        self,
        values: Any,
        *,
        x: Any,
        targets: Targets,
        predictions: Any,
        base_values: Any = None,
        params: dict[str, Any],
        n_evals: int | None,
        meta: dict[str, Any] | None = None,
        random_state: int | None = None,
        value_shape: Sequence[int] | None = None,
        data: Any = None,
    ) -> Explanation:
        """Assemble the Explanation from values (n, *shape, T) and outputs (n, k)."""
        vals = to_numpy(values)
        sel_pred = to_numpy(predictions.gather(1, targets.index))
        base = np.zeros_like(sel_pred) if base_values is None else to_numpy(base_values)
        if targets.single:
            vals, sel_pred, base = vals[..., 0], sel_pred[:, 0], base[:, 0]
        shape = tuple(value_shape) if value_shape is not None else tuple(x.shape[1:])
        return Explanation(
            vals,
            base,
            data=(
                data
                if data is not None
                else (to_numpy(x) if x.is_floating_point() else x.detach().cpu().numpy())
            ),
            feature_names=feature_names(shape),
            output_names=targets.names,
            predictions=sel_pred,
            method=self.method,
            params={
                "output": targets.description,
                "target": targets.record,
                "model_type": type(self.model).__name__,
                **params,
            },
            n_evals=n_evals,
            random_state=random_state,
            meta=meta,
        )

    def _attribute(
        self, x: Any, index: Any, batch_rows: int, **kwargs: Any
    ) -> tuple[Any, dict[str, Any]]:  # pragma: no cover - abstract
        """Attributions (m, *shape, T) of inputs ``x`` for targets ``index`` (m, T).

        ``info`` may hold ``base_values`` (m, T) tensors and ``n_evals`` (gradient
        evaluations per row).
        """
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    def _prepare_kwargs(self, x: Any, **kwargs: Any) -> dict[str, Any]:
        """Method arguments resolved once for all of ``x`` (used by SmoothGrad / VarGrad)."""
        if kwargs:
            raise InvalidParameterError(
                f"{type(self).__name__} takes no extra explain arguments, got {sorted(kwargs)}."
            )
        return {}

    def _explain_plain(
        self, x: Any, target: Any, internal_batch_size: Any, **kwargs: Any
    ) -> Explanation:
        """explain() of methods that need one set of gradients at the inputs."""
        rows_arg = check_batch_size(internal_batch_size)
        xt = self._inputs(x)
        rows = rows_arg or default_batch_rows(int(np.prod(xt.shape[1:])))
        with eval_semantics(self.model):
            preds = self._outputs(xt, rows)
            targets = self._targets(target, preds.shape[1], xt.shape[0], xt.device)
            values, info = self._attribute(xt, targets.index, rows, **kwargs)
        return self._explanation(
            values,
            x=xt,
            targets=targets,
            predictions=preds,
            base_values=info.get("base_values"),
            params={**self._params(), **info.get("params", {})},
            n_evals=info.get("n_evals", 1),
            meta=info.get("meta"),
            random_state=info.get("random_state"),
        )


def batched(m: int, batch_rows: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches covering ``range(m)``."""
    for s in range(0, m, batch_rows):
        yield s, min(s + batch_rows, m)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
