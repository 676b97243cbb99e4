"""Gradient saliency, input x gradient, and the SmoothGrad / VarGrad noise wrappers.

* :class:`Saliency`: the gradient of the explained output w.r.t. the input, absolute or
  signed (Simonyan et al., 2014).
* :class:`InputXGradient`: the input times that gradient (Shrikumar et al., 2016).
* :class:`SmoothGrad` and :class:`VarGrad`: the mean (Smilkov et al., 2017) or the variance
  (Adebayo et al., 2018) of any gradient explainer's attributions over Gaussian-noised copies
  of the input; they wrap Saliency, InputXGradient, IntegratedGradients, GuidedBackprop ...

References
----------
Simonyan, K., Vedaldi, A., Zisserman, A. (2014). Deep inside convolutional networks:
visualising image classification models and saliency maps. ICLR workshop.
Shrikumar, A., Greenside, P., Shcherbina, A., Kundaje, A. (2016). Not just a black box:
learning important features through propagating activation differences. arXiv:1605.01713.
Smilkov, D., Thorat, N., Kim, B., Viegas, F., Wattenberg, M. (2017). SmoothGrad: removing
noise by adding noise. arXiv:1706.03825.
Adebayo, J., Gilmer, J., Goodfellow, I., Kim, B. (2018). Local explanation methods for deep
neural networks lack sensitivity to parameter values. ICLR workshop.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation

from ._base import (
    GradientExplainer,
    batched,
    check_batch_size,
    default_batch_rows,
    eval_semantics,
    example_generators,
    gradients,
    torch_module,
)

__all__ = ["InputXGradient", "Saliency", "SmoothGrad", "VarGrad"]


def _input_gradients(
    model: Any, x: Any, index: Any, batch_rows: int, output: Any = None, rows: Any = None
) -> Any:
    """Gradients (m, *shape, T) of the selected outputs, in batches of ``batch_rows``.

    ``rows`` (m,) gives the explained row of each input, for error messages.
    """
    torch = torch_module()
    ids = np.arange(len(x)) if rows is None else np.asarray(rows)
    parts = [
        gradients(model, x[s:e], index[s:e], output=output, rows=ids[s:e])[0]
        for s, e in batched(len(x), batch_rows)
    ]
    return torch.cat(parts)


class Saliency(GradientExplainer):
    """Gradient of the explained output with respect to the input.

    Parameters
    ----------
    model : torch.nn.Module
        The network, explained in eval mode on its own device and dtype.
    absolute : bool, default True
        Return ``|gradient|`` (the classic saliency map) or the signed gradient.
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs (e.g. class names), usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``.

    Notes
    -----
    ``.explain(x, target=None)`` takes inputs of shape ``(n, *input_shape)`` and returns
    values of that shape (plus an output axis for several outputs).

    Examples
    --------
    The gradient of a linear model is its weight vector:

    >>> import torch
    >>> model = torch.nn.Linear(3, 1, bias=False).eval()
    >>> model.weight.data = torch.tensor([[1.0, -2.0, 3.0]])
    >>> x = torch.tensor([[2.0, 1.0, 1.0]])
    >>> wb.Saliency(model).explain(x).values.tolist()
    [[1.0, 2.0, 3.0]]
    >>> wb.Saliency(model, absolute=False).explain(x).values.tolist()
    [[1.0, -2.0, 3.0]]

    References
    ----------
    Simonyan, Vedaldi, Zisserman (2014), Deep inside convolutional networks. ICLR workshop.
    """

    method = "saliency"

    def __init__(
        self,
        model: Any,
        *,
        absolute: bool = True,
        output: Any = None,
        output_names: Any = None,
    ) -> None:
        super().__init__(model, output=output, output_names=output_names)
        if not isinstance(absolute, (bool, np.bool_)):
            raise InvalidParameterError(f"absolute must be True or False, got {absolute!r}.")
        self.absolute = bool(absolute)

    def _params(self) -> dict[str, Any]:
        return {"absolute": self.absolute}

    def _attribute(
        self, x: Any, index: Any, batch_rows: int, *, rows: Any = None, **kwargs: Any
    ) -> Any:
        g = _input_gradients(self.model, x, index, batch_rows, self.output, rows)
        return (g.abs() if self.absolute else g), {"n_evals": 1}

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Saliency maps of ``x``.

        Parameters
        ----------
        x : tensor or array of shape (n, *input_shape)
            Inputs, on the model's device.
        target : int, str, list, "all" or tensor of shape (n,)
            Explained output(s); a tensor gives one output index per example.
        internal_batch_size : int, optional
            Inputs per forward/backward pass.

        Returns
        -------
        Explanation
            ``values`` (n, *input_shape) or (n, *input_shape, k); base values 0.
        """
        self._check_keywords(kwargs, ["target", "internal_batch_size"])
        return self._explain_plain(x, target, internal_batch_size)


class InputXGradient(GradientExplainer):
    """Input times the gradient of the explained output (Shrikumar et al., 2016).

    Parameters
    ----------
    model : torch.nn.Module
        The network, explained in eval mode on its own device and dtype.
    output : int or str, optional
        The prediction in what the forward returns: index in a tuple, key in a dict (a dict
        or ``ModelOutput`` defaults to ``"logits"``; a tuple needs it).
    output_names : sequence of str, optional
        Names of the model outputs (e.g. class names), usable as ``target=``.

    Raises
    ------
    UnsupportedModelError
        If ``model`` is not a ``torch.nn.Module``.
    InvalidParameterError
        For an unknown ``target`` (an index out of range, a name not in ``output_names``), or
        an unknown keyword of ``explain``.

    Notes
    -----
    ``.explain(x, target=None)`` takes inputs of shape ``(n, *input_shape)`` and returns
    values of that shape (plus an output axis for several outputs). For a linear model
    without bias the values add up to the prediction.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(3, 1, bias=False).eval()
    >>> model.weight.data = torch.tensor([[1.0, -2.0, 3.0]])
    >>> x = torch.tensor([[2.0, 1.0, 1.0]])
    >>> exp = wb.InputXGradient(model).explain(x)
    >>> exp.values.tolist(), exp.predictions.tolist()  # x * w, summing to f(x) = 3
    ([[2.0, -2.0, 3.0]], [3.0])

    References
    ----------
    Shrikumar et al. (2016), Not just a black box. arXiv:1605.01713.
    """

    method = "input_x_gradient"

    def _attribute(
        self, x: Any, index: Any, batch_rows: int, *, rows: Any = None, **kwargs: Any
    ) -> Any:
        g = _input_gradients(self.model, x, index, batch_rows, self.output, rows)
        return g * x[..., None], {"n_evals": 1}

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Input x gradient of ``x``: values (n, *input_shape[, k]), base values 0.

        Parameters as :meth:`Saliency.explain`; an unknown keyword raises
        InvalidParameterError.
        """
        self._check_keywords(kwargs, ["target", "internal_batch_size"])
        return self._explain_plain(x, target, internal_batch_size)


class SmoothGrad(GradientExplainer):
    """Mean of another gradient explainer's attributions over noisy copies of the input.

    Parameters
    ----------
    explainer : GradientExplainer
        The wrapped method (Saliency, InputXGradient, IntegratedGradients, GuidedBackprop,
        ...), already constructed with its model.
    noise : float, default 0.15
        Standard deviation of the Gaussian noise: a fraction of each example's value range
        ``max(x_i) - min(x_i)`` (as in the paper) or, with ``relative=False``, in input units
        (Captum's ``stdevs``).
    n_samples : int, default 50
        Noisy copies per example.
    random_state : int, optional
        Seed of the noise. Each example draws its noise from its own numpy stream, seeded
        by ``random_state`` and the example's content (as the tabular estimators seed rows),
        so it is the same whatever the batch it is explained in, the batch size and the
        device.
    relative : bool, default True
        Whether ``noise`` is relative to each example's range.

    Raises
    ------
    InvalidParameterError
        For ``n_samples`` below 1, a negative ``noise``, or an unknown ``target`` of the
        wrapped explainer.

    Notes
    -----
    ``.explain(x, target=None)`` takes what the wrapped explainer takes and returns values
    of its shape, ``(n, *input_shape)`` for input attributions.

    Examples
    --------
    The gradient of a linear model is the same at every noisy copy, so smoothing leaves
    it unchanged:

    >>> import torch
    >>> model = torch.nn.Linear(3, 1, bias=False).eval()
    >>> model.weight.data = torch.tensor([[1.0, -2.0, 3.0]])
    >>> x = torch.tensor([[2.0, 1.0, 1.0]])
    >>> exp = wb.SmoothGrad(wb.Saliency(model), n_samples=10, random_state=0).explain(x)
    >>> exp.values.round(3).tolist()
    [[1.0, 2.0, 3.0]]

    References
    ----------
    Smilkov et al. (2017), SmoothGrad: removing noise by adding noise. arXiv:1706.03825.
    """

    method = "smoothgrad"
    _reduce = "mean"

    def __init__(
        self,
        explainer: Any,
        *,
        noise: float = 0.15,
        n_samples: int = 50,
        random_state: int | None = 0,
        relative: bool = True,
    ) -> None:
        if not isinstance(explainer, GradientExplainer) or isinstance(explainer, SmoothGrad):
            raise InvalidParameterError(
                f"{type(self).__name__} wraps a gradient explainer such as "
                f"wb.Saliency(model) or wb.IntegratedGradients(model); got "
                f"{type(explainer).__name__}."
            )
        super().__init__(
            explainer.model, output=explainer.output, output_names=explainer.output_names
        )
        self.explainer = explainer
        if (
            isinstance(noise, bool)
            or not isinstance(noise, numbers.Real)
            or not np.isfinite(noise)
            or noise < 0
        ):
            raise InvalidParameterError(
                f"noise must be a non-negative number (the noise standard deviation), got "
                f"{noise!r}."
            )
        self.noise = float(noise)
        self.n_samples = check_int("n_samples", n_samples, minimum=1)
        check_random_state(random_state)
        self.random_state = random_state
        self.relative = bool(relative)

    def _attribute(
        self, x: Any, index: Any, batch_rows: int, *, rows: Any = None, **kwargs: Any
    ) -> Any:
        torch = torch_module()
        n = x.shape[0]
        ids = np.arange(n) if rows is None else np.asarray(rows)
        rngs = example_generators(self.random_state, x)  # per example: batch-independent
        if self.relative:
            flat = x.reshape(n, -1)
            span = (flat.max(dim=1).values - flat.min(dim=1).values).to(x.dtype)
            sigma = (self.noise * span).reshape(n, *([1] * (x.ndim - 1)))
        else:
            sigma = torch.full(
                (n, *([1] * (x.ndim - 1))), self.noise, dtype=x.dtype, device=x.device
            )
        # samples per call so that one call holds about batch_rows rows (at least one sample)
        per_call = max(1, batch_rows // n)
        total = total_sq = None
        base = None
        inner_info: dict[str, Any] = {}
        for s0 in range(0, self.n_samples, per_call):
            s1 = min(s0 + per_call, self.n_samples)
            # samples s0..s1 of each example: the next (s1 - s0) draws of its own stream
            eps = np.stack([g.standard_normal((s1 - s0, *x.shape[1:])) for g in rngs], axis=1)
            eps_t = torch.as_tensor(eps, device=x.device).to(x.dtype)
            noisy = (x[None] + sigma[None] * eps_t).reshape(-1, *x.shape[1:])
            reps = s1 - s0
            attr, inner_info = self.explainer._attribute(
                noisy, index.repeat(reps, 1), batch_rows, rows=np.tile(ids, reps), **kwargs
            )
            attr = attr.reshape(reps, n, *attr.shape[1:])
            for r in range(reps):  # fixed summation order: independent of the batch size
                a = attr[r]
                total = a.clone() if total is None else total + a
                total_sq = a * a if total_sq is None else total_sq + a * a
            if "base_values" in inner_info:
                base = inner_info["base_values"].reshape(reps, n, -1)[0]
        mean = total / self.n_samples
        values = mean if self._reduce == "mean" else total_sq / self.n_samples - mean * mean
        info: dict[str, Any] = {
            "n_evals": self.n_samples * int(inner_info.get("n_evals", 1)),
            "random_state": self.random_state,
            "params": {
                "wrapped": self.explainer.method,
                **{f"wrapped_{k}": v for k, v in inner_info.get("params", {}).items()},
                "noise": self.noise,
                "relative_noise": self.relative,
                "n_samples": self.n_samples,
            },
        }
        if base is not None and self._reduce == "mean":
            info["base_values"] = base
        return values, info

    def explain(
        self,
        x: Any,
        target: Any = None,
        *,
        internal_batch_size: int | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Smoothed attributions of ``x``.

        Parameters
        ----------
        x : tensor or array of shape (n, *input_shape)
        target : int, str, list, "all" or tensor of shape (n,)
        internal_batch_size : int, optional
            Rows per forward/backward pass (of the wrapped method's own inputs).
        **kwargs
            Passed to the wrapped method (e.g. ``baseline=``, ``steps=``, ``method=`` for
            IntegratedGradients); a keyword the wrapped method does not read raises
            InvalidParameterError.

        Returns
        -------
        Explanation
            ``values`` (n, *input_shape[, k]); for a wrapped IntegratedGradients the base
            values are f(baseline).
        """
        self._check_keywords(
            kwargs, ["target", "internal_batch_size", *self.explainer._WRAPPED_KEYWORDS]
        )
        rows_arg = check_batch_size(internal_batch_size)
        xt = self._inputs(x)
        rows = rows_arg or default_batch_rows(int(np.prod(xt.shape[1:])))
        with eval_semantics(self.model):
            preds = self._outputs(xt, rows)
            targets = self._targets(target, preds.shape[1], xt.shape[0], xt.device)
            inner_kwargs = self.explainer._prepare_kwargs(xt, **kwargs)
            values, info = self._attribute(xt, targets.index, rows, **inner_kwargs)
        return self._explanation(
            values,
            x=xt,
            targets=targets,
            predictions=preds,
            base_values=info.get("base_values"),
            params=info["params"],
            n_evals=info["n_evals"],
            random_state=self.random_state,
            value_shape=tuple(values.shape[1:-1]),
        )


class VarGrad(SmoothGrad):
    """Variance of another gradient explainer's attributions over noisy inputs.

    The values are the population variance ``E[a^2] - E[a]^2`` over the ``n_samples`` noisy
    copies (as Captum's ``vargrad``).

    Parameters
    ----------
    explainer : GradientExplainer
        The wrapped method (Saliency, InputXGradient, IntegratedGradients, GuidedBackprop,
        ...), already constructed with its model.
    noise : float, default 0.15
        Standard deviation of the Gaussian noise, a fraction of each example's value range
        (or, with ``relative=False``, in input units).
    n_samples : int, default 50
        Noisy copies per example.
    random_state : int, optional
        Seed of the noise (default 0); each example draws from its own stream, so its
        values do not depend on the batch.
    relative : bool, default True
        Whether ``noise`` is relative to each example's range.

    Raises
    ------
    InvalidParameterError
        For ``n_samples`` below 1, a negative ``noise``, or an unknown ``target`` of the
        wrapped explainer.

    Examples
    --------
    The gradient of a linear model does not vary under noise: its variance is zero.

    >>> import torch
    >>> model = torch.nn.Linear(3, 1, bias=False).eval()
    >>> model.weight.data = torch.tensor([[1.0, -2.0, 3.0]])
    >>> x = torch.tensor([[2.0, 1.0, 1.0]])
    >>> exp = wb.VarGrad(wb.Saliency(model, absolute=False), n_samples=10).explain(x)
    >>> exp.values.round(3).tolist()
    [[0.0, 0.0, 0.0]]

    References
    ----------
    Adebayo et al. (2018), Local explanation methods for deep neural networks lack
    sensitivity to parameter values. ICLR workshop.
    """

    method = "vargrad"
    _reduce = "var"
