r"""Integrated Gradients (fixed and adaptive quadrature, layer IG) and Expected Gradients.

Integrated Gradients (Sundararajan et al., 2017) attributes ``f(x) - f(b)`` to the features
of ``x`` by integrating the gradient along the straight path from a baseline ``b``:

.. math:: \mathrm{IG}_i(x) = (x_i - b_i) \int_0^1 \partial_i f(b + \alpha (x - b))\, d\alpha,

so that ``sum_i IG_i = f(x) - f(b)`` (completeness). The integral is a quadrature
``sum_s w_s * grad f(b + alpha_s (x - b))`` with the rules Captum offers
(``riemann_left``, ``riemann_right``, ``riemann_middle``, ``riemann_trapezoid`` and
``gausslegendre``). The trapezoid rule here is the composite trapezoid rule on ``steps``
nodes, whose weights sum to exactly 1 (Captum's sum to ``(steps - 1) / steps``).

Adaptive mode (``tolerance=``)
------------------------------
Every evaluation of the gradient at a node also yields the output ``F(alpha)`` there, so on
each interval ``[l, r]`` of the grid the exact increment ``F(r) - F(l)`` of the path is known,
and the interval's share of the completeness gap is
``e = (g_l + g_r) / 2 * (r - l) - (F(r) - F(l))`` with ``g = grad f . (x - b)``; the
completeness gap of the whole rule is ``sum e``. Starting from 9 equally spaced nodes, each
example's grid is refined by bisecting the quarter of its intervals with the largest
``|e|``, until its relative gap ``|f(x) - f(b) - sum IG| / |f(x) - f(b)|`` is below the
tolerance (or ``steps`` nodes are used). Nodes are never discarded, so every gradient
evaluation counts; for ReLU networks, whose path integrand is piecewise constant, the
nodes concentrate at its jumps, which is where uniform rules lose accuracy. Adaptive mode
keeps each example's node gradients until the end (memory: nodes x input size per
example); fixed rules accumulate batch by batch and keep only one batch.

Layer IG (``layer="path"``)
---------------------------
The same integral in the space of a module's output: the module's output ``a`` is replaced
by ``a(b) + alpha (a(x) - a(b))`` while the model runs on ``x``, and the attributions
``(a(x) - a(b)) * int grad_a f`` complete to ``f(x) - f(x | a = a(b))`` (as Captum's
``LayerIntegratedGradients``). Integer inputs (token ids) need a layer, e.g. the embedding.

References
----------
Sundararajan, M., Taly, A., Yan, Q. (2017). Axiomatic attribution for deep networks. ICML.
Erion, G., Janizek, J., Sturmfels, P., Lundberg, S., Lee, S.-I. (2021). Improving performance
of deep learning models with axiomatic attribution priors and expected gradients. Nature
Machine Intelligence 3, 620-631.
Lundberg, S., Lee, S.-I. (2017). A unified approach to interpreting model predictions
(GradientSHAP / expected gradients). NeurIPS.
Sturmfels, P., Lundberg, S., Lee, S.-I. (2020). Visualizing the impact of feature
attribution baselines. Distill (blurred and uniform baselines).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from whybox._validation import check_in, check_int, check_random_state
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.explanation import ROW_KEYS, Explanation
from whybox.internals import hooks

from ._base import (
    GradientExplainer,
    batched,
    call_model,
    check_batch_size,
    check_finite,
    default_batch_rows,
    eval_semantics,
    example_generators,
    gap_meta,
    gradients,
    same_layout,
    to_numpy,
    torch_module,
)

__all__ = ["RULES", "ExpectedGradients", "IntegratedGradients", "make_baseline", "quadrature"]

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
_INITIAL_INTERVALS = 8  # adaptive mode starts from 9 equally spaced nodes
_REFINE_FRACTION = 0.25  # ... and bisects the worst quarter of each grid per round


def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alpha`` in [0, 1] and weights of a quadrature rule with ``steps`` nodes.

    Parameters
    ----------
    rule : str
        One of :data:`RULES`.
    steps : int
        Number of nodes (at least 2 for the trapezoid rule, 1 otherwise).

    Returns
    -------
    alphas, weights : ndarray of shape (steps,)
        ``sum(weights) == 1`` for every rule.
    """
    check_in("method", rule, RULES)
    if rule == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, w / 2.0
    if rule == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, steps)
        w = np.full(steps, 1.0 / (steps - 1))
        w[0] /= 2.0
        w[-1] /= 2.0
        return alphas, w
    w = np.full(steps, 1.0 / steps)
    if rule == "riemann_left":
        return np.arange(steps) / steps, w
    if rule == "riemann_right":
        return np.arange(1, steps + 1) / steps, w
    return (np.arange(steps) + 0.5) / steps, w


# --------------------------------------------------------------------------- baselines
_BASELINE_KINDS = ("zeros", "blur", "uniform")


def _gaussian_blur(x: Any, sigma: float) -> Any:
    """Gaussian blur over the last two axes of ``x`` (n, ..., H, W), replicate padding."""
    torch = torch_module()
    radius = max(1, math.ceil(3.0 * sigma))
    grid = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    kernel = kernel / kernel.sum()
    shape = x.shape
    img = x.reshape(-1, 1, shape[-2], shape[-1])
    pad = torch.nn.functional.pad(img, (radius, radius, radius, radius), mode="replicate")
    out = torch.nn.functional.conv2d(pad, kernel.view(1, 1, -1, 1))
    out = torch.nn.functional.conv2d(out, kernel.view(1, 1, 1, -1))
    return out.reshape(shape)


def make_baseline(
    x: Any, baseline: Any, *, blur_sigma: float | None, random_state: Any
) -> tuple[Any, str]:
    """The baseline as a tensor like ``x`` (n, *input_shape) and a description of its kind."""
    torch = torch_module()
    floating = x.is_floating_point()
    if isinstance(baseline, str):
        check_in("baseline", baseline, _BASELINE_KINDS)
        if baseline == "zeros":
            return torch.zeros_like(x), "zeros"
        if not floating:
            raise InvalidParameterError(
                f"baseline={baseline!r} needs floating-point inputs; for integer inputs "
                "(token ids) pass a baseline id, e.g. baseline=0 (a padding token)."
            )
        if baseline == "blur":
            if x.ndim < 3:
                raise InvalidParameterError(
                    f"baseline='blur' blurs the last two (spatial) axes of image inputs of "
                    f"shape (n, [C,] H, W); got inputs of shape {tuple(x.shape)}. Use a "
                    "constant or tensor baseline instead."
                )
            sigma = max(x.shape[-1], x.shape[-2]) / 4.0 if blur_sigma is None else blur_sigma
            if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or sigma <= 0:
                raise InvalidParameterError(
                    f"blur_sigma must be a positive number of pixels, got {blur_sigma!r}."
                )
            return _gaussian_blur(x, float(sigma)), f"blur(sigma={float(sigma):g})"
        check_random_state(random_state)
        flat = x.reshape(x.shape[0], -1)
        lo = flat.min(dim=1).values.reshape(-1, *([1] * (x.ndim - 1)))
        hi = flat.max(dim=1).values.reshape(-1, *([1] * (x.ndim - 1)))
        draws = np.stack(
            [g.random(tuple(x.shape[1:])) for g in example_generators(random_state, x)]
        )
        u = torch.as_tensor(draws, device=x.device).to(x.dtype)
        return lo + (hi - lo) * u, "uniform"
    if isinstance(baseline, numbers.Number) and not isinstance(baseline, bool):
        value = float(baseline) if floating else int(baseline)
        kind = "zeros" if value == 0 else f"constant({value:g})"
        return torch.full_like(x, value), kind
    if isinstance(baseline, (torch.Tensor, np.ndarray)):
        b = baseline
        if isinstance(b, torch.Tensor):
            if b.device != x.device:
                raise InvalidInputError(
                    f"baseline is on device {str(b.device)!r} but the model and inputs are on "
                    f"{str(x.device)!r}. Move it with baseline.to({str(x.device)!r})."
                )
            b = b.detach()
        else:
            b = torch.as_tensor(np.ascontiguousarray(b), device=x.device)
        b = b.to(x.dtype)
        if b.ndim == x.ndim and b.shape[0] not in (1, x.shape[0]):
            raise InvalidInputError(
                f"baseline has {b.shape[0]} rows but x has {x.shape[0]}: a baseline gives one "
                "row per input (or one row for all). For a distribution of baselines use "
                "wb.ExpectedGradients(model, baselines=...)."
            )
        try:
            b = torch.broadcast_to(b, x.shape).contiguous()
        except RuntimeError as exc:
            raise InvalidInputError(
                f"baseline of shape {tuple(baseline.shape)} is not broadcastable to the "
                f"inputs of shape {tuple(x.shape)}. Pass a baseline of shape "
                f"{tuple(x.shape[1:])}, {tuple(x.shape)}, or one that broadcasts to it."
            ) from exc
        if floating and not bool(torch.isfinite(b).all()):
            raise InvalidInputError("baseline contains NaN or infinite values.")
        return b, "tensor"
    raise InvalidParameterError(
        f"baseline must be a number, one of {list(_BASELINE_KINDS)}, or a tensor / array "
        f"broadcastable to the inputs; got {type(baseline).__name__}."
    )


# ------------------------------------------------------------------------- path geometry
class _Path:
    """Straight paths ``start + alpha * diff`` in input or layer space, one per example."""

    def __init__(
        self,
        model: Any,
        x: Any,
        b: Any,
        layer: str | None,
        batch_rows: int,
        base_out: Any = None,
        output: Any = None,
    ) -> None:
        torch = torch_module()
        self.model, self.x, self.layer, self.batch_rows = model, x, layer, batch_rows
        self.output = output
        if layer is None:
            self.start, self.end = b, x
        else:
            module = hooks.get_module(model, layer)
            self.start = self._layer_output(module, b)
            self.end = self._layer_output(module, x)
        self.diff = same_layout(self.end - self.start, self.end)
        self.base_out = base_out
        if base_out is not None:
            return
        with torch.no_grad():
            if layer is None:
                self.base_out = torch.cat(
                    [call_model(model, b[s:e], output) for s, e in batched(len(b), batch_rows)]
                )
            else:
                parts = []
                for s, e in batched(len(x), batch_rows):
                    with hooks.replace(model, layer, self.start[s:e]):
                        parts.append(call_model(model, x[s:e], output))
                self.base_out = torch.cat(parts)
        check_finite(self.base_out, "outputs at the baseline")

    def _layer_output(self, module: Any, inp: Any) -> Any:
        torch = torch_module()
        parts = []
        for s, e in batched(len(inp), self.batch_rows):
            with torch.no_grad(), hooks.capture(self.model, self.layer, detach=True) as cache:
                call_model(self.model, inp[s:e], self.output)
            out = cache.get(self.layer)
            if not isinstance(out, torch.Tensor):
                raise InvalidParameterError(
                    f"the output of layer {self.layer!r} ({type(module).__name__}) is "
                    f"{type(out).__name__}, not one tensor; choose a module whose output is "
                    "a single tensor."
                )
            if not out.is_floating_point():
                raise InvalidParameterError(
                    f"the output of layer {self.layer!r} is integer ({out.dtype}); choose a "
                    "layer with floating-point output such as the embedding."
                )
            parts.append(out)
        return torch.cat(parts)

    def evaluate(self, ex: Any, alpha: Any, index: Any) -> Any:
        """Yield ``(s, e, grads (j, *shape, T), outputs F (j, T))`` per batch of points.

        ``ex`` (J,) gives the example and ``alpha`` (J,) the position of each point.
        """
        for s, e in batched(len(ex), self.batch_rows):
            rows = ex[s:e]
            a = alpha[s:e].to(self.diff.dtype).reshape(-1, *([1] * (self.diff.ndim - 1)))
            point = same_layout(self.start[rows] + a * self.diff[rows], self.end)
            idx = index[rows]
            ids = rows.cpu().numpy()
            if self.layer is None:
                g, out = gradients(self.model, point, idx, output=self.output, rows=ids)
            else:
                g, out = gradients(
                    self.model,
                    self.x[rows],
                    idx,
                    layer=self.layer,
                    layer_value=point,
                    output=self.output,
                    rows=ids,
                )
            yield s, e, g, out.gather(1, idx)


def _runs(s: int, e: int, n: int) -> list[tuple[int, int, int]]:
    """Split step-major rows ``[s, e)`` into runs ``(step, lo, hi)`` of one step each."""
    out = []
    r = s
    while r < e:
        step = r // n
        stop = min(e, (step + 1) * n)
        out.append((step, r - step * n, stop - step * n))
        r = stop
    return out


def _fixed(
    path: _Path, index: Any, alphas: np.ndarray, weights: np.ndarray, rows: Any = None
) -> Any:
    """``sum_s w_s grad(alpha_s)`` per example (n, *shape, T).

    Rows are step-major (row ``r`` is step ``r // n`` of example ``r % n``); the points of a
    batch are built by slicing, so they keep the inputs' memory layout, and each batch's
    gradients are folded into the sum at once (one batch of gradients is held at a time).
    """
    torch = torch_module()
    n = path.x.shape[0]
    ids_all = np.arange(n) if rows is None else np.asarray(rows)
    acc = None
    for s, e in batched(n * len(alphas), path.batch_rows):
        runs = _runs(s, e, n)
        ids = np.concatenate([ids_all[lo:hi] for _, lo, hi in runs])
        point = torch.cat(
            [path.start[lo:hi] + float(alphas[st]) * path.diff[lo:hi] for st, lo, hi in runs]
        )
        point = same_layout(point, path.end)
        idx = torch.cat([index[lo:hi] for _, lo, hi in runs])
        if path.layer is None:
            g, _ = gradients(path.model, point, idx, output=path.output, rows=ids)
        else:
            x_rows = torch.cat([path.x[lo:hi] for _, lo, hi in runs])
            g, _ = gradients(
                path.model,
                x_rows,
                idx,
                layer=path.layer,
                layer_value=point,
                output=path.output,
                rows=ids,
            )
        if acc is None:
            acc = torch.zeros((n, *g.shape[1:]), dtype=g.dtype, device=g.device)
        full = [r for r in runs if r[1] == 0 and r[2] == n]
        if len(full) == len(runs) and len(runs) > 1:  # whole steps: one weighted sum
            w = torch.as_tensor([weights[st] for st, _, _ in runs], device=g.device)
            w = w.to(g.dtype).reshape(-1, *([1] * g.ndim))
            acc += (w * g.reshape(len(runs), n, *g.shape[1:])).sum(0)
        else:
            off = 0
            for st, lo, hi in runs:
                acc[lo:hi] += float(weights[st]) * g[off : off + hi - lo]
                off += hi - lo
    return acc


def _adaptive(
    path: _Path, index: Any, tolerance: float, max_nodes: int
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Adaptive trapezoid integration; returns (sum_s w_s grad_s, nodes per example, converged)."""
    torch = torch_module()
    n = path.x.shape[0]
    dev = path.x.device
    feat_axes = tuple(range(1, path.diff.ndim))
    node_alpha: list[np.ndarray] = []
    node_grad: list[Any] = []
    node_F: list[np.ndarray] = []  # (N_i, T) outputs along the path
    node_g: list[np.ndarray] = []  # (N_i, T) directional derivatives grad . diff

    def run(ex_list: np.ndarray, alpha_list: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        ex_t = torch.as_tensor(ex_list, device=dev)
        al_t = torch.as_tensor(alpha_list, device=dev)
        gs, Fs, ds = [], [], []
        for _s, _e, g, F in path.evaluate(ex_t, al_t, index):
            dirs = (g * path.diff[ex_t[_s:_e]][..., None]).sum(dim=feat_axes)
            gs.append(g)
            Fs.append(to_numpy(F))
            ds.append(to_numpy(dirs))
        return torch.cat(gs), np.concatenate(Fs), np.concatenate(ds)

    grid = np.linspace(0.0, 1.0, _INITIAL_INTERVALS + 1)
    k0 = len(grid)
    G, F, D = run(np.repeat(np.arange(n), k0), np.tile(grid, n))
    for i in range(n):
        node_alpha.append(grid.copy())
        node_grad.append(G[i * k0 : (i + 1) * k0])
        node_F.append(F[i * k0 : (i + 1) * k0])
        node_g.append(D[i * k0 : (i + 1) * k0])

    def interval_errors(i: int) -> np.ndarray:
        a, Fi, gi = node_alpha[i], node_F[i], node_g[i]
        h = np.diff(a)[:, None]
        return (gi[1:] + gi[:-1]) / 2.0 * h - np.diff(Fi, axis=0)  # (N_i - 1, T)

    def relative_gap(i: int) -> float:
        total = node_F[i][-1] - node_F[i][0]
        gap = np.abs(interval_errors(i).sum(axis=0))
        scale = np.maximum(np.abs(total), 1e-12 * (np.abs(node_F[i]).max(axis=0) + 1.0))
        return float((gap / scale).max())

    converged = np.zeros(n, dtype=bool)
    while True:
        ex_new, al_new = [], []
        for i in range(n):
            if converged[i]:
                continue
            if relative_gap(i) <= tolerance:
                converged[i] = True
                continue
            room = max_nodes - len(node_alpha[i])
            if room <= 0:
                continue
            err = np.abs(interval_errors(i)).max(axis=1)
            k = min(room, max(1, int(_REFINE_FRACTION * len(err))))
            worst = np.argsort(-err, kind="stable")[:k]
            a = node_alpha[i]
            ex_new.append(np.full(k, i))
            al_new.append((a[worst] + a[worst + 1]) / 2.0)
        if not ex_new:
            break
        ex_arr, al_arr = np.concatenate(ex_new), np.concatenate(al_new)
        G, F, D = run(ex_arr, al_arr)
        for i in np.unique(ex_arr):
            sel = np.nonzero(ex_arr == i)[0]
            a = np.concatenate([node_alpha[i], al_arr[sel]])
            order = np.argsort(a, kind="stable")
            sel_t = torch.as_tensor(sel, device=dev)
            order_t = torch.as_tensor(order, device=dev)
            node_alpha[i] = a[order]
            node_grad[i] = torch.cat([node_grad[i], G[sel_t]])[order_t]
            node_F[i] = np.concatenate([node_F[i], F[sel]])[order]
            node_g[i] = np.concatenate([node_g[i], D[sel]])[order]
    acc = []
    for i in range(n):
        h = np.diff(node_alpha[i])
        w = np.zeros(len(node_alpha[i]))
        w[:-1] += h / 2.0
        w[1:] += h / 2.0
        w_t = torch.as_tensor(w, device=dev).to(node_grad[i].dtype)
        acc.append((w_t.reshape(-1, *([1] * (node_grad[i].ndim - 1))) * node_grad[i]).sum(0))
    nodes = np.array([len(a) for a in node_alpha])
    return torch.stack(acc), nodes, converged


_gap_meta = gap_meta


class IntegratedGradients(GradientExplainer):
    """Integrated Gradients of a torch model, to its input or to a layer.

    Parameters
    ----------
    model : torch.nn.Module
        Explained in eval mode on its own device and dtype.
    multiply_by_inputs : bool, default True
        Multiply the integrated gradient by ``x - baseline`` (IG proper). False returns the
        path-averaged gradient, which does not satisfy completeness.
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs, usable as ``target=``.
    random_state : int, optional
        Seed of the ``"uniform"`` baseline.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``, ``steps`` below 1 or an unknown quadrature ``method``.

    Notes
    -----
    Completeness is checked on every call: a fixed rule whose completeness gap
    ``f(x) - f(baseline) - sum(values)`` exceeds 1% of the output scale (the standard
    deviation of the explained outputs over the rows; their largest absolute value for one
    row) warns with the figure and names ``steps=`` and ``tolerance=``; adaptive mode warns
    when an example stops at the node cap (``steps=``) above ``tolerance``.

    References
    ----------
    Sundararajan, Taly, Yan (2017), Axiomatic attribution for deep networks. ICML.

    Examples
    --------
    >>> model, data = wb.zoo.digits_cnn()
    >>> x, y = data.X_test[:2], data.y_test[:2]
    >>> exp = wb.IntegratedGradients(model).explain(x, target=y, tolerance=1e-3)
    >>> exp.values.shape
    (2, 1, 8, 8)
    >>> # completeness: values add up to f(x) - f(baseline), the baseline a black image
    >>> change = exp.predictions - exp.base_values
    >>> gap = change - exp.values.sum(axis=(1, 2, 3))
    >>> bool(np.all(np.abs(gap) < 0.01 * np.abs(change)))  # within 1% of the change
    True
    """

    method = "integrated_gradients"

    def __init__(
        self,
        model: Any,
        *,
        multiply_by_inputs: bool = True,
        output: Any = None,
        output_names: Any = None,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(model, output=output, output_names=output_names)
        self.multiply_by_inputs = bool(multiply_by_inputs)
        check_random_state(random_state)
        self.random_state = random_state

    _WRAPPED_KEYWORDS = ("baseline", "steps", "method", "blur_sigma")

    def _prepare_kwargs(self, x: Any, **kwargs: Any) -> dict[str, Any]:
        """Resolve the baseline once for the wrapped-by-SmoothGrad case."""
        super()._prepare_kwargs(x, **kwargs)
        b, kind = make_baseline(
            x,
            kwargs.get("baseline", 0),
            blur_sigma=kwargs.get("blur_sigma"),
            random_state=self.random_state,
        )
        steps = check_int("steps", kwargs.get("steps", 50), minimum=1)
        rule = kwargs.get("method") or "gausslegendre"
        check_in("method", rule, RULES)
        return {"baseline_tensor": b, "baseline_kind": kind, "steps": steps, "rule": rule}

    def _attribute(
        self,
        x: Any,
        index: Any,
        batch_rows: int,
        *,
        baseline_tensor: Any,
        baseline_kind: str,
        steps: int,
        rule: str,
        rows: Any = None,
    ) -> tuple[Any, dict[str, Any]]:
        n = x.shape[0]
        b = baseline_tensor
        if b.shape[0] != n:  # repeated rows of SmoothGrad
            b = b.repeat(n // b.shape[0], *([1] * (b.ndim - 1)))
        path = _Path(self.model, x, b, None, batch_rows, output=self.output)
        alphas, weights = quadrature(rule, steps)
        acc = _fixed(path, index, alphas, weights, rows)
        values = acc * path.diff[..., None] if self.multiply_by_inputs else acc
        info = {
            "base_values": path.base_out.gather(1, index),
            "n_evals": steps,
            "params": {"rule": rule, "steps": steps, "baseline": baseline_kind},
        }
        return values, info

    def _warn_completeness(
        self,
        meta: dict[str, Any],
        selected: np.ndarray,
        steps: int,
        tolerance: float | None,
        converged: np.ndarray | None,
    ) -> None:
        """Warn about a poor quadrature: an adaptive example stopped at the node cap above
        its tolerance, or a fixed rule's gap above 1% of the output scale."""
        if converged is not None:
            if converged.all():
                return
            rel = np.asarray(meta["relative_completeness_gap"], dtype=float)
            rel = rel.reshape(len(rel), -1).max(axis=1)
            bad = np.flatnonzero(~converged)
            shown = ", ".join(str(int(i)) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
            warnings.warn(
                f"IntegratedGradients: {len(bad)} of {len(converged)} example(s) (rows "
                f"[{shown}]) stopped at the node cap steps={steps} with a relative "
                f"completeness gap up to {float(rel[bad].max()):.3g}, above "
                f"tolerance={tolerance:g}. Raise steps= (the most nodes per example) or "
                "loosen tolerance=; exp.meta['converged'] and "
                "exp.meta['relative_completeness_gap'] give them per row.",
                UserWarning,
                stacklevel=3,
            )
            return
        gap = np.asarray(meta["completeness_gap"], dtype=float)
        self._warn_gap(
            gap.reshape(len(gap), -1),
            selected,
            f"Raise steps= (now {steps}) or pass tolerance= (e.g. tolerance=1e-3) for "
            "adaptive steps that refine each example until its gap is that small.",
        )

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        baseline: Any = 0,
        steps: int | None = None,
        method: str | None = None,
        internal_batch_size: int | None = None,
        tolerance: float | None = None,
        layer: str | None = None,
        blur_sigma: float | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Integrated Gradients of ``x``.

        Parameters
        ----------
        x : tensor or array of shape (n, *input_shape)
            Inputs on the model's device; integer inputs (token ids) need ``layer=``.
        target : int, str, list, "all" or tensor of shape (n,)
            Explained output(s); a tensor gives one output index per example.
        baseline : number, "zeros", "blur", "uniform", tensor or array
            A constant, a Gaussian blur of each input (``blur_sigma`` pixels, default a
            quarter of the image side), uniform noise in each input's range (seeded by
            ``random_state`` and the input's content), or a tensor broadcastable to ``x``. For a distribution of
            baselines use :class:`ExpectedGradients`.
        steps : int, optional
            Nodes of the quadrature (default 50). With ``tolerance``: the most nodes per
            example (default 512).
        method : str, optional
            Quadrature rule, one of :data:`RULES` (default ``"gausslegendre"``). Adaptive mode
            uses the composite trapezoid rule (``None`` or ``"riemann_trapezoid"``).
        internal_batch_size : int, optional
            Path points per forward/backward pass (default: about 4 M input elements per
            batch). Results do not depend on it.
        tolerance : float, optional
            Adaptive mode: refine each example's grid until its relative completeness gap is
            at most ``tolerance``; ``exp.meta["steps"]`` records the nodes used per example.
        layer : str, optional
            Attribute to the output of the module at this path (layer IG) instead of the
            input; values then have the layer's output shape.
        blur_sigma : float, optional
            Standard deviation in pixels of the ``"blur"`` baseline.

        Returns
        -------
        Explanation
            ``values`` (n, *shape) or (n, *shape, k); ``base_values`` f(baseline);
            ``predictions`` f(x); ``meta`` holds the per-example completeness gaps.

        Warns
        -----
        UserWarning
            When the completeness gap exceeds 1% of the output scale (fixed rules), or an
            example stops at the node cap above ``tolerance`` (adaptive mode).
        """
        self._check_keywords(
            kwargs,
            [
                "target",
                "baseline",
                "steps",
                "method",
                "internal_batch_size",
                "tolerance",
                "layer",
                "blur_sigma",
            ],
        )
        rows_arg = check_batch_size(internal_batch_size)
        adaptive = tolerance is not None
        if adaptive:
            if (
                isinstance(tolerance, bool)
                or not isinstance(tolerance, numbers.Real)
                or not tolerance > 0
            ):
                raise InvalidParameterError(
                    f"tolerance must be a positive number (the relative completeness gap to "
                    f"reach), got {tolerance!r}."
                )
            if method not in (None, "riemann_trapezoid"):
                raise InvalidParameterError(
                    f"adaptive mode (tolerance=) refines a composite trapezoid grid; "
                    f"method={method!r} cannot be refined. Pass method=None or "
                    "'riemann_trapezoid', or drop tolerance= for a fixed rule."
                )
            rule = "riemann_trapezoid"
            steps = check_int(
                "steps", 512 if steps is None else steps, minimum=_INITIAL_INTERVALS + 1
            )
        else:
            rule = "gausslegendre" if method is None else method
            check_in("method", rule, RULES)
            steps = check_int("steps", 50 if steps is None else steps, minimum=1)
            if rule == "riemann_trapezoid" and steps < 2:
                raise InvalidParameterError(
                    "the trapezoid rule needs steps >= 2 (both ends of the path)."
                )
        if layer is not None:
            hooks.get_module(self.model, layer)  # unknown path: closest valid paths
        xt = self._inputs(x, allow_integer=layer is not None)
        b, kind = make_baseline(xt, baseline, blur_sigma=blur_sigma, random_state=self.random_state)
        with eval_semantics(self.model):
            rows = rows_arg or default_batch_rows(int(np.prod(xt.shape[1:])))
            n = xt.shape[0]
            if layer is None:  # f(x) and f(baseline) in one call
                both = self._outputs(torch_module().cat([xt, b]), rows, check=False)
                preds, base_out = both[:n], both[n:]
                check_finite(preds, "outputs")
                check_finite(base_out, "outputs at the baseline")
            else:
                preds, base_out = self._outputs(xt, rows), None
            targets = self._targets(target, preds.shape[1], n, xt.device)
            path = _Path(self.model, xt, b, layer, rows, base_out, output=self.output)
            if adaptive:
                acc, nodes, converged = _adaptive(path, targets.index, float(tolerance), steps)
            else:
                alphas, weights = quadrature(rule, steps)
                acc = _fixed(path, targets.index, alphas, weights)
        values = acc * path.diff[..., None] if self.multiply_by_inputs else acc
        base = path.base_out.gather(1, targets.index)
        meta = _gap_meta(values, preds.gather(1, targets.index), base, targets.single)
        if self.multiply_by_inputs:
            self._warn_completeness(
                meta,
                to_numpy(preds.gather(1, targets.index)),
                steps,
                tolerance,
                converged if adaptive else None,
            )
        if adaptive:
            meta.update(
                steps=nodes.tolist(),
                mean_steps=float(nodes.mean()),
                converged=converged.tolist(),
            )
            meta[ROW_KEYS] = [*meta[ROW_KEYS], "steps", "converged"]
        params = {
            "rule": "adaptive_trapezoid" if adaptive else rule,
            "steps": steps,
            "tolerance": None if tolerance is None else float(tolerance),
            "baseline": kind,
            "layer": layer,
            "multiply_by_inputs": self.multiply_by_inputs,
        }
        data = None
        if layer is not None:
            data = to_numpy(path.end)
        return self._explanation(
            values,
            x=xt,
            targets=targets,
            predictions=preds,
            base_values=base,
            params=params,
            n_evals=int(nodes.max()) if adaptive else steps,
            meta=meta,
            random_state=self.random_state if kind == "uniform" else None,
            value_shape=tuple(path.diff.shape[1:]),
            data=data,
        )


# ExpectedGradients lives in .expected; importable from here as before
from .expected import ExpectedGradients  # noqa: E402
