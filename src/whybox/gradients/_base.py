"""Shared torch plumbing of the gradient explainers.

Device and dtype checks, eval-mode semantics, output and target selection, gradients of
selected outputs evaluated in batches, and the assembly of the one :class:`Explanation`.
Everything runs on the model's device in the model's dtype; tensors are converted to numpy
only when the Explanation is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from whybox._validation import check_int
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    UnsupportedModelError,
)
from whybox.explainer import Explainer
from whybox.explanation import ROW_KEYS, Explanation
from whybox.internals import hooks

from ._outputs import (
    Targets,
    as_matrix,
    call_model,
    check_finite,
    check_output_selector,
    forward,
    output_scale,
    resolve_targets,
    select_output,
)

__all__ = ["GradientExplainer", "Targets", "TrainingModeWarning"]

#: Fraction of the output scale a completeness gap may reach before an explanation warns
GAP_TOLERANCE = 0.01

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
    output: Any = None,
    rows: Any = None,
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
    output : int or str, optional
        Selector of the prediction in the forward's result (see :func:`select_output`).
    rows : sequence of int, optional
        The explained row of each of the m inputs, named when outputs or gradients are NaN.

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
            out = call_model(model, wrt, output)
        else:
            wrt = layer_value.detach().requires_grad_(True)
            # a copy stands in, so a model that changes the layer's output in place
            # (out += identity, ReLU(inplace=True)) never writes into the leaf
            with hooks.replace(model, layer, lambda _orig: wrt.clone()):
                out = call_model(model, x, output)
        check_finite(out.detach(), "outputs", rows)
        n_targets = index.shape[1]
        grads = []
        for t in range(n_targets):
            sel = out.gather(1, index[:, t : t + 1]).sum()
            (g,) = torch.autograd.grad(sel, wrt, retain_graph=t < n_targets - 1)
            grads.append(g)
    g = torch.stack(grads, dim=-1)
    check_finite(g, "gradients", rows)
    return g, out.detach()


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


def layer_gradients(
    model: Any, x: Any, index: Any, layer: str, *, output: Any = None, rows: Any = None
) -> tuple[Any, Any, Any]:
    """One forward/backward pass: the layer's output ``A`` and the gradients w.r.t. it.

    The layer's output is recorded where it leaves the module and the rest of the forward
    pass runs on a copy (:func:`whybox.internals.hooks.capture`), so layers whose output the
    model then changes in place (a batch norm before ``out += identity``, a convolution
    before ``ReLU(inplace=True)``) work, and the model's outputs are unchanged.

    Returns
    -------
    A : tensor of shape (m, *layer_shape), detached
    grads : tensor of shape (m, *layer_shape, T)
    outputs : tensor of shape (m, k), detached
    """
    torch = torch_module()
    box: list[Any] = []
    module = hooks.get_module(model, layer)

    def hook(mod: Any, args: Any, orig: Any) -> Any:
        if not isinstance(orig, torch.Tensor) or not orig.is_floating_point():
            raise InvalidParameterError(
                f"the output of layer {layer!r} is {type(orig).__name__}"
                + (f" of dtype {orig.dtype}" if isinstance(orig, torch.Tensor) else "")
                + ", not one floating-point tensor; choose another layer."
            )
        # frozen weights and inputs: the output is outside the graph; make it a leaf
        a = orig if orig.requires_grad else orig.detach().requires_grad_(True)
        box.append(a)
        return a.clone()

    with torch.enable_grad(), hooks.registered([module.register_forward_hook(hook)]):
        out = call_model(model, x, output)
    if len(box) != 1:
        raise InvalidParameterError(
            f"layer {layer!r} ran {len(box)} times in one forward pass, so its output is not "
            "one tensor; layer methods need a module that runs exactly once. A module reused "
            "inside a block (e.g. the ReLU of a ResNet BasicBlock, applied twice) has no "
            "single output: pass the block's path (whose output is that of its last ReLU) or "
            "the module just before the ReLU."
        )
    check_finite(out.detach(), "outputs", rows)
    A = box[0]
    grads = []
    with torch.enable_grad():
        for t in range(index.shape[1]):
            sel = out.gather(1, index[:, t : t + 1]).sum()
            (g,) = torch.autograd.grad(sel, A, retain_graph=t < index.shape[1] - 1)
            grads.append(g)
    g = torch.stack(grads, dim=-1)
    check_finite(g, "gradients", rows)
    return A.detach(), g, out.detach()


def gap_meta(values: Any, predictions: Any, base: Any, single: bool) -> dict[str, Any]:
    """Per-example completeness gaps, laid out like ``base_values``: (n,) or (n, k)."""
    v = to_numpy(values)
    sums = v.reshape(v.shape[0], -1, v.shape[-1]).sum(axis=1)
    p, b = to_numpy(predictions), to_numpy(base)
    gap = p - b - sums
    rel = np.abs(gap) / np.maximum(np.abs(p - b), 1e-12)
    if single:
        gap, rel = gap[:, 0], rel[:, 0]
    return {
        "completeness_gap": gap.tolist(),
        "relative_completeness_gap": rel.tolist(),
        "mean_relative_completeness_gap": float(rel.mean()),
        ROW_KEYS: ["completeness_gap", "relative_completeness_gap"],
    }


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
    output : int or str, optional
        Where the prediction is in what the forward returns: the index in a tuple (e.g.
        ``output=1`` for ``(aux, logits)``) or the key in a dict. A dict or Hugging Face
        ``ModelOutput`` defaults to its ``"logits"``; a tuple has no default.
    output_names : sequence of str, optional
        Names of the model's outputs (e.g. class names), usable as ``target=``.
    """

    method = ""
    #: Captum's keyword spellings, and what whybox calls them
    _CAPTUM_SPELLINGS: ClassVar[dict[str, str]] = {
        "n_steps": "steps= (nodes of the quadrature)",
        "baselines": "baseline= (IntegratedGradients.explain) or baselines= on the "
        "ExpectedGradients constructor",
        "additional_forward_args": (
            "nothing: whybox calls model(x) with one input; wrap the model in a "
            "torch.nn.Module whose forward(x) passes the extra arguments"
        ),
        "return_convergence_delta": (
            "exp.completeness_gap() (also meta['completeness_gap']): every explanation carries it"
        ),
        "nt_type": "the classes wb.SmoothGrad (mean) and wb.VarGrad (variance)",
        "nt_samples": "n_samples= on the wb.SmoothGrad / wb.VarGrad constructor",
        "nt_samples_batch_size": "internal_batch_size=",
        "stdevs": "noise= (with relative=False for input units) on the wb.SmoothGrad constructor",
        "abs": "absolute= on the wb.Saliency constructor",
        "relu_attributions": "relu= on the wb.GradCam constructor",
        "attribute_to_layer_input": (
            "layer= attributes to a module's output; pass the path of the module before it"
        ),
        "attr_dim_summation": "GradCam maps are summed over channels (values (n, 1, ...))",
        "sliding_window_shapes": "window= on the wb.Occlusion constructor",
        "strides": "stride= on the wb.Occlusion constructor",
        "perturbations_per_eval": "batch_size= on the wb.Occlusion constructor",
        "show_progress": "progress= a callable(done, total) (wb.Occlusion)",
    }

    def __init__(
        self, model: Any, *, output: Any = None, output_names: Sequence[Any] | None = None
    ) -> None:
        check_model(model)
        self.model = model
        self.output = check_output_selector(output)
        self.output_names = None if output_names is None else [str(o) for o in output_names]
        self._forward_how = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "explain" in cls.__dict__:  # a Dask x (or client=, out=): whybox._dask_explain
            from whybox._dask_explain import dask_routed

            cls.explain = dask_routed(cls.__dict__["explain"])  # type: ignore[method-assign]

    def _check_keywords(self, kwargs: dict[str, Any], allowed: Sequence[str]) -> None:
        """Refuse keywords ``explain`` does not read (Captum's spellings get whybox's)."""
        from whybox._validation import check_keywords

        name = type(self).__name__
        check_keywords(
            kwargs,
            allowed,
            where=f"{name}.explain",
            constructor=self._constructor_keywords(),
            constructor_name=name,
            spellings=self._CAPTUM_SPELLINGS,
        )

    def _constructor_keywords(self) -> list[str]:
        import inspect

        params = inspect.signature(type(self).__init__).parameters
        return [p for p in params if p not in ("self", "model")]

    # -- pieces used by subclasses ----------------------------------------------------
    def _inputs(self, x: Any, *, allow_integer: bool = False) -> Any:
        device, dtype = device_dtype(self.model)
        return as_input_tensor(x, device, dtype, allow_integer=allow_integer)

    def _outputs(
        self, x: Any, batch_rows: int, *, of: str = "the explained inputs", check: bool = True
    ) -> Any:
        """Model outputs (n, k) of ``x`` in batches; NaN / inf rows raise ModelCallError
        (unless ``check=False``: the caller checks)."""
        torch = torch_module()
        parts = []
        with torch.no_grad():
            for s in range(0, len(x), batch_rows):
                out, how = select_output(forward(self.model, x[s : s + batch_rows]), self.output)
                self._forward_how = how
                parts.append(as_matrix(out))
        out = torch.cat(parts)
        if check:
            check_finite(out, "outputs", of=of)
        return out

    def _targets(self, target: Any, n_outputs: int, n: int, device: Any) -> Targets:
        return resolve_targets(target, n_outputs, n, device, self.output_names)

    def _output_words(self, targets: Targets) -> str:
        """params["output"]: the explained output in words."""
        how = f"; {self._forward_how}" if self._forward_how else ""
        return f"{targets.description} (raw model output{how})"

    def _warn_gap(
        self,
        gap: np.ndarray,
        selected: np.ndarray,
        remedy: str,
        *,
        figure: str | None = None,
        stacklevel: int = 4,
    ) -> None:
        """Warn when a completeness gap (n, T) exceeds GAP_TOLERANCE of the output scale."""
        scale = output_scale(selected)
        ratio = np.abs(np.asarray(gap, dtype=float).reshape(len(gap), -1)) / scale
        if not np.isfinite(ratio).all() or ratio.max() <= GAP_TOLERANCE:
            return
        worst = int(np.argmax(ratio.max(axis=1)))
        warnings.warn(
            f"{type(self).__name__}: the completeness gap f(x) - base - sum(values) reaches "
            f"{float(np.abs(gap).max()):.3g} (row {worst}), "
            f"{float(ratio.max()):.1%} of the output scale {float(scale.max()):.3g} "
            f"(the std of the explained outputs), above the {GAP_TOLERANCE:.0%} whybox "
            f"accepts silently{figure or ''}. {remedy} exp.completeness_gap() gives it "
            "per row.",
            UserWarning,
            stacklevel=stacklevel,
        )

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
        meta = dict(meta or {})
        if targets.row_names is not None:
            meta["targets"] = list(targets.row_names)
            meta[ROW_KEYS] = [*meta.get(ROW_KEYS, []), "targets"]
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
                "output": self._output_words(targets),
                "target": targets.record,
                "model_type": type(self.model).__name__,
                **({"output_selector": self.output} if self.output is not None else {}),
                **params,
            },
            n_evals=n_evals,
            random_state=random_state,
            meta=meta or None,
        )

    def _attribute(
        self, x: Any, index: Any, batch_rows: int, *, rows: Any = None, **kwargs: Any
    ) -> tuple[Any, dict[str, Any]]:  # pragma: no cover - abstract
        """Attributions (m, *shape, T) of inputs ``x`` for targets ``index`` (m, T).

        ``rows`` (m,) names the explained row of each input in errors (default: positions).
        ``info`` may hold ``base_values`` (m, T) tensors and ``n_evals`` (gradient
        evaluations per row).
        """
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    #: keywords a wrapping SmoothGrad / VarGrad may pass on to this method
    _WRAPPED_KEYWORDS: tuple[str, ...] = ()

    def _prepare_kwargs(self, x: Any, **kwargs: Any) -> dict[str, Any]:
        """Method arguments resolved once for all of ``x`` (used by SmoothGrad / VarGrad)."""
        from whybox._validation import check_keywords

        check_keywords(
            kwargs,
            self._WRAPPED_KEYWORDS,
            where="SmoothGrad.explain",
            spellings=self._CAPTUM_SPELLINGS,
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
